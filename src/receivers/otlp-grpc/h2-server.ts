/**
 * OTLP/gRPC served directly on node:http2 (`receivers.otlp.grpc.server: http2`), with the same
 * guarantees as the grpc-js transport (receiver.ts lists them) and the same stats, limits and
 * security API. Why it exists: memory and CPU (issue 16). grpc-js keeps a message's HTTP/2 chunks
 * and then joins them into a second copy; here a call's message is copied from each DATA chunk
 * straight into ONE buffer sized from its 5-byte length prefix, taken from a bounded pool of
 * reusable buffers (buffer-pool.ts), decoded, and handed back at once.
 *
 * The protocol subset served (gRPC over HTTP/2, unary only):
 * - `POST` to TraceService/Export or MetricsService/Export with `content-type: application/grpc`
 *   (or `application/grpc+proto`, parameters allowed). Another content type: HTTP 415 (the gRPC
 *   spec's answer), counted `unsupported_media_type`; another method: HTTP 405 + UNIMPLEMENTED;
 *   another path: UNIMPLEMENTED; both counted `decode` (status.ts reasonOfGrpcCode).
 * - one length-prefixed message (flag byte, 4-byte big-endian length). `grpc-encoding` identity,
 *   gzip or deflate (zlib); another => UNIMPLEMENTED + `grpc-accept-encoding`. A compressed message
 *   is inflated asynchronously with zlib's `maxOutputLength` = maxRequestBytes, so a bomb stops at
 *   the limit (RESOURCE_EXHAUSTED); corrupt data => INVALID_ARGUMENT. A compressed flag without an
 *   encoding, a truncated or missing message, or bytes after the message in the DATA chunk that
 *   completes it => INVALID_ARGUMENT (later bytes arrive after the answer and are ignored).
 * - `grpc-timeout` is honoured: past it the call is answered DEADLINE_EXCEEDED (not counted as a
 *   refusal: the client has given up) and its message, if still being decoded, is not recorded.
 * - answers: OK as headers + one message + trailers; every refusal as a trailers-only response
 *   (`grpc-status`, percent-encoded `grpc-message`, and for retryable ones `grpc-status-details-bin`
 *   = google.rpc.Status{RetryInfo} + `retry-after-ms`). A call refused before its whole message was
 *   in is then reset with RST_STREAM(NO_ERROR), so nothing more of it is read or buffered.
 * - HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS = maxConcurrentCalls per connection.
 *
 * Order of the checks on a new call (each refusal counted once, by reason, where it is sent):
 * path / method / content type, bearer token (before any message byte is read), grpc-encoding,
 * shutting down, maxConcurrentCalls (UNAVAILABLE, `callsRefused`), the memory guard (a 0-byte
 * reservation: refused above the mark), then the length prefix: over maxRequestBytes =>
 * RESOURCE_EXHAUSTED, else the reservation grows by what the message buffer takes (the announced
 * length, rounded up to the pool's size class) + maxRequestBytes when compressed (the inflated
 * copy) BEFORE the buffer is taken: refused => UNAVAILABLE + RetryInfo. The reservation shrinks to the inflated size and is released when the call ends.
 * The message must be in within readTimeoutMs (UNAVAILABLE, `readTimeouts`). `requests` counts
 * every call (stream) once, when it starts, so every refusal is also a request.
 *
 * Buffer ownership: a pooled buffer belongs to the call while its message is copied in, then to
 * the synchronous decode (or to zlib while inflating) and goes back to the pool right after; a call
 * cancelled meanwhile never returns it twice. With decode workers, span messages get a buffer of
 * their own (not pooled) that is moved to the worker without a copy.
 */
import http2 from 'node:http2'
import type net from 'node:net'
import zlib from 'node:zlib'
import type { Reservation } from '../memory.js'
import { consumeDecoded, ingest, type IngestOutcome, type Signal } from '../otlp/ingest.js'
import { encodeExportResponse, encodeRpcStatus } from '../otlp/responses.js'
import { DecodeError, OverloadedError, TooLargeError, UnsupportedMediaTypeError } from '../errors.js'
import { GrpcCode, grpcCodeOf, httpStatusOf, protocolError, reasonOfGrpcCode } from '../status.js'
import { GRPC_DEFAULTS } from './defaults.js'
import { MessageBufferPool } from './buffer-pool.js'
import {
  GrpcServerBase,
  METRICS_EXPORT_PATH,
  TRACE_EXPORT_PATH,
  type GrpcBufferStats,
  type OtlpGrpcReceiverOptions,
} from './shared.js'

const { NGHTTP2_NO_ERROR } = http2.constants
const ACCEPT_ENCODING = 'identity,gzip,deflate'
const GRPC_CONTENT_TYPE = /^application\/grpc(\+proto)?\s*(;.*)?$/i
/** a full success: an empty ExportXServiceResponse, framed (never written to, shared by all calls) */
const EMPTY_OK_FRAME = Buffer.alloc(5)
const noop = (): void => undefined

type Encoding = 'identity' | 'gzip' | 'deflate'

/** One call in progress. `ended`: answered or gone; nothing more is done for it. */
interface Call {
  readonly stream: http2.ServerHttp2Stream
  readonly signal: Signal
  readonly encoding: Encoding
  readonly peer: string
  reservation: Reservation | undefined
  readTimer: NodeJS.Timeout | undefined
  deadlineTimer: NodeJS.Timeout | undefined
  /** the pooled buffer the message is being copied into, while the call owns it */
  buffer: Buffer | undefined
  /** the whole message is in (no RST needed to stop the client's sending) */
  complete: boolean
  ended: boolean
}

/** grpc-timeout "<1-8 digits><unit>" in ms; undefined when absent or malformed (then no deadline). */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined
  const m = /^(\d{1,8})([HMSmun])$/.exec(v)
  if (m === null) return undefined
  const n = Number(m[1])
  const ms = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H' | 'M' | 'S' | 'm' | 'u' | 'n'] * n
  // at least 1 ms; at most what a timer takes (~24.8 days)
  return Math.min(2 ** 31 - 1, Math.max(1, Math.ceil(ms)))
}

/** grpc-message: percent-encoded UTF-8 (the gRPC spec: bytes outside 0x20..0x7E, and '%'). */
export function encodeGrpcMessage(s: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(s)) return s
  let out = ''
  for (const b of Buffer.from(s, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  return out
}

function peerOf(socket: net.Socket | undefined): string {
  const addr = socket?.remoteAddress
  if (addr === undefined) return 'unknown'
  return addr.includes(':') ? `[${addr}]:${socket?.remotePort ?? 0}` : `${addr}:${socket?.remotePort ?? 0}`
}

export class Http2GrpcServer extends GrpcServerBase {
  private readonly pool: MessageBufferPool
  private h2: http2.Http2Server | undefined
  private readonly sessions = new Set<http2.ServerHttp2Session>()
  private readonly peers = new WeakMap<http2.Http2Session, string>()

  constructor(opts: OtlpGrpcReceiverOptions) {
    super(opts)
    this.pool = new MessageBufferPool({ maxIdleBytes: opts.bufferPoolBytes ?? GRPC_DEFAULTS.bufferPoolBytes })
  }

  buffers(): GrpcBufferStats {
    return this.pool.stats()
  }

  async start(): Promise<void> {
    await this.loadSecurity()
    // never listens: pullback's own net.Server (and TLS handshake) hands it the connections
    const h2 = http2.createServer({ settings: { maxConcurrentStreams: this.maxConcurrentCalls } })
    h2.on('session', (session) => this.onSession(session))
    h2.on('stream', (stream, headers) => this.onStream(stream, headers))
    // a broken connection is the client's problem; it must not reach the process
    h2.on('sessionError', noop)
    this.h2 = h2
    await this.listen('http2', (socket) => h2.emit('connection', socket))
  }

  /** Idle connections (no call for idleTimeoutMs) are closed with GOAWAY. */
  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session)
    this.peers.set(session, peerOf(session.socket as net.Socket | undefined))
    session.on('error', noop)
    let active = 0
    let timer: NodeJS.Timeout | undefined
    const arm = () => {
      timer = setTimeout(() => {
        if (!session.closed && !session.destroyed) session.close()
      }, this.idleTimeoutMs)
      timer.unref()
    }
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      active++
      clearTimeout(timer)
      stream.once('close', () => {
        if (--active === 0 && !session.closed && !session.destroyed) arm()
      })
    })
    session.once('close', () => {
      clearTimeout(timer)
      this.sessions.delete(session)
    })
    if (this.state !== 'running') session.close()
    else arm()
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    // RST from the client, a broken connection: seen as 'close' below
    stream.on('error', noop)
    const path = headers[':path']
    const signal: Signal | undefined = path === TRACE_EXPORT_PATH ? 'traces' : path === METRICS_EXPORT_PATH ? 'metrics' : undefined
    const contentType = headers['content-type']
    this.counters.requests++
    if (headers[':method'] !== 'POST' || signal === undefined) {
      this.refuseEarly(stream, GrpcCode.UNIMPLEMENTED, headers[':method'] !== 'POST' ? `method ${String(headers[':method'])} not allowed` : `unknown method ${String(path)}`, headers[':method'] !== 'POST' ? 405 : 200)
      return
    }
    if (typeof contentType !== 'string' || !GRPC_CONTENT_TYPE.test(contentType)) {
      const pe = protocolError(new UnsupportedMediaTypeError(String(contentType ?? '')), this.guard.retryAfterMs)
      this.counters.rejected[pe.reason]++
      this.respondOnly(stream, httpStatusOf(pe.reason), { 'content-type': 'text/plain' })
      return
    }
    const auth = this.sec.auth
    if (auth !== undefined) {
      const value = headers.authorization
      const checked = auth.check(typeof value === 'string' ? value : undefined)
      if (checked.outcome === 'refused') {
        this.refuse(stream, checked.error, false)
        return
      }
    }
    const enc = headers['grpc-encoding']
    const encoding: Encoding | undefined = enc === undefined || enc === 'identity' ? 'identity' : enc === 'gzip' ? 'gzip' : enc === 'deflate' ? 'deflate' : undefined
    if (encoding === undefined) {
      this.refuseEarly(stream, GrpcCode.UNIMPLEMENTED, `grpc-encoding ${JSON.stringify(String(enc))} not supported`, 200, { 'grpc-accept-encoding': ACCEPT_ENCODING })
      return
    }
    if (this.state !== 'running') {
      this.refuse(stream, new OverloadedError('shutting down', this.guard.retryAfterMs), false)
      return
    }
    if (this.calls >= this.maxConcurrentCalls) {
      this.callsRefused++
      this.refuse(stream, new OverloadedError(`more than ${this.maxConcurrentCalls} calls in progress`, this.guard.retryAfterMs), false)
      return
    }
    const r = this.guard.reserve(0)
    if (r.outcome === 'refused') {
      this.refuse(stream, r.error, false)
      return
    }
    this.calls++
    const session = stream.session
    const call: Call = {
      stream,
      signal,
      encoding,
      peer: (session && this.peers.get(session)) ?? 'unknown',
      reservation: r.reservation,
      readTimer: undefined,
      deadlineTimer: undefined,
      buffer: undefined,
      complete: false,
      ended: false,
    }
    call.readTimer = setTimeout(() => {
      if (call.ended || call.complete) return
      this.readTimeouts++
      this.fail(call, new OverloadedError(`request message not received within ${this.readTimeoutMs} ms`, this.guard.retryAfterMs))
    }, this.readTimeoutMs)
    const deadline = parseGrpcTimeout(headers['grpc-timeout'])
    if (deadline !== undefined) {
      call.deadlineTimer = setTimeout(() => {
        if (call.ended) return
        // not a refusal: the client has given up (grpc-js's server does the same)
        this.sendStatus(call, GrpcCode.DEADLINE_EXCEEDED, 'Deadline exceeded', undefined)
        this.finish(call)
      }, deadline)
    }
    // the client cancelled (RST_STREAM), the connection broke, or the answer is out
    stream.once('close', () => this.finish(call))
    this.read(call)
  }

  /** Copies the call's message from the stream's DATA chunks into one buffer sized from its prefix. */
  private read(call: Call): void {
    const stream = call.stream
    let headBytes = 0
    let flag = 0
    let length = 0
    let message: Buffer | undefined
    let got = 0
    const onData = (chunk: Buffer) => {
      if (call.ended || call.complete) return
      let off = 0
      if (message === undefined) {
        while (headBytes < 5 && off < chunk.length) {
          const b = chunk[off++] as number
          if (headBytes === 0) flag = b
          else length = length * 256 + b
          headBytes++
        }
        if (headBytes < 5) return
        const taken = this.takeBuffer(call, flag, length)
        if (taken === undefined) return
        message = taken
      }
      const n = Math.min(length - got, chunk.length - off)
      if (n > 0) {
        chunk.copy(message, got, off, off + n)
        got += n
        off += n
      }
      if (got < length) return
      call.complete = true
      if (off < chunk.length) {
        this.fail(call, new DecodeError('more than one request message in a unary call'))
        return
      }
      this.messageIn(call, flag === 1, message.subarray(0, length))
    }
    stream.on('data', onData)
    stream.once('end', () => {
      if (call.ended || call.complete) return
      this.fail(call, new DecodeError(headBytes === 0 ? 'no request message' : 'request message truncated'))
    })
  }

  /**
   * The prefix is in: checks it, reserves what the message will take, and returns the buffer to copy
   * it into (pooled unless it goes to a decode worker); undefined when the call was refused.
   */
  private takeBuffer(call: Call, flag: number, length: number): Buffer | undefined {
    if (flag > 1) return this.fail(call, new DecodeError(`invalid message flag ${flag}`))
    const compressed = flag === 1
    if (compressed && call.encoding === 'identity') return this.fail(call, new DecodeError('compressed message without grpc-encoding'))
    if (length > this.maxRequestBytes) return this.fail(call, new TooLargeError(this.maxRequestBytes, `message of ${length} bytes exceeds ${this.maxRequestBytes} bytes`))
    // a span message for a decode worker gets a buffer of its own (moved to the worker); others a pooled one
    const own = length === 0 || (call.signal === 'traces' && this.workers !== undefined && !compressed)
    const size = own ? length : this.pool.sizeFor(length)
    const grown = call.reservation?.grow(size + (compressed ? this.maxRequestBytes : 0))
    if (grown?.outcome === 'refused') return this.fail(call, grown.error)
    if (own) return Buffer.allocUnsafeSlow(length)
    call.buffer = this.pool.acquire(length)
    return call.buffer
  }

  private messageIn(call: Call, compressed: boolean, message: Buffer): void {
    clearTimeout(call.readTimer)
    if (!compressed) {
      this.process(call, message)
      return
    }
    // zlib owns the pooled buffer until it calls back; the call no longer does
    const pooled = call.buffer
    call.buffer = undefined
    const done = (err: Error | null, out: Buffer) => {
      if (pooled !== undefined) this.pool.release(pooled)
      if (call.ended) return
      if (err !== null) {
        const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError
        this.fail(call, tooLarge ? new TooLargeError(this.maxRequestBytes) : new DecodeError('invalid compressed message'))
        return
      }
      // the compressed bytes are gone; what is held now is the inflated message
      call.reservation?.shrinkTo(out.length)
      this.process(call, out)
    }
    const opts = { maxOutputLength: this.maxRequestBytes }
    if (call.encoding === 'gzip') zlib.gunzip(message, opts, done)
    else zlib.inflate(message, opts, done)
  }

  /** Decodes and records the message (inline, or in a decode worker for spans), then answers. */
  private process(call: Call, message: Buffer): void {
    const workers = this.workers
    if (call.signal === 'traces' && workers !== undefined) {
      workers
        .decodeTraces('proto', message, this.maxAttributes, true)
        .then(
          (req) => {
            if (call.ended) {
              this.cancelledWhileDecoding++
              return
            }
            this.answer(call, () => consumeDecoded('traces', req, this.consumer, this.counters, { transport: 'otlp', peer: call.peer }))
          },
          (err: unknown) => this.fail(call, err),
        )
        .catch((err: unknown) => this.logger.error({ err: String(err) }, 'otlp-grpc: answering a worker-decoded call failed'))
      return
    }
    try {
      this.answer(call, () => ingest(call.signal, 'proto', message, this.consumer, this.counters, this.maxAttributes, { transport: 'otlp', peer: call.peer }))
    } finally {
      // decoding is synchronous and copies what it keeps: the buffer is free again
      const pooled = call.buffer
      call.buffer = undefined
      if (pooled !== undefined) this.pool.release(pooled)
    }
  }

  private answer(call: Call, record: () => IngestOutcome): void {
    let out: IngestOutcome
    try {
      out = record()
    } catch (err) {
      this.fail(call, err)
      return
    }
    const stream = call.stream
    if (!stream.destroyed && !stream.closed) {
      const body = encodeExportResponse(out.rejected, out.errorMessage)
      let frame = EMPTY_OK_FRAME
      if (body.length > 0) {
        frame = Buffer.allocUnsafe(5 + body.length)
        frame[0] = 0
        frame.writeUInt32BE(body.length, 1)
        body.copy(frame, 5)
      }
      try {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING }, { waitForTrailers: true })
        stream.once('wantTrailers', () => {
          try {
            stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' })
          } catch {
            // the stream went away meanwhile
          }
        })
        stream.end(frame)
      } catch (err) {
        this.logger.debug({ err: String(err) }, 'otlp-grpc: answer not sent (stream gone)')
      }
    }
    this.finish(call)
  }

  /** Answers `err` (mapped by status.ts), counts it by reason, ends the call. Returns undefined for takeBuffer. */
  private fail(call: Call, err: unknown): undefined {
    if (call.ended) return undefined
    const pe = protocolError(err, this.guard.retryAfterMs)
    this.counters.rejected[pe.reason]++
    this.sendStatus(call, grpcCodeOf(pe.reason), pe.message, pe.retryAfterMs)
    this.finish(call)
    return undefined
  }

  /** A refusal before a call was admitted (nothing reserved, nothing read). */
  private refuse(stream: http2.ServerHttp2Stream, err: unknown, complete: boolean): void {
    const pe = protocolError(err, this.guard.retryAfterMs)
    this.counters.rejected[pe.reason]++
    this.trailersOnly(stream, grpcCodeOf(pe.reason), pe.message, pe.retryAfterMs, 200, {}, complete)
  }

  /** A status that status.ts maps from its code (UNIMPLEMENTED: counted `decode`). */
  private refuseEarly(stream: http2.ServerHttp2Stream, code: number, message: string, httpStatus: number, extra: http2.OutgoingHttpHeaders = {}): void {
    const reason = reasonOfGrpcCode(code)
    if (reason !== undefined) this.counters.rejected[reason]++
    this.trailersOnly(stream, code, message, undefined, httpStatus, extra, false)
  }

  private sendStatus(call: Call, code: number, message: string, retryAfterMs: number | undefined): void {
    this.trailersOnly(call.stream, code, message, retryAfterMs, 200, {}, call.complete)
  }

  private trailersOnly(
    stream: http2.ServerHttp2Stream,
    code: number,
    message: string,
    retryAfterMs: number | undefined,
    httpStatus: number,
    extra: http2.OutgoingHttpHeaders,
    complete: boolean,
  ): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return
    const headers: http2.OutgoingHttpHeaders = { ':status': httpStatus, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), ...extra }
    if (retryAfterMs !== undefined) {
      headers['grpc-status-details-bin'] = encodeRpcStatus(code, message, retryAfterMs).toString('base64')
      // plain hint for clients that do not parse rich status details
      headers['retry-after-ms'] = String(retryAfterMs)
    }
    this.respondOnly(stream, httpStatus, headers)
    // the client may still be sending the message: stop it, nothing more of it is read
    if (!complete && !stream.readableEnded) stream.close(NGHTTP2_NO_ERROR)
  }

  private respondOnly(stream: http2.ServerHttp2Stream, httpStatus: number, headers: http2.OutgoingHttpHeaders): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return
    try {
      stream.respond({ ...headers, ':status': httpStatus }, { endStream: true })
    } catch (err) {
      this.logger.debug({ err: String(err) }, 'otlp-grpc: status not sent (stream gone)')
    }
    if (httpStatus !== 200 && !stream.readableEnded) stream.close(NGHTTP2_NO_ERROR)
  }

  /** Ends a call once: timers, reservation, its pooled buffer (unless zlib holds it), the call count. */
  private finish(call: Call): void {
    if (call.ended) return
    call.ended = true
    clearTimeout(call.readTimer)
    clearTimeout(call.deadlineTimer)
    call.reservation?.release()
    call.reservation = undefined
    const pooled = call.buffer
    call.buffer = undefined
    if (pooled !== undefined) this.pool.release(pooled)
    this.calls--
  }

  /** Stops accepting, lets calls in flight finish (GOAWAY) for up to drainTimeoutMs, then cuts them. Idempotent. */
  shutdown(): Promise<void> {
    if (this.stopping) return this.stopping
    this.state = 'stopping'
    this.stopping = (async () => {
      const listener = this.listener
      if (listener === undefined) {
        this.state = 'stopped'
        return
      }
      listener.close()
      for (const s of this.sessions) s.close()
      if (this.sessions.size > 0) {
        // calls in flight finish on their own; checked every 20 ms, cut at drainTimeoutMs
        const t0 = performance.now()
        await new Promise<void>((resolve) => {
          const check = setInterval(() => {
            if (this.sessions.size === 0 || performance.now() - t0 >= this.drainTimeoutMs) {
              clearInterval(check)
              resolve()
            }
          }, 20)
        })
      }
      for (const s of this.sessions) s.destroy()
      for (const s of this.sockets) s.destroy()
      this.pool.clear()
      this.stopped()
    })()
    return this.stopping
  }
}
