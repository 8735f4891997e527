/**
 * OTLP/HTTP receiver (node:http): POST /v1/traces and /v1/metrics with application/x-protobuf or
 * application/json bodies, optionally `Content-Encoding: gzip`.
 *
 * Answers (OTLP/HTTP spec): 200 with an Export*ServiceResponse in the request's content type
 * (partial_success when the pipeline rejected items); 400 undecodable, 413 over maxRequestBytes
 * (counted on the decompressed stream, so a gzip bomb stops at the limit), 415 other content
 * types/encodings, 404 other paths, 405 other methods, 503 + Retry-After over the memory high-water
 * mark, with more than `maxInFlight` bodies being read, when a body is too slow (below), or while
 * shutting down. Error bodies are a google.rpc.Status in the request's content type.
 * Early refusals set `Connection: close` so an unread body is never parsed as the next request.
 *
 * Slow and idle clients (issue 11 item 4: 64 connections sending a body byte every 5 s held every
 * in-flight slot, and ~20,000 idle connections exhausted file descriptors):
 * - at most `maxConnections` sockets; more are closed on accept by node (`server.maxConnections`)
 *   and counted (`limits().connectionsRefused`);
 * - headers must arrive within `headersTimeoutMs`, an idle kept-alive connection is closed after
 *   `idleTimeoutMs`;
 * - a body must arrive within `readTimeoutMs` of its headers (503, connection closed, counted);
 * - when every in-flight slot is taken, a new request takes the slot of the slowest body whose
 *   average rate is below `minBodyRate` bytes/s (after 1 s), so a trickle cannot starve real clients.
 *
 * Security (issue 13 item 7): with `tls` the server is node https with the current (reloaded)
 * certificate; client certificates are required when a client CA is set. With `auth`, the
 * `Authorization: Bearer` header is checked before the body is read: 401 + `WWW-Authenticate: Bearer`.
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import zlib from 'node:zlib'
import type { Component } from '../../common/lifecycle.js'
import type { Logger } from '../../common/logger.js'
import type { TelemetryConsumer } from '../consumer.js'
import { DecodeError, OverloadedError, TooLargeError, UnsupportedMediaTypeError } from '../errors.js'
import type { MemoryGuard, Reservation } from '../memory.js'
import { consumeDecoded, ingest, type Format, type Signal } from '../otlp/ingest.js'
import type { WorkerPool } from '../../workers/pool.js'
import { encodeExportResponse, encodeRpcStatus, exportResponseJson, rpcStatusJson } from '../otlp/responses.js'
import { copyStats, newReceiverStats, type ReceiverStats } from '../stats.js'
import { grpcCodeOf, httpStatusOf, protocolError } from '../status.js'
import { HTTP_DEFAULTS } from './defaults.js'
import { resolveOtlpOptions, type OtlpReceiverOptions } from '../otlp/options.js'
import { TLS_HANDSHAKE_TIMEOUT_MS, type TlsConfig } from '../tls.js'
import type { AuthConfig } from '../auth.js'
import { TransportSecurity, type TransportSecurityStats } from '../security.js'

/** Endpoint default 127.0.0.1:4318 (set 0.0.0.0 explicitly to accept other hosts, as k8s/ does). */
export const DEFAULT_HTTP_ENDPOINT = '127.0.0.1:4318'

export interface OtlpHttpReceiverOptions extends OtlpReceiverOptions {
  /** requests whose bodies are being read at once; beyond it 503 + Retry-After (bounds buffered bytes to maxInFlight x maxRequestBytes). Default 64 */
  maxInFlight?: number
  /** open sockets at most; more are closed on accept and counted. Default 1024 */
  maxConnections?: number
  /** a request's body must be read within this of its headers. Default 30 s */
  readTimeoutMs?: number
  /** a request's headers must arrive within this. Default 10 s */
  headersTimeoutMs?: number
  /** a kept-alive connection with no request is closed after this. Default 30 s */
  idleTimeoutMs?: number
  /** bytes/s; with every slot taken, a body slower than this (after 1 s) gives its slot to a new request. Default 1024 */
  minBodyRate?: number
  /** TLS (mTLS with clientCaFile); unset: plaintext */
  tls?: TlsConfig
  /** bearer-token authentication; unset: none */
  auth?: AuthConfig
}


/** a body is judged for its rate only after this long: the first bytes may trail the headers */
const RATE_GRACE_MS = 1000
/** after an early answer, how long the client gets to read it before a socket with an unread body is closed */
const UNREAD_BODY_LINGER_MS = 1000

/** Counters of the connection and slot limits (the per-request outcomes are in stats()). */
export interface HttpLimitStats {
  connectionsOpen: number
  /** sockets closed on accept because maxConnections were open */
  connectionsRefused: number
  /** bodies not complete within readTimeoutMs */
  bodyTimeouts: number
  /** too-slow bodies whose slot was given to a new request */
  slowBodiesEvicted: number
  inFlight: number
  /** requests whose client went away while a decode worker had the body: not recorded (the client resends) */
  abandonedWhileDecoding: number
}

/** One body being read: what the slot policy needs to judge and stop it. */
interface BodyRead {
  readonly startedAt: number
  bytes: number
  /** stops reading and answers the request with `err` */
  abort(err: unknown): void
}

const PATHS: Record<string, Signal> = { '/v1/traces': 'traces', '/v1/metrics': 'metrics' }

function formatOf(contentType: string | undefined): Format | undefined {
  const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (media === 'application/x-protobuf') return 'proto'
  if (media === 'application/json') return 'json'
  return undefined
}

export class OtlpHttpReceiver implements Component {
  readonly name = 'otlp-http'
  private readonly consumer: TelemetryConsumer
  private readonly endpoint: string
  private readonly maxRequestBytes: number
  private readonly guard: MemoryGuard
  private readonly maxAttributes: number
  private readonly drainTimeoutMs: number
  private readonly maxInFlight: number
  private readonly maxConnections: number
  private readonly readTimeoutMs: number
  private readonly headersTimeoutMs: number
  private readonly idleTimeoutMs: number
  private readonly minBodyRate: number
  /** bodies being read; its size is the in-flight count, bounded by maxInFlight */
  private readonly reads = new Set<BodyRead>()
  private connectionsOpen = 0
  private connectionsRefused = 0
  private bodyTimeouts = 0
  private slowBodiesEvicted = 0
  private abandonedWhileDecoding = 0
  private readonly workers: WorkerPool | undefined
  private readonly logger: Logger
  private readonly counters: ReceiverStats = newReceiverStats()
  private readonly sec: TransportSecurity
  private server: http.Server | undefined
  private boundPort = 0
  private closing = false
  private stopping: Promise<void> | undefined

  constructor(opts: OtlpHttpReceiverOptions) {
    const o = resolveOtlpOptions(opts, DEFAULT_HTTP_ENDPOINT)
    this.consumer = o.consumer
    this.endpoint = o.endpoint
    this.maxRequestBytes = o.maxRequestBytes
    this.guard = o.memoryGuard
    this.maxAttributes = o.maxAttributes
    this.drainTimeoutMs = o.drainTimeoutMs
    this.maxInFlight = opts.maxInFlight ?? HTTP_DEFAULTS.maxInFlight
    this.maxConnections = opts.maxConnections ?? HTTP_DEFAULTS.maxConnections
    this.readTimeoutMs = opts.readTimeoutMs ?? HTTP_DEFAULTS.readTimeoutMs
    this.headersTimeoutMs = opts.headersTimeoutMs ?? HTTP_DEFAULTS.headersTimeoutMs
    this.idleTimeoutMs = opts.idleTimeoutMs ?? HTTP_DEFAULTS.idleTimeoutMs
    this.minBodyRate = opts.minBodyRate ?? HTTP_DEFAULTS.minBodyRate
    this.logger = o.logger
    this.sec = new TransportSecurity({ name: this.name, logger: this.logger, tls: opts.tls, auth: opts.auth })
    this.workers = opts.workers
  }

  security(): TransportSecurityStats {
    return this.sec.stats()
  }

  get port(): number {
    return this.boundPort
  }

  stats(): ReceiverStats {
    return copyStats(this.counters)
  }

  limits(): HttpLimitStats {
    return {
      connectionsOpen: this.connectionsOpen,
      connectionsRefused: this.connectionsRefused,
      bodyTimeouts: this.bodyTimeouts,
      slowBodiesEvicted: this.slowBodiesEvicted,
      inFlight: this.reads.size,
      abandonedWhileDecoding: this.abandonedWhileDecoding,
    }
  }

  async start(): Promise<void> {
    if (this.server !== undefined || this.stopping) throw new Error(`${this.name}: start() called twice`)
    const i = this.endpoint.lastIndexOf(':')
    const host = this.endpoint.slice(0, i).replace(/^\[|\]$/g, '')
    const port = Number(this.endpoint.slice(i + 1))
    await this.sec.load()
    const options: http.ServerOptions = {
      headersTimeout: this.headersTimeoutMs,
      // node's own whole-request limit is a backstop behind the per-body deadline below
      requestTimeout: this.headersTimeoutMs + this.readTimeoutMs + 5_000,
      keepAliveTimeout: this.idleTimeoutMs,
      // how often node checks headersTimeout/requestTimeout (default 30 s)
      connectionsCheckingInterval: Math.min(1_000, this.headersTimeoutMs),
    }
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res)
    const material = this.sec.tls
    let server: http.Server
    if (material === undefined) server = http.createServer(options, handler)
    else {
      const secure = https.createServer({ ...options, ...material.serverOptions(), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS }, handler)
      secure.on('tlsClientError', (_err, socket) => {
        this.sec.handshakeFailures++
        socket.destroy()
      })
      material.onReload((o) => secure.setSecureContext(o))
      // an https.Server is an http.Server for everything below (limits, drain)
      server = secure as unknown as http.Server
    }
    server.maxConnections = this.maxConnections
    server.on('drop', () => this.connectionsRefused++)
    server.on('connection', (socket: Socket) => {
      this.connectionsOpen++
      socket.once('close', () => this.connectionsOpen--)
    })
    // a socket error of one client must not reach the process
    server.on('clientError', (_err, socket) => socket.destroy())
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.boundPort = (server.address() as AddressInfo).port
    this.sec.start()
    this.logger.info({ endpoint: this.endpoint, port: this.boundPort, ...this.sec.describe() }, 'otlp-http receiver started')
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] as string
    const signal = PATHS[path]
    if (signal === undefined) return this.plain(req, res, 404, 'not found')
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST')
      return this.plain(req, res, 405, 'method not allowed')
    }
    this.counters.requests++
    const format = formatOf(req.headers['content-type'])
    try {
      const auth = this.sec.auth
      if (auth !== undefined) {
        const checked = auth.check(req.headers.authorization)
        if (checked.outcome === 'refused') throw checked.error
      }
      if (format === undefined) throw new UnsupportedMediaTypeError(req.headers['content-type'] ?? '')
      if (this.closing) throw new OverloadedError('shutting down', this.guard.retryAfterMs)
      if (this.reads.size >= this.maxInFlight && !this.evictSlowest()) {
        throw new OverloadedError(`more than ${this.maxInFlight} requests in flight`, this.guard.retryAfterMs)
      }
      const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
      if (encoding !== 'identity' && encoding !== 'gzip') throw new UnsupportedMediaTypeError(`Content-Encoding ${encoding}`)
      const declared = Number(req.headers['content-length'] ?? NaN)
      if (encoding === 'identity' && declared > this.maxRequestBytes) throw new TooLargeError(this.maxRequestBytes)
      const reserved = this.guard.reserve(0)
      if (reserved.outcome === 'refused') throw reserved.error
      const reservation = reserved.reservation
      const read = this.readBody(req, reservation, encoding === 'gzip')
      read.then(
        (body) => {
          const workers = this.workers
          if (signal === 'traces' && workers !== undefined) {
            // the reservation is held until the worker's batch is recorded and answered
            this.viaWorkers(workers, req, res, format, body)
              .catch((err: unknown) => this.logger.error({ err: String(err) }, 'otlp-http: answering a worker-decoded request failed'))
              .finally(() => reservation.release())
            return
          }
          this.finish(req, res, signal, format, body)
          reservation.release()
        },
        (err: unknown) => {
          reservation.release()
          this.fail(req, res, format, err)
        },
      )
    } catch (err) {
      this.fail(req, res, format, err)
    }
  }

  private finish(req: http.IncomingMessage, res: http.ServerResponse, signal: Signal, format: Format, body: Buffer): void {
    try {
      const out = ingest(signal, format, body, this.consumer, this.counters, this.maxAttributes, { transport: 'otlp', peer: req.socket.remoteAddress ?? 'unknown' })
      const payload = format === 'proto' ? encodeExportResponse(out.rejected, out.errorMessage) : exportResponseJson(signal, out.rejected, out.errorMessage)
      res.writeHead(200, { 'Content-Type': format === 'proto' ? 'application/x-protobuf' : 'application/json' })
      res.end(payload)
    } catch (err) {
      this.fail(req, res, format, err)
    }
  }

  /**
   * A span request decoded by a worker: recorded here, on the main thread, answered only after it is
   * recorded. `body` is our own Buffer.concat result (moved to the worker when not pool-sized). A
   * request whose client went away meanwhile is not recorded. Never rejects.
   */
  private async viaWorkers(workers: WorkerPool, req: http.IncomingMessage, res: http.ServerResponse, format: Format, body: Buffer): Promise<void> {
    try {
      const decoded = await workers.decodeTraces(format, body, this.maxAttributes, true)
      if (res.destroyed || req.socket.destroyed) {
        this.abandonedWhileDecoding++
        return
      }
      const out = consumeDecoded('traces', decoded, this.consumer, this.counters, { transport: 'otlp', peer: req.socket.remoteAddress ?? 'unknown' })
      const payload = format === 'proto' ? encodeExportResponse(out.rejected, out.errorMessage) : exportResponseJson('traces', out.rejected, out.errorMessage)
      res.writeHead(200, { 'Content-Type': format === 'proto' ? 'application/x-protobuf' : 'application/json' })
      res.end(payload)
    } catch (err) {
      this.fail(req, res, format, err)
    }
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, format: Format | undefined, err: unknown): void {
    const pe = protocolError(err, this.guard.retryAfterMs)
    this.counters.rejected[pe.reason]++
    if (res.headersSent) {
      res.destroy()
      return
    }
    const status = httpStatusOf(pe.reason)
    const code = grpcCodeOf(pe.reason)
    const headers: http.OutgoingHttpHeaders = {}
    if (pe.retryAfterMs !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(pe.retryAfterMs / 1000)))
    if (pe.reason === 'unauthenticated') headers['WWW-Authenticate'] = 'Bearer realm="otlp"'
    // the body may be unread (early refusal) or half read (aborted): never reuse this connection
    if (!req.complete) headers['Connection'] = 'close'
    if (format === 'proto') {
      headers['Content-Type'] = 'application/x-protobuf'
      res.writeHead(status, headers)
      res.end(encodeRpcStatus(code, pe.message, pe.retryAfterMs))
    } else {
      headers['Content-Type'] = 'application/json'
      res.writeHead(status, headers)
      res.end(rpcStatusJson(code, pe.message, pe.retryAfterMs))
    }
    if (!req.complete) {
      req.resume()
      // a client that is still trickling its body (timed out, evicted) would keep the socket, and a
      // connection slot, for as long as it likes: close it once the answer is written
      res.once('finish', () => setTimeout(() => req.socket.destroy(), UNREAD_BODY_LINGER_MS).unref())
    }
  }

  private plain(req: http.IncomingMessage, res: http.ServerResponse, status: number, message: string): void {
    res.writeHead(status, { 'Content-Type': 'text/plain', Connection: 'close' })
    res.end(message)
    req.resume()
  }

  /** Stops accepting, answers 503 on kept-alive connections, waits up to drainTimeoutMs for in-flight requests. Idempotent. */
  shutdown(): Promise<void> {
    if (this.stopping) return this.stopping
    this.closing = true
    const server = this.server
    this.stopping = (async () => {
      if (server === undefined) return
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.closeAllConnections()
          resolve()
        }, this.drainTimeoutMs)
        timer.unref()
        server.close(() => {
          clearTimeout(timer)
          resolve()
        })
        server.closeIdleConnections()
      })
      this.sec.stop()
      this.logger.info({ port: this.boundPort }, 'otlp-http receiver stopped')
    })()
    return this.stopping
  }

  /**
   * With every slot taken: stops the slowest body whose average rate is below minBodyRate (after
   * RATE_GRACE_MS) so the new request can have its slot. Returns whether a slot was freed.
   */
  private evictSlowest(): boolean {
    const now = performance.now()
    let worst: BodyRead | undefined
    let worstRate = this.minBodyRate
    for (const r of this.reads) {
      const elapsed = now - r.startedAt
      if (elapsed < RATE_GRACE_MS) continue
      const rate = (r.bytes * 1000) / elapsed
      if (rate < worstRate) {
        worst = r
        worstRate = rate
      }
    }
    if (worst === undefined) return false
    this.slowBodiesEvicted++
    worst.abort(new OverloadedError(`request body too slow (${Math.round(worstRate)} B/s, minimum ${this.minBodyRate} B/s)`, this.guard.retryAfterMs))
    return true
  }

  /**
   * Reads the body, counting bytes on the wire and, for gzip, bytes out of the inflater: past
   * maxRequestBytes it stops inflating at once and rejects with TooLargeError. Every buffered byte is
   * reserved with the memory guard first (refused => OverloadedError). Holds an in-flight slot until
   * settled; not complete within readTimeoutMs => OverloadedError.
   */
  private readBody(req: http.IncomingMessage, reservation: Reservation, gzip: boolean): Promise<Buffer> {
    const limit = this.maxRequestBytes
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      let wire = 0
      let settled = false
      const gunzip = gzip ? zlib.createGunzip() : undefined
      const slot: BodyRead = { startedAt: performance.now(), bytes: 0, abort: (err) => settle(err) }
      this.reads.add(slot)
      const timer = setTimeout(() => {
        this.bodyTimeouts++
        settle(new OverloadedError(`request body not received within ${this.readTimeoutMs} ms`, this.guard.retryAfterMs))
      }, this.readTimeoutMs)
      const settle = (err: unknown, body?: Buffer) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.reads.delete(slot)
        if (gunzip) {
          req.unpipe(gunzip)
          gunzip.destroy()
        }
        if (err === undefined) resolve(body as Buffer)
        else reject(err)
      }
      const onData = (chunk: Buffer) => {
        if (settled) return
        size += chunk.length
        if (size > limit) return settle(new TooLargeError(limit))
        const grown = reservation.grow(chunk.length)
        if (grown.outcome === 'refused') return settle(grown.error)
        chunks.push(chunk)
      }
      req.on('data', (chunk: Buffer) => {
        wire += chunk.length
        slot.bytes = wire
        if (wire > limit) settle(new TooLargeError(limit))
      })
      req.on('error', (err) => settle(new DecodeError(`request body: ${err.message}`)))
      req.on('aborted', () => settle(new DecodeError('request aborted')))
      if (gunzip) {
        gunzip.on('data', onData)
        gunzip.on('error', (err) => settle(new DecodeError(`invalid gzip body: ${err.message}`)))
        gunzip.on('end', () => settle(undefined, Buffer.concat(chunks, size)))
        req.pipe(gunzip)
      } else {
        req.on('data', onData)
        req.on('end', () => settle(undefined, Buffer.concat(chunks, size)))
      }
    })
  }
}
