/**
 * Bearer-token authentication of OTLP senders, in the spirit of the Collector's `bearertokenauth`
 * extension: `auth: { bearerTokenFile }` on a receiver. Every request must carry
 * `authorization: Bearer <token>` (gRPC metadata or HTTP header); the token is the file's content
 * without surrounding whitespace (a Kubernetes Secret mounted as a file). The file is re-read every
 * `reloadInterval` (default 1 min) so the token rotates without a restart; a failed re-read keeps
 * the current token, counted and logged once.
 *
 * Refusals are UnauthenticatedError (errors.ts), mapped in status.ts: gRPC UNAUTHENTICATED, HTTP 401
 * with `WWW-Authenticate: Bearer`; counted per reason in `AuthStats`.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { PermanentError, errorMessage } from '../common/errors.js'
import type { Logger } from '../common/logger.js'
import { silentLogger } from '../common/logger.js'
import { duration } from '../config/duration.js'
import { UnauthenticatedError } from './errors.js'
import { PeriodicReload } from './reload.js'

export const authSchema = z.strictObject({
  bearerTokenFile: z.string().min(1),
  reloadInterval: duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(60_000),
})

export type AuthConfig = z.output<typeof authSchema>

export type AuthFailure = 'missing' | 'malformed' | 'invalid'

export type AuthOutcome = { outcome: 'authenticated' } | { outcome: 'refused'; reason: AuthFailure; error: UnauthenticatedError }

export interface AuthStats {
  refused: Record<AuthFailure, number>
  /** token re-reads that kept the previous token */
  reloadFailures: number
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest()

async function readToken(file: string): Promise<{ outcome: 'read'; digest: Buffer } | { outcome: 'failed'; message: string }> {
  try {
    const token = (await readFile(file, 'utf8')).trim()
    if (token === '') return { outcome: 'failed', message: `${file} is empty` }
    return { outcome: 'read', digest: digest(token) }
  } catch (err) {
    return { outcome: 'failed', message: errorMessage(err) }
  }
}

export class BearerAuth {
  /** sha256 of the expected token: equal-length buffers for timingSafeEqual, and the token itself is not kept */
  private expected: Buffer
  private readonly counters: AuthStats = { refused: { missing: 0, malformed: 0, invalid: 0 }, reloadFailures: 0 }
  private readonly reloader: PeriodicReload

  private constructor(config: AuthConfig, expected: Buffer, logger: Logger, name: string) {
    this.expected = expected
    this.reloader = new PeriodicReload({
      intervalMs: config.reloadInterval,
      name,
      what: 'bearer token',
      log: logger,
      onFailure: () => this.counters.reloadFailures++,
      attempt: async () => {
        const r = await readToken(config.bearerTokenFile)
        if (r.outcome === 'failed') return r.message
        this.expected = r.digest
        return undefined
      },
    })
  }

  static async load(config: AuthConfig, opts: { name: string; logger?: Logger }): Promise<BearerAuth> {
    const r = await readToken(config.bearerTokenFile)
    if (r.outcome === 'failed') throw new PermanentError('AUTH_CONFIG', `${opts.name}: bearerTokenFile: ${r.message}`)
    return new BearerAuth(config, r.digest, opts.logger ?? silentLogger, opts.name)
  }

  /** Checks an `authorization` value (header or metadata); counts refusals by reason. */
  check(authorization: string | undefined): AuthOutcome {
    const refuse = (reason: AuthFailure, message: string): AuthOutcome => {
      this.counters.refused[reason]++
      return { outcome: 'refused', reason, error: new UnauthenticatedError(message) }
    }
    if (authorization === undefined || authorization === '') return refuse('missing', 'missing bearer token')
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization)
    if (m === null) return refuse('malformed', 'authorization is not a bearer token')
    // comparing digests keeps the comparison constant-time whatever the presented token's length
    if (!timingSafeEqual(digest(m[1] as string), this.expected)) return refuse('invalid', 'invalid bearer token')
    return { outcome: 'authenticated' }
  }

  stats(): AuthStats {
    return { refused: { ...this.counters.refused }, reloadFailures: this.counters.reloadFailures }
  }

  start(): void {
    this.reloader.start()
  }

  stop(): void {
    this.reloader.stop()
  }

  /** Re-reads the token file; never throws. */
  reload(): Promise<void> {
    return this.reloader.run()
  }
}
