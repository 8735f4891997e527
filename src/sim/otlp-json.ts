/**
 * OTLP/JSON exactly as the OpenTelemetry Collector's file exporter writes it: the SDK's own JSON
 * serializers (@opentelemetry/otlp-transformer), then fixed up where they differ from the proto3
 * JSON mapping the Collector uses: 64-bit integers (attribute intValue, asInt, histogram counts,
 * bucket counts) become decimal strings, and zero-valued defaults are omitted. Ids are already hex.
 */
import { JsonMetricsSerializer, JsonTraceSerializer } from '@opentelemetry/otlp-transformer'
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'

const INT64_KEYS = new Set(['intValue', 'asInt', 'count', 'zeroCount', 'timeUnixNano', 'startTimeUnixNano', 'endTimeUnixNano', 'observedTimeUnixNano'])
const INT64_ARRAYS = new Set(['bucketCounts'])
/** fields the Collector's marshaler leaves out when they hold their zero value */
const OMIT_ZERO = new Set(['droppedAttributesCount', 'droppedEventsCount', 'droppedLinksCount', 'code'])
const OMIT_EMPTY = new Set(['events', 'links', 'traceState', 'parentSpanId', 'schemaUrl', 'exemplars', 'description', 'attributes'])

function fix(v: unknown): unknown {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = fix(v[i])
    return v
  }
  if (v === null || typeof v !== 'object') return v
  const o = v as Record<string, unknown>
  for (const k of Object.keys(o)) {
    const x = o[k]
    if (INT64_KEYS.has(k) && typeof x === 'number') o[k] = String(Math.trunc(x))
    else if (INT64_ARRAYS.has(k) && Array.isArray(x)) o[k] = x.map((n) => String(n))
    else if (OMIT_ZERO.has(k) && x === 0) delete o[k]
    else if (OMIT_EMPTY.has(k) && (x === '' || x === undefined || (Array.isArray(x) && x.length === 0))) delete o[k]
    else if (typeof x === 'object') fix(x)
  }
  return o
}

const decoder = new TextDecoder()

/** One ExportTraceServiceRequest line (no trailing newline). */
export function traceLine(spans: ReadableSpan[]): string {
  const req = JSON.parse(decoder.decode(JsonTraceSerializer.serializeRequest(spans))) as unknown
  return JSON.stringify(fix(req))
}

/** One ExportMetricsServiceRequest line holding every resource given (no trailing newline). */
export function metricsLine(batch: ResourceMetrics[]): string {
  const resourceMetrics: unknown[] = []
  for (const rm of batch) {
    const req = JSON.parse(decoder.decode(JsonMetricsSerializer.serializeRequest(rm))) as { resourceMetrics: unknown[] }
    resourceMetrics.push(...req.resourceMetrics)
  }
  return JSON.stringify(fix({ resourceMetrics }))
}
