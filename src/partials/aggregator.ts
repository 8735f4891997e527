/**
 * The ingest node's pre-aggregation: an ObservationSink (the normalizer's output) that folds
 * observations into one open partial per (namespace, service, version, pod) and bucket, and emits a
 * node's partials as a `PartialBatch` once their buckets are closed.
 *
 * Time: the node's clock is the newest time given to `advance(now)` (the wall clock live; the
 * simulated cluster's clock in replay), never a telemetry time: one process sending garbage
 * timestamps cannot move a node's watermark. A bucket is closed when its end is
 * at or before clock - `closeLag`; the announced watermark is clock - `lateness` (the engine's
 * lateness). `closeLag` <= `lateness`, so every bucket the watermark covers has been emitted.
 * An observation for a bucket already emitted (late at the node) opens a new partial for it, emitted
 * at the next `advance` (counted in `reopened`): nothing is dropped here; the decider judges lateness.
 *
 * Bounds: at most `maxOpenKeys` open partials; an observation that would open one more is dropped
 * and counted (`overflowObservations`, with its requests in `overflowRequests`). Per partial, the
 * merged latency values are bounded by the distinct integer microsecond values of one bucket, the
 * interval/resource/probe lists by `maxItemsPerPartial` (beyond: dropped, `overflowItems`).
 *
 * Synchronous: record/advance/flush from one event loop turn at a time (the normalizer calls record,
 * and for SERVER spans the recorder `series(key)` gives: see there).
 */
import type { FastRequestSink } from '../normalize/normalizer.js'
import type { Observation, ObservationSink, RequestObservation, SeriesKey } from '../normalize/observations.js'
import type { SeriesPartial, PartialBatch, PointRequests } from './types.js'

export interface AggregatorOptions {
  /** the node's name (unique in the DaemonSet: the k8s node name) */
  node: string
  /** the signal store's bucket width (signals.bucket) */
  bucketMs: number
  /** engine.lateness: the announced watermark is clock - lateness */
  lateness: number
  /** a bucket is emitted once clock - closeLag reaches its end; 0..lateness, default 0 */
  closeLag?: number
  /**
   * with each watermark announcement, also emit what the open buckets hold so far (the rest of such a
   * bucket follows as another partial of the same bucket): the decider then holds everything the node
   * saw when it ticks, as one process would. Default true. false: closed buckets only, one partial per
   * key and bucket, and readings of the open bucket (a failing probe) reach the engine up to one
   * bucket later (README "Open buckets").
   */
  flushOpen?: boolean
  /** default 100,000 */
  maxOpenKeys?: number
  /** default 10,000 */
  maxItemsPerPartial?: number
  /** receives each batch (synchronously); must not throw */
  emit: (batch: PartialBatch) => void
}

export interface AggregatorStats {
  observations: number
  /** partials emitted */
  partials: number
  batches: number
  /** partials opened for a bucket already closed (emitted, or ended by the node's clock): late at the node */
  reopened: number
  overflowObservations: number
  overflowRequests: number
  overflowItems: number
  /** observations with a NaN or infinite time: dropped */
  invalidTimes: number
  openKeys: number
}

interface Open {
  p: SeriesPartial
  /** latency value -> count of the point requests */
  lat: Map<number, number> | undefined
  /** a value that is not a finite number >= 0 was merged: the emitted values are sorted the general way */
  oddLat: boolean
  /** emitted (taken out of `open`): a SeriesRecorder holding it must look its bucket up again */
  taken: boolean
}

/** One SERVER span of a series, as the normalizer's fast path hands it (FastRequestSink). */
export interface SpanRecorder {
  recordRequest(timeMs: number, latencyUs: number, error: boolean): void
}

const DEFAULT_MAX_OPEN_KEYS = 100_000
const DEFAULT_MAX_ITEMS = 10_000

export class PartialAggregator implements ObservationSink, FastRequestSink {
  private readonly o: Required<AggregatorOptions>
  /** bucket start -> key id -> open partial */
  private readonly open = new Map<number, Map<string, Open>>()
  private openCount = 0
  /** buckets ending at or before this were emitted once */
  private closedUntil = -Infinity
  /** the node's clock: the times given to advance() (its wall clock); data times do not move it */
  private clock = -Infinity
  /** newest telemetry time recorded: the clock of flush() when advance() was never called */
  private newestData = -Infinity
  private lastAnnounced = -Infinity
  private readonly st: AggregatorStats = {
    observations: 0,
    partials: 0,
    batches: 0,
    reopened: 0,
    overflowObservations: 0,
    overflowRequests: 0,
    overflowItems: 0,
    invalidTimes: 0,
    openKeys: 0,
  }

  constructor(opts: AggregatorOptions) {
    const closeLag = opts.closeLag ?? 0
    if (!(opts.bucketMs > 0) || !(closeLag >= 0 && closeLag <= opts.lateness)) {
      throw new RangeError(`partials: need bucketMs > 0 and 0 <= closeLag (${closeLag}) <= lateness (${opts.lateness})`)
    }
    this.o = { closeLag, flushOpen: true, maxOpenKeys: DEFAULT_MAX_OPEN_KEYS, maxItemsPerPartial: DEFAULT_MAX_ITEMS, ...opts }
  }

  stats(): AggregatorStats {
    return { ...this.st, openKeys: this.openCount }
  }

  record(obs: Observation): void {
    const t = obs.timeMs
    if (!Number.isFinite(t)) {
      // the store would refuse it as late; there is no bucket to put it in
      this.st.invalidTimes += 1
      return
    }
    const W = this.o.bucketMs
    const b = Math.floor(t / W) * W
    const pod = obs.kind === 'request' ? '' : obs.pod
    const e = this.entry(obs.key, pod, keyId(obs.key, pod), b)
    if (e === undefined) {
      this.st.overflowObservations += 1
      if (obs.kind === 'request') this.st.overflowRequests += obs.count
      return
    }
    this.st.observations += 1
    if (t > this.newestData) this.newestData = t
    const p = e.p
    const cap = this.o.maxItemsPerPartial
    switch (obs.kind) {
      case 'request':
        if (obs.startMs !== undefined && obs.startMs < obs.timeMs) {
          if (p.intervals.length >= cap) this.st.overflowItems += 1
          else
            p.intervals.push({
              timeMs: obs.timeMs,
              startMs: obs.startMs,
              streamStart: obs.streamStart === true,
              count: obs.count,
              errors: obs.errors,
              latenciesUs: obs.latenciesUs.slice(),
              latencyCounts: obs.latencyCounts?.slice(),
              // shared, never mutated: one layout per instrument
              latencyBuckets: obs.latencyBuckets,
            })
        } else this.point(e, obs)
        return
      case 'resource':
        if (p.resources.length >= cap) this.st.overflowItems += 1
        else p.resources.push({ resource: obs.resource, timeMs: t, value: obs.value, request: obs.request })
        return
      case 'probe':
        if (p.probes.length >= cap) this.st.overflowItems += 1
        else p.probes.push({ container: obs.container, timeMs: t, ready: obs.ready })
        return
    }
  }

  /**
   * The normalizer's fast path (FastRequestSink): a recorder for the point requests of one series
   * (pod "", as request observations have none), taken once per resource of a request. Each
   * `recordRequest(t, us, error)` has exactly the effect of `record` with the observation
   * { kind: 'request', key, timeMs: t, count: 1, errors: error ? 1 : 0, latenciesUs: [us] } (same
   * partial, same counts and stats, same overflow), without allocating that observation or building
   * the partial's key string per span. Use it synchronously, like `record`.
   */
  series(key: SeriesKey): SpanRecorder {
    return new SeriesRecorder(this, key, keyId(key, ''))
  }

  /** @internal the SeriesRecorder's span: see `series` */
  span(rec: SeriesRecorder, t: number, us: number, error: boolean): void {
    if (!Number.isFinite(t)) {
      this.st.invalidTimes += 1
      return
    }
    const W = this.o.bucketMs
    const b = Math.floor(t / W) * W
    let e = rec.e
    if (e === undefined || e.taken || rec.b !== b) {
      e = this.entry(rec.key, '', rec.id, b)
      if (e === undefined) {
        this.st.overflowObservations += 1
        this.st.overflowRequests += 1
        return
      }
      rec.e = e
      rec.b = b
    }
    this.st.observations += 1
    if (t > this.newestData) this.newestData = t
    let r = e.p.requests
    if (r === undefined) r = e.p.requests = { count: 0, errors: 0, firstMs: t, lastMs: t, latenciesUs: [], latencyCounts: [] }
    r.count += 1
    if (error) r.errors += 1
    if (t < r.firstMs) r.firstMs = t
    if (t > r.lastMs) r.lastMs = t
    this.merge(e, us, 1)
  }

  /** The open partial of (series id, bucket b), opened when there is room; undefined at `maxOpenKeys`. */
  private entry(key: SeriesKey, pod: string, id: string, b: number): Open | undefined {
    let bucket = this.open.get(b)
    let e = bucket?.get(id)
    if (e !== undefined) return e
    if (this.openCount >= this.o.maxOpenKeys) return undefined
    if (bucket === undefined) this.open.set(b, (bucket = new Map()))
    e = { p: { key, pod, bucketStartMs: b, requests: undefined, intervals: [], resources: [], probes: [] }, lat: undefined, oddLat: false, taken: false }
    bucket.set(id, e)
    this.openCount += 1
    const W = this.o.bucketMs
    if (b + W <= this.closedUntil || b + W <= this.clock - this.o.closeLag) this.st.reopened += 1
    return e
  }

  /** Adds `n` point requests of latency `raw` to the partial's merged values. */
  private merge(e: Open, raw: number, n: number): void {
    // the store records Math.round(v) for valid values: merging on it changes nothing there;
    // invalid values (negative, NaN, infinite) are kept as given for the store to count
    let v: number
    if (raw >= 0 && raw !== Infinity) v = Math.round(raw)
    else {
      v = raw
      e.oddLat = true
    }
    const lat = e.lat ?? (e.lat = new Map())
    lat.set(v, (lat.get(v) ?? 0) + n)
  }

  /**
   * The node's clock moved to `nowMs` (telemetry time in replay, the wall clock live): emits the
   * closed buckets, and announces the watermark when it entered a new bucket or partials were closed.
   */
  advance(nowMs: number): void {
    if (nowMs > this.clock) this.clock = nowMs
    if (!Number.isFinite(this.clock)) return
    const W = this.o.bucketMs
    const closeAt = this.clock - this.o.closeLag
    const watermark = this.clock - this.o.lateness
    const wb = Math.floor(watermark / W)
    const announce = wb > this.lastAnnounced
    const partials = this.take(announce && this.o.flushOpen ? () => true : (b) => b + W <= closeAt, closeAt)
    if (partials.length === 0 && !announce) return
    this.lastAnnounced = wb
    this.send({ node: this.o.node, nowMs: this.clock, watermarkMs: watermark, final: false, partials })
  }

  /** End of the node's stream: emits every open partial and announces watermark = clock, final. */
  flush(): void {
    const partials = this.take(() => true, Infinity)
    const now = Number.isFinite(this.clock) ? this.clock : Number.isFinite(this.newestData) ? this.newestData : 0
    this.send({ node: this.o.node, nowMs: now, watermarkMs: now, final: true, partials })
  }

  private point(e: Open, obs: RequestObservation): void {
    const t = obs.timeMs
    let r: PointRequests | undefined = e.p.requests
    if (r === undefined) r = e.p.requests = { count: 0, errors: 0, firstMs: t, lastMs: t, latenciesUs: [], latencyCounts: [] }
    r.count += obs.count
    r.errors += obs.errors
    if (t < r.firstMs) r.firstMs = t
    if (t > r.lastMs) r.lastMs = t
    if (e.lat === undefined) e.lat = new Map()
    const vs = obs.latenciesUs
    const cs = obs.latencyCounts
    for (let i = 0; i < vs.length; i++) this.merge(e, vs[i] as number, cs === undefined ? 1 : (cs[i] as number))
  }

  /** Removes and returns the open partials of the buckets `pick` selects; buckets ending by `closeAt` count as closed. */
  private take(pick: (bucketStart: number) => boolean, closeAt: number): SeriesPartial[] {
    const W = this.o.bucketMs
    const starts = [...this.open.keys()].filter(pick).sort((a, b) => a - b)
    const out: SeriesPartial[] = []
    for (const b of starts) {
      const bucket = this.open.get(b) as Map<string, Open>
      this.open.delete(b)
      this.openCount -= bucket.size
      if (b + W <= closeAt && b + W > this.closedUntil) this.closedUntil = b + W
      for (const e of bucket.values()) {
        e.taken = true
        const r = e.p.requests
        const lat = e.lat
        if (r !== undefined && lat !== undefined) {
          const vals = e.oddLat ? [...lat.keys()].sort((x, y) => x - y) : ascending(lat)
          r.latenciesUs = vals
          r.latencyCounts = vals.map((v) => lat.get(v) as number)
        }
        out.push(e.p)
      }
    }
    return out
  }

  private send(batch: PartialBatch): void {
    this.st.batches += 1
    this.st.partials += batch.partials.length
    this.o.emit(batch)
  }
}

/** Map key of a partial within its bucket: series and pod. */
function keyId(key: SeriesKey, pod: string): string {
  return `${key.namespace}\u0000${key.service}\u0000${key.version}\u0000${pod}`
}

/**
 * The keys of `lat` ascending, when all are finite numbers >= 0 (no value merged as odd): a typed-array
 * sort (numeric, no comparator calls) gives the order the comparator x - y gives, the keys being
 * distinct (a Map also stores -0 as 0).
 */
function ascending(lat: Map<number, number>): number[] {
  const a = new Float64Array(lat.size)
  let i = 0
  for (const v of lat.keys()) a[i++] = v
  a.sort()
  return Array.from(a)
}

/** A partial's span recorder (PartialAggregator.series): caches the open partial of the last bucket it wrote to. */
class SeriesRecorder implements SpanRecorder {
  /** the open partial of bucket `b`, while not taken */
  e: Open | undefined = undefined
  b = NaN

  constructor(
    private readonly agg: PartialAggregator,
    readonly key: SeriesKey,
    readonly id: string,
  ) {}

  recordRequest(timeMs: number, latencyUs: number, error: boolean): void {
    this.agg.span(this, timeMs, latencyUs, error)
  }
}
