/**
 * The shared request path of the OTLP receivers: decode (protobuf or JSON), hand to the consumer,
 * count. Throws DecodeError (undecodable) or whatever the consumer throws (RetryableError when the
 * pipeline is overloaded); protocol mapping is the caller's, through ../status.ts.
 */
import type { TelemetryConsumer, TelemetryOrigin } from '../consumer.js'
import type { ReceiverStats } from '../stats.js'
import { decodeMetricsJson, decodeTracesJson } from './json.js'
import type { MetricsRequest, TracesRequest } from './model.js'
import { countPoints, countSpans, decodeMetricsProto, decodeTracesProto } from './proto.js'

export type Format = 'proto' | 'json'
export type Signal = 'traces' | 'metrics'

export interface IngestOutcome {
  accepted: number
  rejected: number
  errorMessage: string
}

export function decodeRequest(signal: 'traces', format: Format, body: Buffer, maxAttributes: number): TracesRequest
export function decodeRequest(signal: 'metrics', format: Format, body: Buffer, maxAttributes: number): MetricsRequest
export function decodeRequest(signal: Signal, format: Format, body: Buffer, maxAttributes: number): TracesRequest | MetricsRequest
export function decodeRequest(signal: Signal, format: Format, body: Buffer, maxAttributes: number): TracesRequest | MetricsRequest {
  if (format === 'proto') {
    return signal === 'traces' ? decodeTracesProto(body, { maxAttributes }) : decodeMetricsProto(body, { maxAttributes })
  }
  const text = body.toString('utf8')
  return signal === 'traces' ? decodeTracesJson(text, { maxAttributes }) : decodeMetricsJson(text, { maxAttributes })
}

export function ingest(
  signal: Signal,
  format: Format,
  body: Buffer,
  consumer: TelemetryConsumer,
  stats: ReceiverStats,
  maxAttributes: number,
  /** the request's peer, for the identity stage (src/identity) */
  origin?: TelemetryOrigin,
): IngestOutcome {
  return signal === 'traces'
    ? consumeDecoded('traces', decodeRequest('traces', format, body, maxAttributes), consumer, stats, origin)
    : consumeDecoded('metrics', decodeRequest('metrics', format, body, maxAttributes), consumer, stats, origin)
}

/**
 * The part of `ingest` after decoding: hand to the consumer, count. Also the path of a request
 * decoded by a decode worker (src/workers), so both paths count and answer identically.
 */
export function consumeDecoded(signal: 'traces', req: TracesRequest, consumer: TelemetryConsumer, stats: ReceiverStats, origin?: TelemetryOrigin): IngestOutcome
export function consumeDecoded(signal: 'metrics', req: MetricsRequest, consumer: TelemetryConsumer, stats: ReceiverStats, origin?: TelemetryOrigin): IngestOutcome
export function consumeDecoded(signal: Signal, req: TracesRequest | MetricsRequest, consumer: TelemetryConsumer, stats: ReceiverStats, origin?: TelemetryOrigin): IngestOutcome {
  let total: number
  let res
  if (signal === 'traces') {
    const r = req as TracesRequest
    total = countSpans(r)
    res = total === 0 ? { accepted: 0, rejected: 0 } : consumer.consumeTraces(r, origin)
  } else {
    const r = req as MetricsRequest
    total = countPoints(r)
    res = total === 0 ? { accepted: 0, rejected: 0 } : consumer.consumeMetrics(r, origin)
  }
  // the consumer's rejected count is authoritative; accepted is what remains, so nothing is counted twice
  const rejected = Math.min(total, Math.max(0, res.rejected))
  const accepted = total - rejected
  if (signal === 'traces') stats.acceptedSpans += accepted
  else stats.acceptedPoints += accepted
  stats.partial += rejected
  return { accepted, rejected, errorMessage: rejected > 0 ? (res.rejectReason ?? `${rejected} rejected`) : '' }
}
