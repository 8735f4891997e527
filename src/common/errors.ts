/**
 * Errors are classified once, by behaviour: a PermanentError will fail again if retried (bad input,
 * bad config, forged signature); a RetryableError may succeed later (broker down, overload).
 * Unmarked errors count as retryable, except programmer errors (TypeError, RangeError...): a bug,
 * which a retry will not fix. Where the work can be refused (a request, a record) it is, as for a
 * permanent error; the decision and partials publishers retry it with their backoff instead (their
 * records are decisions and a node's share of a judgement: dropped, they are lost), logging the
 * class. Protocol mapping lives in one place per protocol (see receivers/status.ts).
 */
export class PullbackError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

export class PermanentError extends PullbackError {}

export class RetryableError extends PullbackError {
  readonly retryAfterMs: number | undefined
  constructor(code: string, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(code, message, options)
    this.retryAfterMs = options?.retryAfterMs
  }
}

export type ErrorClass = 'permanent' | 'retryable' | 'programmer'

export function classify(err: unknown): ErrorClass {
  if (err instanceof PermanentError) return 'permanent'
  if (err instanceof RetryableError) return 'retryable'
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError || err instanceof ReferenceError) {
    return 'programmer'
  }
  return 'retryable'
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
