/**
 * Waits `ms`, or less when `signal` aborts (it then resolves, never rejects: callers check the
 * signal). Zero, negative or already-aborted waits resolve at once.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted === true) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Waits for `p` at most `ms`: 'settled' when it resolved or rejected in time (its rejection is
 * swallowed: callers that care await it themselves), else 'timeout'; the timer is cleared either
 * way. For a close on a shutdown path that an unreachable broker could hold forever.
 */
export async function within(p: Promise<unknown>, ms: number): Promise<'settled' | 'timeout'> {
  const timer = new AbortController()
  const settled = p.then(
    () => 'settled' as const,
    () => 'settled' as const,
  )
  try {
    return await Promise.race([settled, sleep(ms, timer.signal).then(() => 'timeout' as const)])
  } finally {
    timer.abort()
  }
}
