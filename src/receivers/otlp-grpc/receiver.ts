/**
 * OTLP/gRPC receiver: TraceService/Export and MetricsService/Export registered as raw-bytes methods
 * (identity deserializer) so decoding and error codes are ours, not grpc-js's INTERNAL.
 *
 * - grpc-js handles `grpc-encoding: gzip|deflate` and enforces `maxRequestBytes` on the decompressed
 *   message while inflating (decompression bombs stop at the limit) => RESOURCE_EXHAUSTED.
 * - Over the memory high-water mark: UNAVAILABLE with a google.rpc.RetryInfo in the
 *   `grpc-status-details-bin` trailer (the standard rich-status carrier) before decoding.
 * - Undecodable: INVALID_ARGUMENT. grpc-js answers a corrupt gzip stream with INTERNAL "Failed to
 *   decompress message"; a server interceptor rewrites that to INVALID_ARGUMENT.
 * - Every refused request is counted once, by reason, where its status is sent (this also sees the
 *   statuses grpc-js produces before our handler runs).
 */
import * as grpc from '@grpc/grpc-js'
import type { Component } from '../../common/lifecycle.js'
import type { Logger } from '../../common/logger.js'
import type { TelemetryConsumer } from '../consumer.js'
import type { MemoryGuard } from '../memory.js'
import { ingest, type Signal } from '../otlp/ingest.js'
import { encodeExportResponse, encodeRpcStatus } from '../otlp/responses.js'
import { copyStats, newReceiverStats, type ReceiverStats } from '../stats.js'
import { GrpcCode, grpcCodeOf, protocolError, reasonOfGrpcCode } from '../status.js'
import { resolveOtlpOptions, type OtlpReceiverOptions } from '../otlp/options.js'

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export'
export const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export'

/** Endpoint default 0.0.0.0:4317. */
export type OtlpGrpcReceiverOptions = OtlpReceiverOptions

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

export class OtlpGrpcReceiver implements Component {
  readonly name = 'otlp-grpc'
  private readonly consumer: TelemetryConsumer
  private readonly endpoint: string
  private readonly maxRequestBytes: number
  private readonly guard: MemoryGuard
  private readonly maxAttributes: number
  private readonly drainTimeoutMs: number
  private readonly logger: Logger
  private readonly counters: ReceiverStats = newReceiverStats()
  private server: grpc.Server | undefined
  private boundPort = 0
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private stopping: Promise<void> | undefined

  constructor(opts: OtlpGrpcReceiverOptions) {
    const o = resolveOtlpOptions(opts, '0.0.0.0:4317')
    this.consumer = o.consumer
    this.endpoint = o.endpoint
    this.maxRequestBytes = o.maxRequestBytes
    this.guard = o.memoryGuard
    this.maxAttributes = o.maxAttributes
    this.drainTimeoutMs = o.drainTimeoutMs
    this.logger = o.logger
  }

  /** the bound port (useful with port 0) */
  get port(): number {
    return this.boundPort
  }

  stats(): ReceiverStats {
    return copyStats(this.counters)
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`${this.name}: start() called twice`)
    const counters = this.counters
    // grpc-js sends some statuses (size limit, decompression failure) from inside its base call,
    // bypassing interceptor responders; patching the base call's sendStatus sees every status once.
    const countStatuses: grpc.ServerInterceptor = (_desc, call) => {
      const send = call.sendStatus.bind(call)
      call.sendStatus = (status) => {
        let s = status
        if (s.code === GrpcCode.INTERNAL && s.details === DECOMPRESS_FAILED) s = { ...s, code: GrpcCode.INVALID_ARGUMENT, details: 'invalid compressed message' }
        if (s.code !== GrpcCode.OK && s.code !== undefined) {
          const reason = reasonOfGrpcCode(s.code)
          if (reason !== undefined) counters.rejected[reason]++
        }
        send(s)
      }
      return new grpc.ServerInterceptingCall(call)
    }
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.maxRequestBytes,
      // bounds buffered request bytes per connection to 100 x maxRequestBytes
      'grpc.max_concurrent_streams': 100,
      interceptors: [countStatuses],
    })
    server.addService(traceServiceDefinition, { Export: this.handler('traces') })
    server.addService(metricsServiceDefinition, { Export: this.handler('metrics') })
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.endpoint, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)))
    })
    this.server = server
    this.state = 'running'
    this.logger.info({ endpoint: this.endpoint, port: this.boundPort }, 'otlp-grpc receiver started')
  }

  private handler(signal: Signal): grpc.handleUnaryCall<Buffer, Buffer> {
    return (call, callback) => {
      this.counters.requests++
      try {
        this.guard.check()
        const out = ingest(signal, 'proto', call.request, this.consumer, this.counters, this.maxAttributes)
        callback(null, encodeExportResponse(out.rejected, out.errorMessage))
      } catch (err) {
        const pe = protocolError(err, this.guard.retryAfterMs)
        const code = grpcCodeOf(pe.reason)
        const metadata = new grpc.Metadata()
        if (pe.retryAfterMs !== undefined) {
          metadata.set('grpc-status-details-bin', encodeRpcStatus(code, pe.message, pe.retryAfterMs))
          // plain hint for clients that do not parse rich status details
          metadata.set('retry-after-ms', String(pe.retryAfterMs))
        }
        callback({ code, details: pe.message, metadata })
      }
    }
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
      this.state = 'stopped'
      this.logger.info({ port: this.boundPort }, 'otlp-grpc receiver stopped')
    })()
    return this.stopping
  }
}
