/**
 * The signal windows: per service-version time buckets (requests, errors, an HDR latency histogram),
 * per-pod resource readings and per-container probe readings, all bounded.
 *
 * Layout of one series (one service-version):
 * - a fine ring of `fineRetention / bucket` buckets ending at the series' newest bucket (its head);
 * - a coarse ring of `retention / coarseBucket` (+1) buckets; a fine bucket that falls out of the fine
 *   ring is folded (added) into the coarse bucket that contains it. Late data older than the fine ring
 *   goes straight to the coarse ring.
 * Histograms are allocated only for buckets that hold latency samples, from a shared pool, and given
 * back (reset) when a bucket is recycled or the series expires.
 *
 * Queries: `window(key, from, to)` answers at bucket granularity. Fine buckets answer for the fine
 * region; older parts come from coarse buckets, each reported with its effective extent (a coarse
 * bucket that is only partly folded ends where the fine region starts). The window's latency
 * quantile is read from its buckets' histograms directly (src/signals/hdr.ts: the counts of the
 * range's buckets are scanned index by index up to the quantile's rank), so a window costs the same
 * whether or not its range moved since the last query, and nothing is merged or kept per query.
 *
 * Time (README "Time"): each series keeps its own newest time; an observation is judged against it,
 * against the store's confirmed time (which one series alone cannot move far: it needs a second
 * series) and, in live mode, against the wall clock. Garbage times in one series cannot blind others.
 *
 * Aggregates (a metric point's delta over (startMs, timeMs]) are spread over the buckets of that
 * interval in proportion to their overlap, integer counts by cumulative rounding (exact totals).
 *
 * Determinism: a bucket's content is the sum of the observations that fell into it; HDR add is exact
 * for equal configurations; the fine/coarse split depends only on the series head. So the same
 * observations give the same window stats whatever the batch split, and whatever the order as long
 * as no observation is dropped as late/future (those drops depend on the times seen so far).
 *
 * Views returned by `window()` are live: their functions read the store when called. Read the
 * numbers you need before recording more data (the engine does: it freezes numbers, not views).
 */
import type { LatencyBuckets, Observation, ObservationSink, ResourceKind, SeriesKey } from '../normalize/observations.js'
import { serviceId } from '../normalize/observations.js'
import { interpolatedQuantileUs } from '../normalize/buckets.js'
import type {
  BucketStats,
  LatencyView,
  PodSlope,
  ProbeStats,
  SeriesCoverage,
  SeriesHistory,
  SignalView,
  VersionInfo,
  WindowStats,
} from './view.js'
import type { Clock } from '../common/clock.js'
import type { SignalsConfig, SignalsConfigInput } from './config.js'
import { signalsSchema } from './config.js'
import { HistogramPool } from './histograms.js'
import { LongHistory } from './history.js'
import { ReportChains } from './report-chains.js'
import type { CountsHistogram } from './hdr.js'
import { countAbove, valueAtPercentile } from './hdr.js'
import { theilSenSlope } from './theilsen.js'

/** Fast path for the span hot loop: resolve the series once, then record without map lookups. */
export interface RequestRecorder {
  /** one request that ended at `timeMs` (unix ms) with latency `latencyUs` (microseconds) */
  recordRequest(timeMs: number, latencyUs: number, error: boolean): void
}

export interface SignalStoreStats {
  /** live series (service-versions) */
  series: number
  pinned: number
  /** observations dropped because no series could be given to them (the overflow bucket): the sum of the two below */
  overflowed: number
  /** ... of services that are not known, once their share (`maxSeries` minus the reserve) was used */
  overflowUnknown: number
  /** ... of known services, with `maxSeries` used and no series of an unknown service left to evict */
  overflowFull: number
  /** series of unknown services evicted (least recently updated first) to make room for a known service */
  evicted: number
  /** requests / errors carried by overflowed observations */
  overflowRequests: number
  overflowErrors: number
  /** series expired after `idleTtl` */
  expired: number
  /** observations older than their series' ring (or, live, than now - retention), or with a NaN/negative time: dropped */
  late: number
  /** observations beyond their series' newest time + maxFutureSkew, or (live) beyond now + maxClockSkew: dropped */
  future: number
  /** times a series accepted a jump of its time after `futureJumpAfter` consecutive future drops */
  timeJumps: number
  /** series whose data lay entirely ahead of the store's time (or after `futureJumpAfter` consecutive too-old observations) and were emptied to take current data */
  rebased: number
  /** aggregate observations (with a start time) spread over more than one bucket */
  spread: number
  /** observations accepted */
  observations: number
  /** latency values that were NaN, negative or infinite: not recorded (the request is still counted) */
  rejectedValues: number
  /** latency values above `histogram.highestUs`, recorded as highestUs */
  clampedValues: number
  /** resource readings refused because a series tracks `maxPodsPerSeries` pod-resources already */
  podOverflow: number
  /** aggregate points that found their series' report chains full (src/signals/report-chains.ts): its completeness falls back to newest - interval */
  reportChainsFull: number
  /** new-version events dropped because `maxPendingVersions` were waiting */
  versionsDropped: number
  /** coarse buckets summarised into the series' long history (src/signals/history.ts) as they left the ring */
  historyFolds: number
  /** bytes held by long histories (fixed per series that has one: `history` / coarseBucket slots) */
  historyBytes: number
  /** histograms in use / kept in the pool for reuse */
  histograms: number
  pooledHistograms: number
  /**
   * the store's confirmed telemetry time, unix ms (README "Time"): confirmed by two series, at most
   * `maxFutureSkew` beyond that; before two series have data, the newest accepted time;
   * -Infinity before the first observation
   */
  newestMs: number
}

/** Options that are not configuration: injected by the runtime. */
export interface SignalStoreOptions {
  /**
   * the wall clock (live mode): telemetry later than now + `maxClockSkew` is dropped as future,
   * older than now - `retention` as late. Replay and tests pass none: telemetry time only.
   */
  clock?: Clock
}

interface Slot {
  /** bucket index (time / width) this slot holds, -1 when unused */
  idx: number
  requests: number
  errors: number
  latCount: number
  hist: CountsHistogram | undefined
}

function newSlot(): Slot {
  return { idx: -1, requests: 0, errors: 0, latCount: 0, hist: undefined }
}

interface PodSeries {
  pod: string
  resource: ResourceKind
  /** readings sorted by time, bounded by `resourceSamples` */
  times: number[]
  values: number[]
  requests: (number | undefined)[]
}

/**
 * A series' probe readings, sorted by time, as parallel arrays rather than one object per reading:
 * 20,000 series hold up to `probeSamples` readings each, and every object (plus its boxed time) is
 * one more for each full garbage collection to mark (the 10,000-service bench's mark-compacts, which
 * stall the event loop, scale with the store's object count). Reading i is (t[i], id[i], ready[i]).
 */
interface ProbeLog {
  /** reading times (unix ms), ascending: a double array, unboxed */
  t: number[]
  /** "pod/container"; equal ids share one string (see recordProbe) */
  id: string[]
  ready: boolean[]
}

/** How far back recordProbe looks for an equal id to share its string (a series' containers are usually few). */
const PROBE_ID_SHARE_SCAN = 64

/** State shared by all series of a store. */
class Ctx {
  /**
   * the store's confirmed telemetry time G: the second-largest of the newest times presented by
   * distinct series (J), moved up to `maxFutureSkew` beyond that by the newest accepted time.
   * Monotonic. -Infinity until two series presented a time.
   */
  newest = -Infinity
  /** max(newest, the clock's last reading): what sweeps, the late bound and windows are judged against */
  ref = -Infinity
  /** start of the newest bucket of any accepted time (unconfirmed) */
  maxAccepted = -Infinity
  /** the two distinct series that presented the newest bucket starts (admitted by the clock, not necessarily accepted) */
  top1: Series | undefined
  top1Ms = -Infinity
  top2: Series | undefined
  top2Ms = -Infinity
  lateBefore = -Infinity
  /** the clock's last reading, re-read when an observation passes the limit it gives (clocks only move on) */
  clockNow = -Infinity
  clockLimit = Infinity
  lastSweepBucket = -Infinity
  /** the reference time entered another bucket: expire idle series at the next admission */
  sweepDue = false
  readonly bucketMs: number
  readonly coarseMs: number
  readonly fineSlots: number
  readonly coarseSlots: number
  /** slots of a series' long history (0: none) */
  readonly historySlots: number
  readonly highestUs: number
  readonly skewMs: number
  readonly pool: HistogramPool
  /** the histograms of the window being answered (reused: queries are synchronous and never nest) */
  readonly scratch: CountsHistogram[] = []
  /** per-bucket pieces of an aggregate's latency counts (reused: recording never nests) */
  pieces: Float64Array = new Float64Array(64)
  /** one pod's readings of a window as Theil-Sen inputs (reused: queries never nest); grown up to `resourceSamples` */
  xs: Float64Array = new Float64Array(64)
  ys: Float64Array = new Float64Array(64)
  readonly st: SignalStoreStats

  constructor(
    readonly cfg: SignalsConfig,
    readonly clock: Clock | undefined,
  ) {
    this.bucketMs = cfg.bucket
    this.coarseMs = cfg.coarseBucket
    this.fineSlots = cfg.fineRetention / cfg.bucket
    this.coarseSlots = Math.ceil(cfg.retention / cfg.coarseBucket) + 1
    this.historySlots = Math.ceil(cfg.history / cfg.coarseBucket)
    this.highestUs = cfg.histogram.highestUs
    this.skewMs = cfg.maxFutureSkew
    this.pool = new HistogramPool(cfg.histogram)
    this.st = {
      series: 0,
      pinned: 0,
      overflowed: 0,
      overflowUnknown: 0,
      overflowFull: 0,
      evicted: 0,
      overflowRequests: 0,
      overflowErrors: 0,
      expired: 0,
      late: 0,
      future: 0,
      timeJumps: 0,
      rebased: 0,
      spread: 0,
      observations: 0,
      rejectedValues: 0,
      clampedValues: 0,
      podOverflow: 0,
      reportChainsFull: 0,
      versionsDropped: 0,
      historyFolds: 0,
      historyBytes: 0,
      histograms: 0,
      pooledHistograms: 0,
      newestMs: -Infinity,
    }
    if (clock !== undefined) this.readClock()
  }

  readClock(): void {
    const now = (this.clock as Clock).now()
    // a clock that answers NaN or goes back leaves the previous reading in force
    if (now > this.clockNow) {
      this.clockNow = now
      this.clockLimit = now + this.cfg.maxClockSkew
      this.updateRef()
    }
  }

  /** Series `s` presented time `t`, newer than any it presented before. */
  present(s: Series, t: number): void {
    // two live series never share an id: the id is compared only against an expired incarnation
    const t1 = this.top1
    if (t1 !== undefined && (s === t1 || (!t1.alive && s.id === t1.id))) {
      this.top1 = s
      if (t > this.top1Ms) this.top1Ms = t
      return // the second-largest is unchanged
    }
    if (t > this.top1Ms) {
      this.top2 = t1
      this.top2Ms = this.top1Ms
      this.top1 = s
      this.top1Ms = t
    } else {
      const t2 = this.top2
      if (t2 !== undefined && (s === t2 || (!t2.alive && s.id === t2.id))) {
        this.top2 = s
        if (t > this.top2Ms) this.top2Ms = t
      } else if (t > this.top2Ms) {
        this.top2 = s
        this.top2Ms = t
      }
    }
    this.updateNewest()
  }

  /** a newer accepted time than any before */
  accepted(t: number): void {
    this.maxAccepted = t
    if (this.top2Ms !== -Infinity) this.updateNewest()
  }

  /** G = max(J, min(maxAccepted, J + skew)); J, maxAccepted and so G only grow. */
  private updateNewest(): void {
    const j = this.top2Ms
    if (j === -Infinity) return
    const lead = Math.min(this.maxAccepted, j + this.skewMs)
    const g = lead > j ? lead : j
    if (g > this.newest) {
      this.newest = g
      this.updateRef()
    }
  }

  private updateRef(): void {
    const r = this.newest > this.clockNow ? this.newest : this.clockNow
    if (r > this.ref) {
      this.ref = r
      this.lateBefore = r - this.cfg.retention
      const b = Math.floor(r / this.bucketMs)
      if (b !== this.lastSweepBucket) {
        this.lastSweepBucket = b
        this.sweepDue = true
      }
    }
  }

  /** the stats' newestMs */
  reportedNewest(): number {
    return this.newest !== -Infinity ? this.newest : this.maxAccepted
  }
}

/**
 * One service-version. Exposed to callers only as a `RequestRecorder` handle; a handle whose series
 * expired re-resolves itself through the store, so holding one is always safe.
 */
class Series implements RequestRecorder {
  alive = true
  pinned = false
  /** newest fine bucket index written */
  head = -Infinity
  headCoarse = -Infinity
  hot: Slot
  readonly fine: Slot[]
  readonly coarse: Slot[]
  firstSeenMs = Infinity
  lastSeenMs = -Infinity
  /**
   * start of the newest bucket this series presented a time in (accepted or not): its vote for the
   * store's time (bucket starts, so that the vote does not depend on the order within a bucket)
   */
  presented = -Infinity
  /** reported to the deployment detector (at its first data; a series without data never is) */
  announced = false
  /** consecutive drops: > 0 future ones, < 0 too-old ones (a written observation resets it) */
  run = 0
  /** the interval one report covers (a decaying maximum, see `noteInterval`) and when it was last confirmed */
  intervalMs = 0
  intervalAtMs = -Infinity
  /** intervalMs comes only from streams' first points (their age): the first real report replaces it */
  intervalProvisional = false
  /** how far each exporter has reported (completeUntilMs), allocated at the first aggregate point */
  chains: ReportChains | undefined = undefined
  /**
   * the bucket layout of the newest metric latencies recorded (SeriesCoverage.latencyBuckets): one
   * shared object per instrument layout, replaced when a point brings another
   */
  latencyBuckets: LatencyBuckets | undefined = undefined
  latencyBucketsAtMs = -Infinity
  /** the store's reference time when the series was created (a handle may precede any data) */
  createdMs: number
  pods: Map<string, PodSeries> | undefined
  probes: ProbeLog | undefined
  /** summaries of the coarse buckets that left the ring (allocated at the first one) */
  history: LongHistory | undefined
  /**
   * bumped whenever a slot is (re)assigned to another bucket or the head moves: a window's latency
   * view reuses the buckets it collected while this and the store's reference time are unchanged
   */
  shape = 0

  constructor(
    readonly key: SeriesKey,
    readonly id: string,
    private readonly ctx: Ctx,
    private readonly store: SignalStore,
  ) {
    this.fine = Array.from({ length: ctx.fineSlots }, newSlot)
    this.coarse = Array.from({ length: ctx.coarseSlots }, newSlot)
    this.hot = this.fine[0] as Slot
    this.createdMs = ctx.ref
  }

  recordRequest(timeMs: number, latencyUs: number, error: boolean): void {
    const ctx = this.ctx
    if (!this.alive) {
      this.store.recordRequests(this.key, timeMs, 1, error ? 1 : 0, latencyUs)
      return
    }
    const b = Math.floor(timeMs / ctx.bucketMs)
    // at or before the head bucket and inside the store-wide bounds: nothing to admit (see `admit`)
    if (!(b <= this.head && timeMs >= ctx.lateBefore && timeMs <= ctx.clockLimit)) {
      if (!this.store.admit(this, timeMs)) return
      // the sweep may just have expired this (idle) series: record through the store instead
      if (!this.alive) {
        this.store.recordRequests(this.key, timeMs, 1, error ? 1 : 0, latencyUs)
        return
      }
    }
    const slot = b === this.head ? this.hot : this.slotOrLate(b, timeMs)
    if (slot === undefined) return
    if (this.run !== 0) this.run = 0
    ctx.st.observations++
    slot.requests++
    if (error) slot.errors++
    if (timeMs > this.lastSeenMs) this.lastSeenMs = timeMs
    if (timeMs < this.firstSeenMs) this.first(timeMs)
    if (latencyUs >= 0 && latencyUs !== Infinity) {
      let v = latencyUs
      if (v > ctx.highestUs) {
        v = ctx.highestUs
        ctx.st.clampedValues++
      }
      v = Math.round(v)
      const h = slot.hist ?? (slot.hist = ctx.pool.take())
      h.recordValue(v)
      slot.latCount++
    } else ctx.st.rejectedValues++
  }

  /** General path (time already admitted): `count` requests, `errors` of them failed, latency samples with counts (may be empty). */
  add(t: number, count: number, errors: number, lats: ArrayLike<number>, counts: ArrayLike<number> | undefined): void {
    const slot = this.slotOrLate(Math.floor(t / this.ctx.bucketMs), t)
    if (slot === undefined) return
    this.run = 0
    this.ctx.st.observations++
    if (t > this.lastSeenMs) this.lastSeenMs = t
    if (t < this.firstSeenMs) this.first(t)
    this.fill(slot, count, errors, lats, counts)
  }

  /**
   * An aggregate over (start, t] (time `t` already admitted): the counts are spread over the
   * buckets of (max(start, t - maxSpread), t] in proportion to their overlap. Integer counts stay
   * integers: a bucket gets round(c x F_k) - round(c x F_k-1), F_k being the fraction of the interval
   * up to the bucket's end, so the pieces add up to c exactly; errors are spread the same way over
   * the cumulative requests (a bucket never gets more errors than requests). Pieces older than the
   * series' ring are dropped (counted once in `late`).
   */
  addSpread(t: number, start: number, count: number, errors: number, lats: ArrayLike<number>, counts: ArrayLike<number> | undefined): void {
    const ctx = this.ctx
    const W = ctx.bucketMs
    const a = Math.max(start, t - ctx.cfg.maxSpread)
    const len = t - a
    const k0 = Math.floor(a / W)
    const k1 = Math.ceil(t / W) - 1
    if (!(len > 0)) {
      this.add(t, count, errors, lats, counts)
      return
    }
    // the newest piece first: it moves the head (or is refused like any late observation)
    const newest = this.slotOrLate(k1, k1 * W)
    if (newest === undefined) return
    this.run = 0
    ctx.st.observations++
    if (k1 > k0) ctx.st.spread++
    if (t > this.lastSeenMs) this.lastSeenMs = t
    if (a < this.firstSeenMs) this.first(a)
    const intCounts = Number.isInteger(count)
    const nl = lats.length
    if (ctx.pieces.length < nl) ctx.pieces = new Float64Array(Math.max(nl, 2 * ctx.pieces.length))
    const pieces = ctx.pieces
    let dropped = false
    for (let k = k1; k >= k0; k--) {
      const hi = k === k1 ? 1 : ((k + 1) * W - a) / len
      const lo = k === k0 ? 0 : (k * W - a) / len
      let req: number
      let err: number
      if (intCounts) {
        const cHi = Math.round(count * hi)
        const cLo = Math.round(count * lo)
        req = cHi - cLo
        err = count > 0 ? Math.round((errors * cHi) / count) - Math.round((errors * cLo) / count) : 0
      } else {
        req = count * (hi - lo)
        err = errors * (hi - lo)
      }
      let any = req !== 0 || err !== 0
      for (let i = 0; i < nl; i++) {
        const n = counts === undefined ? 1 : (counts[i] as number)
        const p = Number.isInteger(n) ? Math.round(n * hi) - Math.round(n * lo) : n * (hi - lo)
        pieces[i] = p
        if (p !== 0) any = true
      }
      if (!any) continue
      const slot = k === k1 ? newest : this.slotFor(k, k * W)
      if (slot === undefined) {
        dropped = true
        continue
      }
      this.fill(slot, req, err, lats, pieces)
    }
    if (dropped) ctx.st.late++
  }

  private fill(slot: Slot, count: number, errors: number, lats: ArrayLike<number>, counts: ArrayLike<number> | undefined): void {
    const ctx = this.ctx
    slot.requests += count
    slot.errors += errors
    for (let i = 0; i < lats.length; i++) {
      const n = counts === undefined ? 1 : (counts[i] as number)
      if (!(n > 0)) continue
      let v = lats[i] as number
      if (!(v >= 0) || v === Infinity || !Number.isInteger(n)) {
        ctx.st.rejectedValues++
        continue
      }
      if (v > ctx.highestUs) {
        v = ctx.highestUs
        ctx.st.clampedValues++
      }
      v = Math.round(v)
      const h = slot.hist ?? (slot.hist = ctx.pool.take())
      h.recordValueWithCount(v, n)
      slot.latCount += n
    }
  }

  /** A first point's age as the interval while no real report interval is known (the longest such). */
  noteProvisionalInterval(t: number, d: number): void {
    this.intervalProvisional = true
    if (d > this.intervalMs) {
      this.intervalMs = d
      this.intervalAtMs = t
    }
  }

  /** A new first-seen time; the first data of the series announces it as a new version (once). */
  first(t: number): void {
    if (!this.announced) {
      this.announced = true
      this.store.announce(this)
    }
    this.firstSeenMs = t
  }

  /**
   * The interval one report covers: a maximum that follows the slowest exporter, forgotten when no
   * report of at least 3/4 of it arrived for two of its intervals (an SDK whose interval shrinks is
   * followed after two of its old intervals).
   */
  noteInterval(t: number, d: number): void {
    if (this.intervalProvisional) {
      this.intervalProvisional = false
      this.intervalMs = d
      this.intervalAtMs = t
      return
    }
    if (d >= this.intervalMs) {
      this.intervalMs = d
      this.intervalAtMs = t
    } else if (d >= 0.75 * this.intervalMs) {
      if (t > this.intervalAtMs) this.intervalAtMs = t
    } else if (t - this.intervalAtMs > 2 * this.intervalMs) {
      this.intervalMs = d
      this.intervalAtMs = t
    }
  }

  /**
   * `slotFor`, and when the bucket is older than the ring: re-base the series when its data lies
   * entirely ahead of the store's confirmed time (a garbage future time it accepted while nothing
   * could contradict it), or after `futureJumpAfter` consecutive too-old observations; else count late.
   */
  slotOrLate(b: number, t: number): Slot | undefined {
    const s = this.slotFor(b, t)
    if (s !== undefined) return s
    const ctx = this.ctx
    const g = ctx.newest
    const ahead = g !== -Infinity && this.lastSeenMs - ctx.cfg.retention > g + ctx.skewMs
    this.run = this.run < 0 ? this.run - 1 : -1
    if (ahead || -this.run >= ctx.cfg.futureJumpAfter) {
      this.rebase()
      ctx.st.rebased++
      return this.slotFor(b, t)
    }
    ctx.st.late++
    return undefined
  }

  /** The slot for fine bucket `b` (time `t`), moving the head when `b` is newer; undefined when too old. */
  slotFor(b: number, t: number): Slot | undefined {
    const ctx = this.ctx
    const F = ctx.fineSlots
    if (b > this.head) {
      this.advance(b)
      return this.hot
    }
    if (b > this.head - F) {
      const s = this.fine[ring(b, F)] as Slot
      if (s.idx !== b) {
        resetSlot(s, b, ctx)
        this.shape++
      }
      return s
    }
    // older than the fine ring: straight into the coarse ring
    return this.coarseSlot(Math.floor(t / ctx.coarseMs))
  }

  /** Empties the series (its rings, readings and times) so that it starts again from current data. */
  private rebase(): void {
    for (const s of this.fine) resetSlot(s, -1, this.ctx)
    for (const s of this.coarse) resetSlot(s, -1, this.ctx)
    this.head = -Infinity
    this.headCoarse = -Infinity
    this.hot = this.fine[0] as Slot
    this.firstSeenMs = Infinity
    this.lastSeenMs = -Infinity
    this.intervalMs = 0
    this.intervalProvisional = false
    this.intervalAtMs = -Infinity
    this.chains = undefined
    this.latencyBuckets = undefined
    this.latencyBucketsAtMs = -Infinity
    this.pods = undefined
    this.probes = undefined
    this.history?.clear()
    this.run = 0
    this.shape++
  }

  private advance(newHead: number): void {
    const F = this.ctx.fineSlots
    this.shape++
    if (newHead - this.head >= F) {
      for (const s of this.fine) if (s.idx >= 0) this.fold(s)
      for (let k = newHead - F + 1; k <= newHead; k++) resetSlot(this.fine[ring(k, F)] as Slot, k, this.ctx)
    } else {
      for (let k = this.head + 1; k <= newHead; k++) {
        const s = this.fine[ring(k, F)] as Slot
        if (s.idx >= 0) this.fold(s)
        resetSlot(s, k, this.ctx)
      }
    }
    this.head = newHead
    this.hot = this.fine[ring(newHead, F)] as Slot
  }

  /** Moves a fine bucket's content into its coarse bucket and empties the slot. */
  private fold(s: Slot): void {
    const ctx = this.ctx
    if (s.requests > 0 || s.latCount > 0) {
      const cs = this.coarseSlot(Math.floor((s.idx * ctx.bucketMs) / ctx.coarseMs))
      if (cs !== undefined) {
        cs.requests += s.requests
        cs.errors += s.errors
        cs.latCount += s.latCount
        if (s.hist !== undefined) {
          if (cs.hist === undefined) cs.hist = s.hist
          else {
            cs.hist.add(s.hist)
            ctx.pool.give(s.hist)
          }
          s.hist = undefined
        }
      }
    }
    resetSlot(s, -1, ctx)
  }

  private coarseSlot(c: number): Slot | undefined {
    const ctx = this.ctx
    const C = ctx.coarseSlots
    // the ring ends at the coarse bucket of the head, whether or not anything was folded there yet
    if (c <= Math.floor((this.head * ctx.bucketMs) / ctx.coarseMs) - C) return undefined
    if (c > this.headCoarse) {
      const from = c - this.headCoarse >= C ? c - C + 1 : this.headCoarse + 1
      for (let k = from; k <= c; k++) {
        const slot = this.coarse[ring(k, C)] as Slot
        // the bucket leaving the ring (oldest first) goes into the long history before its slot is reused
        if (ctx.historySlots > 0) this.toHistory(slot)
        resetSlot(slot, k, ctx)
      }
      this.headCoarse = c
      this.shape++
    } else if (c <= this.headCoarse - C) return undefined
    return this.coarse[ring(c, C)] as Slot
  }

  /** Summarises a coarse slot about to be reused into the long history (when it holds data). */
  private toHistory(s: Slot): void {
    if (s.idx < 0 || (s.requests === 0 && s.latCount === 0)) return
    const ctx = this.ctx
    if (this.history === undefined) {
      this.history = new LongHistory(ctx.historySlots, ctx.coarseMs)
      ctx.st.historyBytes += this.history.bytes
    }
    const h = s.hist
    const folded = this.history.fold(s.idx, s.requests, s.errors, (visit) => {
      if (h === undefined) return
      const lowest = h.layout.lowest
      const highest = h.layout.highest
      for (let i = h.lo; i <= h.hi; i++) {
        const n = h.counts[i] as number
        // the middle of the HDR bucket: its samples lie within +-6.25 % of it (1 digit)
        if (n > 0) visit(((lowest[i] as number) + (highest[i] as number)) / 2, n)
      }
    })
    if (folded) ctx.st.historyFolds += 1
  }

  /** Frees every histogram (expiry). */
  release(): void {
    if (this.history !== undefined) {
      this.ctx.st.historyBytes -= this.history.bytes
      this.history = undefined
    }
    for (const s of this.fine) resetSlot(s, -1, this.ctx)
    for (const s of this.coarse) resetSlot(s, -1, this.ctx)
    this.shape++
    this.alive = false
  }

  // ---- queries -------------------------------------------------------------------------------

  /**
   * The buckets of [from, to) in time order (empty ones included): a snapshot of each, reading its
   * slot when the slot holds that bucket.
   */
  plan(from: number, to: number): BucketView[] {
    const ctx = this.ctx
    const bw = ctx.bucketMs
    const cw = ctx.coarseMs
    const F = ctx.fineSlots
    const C = ctx.coarseSlots
    const head = Number.isFinite(this.head) ? this.head : Math.floor(Math.max(ctx.ref, 0) / bw)
    const fineStartIdx = head - F + 1
    const B = fineStartIdx * bw
    // never enumerate beyond what can hold data: retention behind, the store's time (or the head) ahead
    const lastEnd = (Math.max(head, Math.floor(ctx.ref / bw)) + 1) * bw
    const toC = Math.min(to, lastEnd)
    if (!(from < toC)) return []
    // the coarse part [cLo, cHi) and the fine part [fLo, fHi), counted first so the array is allocated once
    let cLo = 0
    let cHi = 0
    if (from < B && Number.isFinite(this.headCoarse)) {
      cLo = Math.max(Math.ceil(from / cw), this.headCoarse - C + 1)
      for (cHi = cLo; cHi * cw < Math.min(toC, B); cHi++) if (Math.min((cHi + 1) * cw, B) > toC) break
    }
    const fLo = Math.max(Math.ceil(from / bw), fineStartIdx)
    let fHi = Math.floor(toC / bw)
    if (!(fHi > fLo)) fHi = fLo
    const out = new Array<BucketView>(cHi - cLo + fHi - fLo)
    let n = 0
    for (let c = cLo; c < cHi; c++) {
      const s = this.coarse[ring(c, C)] as Slot
      const end = (c + 1) * cw
      const cut = end > B ? B : undefined
      out[n++] = new BucketView(s.idx === c ? s : undefined, c, cw, cut)
    }
    for (let b = fLo; b < fHi; b++) {
      const s = b <= head ? (this.fine[ring(b, F)] as Slot) : undefined
      out[n++] = new BucketView(s !== undefined && s.idx === b ? s : undefined, b, bw, undefined)
    }
    return out
  }
}

/**
 * One bucket of a window: numbers as they were at `window()`, the quantile read live from its slot.
 * A new view per window and bucket, never cached in the slot: the next tick asks 5 s later, so a
 * cached view outlives the young generation and is promoted. At 10,000 watches the cached views were
 * about 40 % of what each scavenge promoted (739-852 KB vs 423-467 KB per scavenge without them;
 * mean scavenge pause 6.1-7.5 vs 3.6-3.8 ms, 10-41 vs 0 scavenges over 10 ms in two runs each of
 * `node --trace-gc-nvp dist/bench/engine.js --child-tick --mode full --skip-replay`, summarised by
 * bench/gc-trace.ts). Short-lived
 * views cost allocation only (~1.4 KB more per watch and pass, collected young).
 */
class BucketView implements BucketStats {
  readonly requests: number
  readonly errors: number
  readonly latencyCount: number

  constructor(
    /** the slot holding this bucket at `window()`, undefined for an empty bucket */
    readonly slot: Slot | undefined,
    /** bucket index: start = idx x width (small integers: no boxed doubles per bucket) */
    private readonly idx: number,
    private readonly width: number,
    /** the end of a coarse bucket that is only partly folded (the start of the fine region) */
    private readonly cut: number | undefined,
  ) {
    this.requests = slot === undefined ? 0 : slot.requests
    this.errors = slot === undefined ? 0 : slot.errors
    this.latencyCount = slot === undefined ? 0 : slot.latCount
  }

  get startMs(): number {
    return this.idx * this.width
  }

  get endMs(): number {
    return this.cut ?? (this.idx + 1) * this.width
  }

  /** the slot's histogram when the slot still holds this bucket and has latency samples */
  hist(): CountsHistogram | undefined {
    const slot = this.slot
    return slot !== undefined && slot.idx === this.idx && slot.hist !== undefined && slot.latCount > 0 ? slot.hist : undefined
  }

  latencyAtQuantile(q: number): number {
    const h = this.hist()
    return h !== undefined ? h.getValueAtPercentile(clampQ(q) * 100) : NaN
  }

  latencyCountAbove(us: number): number {
    const h = this.hist()
    return h !== undefined ? countAbove([h], 1, us) : 0
  }
}

/**
 * The latency of a window. Live: answers from the series' buckets as they are when asked. The
 * buckets collected by `window()` are reused while the series' shape and the store's reference time
 * are unchanged (then the same buckets make up the range); otherwise the range is collected again.
 */
class WindowLatency implements LatencyView {
  constructor(
    private readonly s: Series,
    private readonly ctx: Ctx,
    private readonly fromMs: number,
    private readonly toMs: number,
    readonly count: number,
    private buckets: BucketView[],
    private shape: number,
    private newest: number,
  ) {}

  /** A metric's quantile is interpolated inside its bucket (src/normalize/buckets.ts interpolatedQuantileUs); a span series' read as recorded. */
  valueAtQuantile(q: number): number {
    return this.read(q, 'density')
  }

  upperAtQuantile(q: number): number {
    return this.read(q, 'upper')
  }

  private read(q: number, reading: 'density' | 'upper'): number {
    if (this.count === 0 || !this.s.alive) return NaN
    const n = this.collect()
    if (n === 0) return 0
    const hs = this.ctx.scratch
    const v = valueAtPercentile(hs, n, clampQ(q) * 100)
    const layout = this.s.latencyBuckets
    if (layout === undefined) return v
    let total = 0
    for (let i = 0; i < n; i++) total += (hs[i] as CountsHistogram).total
    return interpolatedQuantileUs(layout, clampQ(q), total, v, (us) => countAbove(hs, n, us), reading)
  }

  countAbove(us: number): number {
    const n = this.collect()
    return n === 0 ? 0 : countAbove(this.ctx.scratch, n, us)
  }

  /** the histograms of the window's buckets into ctx.scratch (re-planned when the series changed shape) */
  private collect(): number {
    const s = this.s
    if (this.count === 0 || !s.alive) return 0
    const ctx = this.ctx
    if (s.shape !== this.shape || ctx.ref !== this.newest) {
      this.buckets = s.plan(this.fromMs, this.toMs)
      this.shape = s.shape
      this.newest = ctx.ref
    }
    const hs = ctx.scratch
    let n = 0
    for (const b of this.buckets) {
      const h = b.hist()
      if (h !== undefined) hs[n++] = h
    }
    return n
  }
}

/**
 * The ring position of bucket `k`: a mathematical modulo, because bucket indices below the ring's
 * size are negative after `k - size + 1` (a series whose first time is within the ring's span of
 * 1970: recorded telemetry with garbage times), and JavaScript's `%` keeps the sign.
 */
function ring(k: number, size: number): number {
  const r = k % size
  return r < 0 ? r + size : r
}

function resetSlot(s: Slot, idx: number, ctx: Ctx): void {
  s.idx = idx
  s.requests = 0
  s.errors = 0
  s.latCount = 0
  if (s.hist !== undefined) {
    ctx.pool.give(s.hist)
    s.hist = undefined
  }
}

function seriesId(namespace: string, service: string, version: string): string {
  return `${namespace}\u0000${service}\u0000${version}`
}

const NO_PROBES: ProbeStats = { readings: 0, failures: 0, firstFailureMs: undefined, lastFailureMs: undefined, failing: [] }

export class SignalStore implements ObservationSink, SignalView {
  readonly bucketMs: number
  readonly coarseBucketMs: number
  readonly fineRetentionMs: number
  readonly config: SignalsConfig
  private readonly ctx: Ctx
  private readonly byId = new Map<string, Series>()
  private readonly byService = new Map<string, Series[]>()
  /** see `lookup` */
  private readonly byKey = new WeakMap<SeriesKey, Series>()
  private readonly pins = new Set<string>()
  private pending: Series[] = []
  /** series that services not (yet) known may hold: maxSeries minus the reserve */
  private readonly unknownCap: number
  /** new-version events that services not (yet) known may queue: maxPendingVersions minus the reserve */
  private readonly pendingUnknownCap: number

  constructor(config: SignalsConfigInput = {}, opts: SignalStoreOptions = {}) {
    this.config = signalsSchema.parse(config)
    this.ctx = new Ctx(this.config, opts.clock)
    this.bucketMs = this.config.bucket
    this.coarseBucketMs = this.config.coarseBucket
    this.fineRetentionMs = this.config.fineRetention
    this.unknownCap = this.config.maxSeries - Math.ceil(this.config.maxSeries * this.config.reserveForKnown)
    this.pendingUnknownCap = this.config.maxPendingVersions - Math.ceil(this.config.maxPendingVersions * this.config.reserveForKnown)
  }

  // ---- write side --------------------------------------------------------------------------

  record(obs: Observation): void {
    let s = this.resolve(obs.key, obs.kind === 'request' ? obs.count : 0, obs.kind === 'request' ? obs.errors : 0)
    if (s === undefined) return
    const t = obs.timeMs
    const ctx = this.ctx
    if (!(Math.floor(t / ctx.bucketMs) <= s.head && t >= ctx.lateBefore && t <= ctx.clockLimit)) {
      if (!this.admit(s, t)) return
      // the sweep after admission may have expired an idle series: its successor takes the data
      if (!s.alive) {
        s = this.resolve(obs.key, 0, 0)
        if (s === undefined || !this.admit(s, t)) return
      }
    }
    switch (obs.kind) {
      case 'request': {
        const start = obs.startMs
        if (start !== undefined && start < obs.timeMs) {
          const d = obs.timeMs - start
          const cover = d < this.config.maxSpread ? d : this.config.maxSpread
          // a fresh stream's first point covers the process's age, not one report interval: it
          // stands in only until a series has seen a real report interval
          if (obs.streamStart !== true) s.noteInterval(obs.timeMs, cover)
          else if (s.intervalMs === 0 || s.intervalProvisional) s.noteProvisionalInterval(obs.timeMs, cover)
          if (!(s.chains ??= new ReportChains()).note(start, obs.timeMs, s.intervalMs)) ctx.st.reportChainsFull++
          s.addSpread(obs.timeMs, start, obs.count, obs.errors, obs.latenciesUs, obs.latencyCounts)
        } else s.add(obs.timeMs, obs.count, obs.errors, obs.latenciesUs, obs.latencyCounts)
        // the layout of the newest point by telemetry time, whatever order points arrive in (a
        // decider re-records partials bucket by bucket)
        if (obs.latencyBuckets !== undefined && obs.latenciesUs.length > 0 && t >= s.latencyBucketsAtMs) {
          s.latencyBuckets = obs.latencyBuckets
          s.latencyBucketsAtMs = t
        }
        return
      }
      case 'resource':
        this.ctx.st.observations++
        s.run = 0
        this.recordResource(s, obs.pod, obs.resource, obs.timeMs, obs.value, obs.request)
        return
      case 'probe':
        this.ctx.st.observations++
        s.run = 0
        this.recordProbe(s, `${obs.pod}/${obs.container}`, obs.timeMs, obs.ready)
        return
    }
  }

  /**
   * The fast path: a handle for `key` whose `recordRequest` skips the map lookup. When the series
   * cannot be created (maxSeries reached) the handle counts into the overflow bucket.
   */
  series(key: SeriesKey): RequestRecorder {
    const s = this.resolve(key, 0, 0, true)
    return s ?? new OverflowRecorder(this, key)
  }

  /** Used by stale handles and the overflow recorder: resolves, admits and records. */
  recordRequests(key: SeriesKey, timeMs: number, count: number, errors: number, latencyUs: number): void {
    let s = this.resolve(key, count, errors)
    if (s === undefined || !this.admit(s, timeMs)) return
    if (!s.alive) {
      s = this.resolve(key, 0, 0)
      if (s === undefined || !this.admit(s, timeMs)) return
    }
    s.add(timeMs, count, errors, [latencyUs], undefined)
  }

  /**
   * Admission of time `t` for series `s` (counts the drop reason): invalid (NaN, negative) and, live,
   * older than now - retention -> late; live, beyond now + maxClockSkew -> future; beyond the series'
   * reference (its newest time, or the store's confirmed time when that is newer) + maxFutureSkew ->
   * future, unless `futureJumpAfter` such drops of the series came in a row (the series' time jumped).
   * Whether the series' ring can still hold `t` is judged when writing (`slotOrLate`).
   *
   * Callers skip admission for a time at or before the series' head bucket that is inside the
   * store-wide bounds (lateBefore <= t <= clockLimit): such a time is never future for the series
   * (it is less than a bucket beyond the series' newest time, and maxFutureSkew >= bucket), and it
   * votes for no newer bucket. So the hot path admits once per series and bucket.
   */
  admit(s: Series, t: number): boolean {
    const ctx = this.ctx
    const st = ctx.st
    if (!(t >= 0)) {
      st.late++
      return false
    }
    if (t > ctx.clockLimit) {
      ctx.readClock()
      if (t > ctx.clockLimit) {
        st.future++
        return false
      }
    }
    if (t < ctx.lateBefore) {
      st.late++
      return false
    }
    const p = Math.floor(t / ctx.bucketMs) * ctx.bucketMs
    if (p > s.presented) {
      s.presented = p
      if (s === ctx.top1) ctx.top1Ms = p // the newest series moves on: the second-largest is unchanged
      else ctx.present(s, p)
    }
    const ref = s.lastSeenMs > ctx.newest ? s.lastSeenMs : ctx.newest
    if (ref !== -Infinity && t > ref + ctx.skewMs) {
      s.run = s.run > 0 ? s.run + 1 : 1
      if (s.run < this.config.futureJumpAfter) {
        st.future++
        return false
      }
      st.timeJumps++
      s.run = 0
    }
    if (t > s.lastSeenMs) s.lastSeenMs = t
    if (p > ctx.maxAccepted) ctx.accepted(p)
    if (ctx.sweepDue) {
      ctx.sweepDue = false
      this.sweep()
    }
    return true
  }

  /** Never evict or expire this series (a deployment under watch). Pins bypass `maxSeries`. */
  pin(key: SeriesKey): void {
    const id = seriesId(key.namespace, key.service, key.version)
    this.pins.add(id)
    const s = this.byId.get(id)
    if (s !== undefined) s.pinned = true
    this.ctx.st.pinned = this.pins.size
  }

  unpin(key: SeriesKey): void {
    const id = seriesId(key.namespace, key.service, key.version)
    this.pins.delete(id)
    const s = this.byId.get(id)
    if (s !== undefined) s.pinned = false
    this.ctx.st.pinned = this.pins.size
  }

  /**
   * Versions first seen since the previous call, in order of their first data (the deployment
   * detector's input). A series without data (a handle whose observations were all dropped) is not
   * reported until it has data; a re-based series is not reported again.
   */
  drainNewVersions(): VersionInfo[] {
    const out = this.pending.filter((s) => s.alive && hasData(s)).map((s) => info(s))
    this.pending = []
    return out
  }

  stats(): SignalStoreStats {
    const st = this.ctx.st
    st.series = this.byId.size
    st.histograms = this.ctx.pool.live
    st.pooledHistograms = this.ctx.pool.pooled
    st.newestMs = this.ctx.reportedNewest()
    return { ...st }
  }

  /** Releases every histogram (back to the pool, whose free list is then emptied). The store is unusable afterwards. Idempotent. */
  shutdown(): void {
    for (const s of this.byId.values()) s.release()
    this.byId.clear()
    this.byService.clear()
    this.ctx.pool.drain()
  }

  /** Expires idle, unpinned series (against the store's reference time) and frees their histograms. */
  sweep(): void {
    const ref = this.ctx.ref
    if (ref === -Infinity) return
    const limit = ref - this.config.idleTtl
    for (const s of this.byId.values()) {
      if (s.pinned || s.lastSeenMs >= limit || s.createdMs >= limit) continue
      if (s.createdMs === -Infinity && !hasData(s)) {
        // created (as a handle) before the store had a time: its idle clock starts now
        s.createdMs = ref
        continue
      }
      this.remove(s)
      this.ctx.st.expired++
    }
  }

  private remove(s: Series): void {
    s.release()
    this.byId.delete(s.id)
    const sid = serviceId(s.key.namespace, s.key.service)
    const list = this.byService.get(sid)
    if (list !== undefined) {
      const i = list.indexOf(s)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0) this.byService.delete(sid)
    }
  }

  /**
   * The series of `key`, created when needed. Admission when the store is full: a pinned key always
   * gets a series; a known service (one of its versions has data spanning `knownAfter`, or is
   * pinned) may use all of `maxSeries`, evicting the least recently updated unpinned series of an
   * unknown service when full; other services only `maxSeries` minus the reserve.
   */
  private resolve(key: SeriesKey, requests: number, errors: number, forHandle = false): Series | undefined {
    const id = seriesId(key.namespace, key.service, key.version)
    let s = this.byId.get(id)
    if (s !== undefined) return s
    const pinned = this.pins.has(id)
    const sid = serviceId(key.namespace, key.service)
    if (!pinned && this.byId.size >= this.unknownCap) {
      const siblings = this.byService.get(sid)
      const known = siblings !== undefined && this.isKnown(siblings)
      const refused = !known ? 'unknown' : this.byId.size < this.config.maxSeries || this.evictUnknown() ? undefined : 'full'
      if (refused !== undefined) {
        if (!forHandle) {
          const st = this.ctx.st
          st.overflowed++
          if (refused === 'unknown') st.overflowUnknown++
          else st.overflowFull++
          st.overflowRequests += requests
          st.overflowErrors += errors
        }
        return undefined
      }
    }
    s = new Series({ namespace: key.namespace, service: key.service, version: key.version }, id, this.ctx, this)
    s.pinned = pinned
    this.byId.set(id, s)
    const list = this.byService.get(sid)
    if (list === undefined) this.byService.set(sid, [s])
    else list.push(s)
    return s
  }

  /**
   * Queues a series for `drainNewVersions()` (called at its first data). The reserve of
   * `maxPendingVersions` is kept for known services, as for series: a flood of new names between
   * two drains cannot push out the event of a real service's new version.
   */
  announce(s: Series): void {
    const n = this.pending.length
    if (n < this.pendingUnknownCap || (n < this.config.maxPendingVersions && (s.pinned || this.isKnown(this.byService.get(serviceId(s.key.namespace, s.key.service)) ?? [])))) this.pending.push(s)
    else this.ctx.st.versionsDropped++
  }

  /** a service with history: one of its series is pinned or has data spanning `knownAfter` */
  private isKnown(list: readonly Series[]): boolean {
    const span = this.config.knownAfter
    for (const s of list) if (s.pinned || s.lastSeenMs - s.firstSeenMs >= span) return true
    return false
  }

  /**
   * Evicts the least recently updated unpinned series of an unknown service (series without data
   * first). A scan over all series: it runs only when a known service needs a place in a full store.
   */
  private evictUnknown(): boolean {
    let victim: Series | undefined
    for (const s of this.byId.values()) {
      if (s.pinned || (victim !== undefined && s.lastSeenMs >= victim.lastSeenMs)) continue
      const list = this.byService.get(serviceId(s.key.namespace, s.key.service))
      if (list !== undefined && this.isKnown(list)) continue
      victim = s
    }
    if (victim === undefined) return false
    this.remove(victim)
    this.ctx.st.evicted++
    return true
  }

  private recordResource(s: Series, pod: string, resource: ResourceKind, t: number, value: number, request: number | undefined): void {
    if (!(value >= 0) || value === Infinity) {
      this.ctx.st.rejectedValues++
      return
    }
    if (t > s.lastSeenMs) s.lastSeenMs = t
    if (t < s.firstSeenMs) s.first(t)
    const pods = s.pods ?? (s.pods = new Map())
    const pk = `${resource}\u0000${pod}`
    let ps = pods.get(pk)
    if (ps === undefined) {
      if (pods.size >= this.config.maxPodsPerSeries) {
        this.ctx.st.podOverflow++
        return
      }
      ps = { pod, resource, times: [], values: [], requests: [] }
      pods.set(pk, ps)
    }
    // keep readings sorted by time; a duplicate timestamp replaces the reading (no double count)
    let i = ps.times.length
    while (i > 0 && (ps.times[i - 1] as number) > t) i--
    if (i > 0 && ps.times[i - 1] === t) {
      ps.values[i - 1] = value
      ps.requests[i - 1] = request
    } else if (i === ps.times.length) {
      // in order, the usual case: push, since every splice allocates the array of what it removed
      ps.times.push(t)
      ps.values.push(value)
      ps.requests.push(request)
    } else {
      ps.times.splice(i, 0, t)
      ps.values.splice(i, 0, value)
      ps.requests.splice(i, 0, request)
    }
    const cut = Math.max(this.ctx.lateBefore, s.lastSeenMs - this.config.retention)
    while (ps.times.length > this.config.resourceSamples || (ps.times.length > 0 && (ps.times[0] as number) < cut)) {
      ps.times.shift()
      ps.values.shift()
      ps.requests.shift()
    }
  }

  private recordProbe(s: Series, id: string, t: number, ready: boolean): void {
    if (t > s.lastSeenMs) s.lastSeenMs = t
    if (t < s.firstSeenMs) s.first(t)
    const log = s.probes ?? (s.probes = { t: [], id: [], ready: [] })
    const times = log.t
    const ids = log.id
    let i = times.length
    while (i > 0 && (times[i - 1] as number) > t) i--
    // the same container at the same time is one reading (duplicates are not double-counted)
    for (let j = i - 1; j >= 0 && times[j] === t; j--) {
      if (ids[j] === id) {
        log.ready[j] = ready
        return
      }
    }
    // the id string of an earlier reading of the same container is kept instead of this one's copy
    // (a string per reading would be one more heap object each; the value is the same)
    let shared = id
    for (let j = ids.length - 1, stop = Math.max(0, ids.length - PROBE_ID_SHARE_SCAN); j >= stop; j--) {
      if (ids[j] === id) {
        shared = ids[j] as string
        break
      }
    }
    if (i === times.length) {
      times.push(t)
      ids.push(shared)
      log.ready.push(ready)
    } else {
      times.splice(i, 0, t)
      ids.splice(i, 0, shared)
      log.ready.splice(i, 0, ready)
    }
    const cut = Math.max(this.ctx.lateBefore, s.lastSeenMs - this.config.retention)
    while (times.length > this.config.probeSamples || (times.length > 0 && (times[0] as number) < cut)) {
      times.shift()
      ids.shift()
      log.ready.shift()
    }
  }

  // ---- read side (SignalView) ----------------------------------------------------------------

  /**
   * The live series of `key`. The engine asks with the same key objects tick after tick (a watch's
   * keys), so the answer is remembered per key object: no id string is built and hashed per query.
   * Weak: the cache holds no key and no series alive; an expired series (not `alive`) or a key
   * whose fields changed is looked up again.
   */
  private lookup(key: SeriesKey): Series | undefined {
    const c = this.byKey.get(key)
    if (c !== undefined && c.alive && c.key.version === key.version && c.key.service === key.service && c.key.namespace === key.namespace) return c
    const s = this.byId.get(seriesId(key.namespace, key.service, key.version))
    if (s !== undefined) this.byKey.set(key, s)
    return s
  }

  versions(namespace: string, service: string): VersionInfo[] {
    const list = this.byService.get(serviceId(namespace, service))
    if (list === undefined) return []
    return list.filter(hasData).map(info).sort((a, b) => a.firstSeenMs - b.firstSeenMs || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0))
  }

  retainedFromMs(key: SeriesKey): number | undefined {
    const s = this.lookup(key)
    if (s === undefined) return undefined
    const first = Math.floor(s.firstSeenMs / this.bucketMs) * this.bucketMs
    const ringStart = Number.isFinite(s.headCoarse) ? (s.headCoarse - this.ctx.coarseSlots + 1) * this.ctx.coarseMs : -Infinity
    return Math.max(first, ringStart)
  }

  /**
   * newestMs: the newest time recorded for the series; reportIntervalMs: the (decaying) maximum of
   * the intervals its aggregate observations covered (bounded by maxSpread), 0 when it only had
   * spans. Undefined for an unknown series or one without data.
   */
  coverage(key: SeriesKey): SeriesCoverage | undefined {
    const s = this.lookup(key)
    if (s === undefined || !hasData(s)) return undefined
    const newestMs = s.lastSeenMs
    // rounded to the millisecond: times decoded from nanoseconds carry float noise (a 60 s
    // exporter's interval reads 60000.0002 ms), and a horizon a hair under a coarse bucket's edge
    // held a 60 s series back by a whole bucket, until its next report
    const complete = s.chains === undefined ? newestMs - s.intervalMs : s.chains.completeUntil(newestMs, s.intervalMs)
    const cov: SeriesCoverage = { newestMs, reportIntervalMs: s.intervalMs, completeUntilMs: Math.round(complete) }
    // as plan() answers ranges: the fine ring ends at the head bucket
    if (Number.isFinite(s.head)) cov.fineFromMs = (s.head - this.ctx.fineSlots + 1) * this.ctx.bucketMs
    if (s.latencyBuckets !== undefined) cov.latencyBuckets = s.latencyBuckets
    return cov
  }

  history(key: SeriesKey): SeriesHistory | undefined {
    const s = this.lookup(key)
    const h = s?.history
    if (h === undefined) return undefined
    const starts = h.minutes().map((c) => c * h.widthMs)
    if (starts.length === 0) return undefined
    return { widthMs: h.widthMs, starts, summary: (fromMs, toMs) => h.summary(fromMs, toMs) }
  }

  window(key: SeriesKey, fromMs: number, toMs: number): WindowStats {
    const s = this.lookup(key)
    if (s === undefined) return emptyWindow(fromMs, toMs)
    const buckets = s.plan(fromMs, toMs)
    let requests = 0
    let errors = 0
    let latCount = 0
    for (const b of buckets) {
      requests += b.requests
      errors += b.errors
      latCount += b.latencyCount
    }
    const latency = new WindowLatency(s, this.ctx, fromMs, toMs, latCount, buckets, s.shape, this.ctx.ref)
    return new SeriesWindow(this, s, fromMs, toMs, requests, errors, latency, buckets)
  }

  /** Theil-Sen slope per pod-resource over [from, to) (SeriesWindow.resources). */
  slopes(s: Series, from: number, to: number): PodSlope[] {
    if (s.pods === undefined) return []
    const out: PodSlope[] = []
    const ctx = this.ctx
    for (const ps of s.pods.values()) {
      // readings are kept sorted by time: the range is one run of them
      const times = ps.times
      const i0 = firstAtOrAfter(times, from)
      const i1 = firstAtOrAfter(times, to)
      const n = i1 - i0
      if (n <= 0) continue
      if (ctx.xs.length < n) {
        ctx.xs = new Float64Array(Math.max(n, 2 * ctx.xs.length))
        ctx.ys = new Float64Array(ctx.xs.length)
      }
      const xs = ctx.xs
      const ys = ctx.ys
      let request: number | undefined
      for (let i = i0; i < i1; i++) {
        xs[i - i0] = (times[i] as number) / 60_000
        ys[i - i0] = ps.values[i] as number
        const r = ps.requests[i]
        if (r !== undefined) request = r
      }
      const slope = theilSenSlope(xs, ys, n)
      out.push({
        pod: ps.pod,
        resource: ps.resource,
        samples: n,
        slopePerMin: slope,
        request,
        fractionPerMin: request !== undefined && request > 0 ? slope / request : NaN,
        last: ys[n - 1] as number,
      })
    }
    return out.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : a.resource < b.resource ? -1 : a.resource > b.resource ? 1 : 0))
  }

  /** Probe readings of [from, to) (SeriesWindow.probes). */
  probeStats(s: Series, from: number, to: number): ProbeStats {
    const log = s.probes
    if (log === undefined) return { ...NO_PROBES, failing: [] }
    const times = log.t
    let readings = 0
    let failures = 0
    let first: number | undefined
    let last: number | undefined
    let failing: Set<string> | undefined
    // readings are kept sorted by time: the range is one run of them
    for (let i = firstAtOrAfter(times, from); i < times.length; i++) {
      const t = times[i] as number
      if (t >= to) break
      readings++
      if (log.ready[i] === true) continue
      failures++
      if (first === undefined) first = t
      last = t
      ;(failing ??= new Set<string>()).add(log.id[i] as string)
    }
    return { readings, failures, firstFailureMs: first, lastFailureMs: last, failing: failing === undefined ? [] : [...failing].sort() }
  }
}

/** Index of the first time >= t in a sorted list (its length when none). */
function firstAtOrAfter(times: readonly number[], t: number): number {
  let lo = 0
  let hi = times.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((times[mid] as number) < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * One answer of `window()`. A class rather than an object literal with getters: the engine asks
 * tens of thousands of windows per tick, and a literal's accessor closures cost an allocation each.
 * Resource slopes (Theil-Sen per pod) and probe stats are computed when first read: most windows
 * the engine asks for (request spans, evidence batches) never read them.
 */
class SeriesWindow implements WindowStats {
  private res: PodSlope[] | undefined = undefined
  private prb: ProbeStats | undefined = undefined

  constructor(
    private readonly store: SignalStore,
    private readonly s: Series,
    readonly fromMs: number,
    readonly toMs: number,
    readonly requests: number,
    readonly errors: number,
    readonly latency: LatencyView,
    readonly buckets: BucketStats[],
  ) {}

  get resources(): PodSlope[] {
    return (this.res ??= this.store.slopes(this.s, this.fromMs, this.toMs))
  }

  get probes(): ProbeStats {
    return (this.prb ??= this.store.probeStats(this.s, this.fromMs, this.toMs))
  }
}

class OverflowRecorder implements RequestRecorder {
  constructor(
    private readonly store: SignalStore,
    private readonly key: SeriesKey,
  ) {}
  recordRequest(timeMs: number, latencyUs: number, error: boolean): void {
    this.store.recordRequests(this.key, timeMs, 1, error ? 1 : 0, latencyUs)
  }
}

/** a series that recorded something (a handle whose observations were all dropped has not) */
function hasData(s: Series): boolean {
  return s.firstSeenMs !== Infinity
}

function info(s: Series): VersionInfo {
  return { namespace: s.key.namespace, service: s.key.service, version: s.key.version, firstSeenMs: s.firstSeenMs, lastSeenMs: s.lastSeenMs }
}

function nan(): number {
  return NaN
}

function zero(): number {
  return 0
}

function clampQ(q: number): number {
  return q > 1 ? 1 : q < 0 ? 0 : q
}

function emptyWindow(fromMs: number, toMs: number): WindowStats {
  return {
    fromMs,
    toMs,
    requests: 0,
    errors: 0,
    latency: { count: 0, valueAtQuantile: nan, upperAtQuantile: nan, countAbove: zero },
    buckets: [],
    resources: [],
    probes: { ...NO_PROBES, failing: [] },
  }
}
