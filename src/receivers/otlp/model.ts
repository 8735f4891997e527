/**
 * Decoded OTLP, reduced to what `normalize` needs. Both decoders (the lazy protobuf decoder and the
 * OTLP/JSON decoder) MUST produce exactly these shapes, so normalize never sees wire details.
 *
 * Contract:
 * - Times are unix milliseconds as float64 (ns precision is not needed for bucketing).
 * - `durationUs` MUST be computed from the exact ns difference (end - start), never from two
 *   rounded doubles: epoch-ns exceeds 2^53.
 * - Attribute values: string | number | boolean. int64 beyond 2^53 loses precision (acceptable for
 *   attributes). Arrays/kvlists are dropped.
 * - Only SERVER spans carry `httpStatus`; 0 means absent.
 */
export type AttrValue = string | number | boolean
export type Attributes = Record<string, AttrValue>

/** OTLP SpanKind enum values. */
export const SpanKind = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const
/** OTLP Status.StatusCode enum values. */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const

export interface DecodedSpan {
  kind: number
  /** unix ms of span end (float). Windows bucket requests by end time: that is when the response left. */
  endTimeMs: number
  /** end - start, microseconds, from the exact ns difference; negative durations are clamped to 0 by the decoder */
  durationUs: number
  statusCode: number
  /** `http.response.status_code`, else the older `http.status_code`, else 0 */
  httpStatus: number
}

export interface ResourceSpansLite {
  resource: Attributes
  spans: DecodedSpan[]
}

export interface TracesRequest {
  resourceSpans: ResourceSpansLite[]
}

/** OTLP AggregationTemporality */
export const Temporality = { UNSPECIFIED: 0, DELTA: 1, CUMULATIVE: 2 } as const

export interface NumberPoint {
  startTimeMs: number
  timeMs: number
  value: number
  attributes: Attributes
}

export interface HistogramPoint {
  startTimeMs: number
  timeMs: number
  count: number
  sum: number | undefined
  /** explicit bounds, length n; bucketCounts has length n + 1 */
  bounds: number[]
  bucketCounts: number[]
  attributes: Attributes
}

export interface ExpBuckets {
  offset: number
  bucketCounts: number[]
}

export interface ExpHistogramPoint {
  startTimeMs: number
  timeMs: number
  count: number
  sum: number | undefined
  scale: number
  zeroCount: number
  positive: ExpBuckets
  negative: ExpBuckets
  attributes: Attributes
}

/**
 * A Summary point (OTLP: count and sum are cumulative; Micrometer's delta registry sends each step's
 * own, with a start time that moves). Its quantiles are not decoded: quantiles of different
 * processes or intervals cannot be combined, so pullback reads a summary's count and mean only.
 */
export interface SummaryPoint {
  startTimeMs: number
  timeMs: number
  count: number
  sum: number | undefined
  attributes: Attributes
}

export type DecodedMetric =
  | { name: string; unit: string; type: 'gauge'; points: NumberPoint[] }
  | { name: string; unit: string; type: 'sum'; temporality: number; monotonic: boolean; points: NumberPoint[] }
  | { name: string; unit: string; type: 'histogram'; temporality: number; points: HistogramPoint[] }
  | { name: string; unit: string; type: 'exponential_histogram'; temporality: number; points: ExpHistogramPoint[] }
  | { name: string; unit: string; type: 'summary'; points: SummaryPoint[] }

export interface ResourceMetricsLite {
  resource: Attributes
  metrics: DecodedMetric[]
}

export interface MetricsRequest {
  resourceMetrics: ResourceMetricsLite[]
}
