/**
 * TLS for the OTLP receivers and the admin port, configured like the OpenTelemetry Collector's
 * `configtls` server settings (camelCase, as the rest of pullback's config):
 *
 * ```yaml
 * tls:
 *   certFile: /var/run/pullback/tls/tls.crt
 *   keyFile: /var/run/pullback/tls/tls.key
 *   clientCaFile: /var/run/pullback/tls/ca.crt   # set => every client must present a certificate it signed (mTLS)
 *   minVersion: "1.2"                              # "1.2" | "1.3"
 *   reloadInterval: 1m                             # files re-read this often; changed ones take effect for new connections
 * ```
 *
 * Rotation (cert-manager rewrites the Secret, the kubelet swaps the mounted files): the files are
 * re-read every `reloadInterval` and, when their content changed, a new secure context is built and
 * used for new connections; open connections keep theirs. A reload that fails (unreadable file, key
 * not matching the certificate, a half-written rotation) keeps the current certificate, is counted
 * (`stats().reloadFailures`) and logged once per distinct failure; the next tick tries again.
 * At start a failure is a PermanentError: pullback does not serve plaintext when TLS is configured.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import tls from 'node:tls'
import { z } from 'zod'
import { PermanentError, errorMessage } from '../common/errors.js'
import { duration } from '../config/duration.js'
import { PeriodicReload } from './reload.js'

/** the lifecycle log lines TLS writes (a pino Logger fits; so does the admin server's log) */
export interface TlsLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}
const quiet: TlsLog = { info: () => undefined, warn: () => undefined }

export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 60_000
/** a TLS handshake must complete within this of the connection (a stalled handshake holds a connection slot) */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000

export const tlsSchema = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** set: client certificates are required and must chain to this CA (mTLS) */
  clientCaFile: z.string().min(1).optional(),
  minVersion: z.enum(['1.2', '1.3']).default('1.2'),
  reloadInterval: duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(DEFAULT_TLS_RELOAD_INTERVAL_MS),
})

export type TlsConfig = z.output<typeof tlsSchema>

export interface TlsStats {
  /** successful reloads after the initial load */
  reloads: number
  /** reload attempts that kept the previous certificate */
  reloadFailures: number
}

interface Loaded {
  /** sha256 over the files' contents: a tick with the same digest changes nothing */
  digest: string
  options: tls.SecureContextOptions
  context: tls.SecureContext
}

type LoadOutcome = { outcome: 'loaded'; loaded: Loaded } | { outcome: 'failed'; message: string }

/**
 * The current certificate, key and client CA of one server, re-read on an interval. Servers take
 * `serverOptions()` at start and `onReload` updates (node https servers: `setSecureContext`), or
 * `secureContext()` per new connection (the gRPC receiver wraps its accepted sockets itself).
 */
export class TlsMaterial {
  private current: Loaded
  private readonly listeners: Array<(options: tls.SecureContextOptions) => void> = []
  private counters: TlsStats = { reloads: 0, reloadFailures: 0 }
  private readonly reloader: PeriodicReload

  private constructor(
    readonly config: TlsConfig,
    initial: Loaded,
    private readonly logger: TlsLog,
    private readonly name: string,
  ) {
    this.current = initial
    this.reloader = new PeriodicReload({
      intervalMs: config.reloadInterval,
      name,
      what: 'TLS certificate',
      log: logger,
      onFailure: () => this.counters.reloadFailures++,
      attempt: () => this.reloadOnce(),
    })
  }

  /** Reads the files and builds the first secure context; PermanentError naming the problem when it cannot. */
  static async load(config: TlsConfig, opts: { name: string; logger?: TlsLog | undefined }): Promise<TlsMaterial> {
    const r = await readMaterial(config)
    if (r.outcome === 'failed') throw new PermanentError('TLS_CONFIG', `${opts.name}: TLS: ${r.message}`)
    return new TlsMaterial(config, r.loaded, opts.logger ?? quiet, opts.name)
  }

  /** whether clients must present a certificate signed by clientCaFile */
  get requireClientCert(): boolean {
    return this.config.clientCaFile !== undefined
  }

  /** options for tls/https servers: the context plus client-certificate policy */
  serverOptions(): tls.TlsOptions {
    return { ...this.current.options, requestCert: this.requireClientCert, rejectUnauthorized: this.requireClientCert }
  }

  secureContext(): tls.SecureContext {
    return this.current.context
  }

  /** `fn` gets the new context options after each successful reload */
  onReload(fn: (options: tls.SecureContextOptions) => void): void {
    this.listeners.push(fn)
  }

  stats(): TlsStats {
    return { ...this.counters }
  }

  /** starts polling the files every reloadInterval (unref'd timer) */
  start(): void {
    this.reloader.start()
  }

  stop(): void {
    this.reloader.stop()
  }

  /** One reload attempt (the timer calls it; tests may too). Never throws. */
  reload(): Promise<void> {
    return this.reloader.run()
  }

  /** reads the files and applies a changed certificate; the failure's message, or undefined */
  private async reloadOnce(): Promise<string | undefined> {
    const r = await readMaterial(this.config)
    if (r.outcome === 'failed') return r.message
    if (r.loaded.digest === this.current.digest) return undefined
    this.current = r.loaded
    this.counters.reloads++
    for (const fn of this.listeners) {
      try {
        fn(r.loaded.options)
      } catch (err) {
        this.counters.reloadFailures++
        this.logger.warn({ server: this.name, err: errorMessage(err) }, 'TLS reload not applied')
      }
    }
    this.logger.info({ server: this.name }, 'TLS certificate reloaded')
    return undefined
  }
}

async function readMaterial(config: TlsConfig): Promise<LoadOutcome> {
  let cert: Buffer, key: Buffer, ca: Buffer | undefined
  try {
    ;[cert, key, ca] = await Promise.all([readFile(config.certFile), readFile(config.keyFile), config.clientCaFile === undefined ? undefined : readFile(config.clientCaFile)])
  } catch (err) {
    return { outcome: 'failed', message: errorMessage(err) }
  }
  const digest = createHash('sha256').update(cert).update('\0').update(key).update('\0').update(ca ?? '').digest('hex')
  const options: tls.SecureContextOptions = { cert, key, minVersion: config.minVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2' }
  if (ca !== undefined) options.ca = ca
  try {
    // also checks that the key matches the certificate
    const context = tls.createSecureContext(options)
    return { outcome: 'loaded', loaded: { digest, options, context } }
  } catch (err) {
    return { outcome: 'failed', message: `${config.certFile} / ${config.keyFile}: ${errorMessage(err)}` }
  }
}
