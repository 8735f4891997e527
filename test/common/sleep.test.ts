import { describe, expect, it } from 'vitest'
import { sleep, within } from '../../src/common/sleep.js'

describe('sleep and within', () => {
  it('sleep resolves after its time, or at once when aborted (never rejects)', async () => {
    const ac = new AbortController()
    const t0 = Date.now()
    const p = sleep(10_000, ac.signal)
    ac.abort()
    await p
    expect(Date.now() - t0).toBeLessThan(1000)
    await sleep(0)
  })

  it('within: settled for a promise that resolves or rejects in time, timeout for one that never does', async () => {
    expect(await within(Promise.resolve(1), 1000)).toBe('settled')
    expect(await within(Promise.reject(new Error('refused')), 1000)).toBe('settled')
    const t0 = Date.now()
    expect(await within(new Promise(() => undefined), 50)).toBe('timeout')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45)
  })
})
