/**
 * A plain in-memory SignalView for the engine's unit tests: no histograms, no rings, exact answers.
 * Latency per bucket is a list of values; quantiles are nearest-rank.
 */
import type { LatencyBuckets, ResourceKind, SeriesKey } from '../../src/normalize/observations.js'
import type { BucketStats, PodSlope, SeriesCoverage, SignalView, VersionInfo, WindowStats } from '../../src/signals/view.js'

interface Bucket {
  requests: number
  errors: number
  lats: number[]
}

interface Reading {
  pod: string
  resource: ResourceKind
  t: number
  value: number
  request: number | undefined
}

const kid = (k: SeriesKey) => `${k.namespace}/${k.service}@${k.version}`

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number
}

function theilSen(pts: { t: number; v: number }[]): number {
  const slopes: number[] = []
  for (let i = 0; i < pts.length; i++) {
    for (let j = i + 1; j < pts.length; j++) {
      const a = pts[i] as { t: number; v: number }
      const b = pts[j] as { t: number; v: number }
      if (b.t !== a.t) slopes.push((b.v - a.v) / (b.t - a.t))
    }
  }
  return quantile(slopes, 0.5) // lower median is fine for tests
}

export class FakeView implements SignalView {
  readonly bucketMs: number
  private readonly buckets = new Map<string, Map<number, Bucket>>()
  private readonly readings = new Map<string, Reading[]>()
  private readonly probes = new Map<string, { t: number; id: string; ready: boolean }[]>()
  private readonly info = new Map<string, VersionInfo>()

  /** data at or after this time is not there yet (a test reveals it report by report) */
  visibleUntil = Infinity

  /** per series: the report interval `coverage()` answers (default 0: spans) */
  private readonly intervals = new Map<string, number>()

  /** the fake keeps every bucket fine */
  readonly coarseBucketMs: number
  readonly fineRetentionMs = Infinity

  constructor(bucketMs = 5000) {
    this.bucketMs = bucketMs
    this.coarseBucketMs = bucketMs
  }

  /** per series: the metric bucket layout `coverage()` answers (default none) */
  private readonly layouts = new Map<string, LatencyBuckets>()

  /**
   * Declares that `k` arrives as metric points covering `ms` each (coverage lags by one interval),
   * and, when given, that its latencies are the representatives of `layout`'s buckets.
   */
  reportEvery(k: SeriesKey, ms: number, layout?: LatencyBuckets): this {
    this.intervals.set(kid(k), ms)
    if (layout !== undefined) this.layouts.set(kid(k), layout)
    return this
  }

  coverage(key: SeriesKey): SeriesCoverage | undefined {
    const i = this.info.get(kid(key))
    if (i === undefined) return undefined
    const m = this.buckets.get(kid(key))
    let newest = Math.min(i.lastSeenMs, this.visibleUntil)
    if (m !== undefined) for (const b of m.keys()) if (b < this.visibleUntil) newest = Math.max(newest, b + this.bucketMs)
    const interval = this.intervals.get(kid(key)) ?? 0
    const layout = this.layouts.get(kid(key))
    return { newestMs: newest, reportIntervalMs: interval, completeUntilMs: newest - interval, ...(layout !== undefined ? { latencyBuckets: layout } : {}) }
  }

  private touch(k: SeriesKey, t: number): void {
    const id = kid(k)
    const i = this.info.get(id)
    if (i === undefined) this.info.set(id, { ...k, firstSeenMs: t, lastSeenMs: t })
    else {
      i.firstSeenMs = Math.min(i.firstSeenMs, t)
      i.lastSeenMs = Math.max(i.lastSeenMs, t)
    }
  }

  /** Requests in [from, to): per bucket `rps x bucket seconds`, errors by ratio, every latency = latencyMs (or drawn from `sample`, ms). */
  traffic(k: SeriesKey, from: number, to: number, o: { rps: number; errorRate?: number; latencyMs?: number; sample?: () => number }): this {
    const id = kid(k)
    let m = this.buckets.get(id)
    if (m === undefined) this.buckets.set(id, (m = new Map()))
    for (let b = from; b < to; b += this.bucketMs) {
      const n = Math.round((o.rps * this.bucketMs) / 1000)
      const e = Math.round(n * (o.errorRate ?? 0))
      const lats = o.sample !== undefined ? Array.from({ length: n }, () => (o.sample as () => number)() * 1000) : new Array<number>(n).fill((o.latencyMs ?? 50) * 1000)
      m.set(b, { requests: n, errors: e, lats })
      if (n > 0) this.touch(k, b)
    }
    return this
  }

  /** Resource readings every `everyMs` in [from, to): value(t). */
  resource(k: SeriesKey, pod: string, from: number, to: number, everyMs: number, value: (t: number) => number, request: number | undefined, resource: ResourceKind = 'memory'): this {
    const id = kid(k)
    let l = this.readings.get(id)
    if (l === undefined) this.readings.set(id, (l = []))
    for (let t = from; t < to; t += everyMs) {
      l.push({ pod, resource, t, value: value(t), request })
      this.touch(k, t)
    }
    return this
  }

  probe(k: SeriesKey, pod: string, t: number, ready: boolean): this {
    const id = kid(k)
    let l = this.probes.get(id)
    if (l === undefined) this.probes.set(id, (l = []))
    l.push({ t, id: `${pod}/app`, ready })
    this.touch(k, t)
    return this
  }

  versions(namespace: string, service: string): VersionInfo[] {
    return [...this.info.values()].filter((v) => v.namespace === namespace && v.service === service).sort((a, b) => a.firstSeenMs - b.firstSeenMs)
  }

  retainedFromMs(key: SeriesKey): number | undefined {
    return this.info.get(kid(key))?.firstSeenMs
  }

  window(key: SeriesKey, fromMs: number, toMs: number): WindowStats {
    const id = kid(key)
    const m = this.buckets.get(id)
    const buckets: BucketStats[] = []
    let requests = 0
    let errors = 0
    const lats: number[] = []
    for (let b = fromMs; b + this.bucketMs <= toMs; b += this.bucketMs) {
      const x = b < this.visibleUntil ? m?.get(b) : undefined
      const bl = x?.lats ?? []
      buckets.push({ startMs: b, endMs: b + this.bucketMs, requests: x?.requests ?? 0, errors: x?.errors ?? 0, latencyCount: bl.length, latencyAtQuantile: (q) => quantile(bl, q), latencyCountAbove: (us) => bl.filter((x) => x > us).length })
      requests += x?.requests ?? 0
      errors += x?.errors ?? 0
      lats.push(...bl)
    }
    const byPod = new Map<string, Reading[]>()
    for (const r of this.readings.get(id) ?? []) {
      if (r.t < fromMs || r.t >= toMs) continue
      const pk = `${r.pod}\u0000${r.resource}`
      let l = byPod.get(pk)
      if (l === undefined) byPod.set(pk, (l = []))
      l.push(r)
    }
    const resources: PodSlope[] = []
    for (const l of byPod.values()) {
      const first = l[0] as Reading
      const slopePerMin = theilSen(l.map((r) => ({ t: r.t, v: r.value }))) * 60_000
      const last = (l[l.length - 1] as Reading).value
      resources.push({
        pod: first.pod,
        resource: first.resource,
        samples: l.length,
        slopePerMin,
        request: first.request,
        fractionPerMin: first.request !== undefined && first.request > 0 ? slopePerMin / first.request : NaN,
        last,
      })
    }
    const pr = (this.probes.get(id) ?? []).filter((p) => p.t >= fromMs && p.t < toMs)
    const fails = pr.filter((p) => !p.ready)
    return {
      fromMs,
      toMs,
      requests,
      errors,
      latency: { count: lats.length, valueAtQuantile: (q) => quantile(lats, q), upperAtQuantile: (q) => quantile(lats, q), countAbove: (us) => lats.filter((x) => x > us).length },
      buckets,
      resources,
      probes: {
        readings: pr.length,
        failures: fails.length,
        firstFailureMs: fails[0]?.t,
        lastFailureMs: fails.at(-1)?.t,
        failing: [...new Set(fails.map((f) => f.id))],
      },
    }
  }
}
