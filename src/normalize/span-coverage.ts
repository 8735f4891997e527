/**
 * Do a service's SERVER spans carry all its requests? The one-source rule (README "One source")
 * counts spans when a service-version sends both spans and `http.server.request.duration`: spans
 * are finer in time. That is right only while the spans are every request. Sampled spans are not:
 * - head sampling (a `traceidratio` sampler at 1-10 %, common in production) keeps the rates
 *   unbiased but divides the samples, so a verdict that the unsampled metrics would reach in two
 *   export intervals waits for minutes or never comes;
 * - tail sampling upstream of pullback (a Collector keeping every error and a share of the rest)
 *   biases the error rate and the latency distribution.
 * The SDK's request metrics are never sampled. So, per process (resource attributes: spans and
 * metrics of one SDK share them), the metric requests of each export interval are compared with
 * the SERVER spans that ended in the same interval; when a service's spans hold clearly fewer
 * requests than its metrics, its spans are `sampled` and its metrics count instead, for every
 * version of the service (a new version's first spans are then not counted: sampling is a
 * property of the service's pipeline, and its first minutes are the ones a verdict is made of).
 *
 * Contract:
 * - `trackVersion(version)` marks a service-version whose request metrics arrive; only the spans
 *   of tracked versions are tallied (`spans(...)`), so a spans-only service costs one map lookup per
 *   export request.
 * - `metricInterval(resource, service, startMs, endMs, count)` hands the requests of one metric
 *   export of a process (all its streams of one collection sum to one interval). An interval is
 *   compared once the process's spans have been seen `settle` past its end (span batching, a Kafka
 *   lag), never before; intervals that start before the process's spans were first tallied, or
 *   whose span buckets were already overwritten, are dropped (counted in `unmatched`).
 * - Span counts are kept per process in 5 s buckets over the last 640 s; an interval's share of a
 *   bucket it cuts is proportional to the overlap. Consecutive intervals share their edges, so the
 *   shares sum to the bucket: only the first interval's start is approximate.
 * - Per service, the compared spans and metric requests are summed (both halved whenever the
 *   metric sum passes 16x `minRequests`, so old evidence fades). With at least `minRequests`
 *   metric requests over at least two intervals, a ratio spans / metrics under `sampledBelow`
 *   makes the service `sampled`; at or above `completeAbove` it is `complete` again. The gap
 *   between the two keeps the state from flapping.
 * - Bounded: at most `maxResources` processes and as many services, least recently updated
 *   forgotten first (counted in `evicted`); a forgotten service is `unknown` (its spans count).
 * - Pure bookkeeping: no clock, no I/O; every time is telemetry time.
 */

export interface SpanCoverageConfig {
  enabled: boolean
  minRequests: number
  sampledBelow: number
  completeAbove: number
  /** ms the process's spans must reach past an interval's end before the interval is compared */
  settle: number
  maxResources: number
}

export type SpanCoverageState = 'unknown' | 'complete' | 'sampled'

/**
 * Judgements shared between the normalizers of one fleet: the sidecars of a DaemonSet (a compacted
 * topic, src/state/span-coverage-topic.ts; it also outlives a restart) or the nodes of
 * `pullback replay --nodes` (a map). A node that runs a new pod of a sampled service, and none of
 * its older pods, has no evidence of its own for minutes: without the share it would count the
 * new version's sampled spans while the other nodes count the old version's metrics.
 * Contract: `get` is the newest judgement published for the service (by any node, this one
 * included), synchronous and cheap (the span hot path asks it); `put` never throws and never
 * blocks (a transport queues and retries); `anySampled` is a cheap guard, true when `get` may
 * return 'sampled' for some service.
 */
export interface CoverageShare {
  get(service: string): 'sampled' | 'complete' | undefined
  put(change: SpanCoverageChange): void
  anySampled(): boolean
}

/**
 * The share of in-process nodes (replay --nodes, tests), and the judgements a transport holds
 * (span-coverage-topic.ts): a bounded map, least recently written forgotten first (`evicted`).
 */
export class LocalCoverageShare implements CoverageShare {
  private readonly map = new Map<string, 'sampled' | 'complete'>()
  private sampledCount = 0
  evicted = 0
  constructor(private readonly max = 10_000) {}
  get(service: string): 'sampled' | 'complete' | undefined {
    return this.map.get(service)
  }
  put(change: SpanCoverageChange): void {
    this.set(change.service, change.state)
  }
  set(service: string, state: 'sampled' | 'complete'): void {
    if (!this.delete(service) && this.map.size >= this.max) {
      const oldest = this.map.keys().next().value
      if (oldest !== undefined) {
        this.delete(oldest)
        this.evicted++
      }
    }
    this.map.set(service, state)
    if (state === 'sampled') this.sampledCount++
  }
  /** true when the service was held */
  delete(service: string): boolean {
    const prev = this.map.get(service)
    if (prev === undefined) return false
    if (prev === 'sampled') this.sampledCount--
    this.map.delete(service)
    return true
  }
  anySampled(): boolean {
    return this.sampledCount > 0
  }
}

/** A service's state changed (a lifecycle event: logged by the caller, once per change). */
export interface SpanCoverageChange {
  service: string
  state: 'complete' | 'sampled'
  spans: number
  requests: number
  intervals: number
}

export interface SpanCoverageStats {
  /** metric intervals compared with the spans of the same interval */
  compared: number
  /** metric intervals that could not be compared (before the process's first tallied span, overwritten buckets, the pending limit) */
  unmatched: number
  /** processes or services forgotten at the bound */
  evicted: number
  /** services whose spans are now judged sampled */
  sampledServices: number
}

const BUCKET_MS = 5_000
const RING = 128
const MAX_PENDING = 32

interface Pending {
  startMs: number
  endMs: number
  count: number
}

interface Process {
  service: string
  /** bucket id -> span count, ring of RING slots; `ids[i]` is the bucket id slot i holds (-1: none) */
  ids: Float64Array
  counts: Float64Array
  /** first bucket id tallied: intervals starting before it are not compared */
  firstBucket: number
  /** newest span end time tallied, ms */
  frontierMs: number
  /** metric intervals waiting for the spans to settle, by end time */
  pending: Map<number, Pending>
}

interface Service {
  spans: number
  requests: number
  intervals: number
  state: SpanCoverageState
}

export class SpanCoverage {
  private readonly versions = new Map<string, true>()
  private readonly processes = new Map<string, Process>()
  private readonly services = new Map<string, Service>()
  private readonly st: SpanCoverageStats = { compared: 0, unmatched: 0, evicted: 0, sampledServices: 0 }

  constructor(
    private readonly config: SpanCoverageConfig,
    private readonly onChange: (c: SpanCoverageChange) => void = () => {},
    private readonly share: CoverageShare | undefined = undefined,
  ) {}

  get enabled(): boolean {
    return this.config.enabled
  }

  stats(): SpanCoverageStats {
    return { ...this.st }
  }

  /**
   * The service's spans are judged sampled: its request metrics count instead of its spans. This
   * normalizer's own judgement first; without one, the share's (another node's, or an earlier
   * incarnation's).
   */
  sampled(service: string): boolean {
    if (!this.config.enabled) return false
    const own = this.services.get(service)?.state
    if (own === 'sampled') return true
    if (own === 'complete' || this.share === undefined) return false
    return this.share.get(service) === 'sampled'
  }

  /** This normalizer's own judgement (the share not asked). */
  state(service: string): SpanCoverageState {
    return this.services.get(service)?.state ?? 'unknown'
  }

  /**
   * Called at every request-metric export of a version that also sends spans: least recently
   * exported versions are forgotten first, so an active version keeps its spans tallied (a version
   * forgotten while its intervals are pending would compare them with spans it stopped tallying).
   */
  trackVersion(version: string): void {
    if (!this.config.enabled) return
    if (this.versions.delete(version)) {
      this.versions.set(version, true)
      return
    }
    if (this.versions.size >= this.config.maxResources) {
      const oldest = this.versions.keys().next().value
      if (oldest !== undefined) this.versions.delete(oldest)
    }
    this.versions.set(version, true)
  }

  /** cheap guards for the span hot path */
  anySampled(): boolean {
    return this.config.enabled && (this.st.sampledServices > 0 || (this.share?.anySampled() ?? false))
  }

  tracksAny(): boolean {
    return this.versions.size > 0
  }

  tracks(version: string): boolean {
    return this.config.enabled && this.versions.has(version)
  }

  /** Tallies SERVER span end times of one process (a tracked version's resource). */
  spans(resource: string, service: string, endTimesMs: ArrayLike<number>): void {
    if (endTimesMs.length === 0) return
    const p = this.process(resource, service)
    for (let i = 0; i < endTimesMs.length; i++) {
      const t = endTimesMs[i] as number
      const b = Math.floor(t / BUCKET_MS)
      if (p.firstBucket < 0) p.firstBucket = b + 1
      const slot = ((b % RING) + RING) % RING
      const held = p.ids[slot] as number
      if (held === b) p.counts[slot] = (p.counts[slot] as number) + 1
      else if (held < b) {
        p.ids[slot] = b
        p.counts[slot] = 1
      }
      // held > b: a span older than the ring; its interval is no longer compared
      if (t > p.frontierMs) p.frontierMs = t
    }
    this.settle(p)
  }

  /** The requests one metric export of a process counted over (startMs, endMs]. */
  metricInterval(resource: string, service: string, startMs: number, endMs: number, count: number): void {
    if (!this.config.enabled || !(endMs > startMs) || count <= 0) return
    const p = this.process(resource, service)
    const e = p.pending.get(endMs)
    if (e !== undefined) {
      e.count += count
      if (startMs < e.startMs) e.startMs = startMs
    } else {
      if (p.pending.size >= MAX_PENDING) {
        const oldest = p.pending.keys().next().value
        if (oldest !== undefined) p.pending.delete(oldest)
        this.st.unmatched++
      }
      p.pending.set(endMs, { startMs, endMs, count })
    }
    this.settle(p)
  }

  private process(resource: string, service: string): Process {
    let p = this.processes.get(resource)
    if (p !== undefined) {
      this.processes.delete(resource)
      this.processes.set(resource, p)
      return p
    }
    if (this.processes.size >= this.config.maxResources) {
      const oldest = this.processes.keys().next().value
      if (oldest !== undefined) this.processes.delete(oldest)
      this.st.evicted++
    }
    p = { service, ids: new Float64Array(RING).fill(-1), counts: new Float64Array(RING), firstBucket: -1, frontierMs: -Infinity, pending: new Map() }
    this.processes.set(resource, p)
    return p
  }

  private settle(p: Process): void {
    if (p.pending.size === 0) return
    for (const [end, e] of p.pending) {
      if (end + this.config.settle > p.frontierMs) continue
      p.pending.delete(end)
      const spans = p.firstBucket < 0 || e.startMs < p.firstBucket * BUCKET_MS ? undefined : this.spansIn(p, e.startMs, e.endMs)
      if (spans === undefined) {
        this.st.unmatched++
        continue
      }
      this.st.compared++
      this.judge(p.service, spans, e.count)
    }
  }

  /** Spans ended in (startMs, endMs], buckets cut pro rata; undefined when a bucket was overwritten. */
  private spansIn(p: Process, startMs: number, endMs: number): number | undefined {
    let sum = 0
    const first = Math.floor(startMs / BUCKET_MS)
    const last = Math.floor(endMs / BUCKET_MS)
    for (let b = first; b <= last; b++) {
      const slot = ((b % RING) + RING) % RING
      const held = p.ids[slot] as number
      if (held > b) return undefined
      if (held < b) continue
      const lo = Math.max(startMs, b * BUCKET_MS)
      const hi = Math.min(endMs, (b + 1) * BUCKET_MS)
      if (hi > lo) sum += ((p.counts[slot] as number) * (hi - lo)) / BUCKET_MS
    }
    return sum
  }

  private judge(service: string, spans: number, requests: number): void {
    let s = this.services.get(service)
    if (s === undefined) {
      if (this.services.size >= this.config.maxResources) {
        const oldest = this.services.keys().next().value
        if (oldest !== undefined) {
          if (this.services.get(oldest)?.state === 'sampled') this.st.sampledServices--
          this.services.delete(oldest)
        }
        this.st.evicted++
      }
      s = { spans: 0, requests: 0, intervals: 0, state: 'unknown' }
    } else this.services.delete(service)
    this.services.set(service, s)
    s.spans += spans
    s.requests += requests
    s.intervals++
    if (s.requests < this.config.minRequests || s.intervals < 2) return
    const ratio = s.spans / s.requests
    const next: SpanCoverageState = ratio < this.config.sampledBelow ? 'sampled' : ratio >= this.config.completeAbove ? 'complete' : s.state
    if (next !== s.state) {
      if (next === 'sampled') this.st.sampledServices++
      else if (s.state === 'sampled') this.st.sampledServices--
      const wasUnknown = s.state === 'unknown'
      s.state = next
      const change: SpanCoverageChange = { service, state: next as 'complete' | 'sampled', spans: Math.round(s.spans), requests: s.requests, intervals: s.intervals }
      // 'unknown' -> 'complete' is what spans already assumed: nothing changes, nothing to say,
      // unless it overrides a shared 'sampled'
      const shared = this.share?.get(service)
      const overrides = this.share !== undefined && (next === 'sampled' ? shared !== 'sampled' : shared === 'sampled')
      if (!(wasUnknown && next === 'complete') || overrides) this.onChange(change)
      if (overrides) this.share?.put(change)
    }
    if (s.requests > 16 * this.config.minRequests) {
      s.spans /= 2
      s.requests /= 2
    }
  }
}
