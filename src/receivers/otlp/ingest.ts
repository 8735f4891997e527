/**
 * The shared request path of the OTLP receivers: decode (protobuf or JSON), hand to the consumer,
 * count. Throws DecodeError (undecodable) or whatever the consumer throws (RetryableError when the
 * pipeline is overloaded); protocol mapping is the caller's, through ../status.ts.
 */
import type { TelemetryConsumer } from '../consumer.js'
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
): IngestOutcome {
  let total: number
  let res
  if (signal === 'traces') {
    const req = decodeRequest('traces', format, body, maxAttributes)
    total = countSpans(req)
    res = total === 0 ? { accepted: 0, rejected: 0 } : consumer.consumeTraces(req)
  } else {
    const req = decodeRequest('metrics', format, body, maxAttributes)
    total = countPoints(req)
    res = total === 0 ? { accepted: 0, rejected: 0 } : consumer.consumeMetrics(req)
  }
  // the consumer's rejected count is authoritative; accepted is what remains, so nothing is counted twice
  const rejected = Math.min(total, Math.max(0, res.rejected))
  const accepted = total - rejected
  if (signal === 'traces') stats.acceptedSpans += accepted
  else stats.acceptedPoints += accepted
  stats.partial += rejected
  return { accepted, rejected, errorMessage: rejected > 0 ? (res.rejectReason ?? `${rejected} rejected`) : '' }
}
