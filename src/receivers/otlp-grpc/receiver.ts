/**
 * OTLP/gRPC receiver: TraceService/Export and MetricsService/Export. Two transports behind one API
 * (`OtlpGrpcReceiver`, at the end of this file; `receivers.otlp.grpc.server`):
 * - `grpc-js` (the fallback): the methods registered as raw-bytes methods (identity deserializer) so
 *   decoding and error codes are ours, not grpc-js's INTERNAL. The mechanisms below are its own.
 * - `http2` (the default): pullback's own gRPC server on node:http2 (h2-server.ts): every guarantee below holds
 *   (answers, counters, limits, TLS before HTTP/2, auth before the message, readTimeout, idle
 *   GOAWAY, maxConcurrentCalls also as SETTINGS_MAX_CONCURRENT_STREAMS), with ONE buffer per
 *   message sized from its prefix (reserved as 1 x the length, not 2 x) from a bounded pool.
 *   Tested against the same SDK exporters (test/receivers/otlp-grpc*.test.ts run over both).
 * Both use pullback's net.Server (maxConnections) and TLS handshake (shared.ts).
 *
 * - grpc-js handles `grpc-encoding: gzip|deflate` and enforces `maxRequestBytes` on the decompressed
 *   message while inflating (decompression bombs stop at the limit) => RESOURCE_EXHAUSTED.
 * - Over the memory high-water mark: UNAVAILABLE with a google.rpc.RetryInfo in the
 *   `grpc-status-details-bin` trailer (the standard rich-status carrier) before decoding.
 * - Undecodable: INVALID_ARGUMENT. grpc-js answers a corrupt gzip stream with INTERNAL "Failed to
 *   decompress message"; a server interceptor rewrites that to INVALID_ARGUMENT.
 * - Every refused request is counted once, by reason, where its status is sent (this also sees the
 *   statuses grpc-js produces before our handler runs).
 *
 * Bounds (issue 11 item 3: 12 connections x 16 streams of just-under-8 MiB messages took RSS from
 * 202 MiB to 1,673 MiB, because grpc-js buffers each announced message before a handler runs):
 * - at most `maxConnections` TCP connections: pullback owns the listening socket (node
 *   `net.Server.maxConnections`, excess closed on accept and counted) and hands accepted sockets to
 *   grpc-js through its connection injector;
 * - at most `maxConcurrentCalls` calls in total, across connections (also advertised per connection
 *   as HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); the call over it is answered UNAVAILABLE at once.
 *   grpc-js keeps a call's stream paused until its handler starts reading, so a refused call is
 *   never buffered (beyond the HTTP/2 flow-control window);
 * - each admitted call reserves with the memory guard what its message announces (its 5-byte
 *   length prefix, read from the first chunk) before grpc-js buffers the rest: 2 x the length, as
 *   grpc-js holds a message's frames and then their concatenation (+ maxRequestBytes to inflate a
 *   compressed one). Refused => UNAVAILABLE + RetryInfo, and grpc-js drops the rest of the stream.
 *   The reservation shrinks to the message's size once it is in and is released when the call
 *   ends, so what grpc-js buffers stays within what the guard allows;
 * - the message must arrive within `readTimeoutMs` (UNAVAILABLE, counted); an idle connection
 *   (no call) is closed with GOAWAY after `idleTimeoutMs`.
 *
 * Security (issue 13 item 7): with `tls`, every accepted socket goes through a TLS handshake (a
 * non-listening node tls.Server holding the current, reloaded certificate; ALPN h2; client
 * certificates required when a client CA is set) before grpc-js sees it; a plaintext or
 * certificate-less client never reaches HTTP/2 (`security().tlsHandshakeFailures`). With `auth`,
 * a call's `authorization` metadata is checked before its message is read: UNAUTHENTICATED.
 */
import { Duplex } from 'node:stream'
import * as grpc from '@grpc/grpc-js'
import type { Component } from '../../common/lifecycle.js'
import type { Reservation } from '../memory.js'
import { consumeDecoded, ingest, type Signal } from '../otlp/ingest.js'
import type { WorkerPool } from '../../workers/pool.js'
import { encodeExportResponse, encodeRpcStatus } from '../otlp/responses.js'
import type { ReceiverStats } from '../stats.js'
import { OverloadedError } from '../errors.js'
import { GrpcCode, grpcCodeOf, protocolError, reasonOfGrpcCode } from '../status.js'
import { GRPC_DEFAULTS } from './defaults.js'
import {
  GrpcServerBase,
  METRICS_EXPORT_PATH,
  TRACE_EXPORT_PATH,
  type GrpcBufferStats,
  type GrpcLimitStats,
  type GrpcServerKind,
  type GrpcTransport,
  type OtlpGrpcReceiverOptions,
  type TransportSecurityStats,
} from './shared.js'
import { Http2GrpcServer } from './h2-server.js'

export { DEFAULT_GRPC_ENDPOINT, METRICS_EXPORT_PATH, TRACE_EXPORT_PATH } from './shared.js'
export type { GrpcBufferStats, GrpcLimitStats, GrpcServerKind, OtlpGrpcReceiverOptions, TransportSecurityStats } from './shared.js'

const pass = (b: Buffer): Buffer => b

function method(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: pass,
    requestDeserialize: pass,
    responseSerialize: pass,
    responseDeserialize: pass,
  }
}

export const traceServiceDefinition: grpc.ServiceDefinition = { Export: method(TRACE_EXPORT_PATH) }
export const metricsServiceDefinition: grpc.ServiceDefinition = { Export: method(METRICS_EXPORT_PATH) }

const DECOMPRESS_FAILED = 'Failed to decompress message'

/**
 * grpc-js's base server call keeps the call's HTTP/2 stream in `stream` (not public API, checked
 * here: with another layout this yields undefined and calls reserve the worst case up front).
 */
function streamOf(call: unknown): Duplex | undefined {
  const s = (call as { stream?: unknown }).stream
  return s instanceof Duplex && 'session' in s ? s : undefined
}

/** grpc-js's StreamDecoder keeps the frame chunks of a message and then concatenates them: two copies at the peak */
const GRPC_BUFFER_COPIES = 2

/** The grpc-js transport (`receivers.otlp.grpc.server: grpc-js`; the default is http2, h2-server.ts). */
class GrpcJsServer extends GrpcServerBase {
  private server: grpc.Server | undefined

  /** grpc-js allocates its own message buffers */
  buffers(): GrpcBufferStats | undefined {
    return undefined
  }

  async start(): Promise<void> {
    await this.loadSecurity()
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.maxRequestBytes,
      'grpc.max_concurrent_streams': this.maxConcurrentCalls,
      'grpc.max_connection_idle_ms': this.idleTimeoutMs,
      interceptors: [(_desc, call) => this.admit(call)],
    })
    server.addService(traceServiceDefinition, { Export: this.handler('traces') })
    server.addService(metricsServiceDefinition, { Export: this.handler('metrics') })
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure())
    await this.listen('grpc-js', (socket) => injector.injectConnection(socket))
    this.server = server
  }

  /**
   * The one server interceptor: admits a call (call cap, memory reservation, read deadline) before
   * grpc-js reads its message, and counts every status sent, once. grpc-js sends some statuses (size
   * limit, decompression failure) from inside its base call, bypassing interceptor responders;
   * patching the base call's sendStatus sees every status.
   */
  private admit(call: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall {
    const counters = this.counters
    let reservation: Reservation | undefined
    let timer: NodeJS.Timeout | undefined
    let stopWatching: (() => void) | undefined
    let ended = false
    this.calls++
    const end = () => {
      if (ended) return
      ended = true
      clearTimeout(timer)
      stopWatching?.()
      reservation?.release()
      this.calls--
    }
    const send = call.sendStatus.bind(call)
    call.sendStatus = (status) => {
      let s = status
      if (s.code === GrpcCode.INTERNAL && s.details === DECOMPRESS_FAILED) s = { ...s, code: GrpcCode.INVALID_ARGUMENT, details: 'invalid compressed message' }
      if (!ended && s.code !== GrpcCode.OK && s.code !== undefined) {
        const reason = reasonOfGrpcCode(s.code)
        if (reason !== undefined) counters.rejected[reason]++
      }
      end()
      send(s)
    }
    let refusal: unknown
    if (this.state !== 'running') refusal = new OverloadedError('shutting down', this.guard.retryAfterMs)
    else if (this.calls > this.maxConcurrentCalls) {
      this.callsRefused++
      refusal = new OverloadedError(`more than ${this.maxConcurrentCalls} calls in progress`, this.guard.retryAfterMs)
    } else {
      // with the call's stream at hand, reserve what the message announces once its 5-byte prefix
      // is in; without it (another grpc-js), the worst case up front
      const stream = streamOf(call)
      const r = this.guard.reserve(stream === undefined ? GRPC_BUFFER_COPIES * this.maxRequestBytes : 0)
      if (r.outcome === 'refused') refusal = r.error
      else {
        reservation = r.reservation
        if (stream !== undefined) stopWatching = this.reserveAnnounced(stream, r.reservation, (err) => call.sendStatus(this.statusOf(err)))
      }
    }
    if (refusal !== undefined) {
      counters.requests++
      call.sendStatus(this.statusOf(refusal))
    } else {
      timer = setTimeout(() => {
        this.readTimeouts++
        call.sendStatus(this.statusOf(new OverloadedError(`request message not received within ${this.readTimeoutMs} ms`, this.guard.retryAfterMs)))
      }, this.readTimeoutMs)
    }
    const auth = this.sec.auth
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          // before the message is read: an unauthenticated call is refused without buffering its body
          onReceiveMetadata: (metadata: grpc.Metadata, nextMetadata: (m: grpc.Metadata) => void) => {
            if (auth !== undefined && !ended) {
              const value = metadata.get('authorization')[0]
              const checked = auth.check(typeof value === 'string' ? value : undefined)
              if (checked.outcome === 'refused') {
                counters.requests++
                call.sendStatus(this.statusOf(checked.error))
                return
              }
            }
            nextMetadata(metadata)
          },
          onReceiveMessage: (message: unknown, nextMessage: (m: unknown) => void) => {
            clearTimeout(timer)
            if (Buffer.isBuffer(message)) reservation?.shrinkTo(message.length)
            nextMessage(message)
          },
          onCancel: () => end(),
        }),
    })
  }

  /**
   * Reads the gRPC message prefix (compressed flag, 4-byte length) as it arrives, next to grpc-js,
   * and grows the reservation by what the message will take before grpc-js has buffered more than
   * its first chunk: 2 x the announced length, plus maxRequestBytes for inflating a compressed one.
   * Refused => `refuse` (the call is answered and grpc-js drops the rest of the stream). An announced
   * length over maxRequestBytes is left to grpc-js (RESOURCE_EXHAUSTED). Returns the unsubscribe.
   */
  private reserveAnnounced(stream: Duplex, reservation: Reservation, refuse: (err: unknown) => void): () => void {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk.subarray(0, 5 - head.length)])
      if (head.length < 5) return
      stream.off('data', onData)
      const announced = head.readUInt32BE(1)
      if (announced > this.maxRequestBytes) return
      const grown = reservation.grow(GRPC_BUFFER_COPIES * announced + (head[0] === 1 ? this.maxRequestBytes : 0))
      if (grown.outcome === 'refused') refuse(grown.error)
    }
    stream.on('data', onData)
    return () => stream.off('data', onData)
  }

  /** The status answering `err`, with a RetryInfo for retryable ones. */
  private statusOf(err: unknown): grpc.StatusObject {
    const pe = protocolError(err, this.guard.retryAfterMs)
    const code = grpcCodeOf(pe.reason)
    const metadata = new grpc.Metadata()
    if (pe.retryAfterMs !== undefined) {
      metadata.set('grpc-status-details-bin', encodeRpcStatus(code, pe.message, pe.retryAfterMs))
      // plain hint for clients that do not parse rich status details
      metadata.set('retry-after-ms', String(pe.retryAfterMs))
    }
    return { code, details: pe.message, metadata }
  }

  private handler(signal: Signal): grpc.handleUnaryCall<Buffer, Buffer> {
    return (call, callback) => {
      this.counters.requests++
      const workers = this.workers
      if (signal === 'traces' && workers !== undefined) return this.viaWorkers(workers, call, callback)
      try {
        const out = ingest(signal, 'proto', call.request, this.consumer, this.counters, this.maxAttributes, { transport: 'otlp', peer: call.getPeer() })
        callback(null, encodeExportResponse(out.rejected, out.errorMessage))
      } catch (err) {
        callback(this.statusOf(err))
      }
    }
  }

  /**
   * A span request decoded by a worker; recorded here, on the main thread, and answered only after
   * it is recorded (OK means accepted). The message buffer is grpc-js's framed copy, handed to us
   * and referenced by nothing else: it is moved to the worker, not copied. The call's memory
   * reservation is held until the answer. A call the client cancelled meanwhile is not recorded.
   */
  private viaWorkers(workers: WorkerPool, call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    workers.decodeTraces('proto', call.request, this.maxAttributes, true).then(
      (req) => {
        if (call.cancelled) {
          this.cancelledWhileDecoding++
          return
        }
        try {
          const out = consumeDecoded('traces', req, this.consumer, this.counters, { transport: 'otlp', peer: call.getPeer() })
          callback(null, encodeExportResponse(out.rejected, out.errorMessage))
        } catch (err) {
          callback(this.statusOf(err))
        }
      },
      (err: unknown) => callback(this.statusOf(err)),
    ).catch((err: unknown) => this.logger.error({ err: String(err) }, 'otlp-grpc: answering a worker-decoded call failed'))
  }

  /** Stops accepting new calls, waits up to drainTimeoutMs for in-flight ones, then closes. Idempotent. */
  shutdown(): Promise<void> {
    if (this.stopping) return this.stopping
    const server = this.server
    this.state = 'stopping'
    this.stopping = (async () => {
      if (server === undefined) {
        this.state = 'stopped'
        return
      }
      this.listener?.close()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown()
          resolve()
        }, this.drainTimeoutMs)
        timer.unref()
        server.tryShutdown(() => {
          clearTimeout(timer)
          resolve()
        })
      })
      this.stopped()
    })()
    return this.stopping
  }
}

/**
 * The OTLP/gRPC receiver: one of the two transports (grpc-js, or pullback's own on node:http2:
 * h2-server.ts), chosen by `server`, behind one API, so the rest of the sidecar does not care.
 */
export class OtlpGrpcReceiver implements Component {
  readonly name = 'otlp-grpc'
  /** which transport serves the calls */
  readonly server: GrpcServerKind
  private readonly impl: GrpcTransport

  constructor(opts: OtlpGrpcReceiverOptions) {
    this.server = opts.server ?? GRPC_DEFAULTS.server
    this.impl = this.server === 'http2' ? new Http2GrpcServer(opts) : new GrpcJsServer(opts)
  }

  /** the bound port (useful with port 0) */
  get port(): number {
    return this.impl.port
  }

  stats(): ReceiverStats {
    return this.impl.stats()
  }

  limits(): GrpcLimitStats {
    return this.impl.limits()
  }

  security(): TransportSecurityStats {
    return this.impl.security()
  }

  /** the http2 transport's reusable message buffers; undefined with grpc-js */
  buffers(): GrpcBufferStats | undefined {
    return this.impl.buffers()
  }

  start(): Promise<void> {
    return this.impl.start()
  }

  /** Stops accepting new calls, waits up to drainTimeoutMs for in-flight ones, then closes. Idempotent. */
  shutdown(): Promise<void> {
    return this.impl.shutdown()
  }
}
