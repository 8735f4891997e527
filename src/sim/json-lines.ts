/**
 * The parts of an OTLP/JSON metrics line (as the Collector's file exporter writes it: int64 values
 * as decimal strings) that the recording's Collector stand-ins rewrite (cumulative-to-delta.ts,
 * spanmetrics.ts). Only the fields they read or write; everything else passes through untouched.
 */

export interface JsonAttr {
  key: string
  value: unknown
}

export interface JsonPoint {
  attributes?: JsonAttr[]
  startTimeUnixNano?: string
  timeUnixNano?: string
  count?: string
  sum?: number
  min?: number
  max?: number
  bucketCounts?: string[]
  explicitBounds?: number[]
  asInt?: string
  asDouble?: number
}

export interface JsonMetric {
  name: string
  histogram?: { aggregationTemporality?: number; dataPoints: JsonPoint[] }
  sum?: { aggregationTemporality?: number; isMonotonic?: boolean; dataPoints: JsonPoint[] }
}

export interface JsonScope {
  scope?: { name?: string; version?: string }
  metrics?: JsonMetric[]
}

export interface JsonMetricsLine {
  resourceMetrics?: { resource?: { attributes?: JsonAttr[] }; scopeMetrics?: JsonScope[] }[]
}

/** An attribute list as a key, whatever the order of its entries. */
export const attrKey = (a: JsonAttr[] | undefined): string => JSON.stringify((a ?? []).map((x) => [x.key, x.value]).sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)))
