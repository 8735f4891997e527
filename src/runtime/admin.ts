/**
 * The admin HTTP server (runtime.admin.endpoint, default 0.0.0.0:13134):
 *
 *   GET /livez   200 while the event loop is turning promptly: the heartbeat timer fired within
 *                livenessMaxDelay AND its latest tick was not late by more than livenessMaxDelay;
 *                503 otherwise. A loop blocked outright cannot answer at all (the kubelet's probe
 *                timeout counts that as a failure); a loop that keeps blocking for longer than the
 *                limit between short yields answers 503 after every block, so the probe's
 *                failureThreshold sees it, while a single long pause only costs one failed probe.
 *   GET /readyz  200 when every registered readiness check passes, 503 when one fails, times out
 *                or the process is draining (SIGTERM). Checks run concurrently; concurrent
 *                requests share one run.
 *   GET /status  200 with the JSON of the registered status provider (watched services, signal
 *                states, last verdicts); 404 when none is registered. With `status: health` (the
 *                default on a non-loopback endpoint, see statusDetailOf) only the liveness, never the
 *                provider's document. One entry that cannot be serialised becomes an `{ error }`
 *                entry (counted in `statusEntryErrors`), never a 500 for the whole answer; a provider
 *                that throws outright is a 500.
 *
 * With `tls` the server is node https with the current (reloaded) certificate (receivers/tls.ts);
 * client certificates are required when a client CA is set.
 *
 * Every answer is JSON. Only GET and HEAD are served. Connections are capped (MAX_CONNECTIONS) and
 * slow clients cut off by header/request timeouts, so a probe storm cannot grow memory.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Component } from '../common/lifecycle.js'
import type { Clock } from '../common/clock.js'
import { systemClock } from '../common/clock.js'
import { PermanentError, RetryableError, errorMessage } from '../common/errors.js'
import { splitHostPort, statusDetailOf, type AdminConfig, type StatusDetail } from './config.js'
import { TLS_HANDSHAKE_TIMEOUT_MS, TlsMaterial, type TlsStats } from '../receivers/tls.js'
import type { CheckResult, ReadinessCheck } from './health.js'

export const MAX_CONNECTIONS = 64
const HEARTBEAT_MS = 1_000

export interface CheckReport {
  name: string
  status: CheckResult['status']
  detail?: string
  ms: number
}

export type ReadinessReport =
  | { status: 'ready'; checks: CheckReport[] }
  | { status: 'not_ready'; checks: CheckReport[] }
  | { status: 'draining'; checks: CheckReport[] }

export type LivenessReport =
  | { status: 'alive'; heartbeatAgeMs: number; lastTickLateMs: number }
  | { status: 'stalled'; heartbeatAgeMs: number; lastTickLateMs: number; limitMs: number }

export interface AdminLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface AdminSecurityStats {
  statusDetail: StatusDetail
  /** /status entries replaced by `{ error }` because they could not be serialised */
  statusEntryErrors: number
  tlsHandshakeFailures: number
  tls?: TlsStats
}

export interface AdminOptions {
  config: AdminConfig
  clock?: Clock
  log?: AdminLog
  /** heartbeat timer period; default 1 s */
  heartbeatMs?: number
}

export class AdminServer implements Component {
  readonly name = 'admin'
  private readonly checks = new Map<string, ReadinessCheck>()
  private statusProvider: (() => unknown) | undefined
  /** further top-level /status entries (e.g. `readiness`, `history`), added to the provider's object */
  private readonly statusSections = new Map<string, () => unknown>()
  private server: Server | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private lastBeat: number
  private lastLate = 0
  private draining = false
  private inflightReadiness: Promise<ReadinessReport> | undefined
  private readonly clock: Clock
  private shutdownPromise: Promise<void> | undefined
  private readonly statusDetail: StatusDetail
  private statusEntryErrors = 0
  private tls: TlsMaterial | undefined
  private tlsHandshakeFailures = 0

  constructor(private readonly opts: AdminOptions) {
    this.clock = opts.clock ?? systemClock
    this.lastBeat = this.clock.now()
    this.statusDetail = statusDetailOf(opts.config)
  }

  security(): AdminSecurityStats {
    const out: AdminSecurityStats = { statusDetail: this.statusDetail, statusEntryErrors: this.statusEntryErrors, tlsHandshakeFailures: this.tlsHandshakeFailures }
    if (this.tls) out.tls = this.tls.stats()
    return out
  }

  /** registers (or replaces) a readiness check; returns a function that removes it */
  addReadinessCheck(name: string, check: ReadinessCheck): () => void {
    this.checks.set(name, check)
    return () => {
      if (this.checks.get(name) === check) this.checks.delete(name)
    }
  }

  /** the JSON-serialisable object /status returns */
  setStatusProvider(provider: () => unknown): void {
    this.statusProvider = provider
  }

  /**
   * adds (or replaces) a top-level entry of the /status document; applied when the provider's
   * document is a plain object. A section that throws becomes `{ error }` (counted), not a 500.
   */
  addStatusSection(name: string, section: () => unknown): void {
    this.statusSections.set(name, section)
  }

  /** from now on /readyz answers 503 draining, so traffic moves away before receivers stop */
  markDraining(): void {
    this.draining = true
  }

  /** the bound address (useful with port 0); undefined before start */
  address(): { host: string; port: number } | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined
    return a ? { host: a.address, port: a.port } : undefined
  }

  async start(): Promise<void> {
    if (!this.opts.config.enabled || this.server !== undefined || this.shutdownPromise !== undefined) return
    const { host, port } = splitHostPort(this.opts.config.endpoint)
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res)
    const tlsConfig = this.opts.config.tls
    let server: Server
    if (tlsConfig === undefined) server = createServer(handler)
    else {
      const material = await TlsMaterial.load(tlsConfig, { name: 'admin', logger: this.opts.log })
      const secure = createHttpsServer({ ...material.serverOptions(), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS }, handler)
      secure.on('tlsClientError', (_err, socket) => {
        this.tlsHandshakeFailures++
        socket.destroy()
      })
      material.onReload((o) => secure.setSecureContext(o))
      this.tls = material
      server = secure
    }
    server.maxConnections = MAX_CONNECTIONS
    server.headersTimeout = 5_000
    server.requestTimeout = 10_000
    server.keepAliveTimeout = 5_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const msg = `admin server cannot listen on ${this.opts.config.endpoint}: ${err.message}`
        reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL' ? new PermanentError('ADMIN_LISTEN', msg, { cause: err }) : new RetryableError('ADMIN_LISTEN', msg, { cause: err }))
      })
      server.listen(port, host, () => resolve())
    })
    // later socket errors must not crash the process
    server.on('error', (err) => this.opts.log?.warn({ err: errorMessage(err) }, 'admin server error'))
    this.server = server
    this.lastBeat = this.clock.now()
    this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs ?? HEARTBEAT_MS)
    this.heartbeat.unref()
    this.tls?.start()
    this.opts.log?.info({ endpoint: this.opts.config.endpoint, port: this.address()?.port, status: this.statusDetail, tls: this.tls === undefined ? 'off' : this.tls.requireClientCert ? 'mtls' : 'tls' }, 'admin server listening')
  }

  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.doShutdown()
    return this.shutdownPromise
  }

  private async doShutdown(): Promise<void> {
    this.draining = true
    clearInterval(this.heartbeat)
    this.tls?.stop()
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  /** one heartbeat tick (the timer calls it); records how late it came */
  beat(): void {
    const now = this.clock.now()
    this.lastLate = Math.max(0, now - this.lastBeat - (this.opts.heartbeatMs ?? HEARTBEAT_MS))
    this.lastBeat = now
  }

  liveness(): LivenessReport {
    const age = Math.max(0, this.clock.now() - this.lastBeat)
    const late = this.lastLate
    const limit = this.opts.config.livenessMaxDelay
    return age <= limit && late <= limit
      ? { status: 'alive', heartbeatAgeMs: age, lastTickLateMs: late }
      : { status: 'stalled', heartbeatAgeMs: age, lastTickLateMs: late, limitMs: limit }
  }

  readiness(): Promise<ReadinessReport> {
    this.inflightReadiness ??= this.runChecks().finally(() => {
      this.inflightReadiness = undefined
    })
    return this.inflightReadiness
  }

  private async runChecks(): Promise<ReadinessReport> {
    const timeoutMs = this.opts.config.readinessCheckTimeout
    const checks = await Promise.all([...this.checks].map(([name, fn]) => runCheck(name, fn, timeoutMs, this.clock)))
    if (this.draining) return { status: 'draining', checks }
    return { status: checks.every((c) => c.status === 'ok') ? 'ready' : 'not_ready', checks }
  }

  /**
   * The status document as JSON, entry by entry: a top-level field or an element of a top-level
   * array that cannot be serialised is replaced by `{ "error": ... }` and counted, so one bad
   * watched deployment costs its own entry, not the whole answer.
   */
  private serialiseStatus(doc: unknown): string {
    const whole = tryJson(doc)
    if (whole.outcome === 'ok') return `${whole.text}\n`
    const failed = (message: string) => {
      this.statusEntryErrors++
      return JSON.stringify({ error: `entry not serialisable: ${message}` })
    }
    if (doc === null || typeof doc !== 'object') return `${failed(whole.message)}\n`
    const part = (v: unknown): string => {
      const r = tryJson(v)
      return r.outcome === 'ok' ? r.text : failed(r.message)
    }
    const fields: string[] = []
    let keys: string[]
    try {
      keys = Object.keys(doc)
    } catch (err) {
      return `${failed(errorMessage(err))}\n`
    }
    for (const k of keys) {
      let v: unknown
      try {
        v = (doc as Record<string, unknown>)[k]
      } catch (err) {
        fields.push(`${JSON.stringify(k)}:${failed(errorMessage(err))}`)
        continue
      }
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue
      const text = Array.isArray(v) ? `[${v.map(part).join(',')}]` : part(v)
      fields.push(`${JSON.stringify(k)}:${text}`)
    }
    return Array.isArray(doc) ? `[${doc.map(part).join(',')}]\n` : `{${fields.join(',')}}\n`
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' })
      return
    }
    switch (path) {
      case '/livez': {
        const r = this.liveness()
        send(res, r.status === 'alive' ? 200 : 503, r)
        return
      }
      case '/readyz':
        this.readiness().then(
          (r) => send(res, r.status === 'ready' ? 200 : 503, r),
          (err: unknown) => send(res, 503, { status: 'not_ready', error: errorMessage(err) }),
        )
        return
      case '/status': {
        if (this.statusProvider === undefined) {
          send(res, 404, { error: 'no status provider registered' })
          return
        }
        if (this.statusDetail === 'health') {
          send(res, 200, { detail: 'health', liveness: this.liveness().status, draining: this.draining })
          return
        }
        let doc: unknown
        try {
          doc = this.statusProvider()
        } catch (err) {
          send(res, 500, { error: errorMessage(err) })
          return
        }
        if (this.statusSections.size > 0 && doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
          const extra: Record<string, unknown> = {}
          for (const [name, section] of this.statusSections) {
            try {
              extra[name] = section()
            } catch (err) {
              this.statusEntryErrors++
              extra[name] = { error: `section failed: ${errorMessage(err)}` }
            }
          }
          doc = { ...(doc as Record<string, unknown>), ...extra }
        }
        sendRaw(res, 200, this.serialiseStatus(doc))
        return
      }
      default:
        send(res, 404, { error: 'not found', paths: ['/livez', '/readyz', '/status'] })
    }
  }
}

/** JSON of a value, or the outcome of failing to make it (a BigInt, a cycle, a throwing getter or toJSON) */
function tryJson(v: unknown): { outcome: 'ok'; text: string } | { outcome: 'failed'; message: string } {
  try {
    // undefined (a function, a symbol) is not JSON: an array element of it becomes null, as JSON.stringify does
    return { outcome: 'ok', text: JSON.stringify(v) ?? 'null' }
  } catch (err) {
    return { outcome: 'failed', message: errorMessage(err) }
  }
}

async function runCheck(name: string, fn: ReadinessCheck, timeoutMs: number, clock: Clock): Promise<CheckReport> {
  const t0 = clock.now()
  let timer: NodeJS.Timeout | undefined
  try {
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => resolve({ status: 'failing', detail: `check timed out after ${timeoutMs} ms` }), timeoutMs)
    })
    const r = await Promise.race([Promise.resolve().then(fn), timeout])
    const report: CheckReport = { name, status: r.status, ms: clock.now() - t0 }
    if (r.detail !== undefined) report.detail = r.detail
    return report
  } catch (err) {
    return { name, status: 'failing', detail: `check threw: ${errorMessage(err)}`, ms: clock.now() - t0 }
  } finally {
    clearTimeout(timer)
  }
}

function sendRaw(res: ServerResponse, code: number, text: string): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  let text: string
  try {
    text = `${JSON.stringify(body)}\n`
  } catch (err) {
    code = 500
    text = `${JSON.stringify({ error: `status not serialisable: ${errorMessage(err)}` })}\n`
  }
  res.writeHead(code, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(res.req.method === 'HEAD' ? undefined : text)
}
