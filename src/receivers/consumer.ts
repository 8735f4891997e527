/**
 * Where receivers hand decoded telemetry. The pipeline (normalize -> signals) implements it.
 * Receivers decode and hand on; they decide nothing.
 *
 * `consume*` is synchronous (recording into windows is in-memory and fast). It returns how many
 * items were accepted and rejected (e.g. points with NaN values, unknown temporality), which the
 * receivers turn into OTLP `partial_success`. It may throw a RetryableError when the pipeline is
 * over its memory high-water mark; receivers map that to UNAVAILABLE / 503.
 */
import type { MetricsRequest, TracesRequest } from './otlp/model.js'

export interface ConsumeResult {
  accepted: number
  rejected: number
  /** human-readable reason for the first rejection, for partial_success.error_message */
  rejectReason?: string
}

/**
 * Where a request came from, for the identity stage (src/identity, issue 13 item 4): an OTLP
 * request's peer (gRPC `call.getPeer()`, HTTP `req.socket.remoteAddress`), or a Kafka record, which
 * has no peer. Consumers that do not check identity ignore it.
 */
export type TelemetryOrigin = { transport: 'otlp'; peer: string } | { transport: 'kafka' }

export interface TelemetryConsumer {
  consumeTraces(req: TracesRequest, origin?: TelemetryOrigin): ConsumeResult
  consumeMetrics(req: MetricsRequest, origin?: TelemetryOrigin): ConsumeResult
}
