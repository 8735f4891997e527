/**
 * What makes the simulated spanmetrics output (FleetSpec.histogramAggregation 'spanmetrics') the
 * connector's and not each pod's. The simulation records the connector's histogram in each pod's SDK
 * (its name, unit, bounds and dimensions: src/sim/telemetry.ts); the real connector (read by
 * test/interop/spanmetrics.test.ts) differs from that in two ways this rewrites, line by line:
 * - its cumulative streams all start at the connector's own start, long before a new pod serves:
 *   every `traces.span.metrics.duration` point gets that start time, and the connector's scope name;
 * - it keys its streams by the spans' resource attributes, so replicas that cannot be told apart (no
 *   pod identity) are one stream: the points of identical resources are summed into the first such
 *   resource of the line, each pod's last cumulative value kept once it stops (the connector keeps a
 *   stream's total; its `metrics_expiration` is off by default).
 * Everything else passes unchanged. Lines are OTLP/JSON as the Collector's file exporter writes them.
 * State: one entry per (resource, point attributes, pod) of the recording (a scenario's few hundred).
 */

import { attrKey, type JsonMetric, type JsonMetricsLine, type JsonPoint, type JsonScope } from './json-lines.js'

/** how long the connector has run when the recording starts */
export const CONNECTOR_AGE_MS = 3_600_000

const NAME = 'traces.span.metrics.duration'
/** the point attribute naming the simulated pod a point came from (src/sim/telemetry.ts): the key of its cumulative state here, dropped from the output */
export const SIM_POD = 'sim.pod'

export class SpanMetricsStart {
  private readonly startNs: string
  /** resource -> point attributes -> the pod (its SDK stream) -> its newest cumulative point */
  private readonly pods = new Map<string, Map<string, Map<string, JsonPoint>>>()

  constructor(connectorStartMs: number) {
    this.startNs = `${Math.floor(connectorStartMs)}000000`
  }

  /** One recording line as the connector would have written it; trace lines come back unchanged. */
  line(text: string): string {
    const doc = JSON.parse(text) as JsonMetricsLine
    if (doc.resourceMetrics === undefined) return text
    /** per resource of this line: the scope that carries its merged points, and their attribute keys */
    const carriers = new Map<string, { scope: JsonScope; metric: JsonMetric; keys: Set<string> }>()
    for (const rm of doc.resourceMetrics) {
      const res = attrKey(rm.resource?.attributes)
      for (const sm of rm.scopeMetrics ?? []) {
        const metric = sm.metrics?.find((m) => m.name === NAME && m.histogram !== undefined)
        if (metric === undefined || metric.histogram === undefined) continue
        let byAttrs = this.pods.get(res)
        if (byAttrs === undefined) this.pods.set(res, (byAttrs = new Map()))
        let carrier = carriers.get(res)
        const replica = carrier !== undefined
        if (carrier === undefined) carriers.set(res, (carrier = { scope: sm, metric, keys: new Set() }))
        for (const p of metric.histogram.dataPoints) {
          const pod = p.attributes?.find((a) => a.key === SIM_POD)?.value
          p.attributes = p.attributes?.filter((a) => a.key !== SIM_POD)
          const k = attrKey(p.attributes)
          let byPod = byAttrs.get(k)
          if (byPod === undefined) byAttrs.set(k, (byPod = new Map()))
          byPod.set(JSON.stringify(pod ?? p.startTimeUnixNano ?? ''), p)
          carrier.keys.add(k)
        }
        // a replica of a resource already in the line: its points are summed into the first one's
        if (replica) sm.metrics = (sm.metrics ?? []).filter((m) => m !== metric)
      }
    }
    for (const [res, c] of carriers) {
      const byAttrs = this.pods.get(res) as Map<string, Map<string, JsonPoint>>
      const points: JsonPoint[] = []
      for (const k of c.keys) points.push(this.merged(byAttrs.get(k) as Map<string, JsonPoint>))
      ;(c.metric.histogram as NonNullable<JsonMetric['histogram']>).dataPoints = points
      c.scope.scope = { name: 'spanmetricsconnector' }
    }
    for (const rm of doc.resourceMetrics) if (rm.scopeMetrics !== undefined) rm.scopeMetrics = rm.scopeMetrics.filter((sm) => (sm.metrics ?? []).length > 0)
    return JSON.stringify(doc)
  }

  /** The connector's one stream over every pod of a resource: their newest cumulative points summed, from the connector's start. */
  private merged(byPod: Map<string, JsonPoint>): JsonPoint {
    let out: JsonPoint | undefined
    for (const p of byPod.values()) {
      if (out === undefined) {
        out = { ...p, startTimeUnixNano: this.startNs, bucketCounts: [...(p.bucketCounts ?? [])] }
        continue
      }
      out.count = String(Number(out.count ?? '0') + Number(p.count ?? '0'))
      if (out.sum !== undefined || p.sum !== undefined) out.sum = (out.sum ?? 0) + (p.sum ?? 0)
      if (p.min !== undefined) out.min = out.min === undefined ? p.min : Math.min(out.min, p.min)
      if (p.max !== undefined) out.max = out.max === undefined ? p.max : Math.max(out.max, p.max)
      out.bucketCounts = (out.bucketCounts ?? []).map((c, i) => String(Number(c) + Number(p.bucketCounts?.[i] ?? '0')))
      if (p.timeUnixNano !== undefined && (out.timeUnixNano === undefined || BigInt(p.timeUnixNano) > BigInt(out.timeUnixNano))) out.timeUnixNano = p.timeUnixNano
    }
    return out as JsonPoint
  }
}
