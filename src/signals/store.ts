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
 * Determinism: a bucket's content is the sum of the observations that fell into it; HDR add is exact
 * for equal configurations; the fine/coarse split depends only on the series head. So the same
 * observations give the same window stats whatever the batch split, and whatever the order as long
 * as no observation is dropped as late/future (those drops depend on the newest time seen so far).
 *
 * Views returned by `window()` are live: their functions read the store when called. Read the
 * numbers you need before recording more data (the engine does: it freezes numbers, not views).
 */
import type { Observation, ObservationSink, ResourceKind, SeriesKey } from '../normalize/observations.js'
import { serviceId } from '../normalize/observations.js'
import type {
  BucketStats,
  LatencyView,
  PodSlope,
  ProbeStats,
  SignalView,
  VersionInfo,
  WindowStats,
} from './view.js'
import type { SignalsConfig, SignalsConfigInput } from './config.js'
import { signalsSchema } from './config.js'
import { HistogramPool } from './histograms.js'
import type { CountsHistogram } from './hdr.js'
import { valueAtPercentile } from './hdr.js'
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
  /** observations dropped because `maxSeries` was reached (the overflow bucket) */
  overflowed: number
  /** requests / errors carried by overflowed observations */
  overflowRequests: number
  overflowErrors: number
  /** series expired after `idleTtl` */
  expired: number
  /** observations older than retention, dropped */
  late: number
  /** observations beyond newest + maxFutureSkew, dropped */
  future: number
  /** times the store accepted a jump of telemetry time after `futureJumpAfter` consecutive future drops */
  timeJumps: number
  /** observations accepted */
  observations: number
  /** latency values that were NaN, negative or infinite: not recorded (the request is still counted) */
  rejectedValues: number
  /** latency values above `histogram.highestUs`, recorded as highestUs */
  clampedValues: number
  /** resource readings refused because a series tracks `maxPodsPerSeries` pod-resources already */
  podOverflow: number
  /** new-version events dropped because `maxPendingVersions` were waiting */
  versionsDropped: number
  /** histograms in use / kept in the pool for reuse */
  histograms: number
  pooledHistograms: number
  /** newest telemetry time seen, unix ms (-Infinity before the first observation) */
  newestMs: number
}

interface Slot {
  /** bucket index (time / width) this slot holds, -1 when unused */
  idx: number
  requests: number
  errors: number
  latCount: number
  hist: CountsHistogram | undefined
  /**
   * the last snapshot of this slot handed out in a window; reused while the slot still holds the same
   * bucket with the same numbers (a sliding window asks the same buckets tick after tick)
   */
  view: BucketView | undefined
}

function newSlot(): Slot {
  return { idx: -1, requests: 0, errors: 0, latCount: 0, hist: undefined, view: undefined }
}

/** The snapshot of slot `s` as bucket `idx` (its own, or the previous one when nothing changed). */
function viewOf(s: Slot, idx: number, width: number, cut: number | undefined): BucketView {
  const v = s.view
  if (v !== undefined && v.matches(s, idx, cut)) return v
  return (s.view = new BucketView(s, idx, width, cut))
}

interface PodSeries {
  pod: string
  resource: ResourceKind
  /** readings sorted by time, bounded by `resourceSamples` */
  times: number[]
  values: number[]
  requests: (number | undefined)[]
}

interface ProbeReading {
  timeMs: number
  id: string
  ready: boolean
}

/** State shared by all series of a store. */
class Ctx {
  newest = -Infinity
  lateBefore = -Infinity
  futureAfter = Infinity
  consecutiveFuture = 0
  lastSweepBucket = -Infinity
  readonly bucketMs: number
  readonly coarseMs: number
  readonly fineSlots: number
  readonly coarseSlots: number
  readonly highestUs: number
  readonly pool: HistogramPool
  /** the histograms of the window being answered (reused: queries are synchronous and never nest) */
  readonly scratch: CountsHistogram[] = []
  readonly st: SignalStoreStats

  constructor(readonly cfg: SignalsConfig) {
    this.bucketMs = cfg.bucket
    this.coarseMs = cfg.coarseBucket
    this.fineSlots = cfg.fineRetention / cfg.bucket
    this.coarseSlots = Math.ceil(cfg.retention / cfg.coarseBucket) + 1
    this.highestUs = cfg.histogram.highestUs
    this.pool = new HistogramPool(cfg.histogram)
    this.st = {
      series: 0,
      pinned: 0,
      overflowed: 0,
      overflowRequests: 0,
      overflowErrors: 0,
      expired: 0,
      late: 0,
      future: 0,
      timeJumps: 0,
      observations: 0,
      rejectedValues: 0,
      clampedValues: 0,
      podOverflow: 0,
      versionsDropped: 0,
      histograms: 0,
      pooledHistograms: 0,
      newestMs: -Infinity,
    }
  }

  /**
   * Admission of a telemetry time: 'ok', or the drop reason (counted here). Moves the newest time.
   * NaN is late.
   */
  admit(t: number): boolean {
    if (!(t >= this.lateBefore) || t < 0) {
      this.st.late++
      return false
    }
    if (t > this.futureAfter) {
      if (++this.consecutiveFuture < this.cfg.futureJumpAfter) {
        this.st.future++
        return false
      }
      this.st.timeJumps++
    }
    this.consecutiveFuture = 0
    if (t > this.newest) this.moveNewest(t)
    return true
  }

  moveNewest(t: number): void {
    this.newest = t
    this.st.newestMs = t
    this.lateBefore = t - this.cfg.retention
    this.futureAfter = t + this.cfg.maxFutureSkew
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
  /** newest telemetry time of the store when the series was created (a handle may precede any data) */
  createdMs: number
  pods: Map<string, PodSeries> | undefined
  probes: ProbeReading[] | undefined
  /**
   * bumped whenever a slot is (re)assigned to another bucket or the head moves: a window's latency
   * view reuses the buckets it collected while this and the store's newest time are unchanged
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
    this.createdMs = ctx.newest
  }

  recordRequest(timeMs: number, latencyUs: number, error: boolean): void {
    const ctx = this.ctx
    if (!this.alive) {
      this.store.recordRequests(this.key, timeMs, 1, error ? 1 : 0, latencyUs)
      return
    }
    if (!(timeMs >= ctx.lateBefore) || timeMs > ctx.futureAfter || timeMs > ctx.newest) {
      if (!ctx.admit(timeMs)) return
      this.store.afterAdmit()
      // the sweep may just have expired this (idle) series: record through the store instead
      if (!this.alive) {
        this.store.recordAdmitted(this.key, timeMs, 1, error ? 1 : 0, latencyUs)
        return
      }
    } else ctx.consecutiveFuture = 0
    ctx.st.observations++
    const b = Math.floor(timeMs / ctx.bucketMs)
    const slot = b === this.head ? this.hot : this.slotFor(b, timeMs)
    if (slot === undefined) return
    slot.requests++
    if (error) slot.errors++
    if (timeMs > this.lastSeenMs) this.lastSeenMs = timeMs
    if (timeMs < this.firstSeenMs) this.firstSeenMs = timeMs
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

  /** General path: `count` requests, `errors` of them failed, latency samples with counts (may be empty). */
  add(t: number, count: number, errors: number, lats: ArrayLike<number>, counts: ArrayLike<number> | undefined): void {
    const ctx = this.ctx
    const b = Math.floor(t / ctx.bucketMs)
    const slot = b === this.head ? this.hot : this.slotFor(b, t)
    if (slot === undefined) return
    slot.requests += count
    slot.errors += errors
    if (t > this.lastSeenMs) this.lastSeenMs = t
    if (t < this.firstSeenMs) this.firstSeenMs = t
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

  /** The slot for fine bucket `b` (time `t`), moving the head when `b` is newer; undefined when too old. */
  slotFor(b: number, t: number): Slot | undefined {
    const ctx = this.ctx
    const F = ctx.fineSlots
    if (b > this.head) {
      this.advance(b)
      return this.hot
    }
    if (b > this.head - F) {
      const s = this.fine[b % F] as Slot
      if (s.idx !== b) {
        resetSlot(s, b, ctx)
        this.shape++
      }
      return s
    }
    // older than the fine ring: straight into the coarse ring
    const s = this.coarseSlot(Math.floor(t / ctx.coarseMs))
    if (s === undefined) ctx.st.late++
    return s
  }

  private advance(newHead: number): void {
    const F = this.ctx.fineSlots
    this.shape++
    if (newHead - this.head >= F) {
      for (const s of this.fine) if (s.idx >= 0) this.fold(s)
      for (let k = newHead - F + 1; k <= newHead; k++) resetSlot(this.fine[k % F] as Slot, k, this.ctx)
    } else {
      for (let k = this.head + 1; k <= newHead; k++) {
        const s = this.fine[k % F] as Slot
        if (s.idx >= 0) this.fold(s)
        resetSlot(s, k, this.ctx)
      }
    }
    this.head = newHead
    this.hot = this.fine[newHead % F] as Slot
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
    if (c > this.headCoarse) {
      const from = c - this.headCoarse >= C ? c - C + 1 : this.headCoarse + 1
      for (let k = from; k <= c; k++) resetSlot(this.coarse[k % C] as Slot, k, ctx)
      this.headCoarse = c
      this.shape++
    } else if (c <= this.headCoarse - C) return undefined
    return this.coarse[c % C] as Slot
  }

  /** Frees every histogram (expiry). */
  release(): void {
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
    const head = Number.isFinite(this.head) ? this.head : Math.floor(Math.max(ctx.newest, 0) / bw)
    const fineStartIdx = head - F + 1
    const B = fineStartIdx * bw
    // never enumerate beyond what can hold data: retention behind, newest bucket ahead
    const lastEnd = (Math.max(head, Math.floor(ctx.newest / bw)) + 1) * bw
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
      const s = this.coarse[c % C] as Slot
      const end = (c + 1) * cw
      const cut = end > B ? B : undefined
      out[n++] = s.idx === c ? viewOf(s, c, cw, cut) : new BucketView(undefined, c, cw, cut)
    }
    for (let b = fLo; b < fHi; b++) {
      const s = b <= head ? (this.fine[b % F] as Slot) : undefined
      out[n++] = s !== undefined && s.idx === b ? viewOf(s, b, bw, undefined) : new BucketView(undefined, b, bw, undefined)
    }
    return out
  }
}

/** One bucket of a window: numbers as they were at `window()`, the quantile read live from its slot. */
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

  /** is this the snapshot of slot `s` as bucket `idx` as it is now? */
  matches(s: Slot, idx: number, cut: number | undefined): boolean {
    return this.idx === idx && this.cut === cut && this.requests === s.requests && this.errors === s.errors && this.latencyCount === s.latCount
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
}

/**
 * The latency of a window. Live: answers from the series' buckets as they are when asked. The
 * buckets collected by `window()` are reused while the series' shape and the store's newest time
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

  valueAtQuantile(q: number): number {
    const s = this.s
    if (this.count === 0 || !s.alive) return NaN
    const ctx = this.ctx
    if (s.shape !== this.shape || ctx.newest !== this.newest) {
      this.buckets = s.plan(this.fromMs, this.toMs)
      this.shape = s.shape
      this.newest = ctx.newest
    }
    const hs = ctx.scratch
    let n = 0
    for (const b of this.buckets) {
      const h = b.hist()
      if (h !== undefined) hs[n++] = h
    }
    return n === 0 ? 0 : valueAtPercentile(hs, n, clampQ(q) * 100)
  }
}

function resetSlot(s: Slot, idx: number, ctx: Ctx): void {
  s.idx = idx
  s.requests = 0
  s.errors = 0
  s.latCount = 0
  s.view = undefined
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
  readonly config: SignalsConfig
  private readonly ctx: Ctx
  private readonly byId = new Map<string, Series>()
  private readonly byService = new Map<string, Series[]>()
  private readonly pins = new Set<string>()
  private pending: Series[] = []

  constructor(config: SignalsConfigInput = {}) {
    this.config = signalsSchema.parse(config)
    this.ctx = new Ctx(this.config)
    this.bucketMs = this.config.bucket
  }

  // ---- write side --------------------------------------------------------------------------

  record(obs: Observation): void {
    switch (obs.kind) {
      case 'request': {
        if (!this.ctx.admit(obs.timeMs)) return
        this.afterAdmit()
        const s = this.resolve(obs.key, obs.count, obs.errors)
        if (s === undefined) return
        this.ctx.st.observations++
        s.add(obs.timeMs, obs.count, obs.errors, obs.latenciesUs, obs.latencyCounts)
        return
      }
      case 'resource': {
        if (!this.ctx.admit(obs.timeMs)) return
        this.afterAdmit()
        const s = this.resolve(obs.key, 0, 0)
        if (s === undefined) return
        this.ctx.st.observations++
        this.recordResource(s, obs.pod, obs.resource, obs.timeMs, obs.value, obs.request)
        return
      }
      case 'probe': {
        if (!this.ctx.admit(obs.timeMs)) return
        this.afterAdmit()
        const s = this.resolve(obs.key, 0, 0)
        if (s === undefined) return
        this.ctx.st.observations++
        this.recordProbe(s, `${obs.pod}/${obs.container}`, obs.timeMs, obs.ready)
        return
      }
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

  /** Used by stale handles and the overflow recorder. */
  recordRequests(key: SeriesKey, timeMs: number, count: number, errors: number, latencyUs: number): void {
    if (!this.ctx.admit(timeMs)) return
    this.afterAdmit()
    this.recordAdmitted(key, timeMs, count, errors, latencyUs)
  }

  /** Records requests whose time was already admitted. */
  recordAdmitted(key: SeriesKey, timeMs: number, count: number, errors: number, latencyUs: number): void {
    const s = this.resolve(key, count, errors)
    if (s === undefined) return
    this.ctx.st.observations++
    s.add(timeMs, count, errors, [latencyUs], undefined)
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

  /** Versions first seen since the previous call, in order of appearance (the deployment detector's input). */
  drainNewVersions(): VersionInfo[] {
    const out = this.pending.filter((s) => s.alive).map((s) => info(s))
    this.pending = []
    return out
  }

  stats(): SignalStoreStats {
    const st = this.ctx.st
    st.series = this.byId.size
    st.histograms = this.ctx.pool.live
    st.pooledHistograms = this.ctx.pool.pooled
    return { ...st }
  }

  /** Releases every histogram (back to the pool, whose free list is then emptied). The store is unusable afterwards. Idempotent. */
  shutdown(): void {
    for (const s of this.byId.values()) s.release()
    this.byId.clear()
    this.byService.clear()
    this.ctx.pool.drain()
  }

  /** Called after every admitted time: expiry sweeps run once per telemetry bucket. */
  afterAdmit(): void {
    const b = Math.floor(this.ctx.newest / this.bucketMs)
    if (b !== this.ctx.lastSweepBucket) {
      this.ctx.lastSweepBucket = b
      this.sweep()
    }
  }

  /** Expires idle, unpinned series (telemetry time) and frees their histograms. */
  sweep(): void {
    const limit = this.ctx.newest - this.config.idleTtl
    for (const s of this.byId.values()) {
      if (s.pinned || s.lastSeenMs >= limit || s.createdMs >= limit) continue
      if (s.createdMs === -Infinity) {
        // created (as a handle) before any telemetry time existed: its idle clock starts now
        s.createdMs = this.ctx.newest
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

  private resolve(key: SeriesKey, requests: number, errors: number, forHandle = false): Series | undefined {
    const id = seriesId(key.namespace, key.service, key.version)
    let s = this.byId.get(id)
    if (s !== undefined) return s
    const pinned = this.pins.has(id)
    if (!pinned && this.byId.size >= this.config.maxSeries) {
      if (!forHandle) {
        this.ctx.st.overflowed++
        this.ctx.st.overflowRequests += requests
        this.ctx.st.overflowErrors += errors
      }
      return undefined
    }
    s = new Series({ namespace: key.namespace, service: key.service, version: key.version }, id, this.ctx, this)
    s.pinned = pinned
    this.byId.set(id, s)
    const sid = serviceId(key.namespace, key.service)
    const list = this.byService.get(sid)
    if (list === undefined) this.byService.set(sid, [s])
    else list.push(s)
    if (this.pending.length < this.config.maxPendingVersions) this.pending.push(s)
    else this.ctx.st.versionsDropped++
    return s
  }

  private recordResource(s: Series, pod: string, resource: ResourceKind, t: number, value: number, request: number | undefined): void {
    if (!(value >= 0) || value === Infinity) {
      this.ctx.st.rejectedValues++
      return
    }
    if (t > s.lastSeenMs) s.lastSeenMs = t
    if (t < s.firstSeenMs) s.firstSeenMs = t
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
    } else {
      ps.times.splice(i, 0, t)
      ps.values.splice(i, 0, value)
      ps.requests.splice(i, 0, request)
    }
    const cut = this.ctx.lateBefore
    while (ps.times.length > this.config.resourceSamples || (ps.times.length > 0 && (ps.times[0] as number) < cut)) {
      ps.times.shift()
      ps.values.shift()
      ps.requests.shift()
    }
  }

  private recordProbe(s: Series, id: string, t: number, ready: boolean): void {
    if (t > s.lastSeenMs) s.lastSeenMs = t
    if (t < s.firstSeenMs) s.firstSeenMs = t
    const list = s.probes ?? (s.probes = [])
    let i = list.length
    while (i > 0 && (list[i - 1] as ProbeReading).timeMs > t) i--
    // the same container at the same time is one reading (duplicates are not double-counted)
    for (let j = i - 1; j >= 0 && (list[j] as ProbeReading).timeMs === t; j--) {
      const r = list[j] as ProbeReading
      if (r.id === id) {
        r.ready = ready
        return
      }
    }
    list.splice(i, 0, { timeMs: t, id, ready })
    const cut = this.ctx.lateBefore
    while (list.length > this.config.probeSamples || (list.length > 0 && (list[0] as ProbeReading).timeMs < cut)) list.shift()
  }

  // ---- read side (SignalView) ----------------------------------------------------------------

  versions(namespace: string, service: string): VersionInfo[] {
    const list = this.byService.get(serviceId(namespace, service))
    if (list === undefined) return []
    return list.map(info).sort((a, b) => a.firstSeenMs - b.firstSeenMs || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0))
  }

  retainedFromMs(key: SeriesKey): number | undefined {
    const s = this.byId.get(seriesId(key.namespace, key.service, key.version))
    if (s === undefined) return undefined
    const first = Math.floor(s.firstSeenMs / this.bucketMs) * this.bucketMs
    const ringStart = Number.isFinite(s.headCoarse) ? (s.headCoarse - this.ctx.coarseSlots + 1) * this.ctx.coarseMs : -Infinity
    return Math.max(first, ringStart)
  }

  window(key: SeriesKey, fromMs: number, toMs: number): WindowStats {
    const s = this.byId.get(seriesId(key.namespace, key.service, key.version))
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
    const latency = new WindowLatency(s, this.ctx, fromMs, toMs, latCount, buckets, s.shape, this.ctx.newest)
    return {
      fromMs,
      toMs,
      requests,
      errors,
      latency,
      buckets,
      resources: this.slopes(s, fromMs, toMs),
      probes: this.probeStats(s, fromMs, toMs),
    }
  }

  private slopes(s: Series, from: number, to: number): PodSlope[] {
    if (s.pods === undefined) return []
    const out: PodSlope[] = []
    for (const ps of s.pods.values()) {
      const xs: number[] = []
      const ys: number[] = []
      let request: number | undefined
      for (let i = 0; i < ps.times.length; i++) {
        const t = ps.times[i] as number
        if (t < from || t >= to) continue
        xs.push(t / 60_000)
        ys.push(ps.values[i] as number)
        const r = ps.requests[i]
        if (r !== undefined) request = r
      }
      if (xs.length === 0) continue
      const slope = theilSenSlope(xs, ys)
      out.push({
        pod: ps.pod,
        resource: ps.resource,
        samples: xs.length,
        slopePerMin: slope,
        request,
        fractionPerMin: request !== undefined && request > 0 ? slope / request : NaN,
        last: ys[ys.length - 1] as number,
      })
    }
    return out.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : a.resource < b.resource ? -1 : a.resource > b.resource ? 1 : 0))
  }

  private probeStats(s: Series, from: number, to: number): ProbeStats {
    if (s.probes === undefined) return { ...NO_PROBES, failing: [] }
    let readings = 0
    let failures = 0
    let first: number | undefined
    let last: number | undefined
    const failing = new Set<string>()
    for (const r of s.probes) {
      if (r.timeMs < from || r.timeMs >= to) continue
      readings++
      if (r.ready) continue
      failures++
      if (first === undefined || r.timeMs < first) first = r.timeMs
      if (last === undefined || r.timeMs > last) last = r.timeMs
      failing.add(r.id)
    }
    return { readings, failures, firstFailureMs: first, lastFailureMs: last, failing: [...failing].sort() }
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

function info(s: Series): VersionInfo {
  return { namespace: s.key.namespace, service: s.key.service, version: s.key.version, firstSeenMs: s.firstSeenMs, lastSeenMs: s.lastSeenMs }
}

function nan(): number {
  return NaN
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
    latency: { count: 0, valueAtQuantile: nan },
    buckets: [],
    resources: [],
    probes: { ...NO_PROBES, failing: [] },
  }
}
