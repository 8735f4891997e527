/**
 * OTLP/HTTP receiver (node:http): POST /v1/traces and /v1/metrics with application/x-protobuf or
 * application/json bodies, optionally `Content-Encoding: gzip`.
 *
 * Answers (OTLP/HTTP spec): 200 with an Export*ServiceResponse in the request's content type
 * (partial_success when the pipeline rejected items); 400 undecodable, 413 over maxRequestBytes
 * (counted on the decompressed stream, so a gzip bomb stops at the limit), 415 other content
 * types/encodings, 404 other paths, 405 other methods, 503 + Retry-After over the memory high-water
 * mark, with more than `maxInFlight` bodies being read, or while shutting down. Error bodies are a google.rpc.Status in the request's content type.
 * Early refusals set `Connection: close` so an unread body is never parsed as the next request.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import type { Component } from '../../common/lifecycle.js'
import type { Logger } from '../../common/logger.js'
import type { TelemetryConsumer } from '../consumer.js'
import { DecodeError, OverloadedError, TooLargeError, UnsupportedMediaTypeError } from '../errors.js'
import type { MemoryGuard } from '../memory.js'
import { ingest, type Format, type Signal } from '../otlp/ingest.js'
import { encodeExportResponse, encodeRpcStatus, exportResponseJson, rpcStatusJson } from '../otlp/responses.js'
import { copyStats, newReceiverStats, type ReceiverStats } from '../stats.js'
import { grpcCodeOf, httpStatusOf, protocolError } from '../status.js'
import { resolveOtlpOptions, type OtlpReceiverOptions } from '../otlp/options.js'

/** Endpoint default 0.0.0.0:4318. */
export interface OtlpHttpReceiverOptions extends OtlpReceiverOptions {
  /** requests whose bodies are being read at once; beyond it 503 + Retry-After (bounds buffered bytes to maxInFlight x maxRequestBytes). Default 64 */
  maxInFlight?: number
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
  private inFlight = 0
  private readonly logger: Logger
  private readonly counters: ReceiverStats = newReceiverStats()
  private server: http.Server | undefined
  private boundPort = 0
  private closing = false
  private stopping: Promise<void> | undefined

  constructor(opts: OtlpHttpReceiverOptions) {
    const o = resolveOtlpOptions(opts, '0.0.0.0:4318')
    this.consumer = o.consumer
    this.endpoint = o.endpoint
    this.maxRequestBytes = o.maxRequestBytes
    this.guard = o.memoryGuard
    this.maxAttributes = o.maxAttributes
    this.drainTimeoutMs = o.drainTimeoutMs
    this.maxInFlight = opts.maxInFlight ?? 64
    this.logger = o.logger
  }

  get port(): number {
    return this.boundPort
  }

  stats(): ReceiverStats {
    return copyStats(this.counters)
  }

  async start(): Promise<void> {
    if (this.server !== undefined || this.stopping) throw new Error(`${this.name}: start() called twice`)
    const i = this.endpoint.lastIndexOf(':')
    const host = this.endpoint.slice(0, i).replace(/^\[|\]$/g, '')
    const port = Number(this.endpoint.slice(i + 1))
    const server = http.createServer({ requestTimeout: 60_000 }, (req, res) => this.handle(req, res))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.boundPort = (server.address() as AddressInfo).port
    this.logger.info({ endpoint: this.endpoint, port: this.boundPort }, 'otlp-http receiver started')
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
      if (format === undefined) throw new UnsupportedMediaTypeError(req.headers['content-type'] ?? '')
      if (this.closing) throw new OverloadedError('shutting down', this.guard.retryAfterMs)
      this.guard.check()
      if (this.inFlight >= this.maxInFlight) throw new OverloadedError(`more than ${this.maxInFlight} requests in flight`, this.guard.retryAfterMs)
      const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
      if (encoding !== 'identity' && encoding !== 'gzip') throw new UnsupportedMediaTypeError(`Content-Encoding ${encoding}`)
      const declared = Number(req.headers['content-length'] ?? NaN)
      if (encoding === 'identity' && declared > this.maxRequestBytes) throw new TooLargeError(this.maxRequestBytes)
      this.inFlight++
      readBody(req, this.maxRequestBytes, encoding === 'gzip').then(
        (body) => {
          this.inFlight--
          this.finish(req, res, signal, format, body)
        },
        (err: unknown) => {
          this.inFlight--
          this.fail(req, res, format, err)
        },
      )
    } catch (err) {
      this.fail(req, res, format, err)
    }
  }

  private finish(req: http.IncomingMessage, res: http.ServerResponse, signal: Signal, format: Format, body: Buffer): void {
    try {
      const out = ingest(signal, format, body, this.consumer, this.counters, this.maxAttributes)
      const payload = format === 'proto' ? encodeExportResponse(out.rejected, out.errorMessage) : exportResponseJson(signal, out.rejected, out.errorMessage)
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
    if (!req.complete) req.resume()
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
      this.logger.info({ port: this.boundPort }, 'otlp-http receiver stopped')
    })()
    return this.stopping
  }
}

/**
 * Reads the body, counting bytes on the wire and, for gzip, bytes out of the inflater: past `limit`
 * it stops inflating at once and rejects with TooLargeError.
 */
function readBody(req: http.IncomingMessage, limit: number, gzip: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let wire = 0
    let settled = false
    const gunzip = gzip ? zlib.createGunzip() : undefined
    const settle = (err: unknown, body?: Buffer) => {
      if (settled) return
      settled = true
      if (gunzip) {
        req.unpipe(gunzip)
        gunzip.destroy()
      }
      if (err === undefined) resolve(body as Buffer)
      else reject(err)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) return settle(new TooLargeError(limit))
      chunks.push(chunk)
    }
    req.on('data', (chunk: Buffer) => {
      wire += chunk.length
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
