/**
 * What an OpenTelemetry Collector's `cumulativetodelta` processor makes of a recording's cumulative
 * metrics on their way to pullback (FleetSpec.metricTemporality 'cumulativetodelta'): users whose
 * backend wants deltas run it in their pipeline, and pullback then sees its output, not the SDK's.
 *
 * Per stream (resource attributes, metric name, point attributes and, as in the processor's
 * identity, the start time: a restarted process is a new stream): a point after the stream's
 * previous one becomes the difference, starting at the previous point's time. A stream's first
 * point follows the processor's default `initial_value: auto`: it passes whole, from its own start
 * time, when the stream started after the processor did (here: the recording's first metric export)
 * and not at the point's own time, and is dropped otherwise. A count that went down under the same
 * start time passes whole from the previous point's time (a histogram) or is dropped (a sum), as the
 * processor does. Explicit-bucket histograms and monotonic sums are
 * converted; gauges, non-monotonic sums and exponential histograms pass as they are (the processor
 * leaves the last two alone). Lines are OTLP/JSON as the
 * Collector's file exporter writes them (int64 values as decimal strings).
 */

import { attrKey, type JsonMetricsLine, type JsonPoint } from './json-lines.js'

const CUMULATIVE = 2
const DELTA = 1


export class CumulativeToDelta {
  /** stream -> its previous point; one entry per stream of the recording (a bench's few thousand) */
  private readonly prev = new Map<string, JsonPoint>()
  private startedNs: bigint | undefined
  dropped = 0

  /** One recording line, converted; trace lines come back unchanged. */
  line(text: string): string {
    const doc = JSON.parse(text) as JsonMetricsLine
    if (doc.resourceMetrics === undefined) return text
    for (const rm of doc.resourceMetrics) {
      const res = attrKey(rm.resource?.attributes)
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const body = m.histogram ?? (m.sum?.isMonotonic === true ? m.sum : undefined)
          if (body === undefined || body.aggregationTemporality !== CUMULATIVE) continue
          const kept: JsonPoint[] = []
          for (const p of body.dataPoints) {
            const d = this.point(`${res}|${m.name}|${attrKey(p.attributes)}|${p.startTimeUnixNano ?? ''}`, p, m.histogram !== undefined)
            if (d !== undefined) kept.push(d)
          }
          body.dataPoints = kept
          body.aggregationTemporality = DELTA
        }
      }
    }
    return JSON.stringify(doc)
  }

  private point(key: string, p: JsonPoint, histogram: boolean): JsonPoint | undefined {
    const t = BigInt(p.timeUnixNano ?? '0')
    this.startedNs ??= t
    const q = this.prev.get(key)
    this.prev.set(key, p)
    if (q === undefined) {
      // initial_value auto: only a stream that started after the processor (and not at this very
      // point's time) passes its first value
      const start = BigInt(p.startTimeUnixNano ?? '0')
      if (start > this.startedNs && start !== t) return { ...p }
      this.dropped += 1
      return undefined
    }
    if (Number(p.count ?? p.asInt ?? p.asDouble ?? 0) < Number(q.count ?? q.asInt ?? q.asDouble ?? 0)) {
      if (histogram) return { ...p, startTimeUnixNano: q.timeUnixNano as string }
      this.dropped += 1
      return undefined
    }
    const d: JsonPoint = { ...p, startTimeUnixNano: q.timeUnixNano as string }
    if (histogram) {
      d.count = String(Number(p.count) - Number(q.count))
      if (p.sum !== undefined && q.sum !== undefined) d.sum = p.sum - q.sum
      d.bucketCounts = (p.bucketCounts ?? []).map((c, i) => String(Number(c) - Number(q.bucketCounts?.[i] ?? 0)))
      // a delta's min and max are unknown from two cumulative points: the processor leaves them out
      delete d.min
      delete d.max
    } else if (p.asDouble !== undefined) d.asDouble = p.asDouble - (q.asDouble ?? 0)
    else d.asInt = String(Number(p.asInt ?? '0') - Number(q.asInt ?? '0'))
    return d
  }
}
