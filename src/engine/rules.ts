/**
 * The four signal rules. Each turns windows of the SignalView plus a frozen (or live) baseline into
 * one SignalReading. Pure; a rule never mutates anything.
 *
 * Common contract of a confirmed breach of a request signal (error rate, latency), over the
 * confirmation span (cadence.ts: at least the window and two report intervals, holding the sample
 * floor):
 *   1. the span holds at least `minSamples`;
 *   2. its aggregate is beyond the threshold (the practical effect the contract names);
 *   3. the anytime-valid evidence (sequential.ts, evidence.ts) that the version is beyond the
 *      threshold has reached 1/alpha, so the false-alarm probability per deployment is at most
 *      alpha however often the engine looks (the `bound` argument; a corroborating witness beside
 *      a breach that reached 1/alpha is judged at corroborationBound, see there);
 *   4. "held for the whole span, not one spike": each of the `slices` equal sub-spans that holds
 *      its share of the sample floor is beyond the threshold too, or holds its share of the span's
 *      errors or slow requests (sliceShort: a slice of 50 requests cannot show a p99 on its own),
 *      the newest slice of an early look, while still arriving, by its own value (newestArriving),
 *      and no sub-span is empty (a telemetry gap makes the reading `insufficient`, never a breach).
 * A value beyond the threshold whose evidence is not yet there is `insufficient`, not `healthy`.
 */
import type { LatencyBuckets, ResourceKind, SeriesKey } from '../normalize/observations.js'
import { alignDown, type BucketStats, type SeriesCoverage, type SignalView, type WindowStats } from '../signals/view.js'
import { latencyFloorUs } from '../normalize/buckets.js'
import type { Contract } from './config.js'
import { reportInterval } from './cadence.js'
import { rateUpperBound } from './evidence.js'
import { binomialLowerTail, binomialUpperTail, median } from './stats.js'
import type { SignalMode, SignalName, SignalReading, SignalState } from './verdict.js'

/** The baseline numbers a reading is judged against; frozen once per deployment (or read live from a canary's old version). */
export interface BaselineNumbers {
  requests: number
  errors: number
  /** latency at the contract's quantile, microseconds; NaN without samples */
  latencyUs: number
  /**
   * The same quantile read no lower than Prometheus' linear `histogram_quantile` reads a metric's
   * buckets (LatencyView.upperAtQuantile); absent: latencyUs (spans, the long history, watches
   * persisted before it). The rules by which one signal decides alone, or a baseline is judged
   * already breaching, compare a reading certainly beyond (its bucket's lower bound) with the
   * threshold from this: latencyUs is the best estimate inside a wide bucket, not an upper one, and
   * certainty on one side only let a flapping tail decide alone (certainThresholdMs).
   */
  latencyUpperUs?: number
  latencyCount: number
  /** latency samples above the latency cut (latencyThresholdMs of this baseline), counted in histogram buckets */
  latencyAbove: number
  /** the same at each of the contract's `shiftQuantiles`, in its order (empty without latency samples) */
  shift: readonly ShiftNumbers[]
  /** median slope across the old version's pods per resource kind (fraction of request per minute); absent when unknown */
  resourceSlope: Partial<Record<ResourceKind, number>>
  /**
   * The old version's counts over its longer pre-deploy history, baseline window included, when
   * the validation gate found the window healthy against that history
   * (src/engine/history-pool.ts); they only ever narrow the levels of the sequential tests
   * (errorLevel, latencyLevels, shiftLevels: narrowed). Absent for live baselines and references.
   */
  pooled?: PooledCounts
}

/** Events out of samples (errors of requests, or latency samples above a cut of all samples). */
export interface Share {
  events: number
  samples: number
}

/**
 * Counts of the old version from `fromMs` to the end of the baseline window, per quantity the
 * sequential tests bound; a quantity is undefined when the history holds no samples of it.
 */
export interface PooledCounts {
  fromMs: number
  errors: Share | undefined
  /** latency samples above the window's latency cut (latencyCutUs of `latencyUs`) */
  latency: Share | undefined
  /** the same at each shift quantile's cut, in `shiftQuantiles` order */
  shift: (Share | undefined)[]
}

/**
 * A level narrowed by the pooled history: `lift` turns a baseline share into the level the test
 * judges against (errors: half way to the threshold; latency: at least 1 - q). A quiet service's
 * 5-minute window holds a handful of errors or slow requests, and its upper bound (2.3 % for 2 in
 * 450) is most of the level; the hour before it bounds the same share far tighter (0.9 % for 27
 * in 5,400). Never under the window's own point estimate lifted (a share that crept up within the
 * hour is judged from where it is now) and never above the window's own level. For latency the
 * lift adds no margin: the cuts already lie above the window's own quantiles, half way to the
 * threshold, and the level never goes under 1 - q.
 */
function narrowed(events: number, samples: number, pooled: Share | undefined, lift: (share: number) => number): number {
  const level = lift(rateUpperBound(events, samples, BASELINE_DELTA))
  if (pooled === undefined || !(pooled.samples > samples) || !(samples > 0)) return level
  return Math.min(level, Math.max(lift(rateUpperBound(pooled.events, pooled.samples, BASELINE_DELTA)), lift(events / samples)))
}

/** The baseline at one shift quantile: its value and its samples above that value's cut (latencyCutUs). */
export interface ShiftNumbers {
  us: number
  above: number
}

/**
 * Shift numbers of a latency distribution given by its quantile and count-above functions (a window,
 * or a stretch of the long history). Empty without samples.
 */
export function shiftNumbers(c: Contract, count: number, at: (q: number) => number, above: (us: number) => number): ShiftNumbers[] {
  if (!(count > 0)) return []
  return c.signals.latency.shiftQuantiles.map((q) => {
    const us = at(q)
    return { us, above: Number.isFinite(us) ? above(latencyCutUs(c, us)) : 0 }
  })
}

export interface RuleResult extends SignalReading {
  /** why the state is what it is (used in verdict reasons) */
  note: string
}

/**
 * The one place a reading is built. Positional (rather than a partial object per call site): the
 * rules run for every watch at every tick, and partial objects of varying shapes made this
 * function's field reads megamorphic and cost an extra allocation per rule.
 */
function make(
  signal: SignalName,
  mode: SignalMode,
  state: SignalState,
  value: number,
  baseline: number,
  threshold: number,
  samples: number,
  critical: boolean,
  onsetMs: number | undefined,
  note: string,
  evidence?: number,
  evidenceBound?: number,
): RuleResult {
  return {
    signal,
    state: mode === 'off' ? 'off' : state,
    mode,
    value,
    baseline,
    threshold,
    samples,
    critical: critical && state === 'breach' && mode !== 'off',
    // always present (undefined unless breaching): one object shape for V8, and JSON omits undefined
    onsetMs: state === 'breach' ? onsetMs : undefined,
    evidence,
    evidenceBound,
    note,
  }
}

export function offReading(signal: SignalName): RuleResult {
  return make(signal, 'off', 'off', 0, 0, 0, 0, false, undefined, 'off')
}

/** Error-rate threshold from a baseline ratio: absolute minimum delta and relative factor, whichever is higher. */
export function errorThreshold(c: Contract, p0: number): number {
  const e = c.signals.errorRate
  return Math.max(p0 + e.minDelta, p0 * e.relativeFactor)
}

// Scratch space for slice sums. The engine is synchronous and never re-enters a rule, so one
// module-level buffer is safe and saves three allocations per rule per watch per tick.
const MAX_SLICES = 30
const sReq = new Float64Array(MAX_SLICES)
const sErr = new Float64Array(MAX_SLICES)
const sLat = new Float64Array(MAX_SLICES)

/**
 * How many slices a window is judged in: `slices`, at most one per bucket, and no more than the
 * window holds of its widest bucket (a slice never ends up without a bucket of its own). A span
 * answered in two coarse (60 s) buckets has two slices, one per report of a 60 s exporter; so does
 * one answered in a coarse bucket and the fine buckets of the newest minute (a 60 s series judged
 * when its report arrives, src/signals/report-chains.ts).
 */
function sliceCount(w: WindowStats, slices: number): number {
  const nb = w.buckets.length
  const span = w.toMs - w.fromMs
  let widest = 0
  for (const b of w.buckets) if (b.endMs - b.startMs > widest) widest = b.endMs - b.startMs
  const byWidth = widest > 0 && span > 0 ? Math.floor(span / widest) : nb
  return Math.max(1, Math.min(slices, nb, byWidth))
}

/**
 * The slice of bucket j: equal parts of the window's TIME, by the bucket's start. Counting buckets
 * instead made a window of one coarse minute and twelve fine buckets a 90 s slice and two of 15 s,
 * a quarter of one report each.
 */
function sliceOf(w: WindowStats, j: number, n: number): number {
  const span = w.toMs - w.fromMs
  if (!(span > 0)) return Math.min(n - 1, Math.floor((j * n) / w.buckets.length))
  const t = (w.buckets[j] as BucketStats).startMs - w.fromMs
  return Math.min(n - 1, Math.max(0, Math.floor((t * n) / span)))
}

/** Sums the window's buckets into its slices (sReq/sErr/sLat[0..n), sliceCount/sliceOf). Returns n. */
function sliceCounts(w: WindowStats, slices: number): number {
  const nb = w.buckets.length
  const n = sliceCount(w, slices)
  sReq.fill(0, 0, n)
  sErr.fill(0, 0, n)
  sLat.fill(0, 0, n)
  for (let j = 0; j < nb; j++) {
    const b = w.buckets[j] as BucketStats
    const i = sliceOf(w, j, n)
    sReq[i] = (sReq[i] as number) + b.requests
    sErr[i] = (sErr[i] as number) + b.errors
    sLat[i] = (sLat[i] as number) + b.latencyCount
  }
  return n
}

/** [from, to) of slice i of n (as sliceCounts groups the buckets); undefined when no bucket starts in it. */
function sliceRange(w: WindowStats, i: number, n: number): [number, number] | undefined {
  let first: BucketStats | undefined
  let last: BucketStats | undefined
  for (let j = 0; j < w.buckets.length; j++) {
    if (sliceOf(w, j, n) !== i) continue
    const b = w.buckets[j] as BucketStats
    first ??= b
    last = b
  }
  return first === undefined || last === undefined ? undefined : [first.startMs, last.endMs]
}

/**
 * Whether the span's newest slice is still arriving: it holds fewer than its share of the sample
 * floor (`need`) and under half of its share of the span's samples (a quiet slice holds about its
 * share). The early look (cadence.ts earlyEnd) judges a span whose newest bucket holds only what has
 * arrived of it, and such a slice was skipped as a quiet one is: a breach was then judged on the two
 * older slices alone, and a new pod's 5 s cold start across two 5 s buckets held "the whole span"
 * beside a third with 5 requests (cold-start-spike seeds 2 and 4 of 5 with per-pod span exports on
 * the sidecar's clock, `quality.js --clock export --span-export per-pod`). Contract: an arriving
 * slice confirms a breach only by its own value beyond the threshold; otherwise the reading is
 * `insufficient` until it has arrived (a later look: the next pod's batch, or the watermark).
 */
function newestArriving(a: Float64Array, n: number, need: number, samples: number): boolean {
  if (n < 2) return false
  const k = a[n - 1] as number
  return k < need && k < samples / (2 * n)
}

function anyEmpty(a: Float64Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] === 0) return true
  return false
}

/** Every slice's error ratio at or above t (slices with requests only). */
function allSlicesAtLeast(n: number, t: number): boolean {
  for (let i = 0; i < n; i++) if ((sReq[i] as number) === 0 || (sErr[i] as number) / (sReq[i] as number) < t) return false
  return true
}

/**
 * The significance at which a slice under the threshold shows that a breach of its span is not
 * sustained (sliceShort). Per slice: a breach held over the whole span reads "not sustained" at a
 * given look with probability at most `slices` x this.
 */
const SLICE_SIGNIFICANCE = 0.01

/**
 * Whether a slice whose own point estimate is under the threshold holds clearly fewer of its span's
 * events (errors, or requests slower than the threshold) than its share of the span's samples:
 * conditional on the span's `total` events, a slice of `n` of its `samples` holds Binomial(total,
 * n / samples) of them when the breach is spread over the span, and `k` or fewer is improbable
 * (<= SLICE_SIGNIFICANCE) when it is not. A slice's p99 over its ~50 requests is their maximum,
 * and its error ratio over them a handful of errors: under a breach held throughout, one of three
 * such slices often read under the threshold, and the breach waited for a look at which all three
 * agreed (34 of 640 library runs decided sooner without that wait, README). A spike in one slice
 * leaves the others short by far (12 slow requests in one of three slices: (2/3)^12 < 0.01).
 * Without events to count (a metric's explicit buckets with none wholly above the threshold) the
 * slice's point estimate decides, as before. Both sample sizes count, as in errorBeyond.
 */
function sliceShort(k: number, n: number, total: number, samples: number): boolean {
  if (!(total > 0) || !(samples > 0)) return true
  return binomialLowerTail(k, total, Math.min(1, n / samples)) <= SLICE_SIGNIFICANCE
}

/**
 * Fixed-sample version of the error question, for single looks (the validation gate's scan of
 * pre-deploy windows): is the ratio at or above the threshold, and would that many errors be
 * improbable (p <= alpha) if the window shared the other sample's rate? Conditional on the total
 * number of errors the window's share is Binomial(k, requests / (requests + baseRequests)) under
 * H0, so BOTH sample sizes count: 3 errors in 60 requests against a clean baseline of 300 is not
 * evidence; 60 in 600 against 15 in 3000 is overwhelming.
 */
function errorBeyond(c: Contract, errors: number, requests: number, baseErrors: number, baseRequests: number): boolean {
  if (requests <= 0 || baseRequests <= 0) return false
  const p0 = baseErrors / baseRequests
  if (errors / requests < errorThreshold(c, p0)) return false
  return binomialUpperTail(errors, errors + baseErrors, requests / (requests + baseRequests)) <= c.alpha
}

/**
 * Confidence of the baseline's upper bounds. Looser than alpha on purpose, and safe: a false alarm
 * needs the baseline's TRUE rate to exceed its bound by half the contract's effect (the bound
 * missing by a hair changes nothing), which is far rarer than the bound's own 1 %.
 */
export const BASELINE_DELTA = 0.01

/**
 * The level the sequential error test must show the version to be above: the baseline rate's upper
 * confidence bound at BASELINE_DELTA (so a small baseline is not taken at its word; narrowed by the
 * old version's longer history, `baselineHistory`) plus half the effect the contract names
 * (threshold - baseline). Evidence that the version is worse than its baseline by
 * half the contract's effect, together with a point estimate beyond the full threshold, confirms a
 * breach; a version only marginally worse than its baseline never accumulates evidence.
 */
export function errorLevel(c: Contract, base: BaselineNumbers): number {
  return narrowed(base.errors, base.requests, base.pooled?.errors, (up) => errorLift(c, up))
}

/** The level errorLevel judges against for a baseline rate `p`: half way from `p` to its threshold (at most 0.99). Increasing in `p`. */
function errorLift(c: Contract, p: number): number {
  return Math.min(0.99, p + (errorThreshold(c, p) - p) / 2)
}

/** The ratio at which a confirmed error breach suffices alone (held for two spans): relative to the baseline, capped by `critical`. */
export function errorCriticalLevel(c: Contract, p0: number, level: number): number {
  const e = c.signals.errorRate
  return Math.max(level, Math.min(e.critical, Math.max(p0 * e.criticalFactor, p0 + e.criticalDelta)))
}

/**
 * Latency cut (microseconds) for the sequential test and the share of requests above it that the
 * contract allows. The cut lies half way between the baseline quantile and the contract's threshold,
 * mirroring errorLevel: a version whose quantile is beyond the cut for long enough is worse than
 * its baseline by half the contract's effect.
 */
export function latencyLevels(c: Contract, base: BaselineNumbers): { cutUs: number; level: number } {
  const l = c.signals.latency
  const cutUs = latencyCutUs(c, base.latencyUs)
  const level = narrowed(base.latencyAbove, base.latencyCount, base.pooled?.latency, (x) => Math.max(1 - l.quantile, x))
  return { cutUs, level }
}

/**
 * Cuts and levels of the shift tests, in `shiftQuantiles` order: at quantile q of the baseline (value
 * b), a request is "slow" above latencyCutUs(b) (half way to the threshold the contract would put on
 * b), and the share allowed above it is max(1 - q, the baseline's own share's upper bound). A version
 * that is at most that much slower than its baseline at every tested quantile (a scaled copy of it,
 * say) is within every null; a 2x slower version is far beyond the median's long before its 1 %
 * tail holds enough samples. An entry with a NaN level is not tested (no value at that quantile).
 */
export function shiftLevels(c: Contract, base: BaselineNumbers): { cutUs: number; level: number }[] {
  const qs = c.signals.latency.shiftQuantiles
  return qs.map((q, i) => {
    const s = base.shift[i]
    if (s === undefined || !Number.isFinite(s.us) || !(base.latencyCount >= c.minSamples)) return { cutUs: NaN, level: NaN }
    return { cutUs: latencyCutUs(c, s.us), level: narrowed(s.above, base.latencyCount, base.pooled?.shift[i], (x) => Math.max(1 - q, x)) }
  })
}

/**
 * The evidence a SECOND request signal needs to count as a witness beside one whose evidence reached
 * 1/alpha: 1/sqrt(alpha) (about 32 at the default 0.001). A two-witness decision is a false alarm
 * only if its leading witness is one, so its false-alarm probability stays at most alpha per signal
 * (Ville's inequality on the leader: P(A and B) <= P(A)); the second witness still has to be beyond
 * its full threshold in every slice of the span, and its own evidence far from chance. Without it a
 * mild second symptom (5 % errors at 20 req/s beside a 2x slower p99) waited for 1/alpha on its own,
 * 10-20 s longer than the fault needed. A leader is never a corroborating witness: one signal alone
 * still needs 1/alpha and its critical level, held.
 */
export function corroborationBound(c: Contract): number {
  return 1 / Math.sqrt(c.alpha)
}

function baselineSufficient(c: Contract, base: BaselineNumbers | undefined): base is BaselineNumbers {
  return base !== undefined && base.requests >= c.minSamples
}

export function errorRateRule(c: Contract, w: WindowStats, base: BaselineNumbers | undefined, evidence: number, bound = 1 / c.alpha): RuleResult {
  const e = c.signals.errorRate
  const samples = w.requests
  const value = samples > 0 ? w.errors / samples : 0
  if (e.mode === 'off') return offReading('error_rate')
  const shownBase = base !== undefined && base.requests > 0 ? base.errors / base.requests : 0
  if (!baselineSufficient(c, base)) return make('error_rate', e.mode, 'insufficient', value, shownBase, 0, samples, false, undefined, 'no baseline with enough requests')
  const p0 = base.errors / base.requests
  const threshold = errorThreshold(c, p0)
  const mode = e.mode
  if (samples < c.minSamples) return make('error_rate', mode, 'insufficient', value, p0, threshold, samples, false, undefined, `${samples} requests < floor ${c.minSamples}`, evidence, bound)
  // a slice without any request is a gap (the version stopped serving, or its telemetry did): neither healthy nor a breach
  const n = sliceCounts(w, c.slices)
  if (anyEmpty(sReq, n)) return make('error_rate', mode, 'insufficient', value, p0, threshold, samples, false, undefined, 'telemetry gap in the span', evidence, bound)
  if (value < threshold) return make('error_rate', mode, 'healthy', value, p0, threshold, samples, false, undefined, '', evidence, bound)
  if (evidence < bound) {
    return make('error_rate', mode, 'insufficient', value, p0, threshold, samples, false, undefined, `beyond the threshold, evidence ${fmtE(evidence)} < ${fmtE(bound)}`, evidence, bound)
  }
  const need = Math.ceil(c.minSamples / c.slices)
  const arriving = newestArriving(sReq, n, need, samples)
  for (let i = 0; i < n; i++) {
    const r = sReq[i] as number
    if (arriving && i === n - 1) {
      if ((sErr[i] as number) / r >= threshold) continue
      return make('error_rate', mode, 'insufficient', value, p0, threshold, samples, false, undefined, 'newest slice still arriving', evidence, bound)
    }
    if (r >= need && (sErr[i] as number) / r < threshold && sliceShort(sErr[i] as number, r, w.errors, samples)) {
      return make('error_rate', mode, 'healthy', value, p0, threshold, samples, false, undefined, 'not sustained over the span', evidence, bound)
    }
  }
  return make('error_rate', mode, 'breach', value, p0, threshold, samples, value >= errorCriticalLevel(c, p0, threshold), w.fromMs, '', evidence, bound)
}

/**
 * Single-signal confirmation: a confirmed breach of one request signal (`r`, state breach) needs
 * no second witness when it is HELD over [end - holdMs, end) (its start on `grid`: onGrid), never before `earliest` (the caller
 * passes the series' shortest span plus one report: 15 s for spans, 180 s for 60 s metrics; or the
 * confirmation span as it grew at low traffic, when that is longer),
 *   - the aggregate is at or beyond the signal's critical level (error rate: errorCriticalLevel,
 *     relative to the baseline; latency: critical x the baseline quantile, a metric's read at its
 *     bucket's lower bound, src/normalize/buckets.ts), and
 *   - every report of the series in it is beyond the threshold: each bucket (a span's report is
 *     the store's bucket, a metric's report its interval, which the span's buckets follow), or, at
 *     low traffic, each run of consecutive buckets that together hold their share of the sample
 *     floor (ceil(minSamples / slices)); empty time of `gapMs` is a gap and the breach is not held.
 * One witness, so it must be sustained in every data point, and for one report beyond the span
 * that confirmed it: a spike no longer than one report interval (a cold start of a few seconds per
 * pod, a GC pause, one burst) straddles at most two reports, so it never fills the three a
 * decision needs, and never decides alone. Pure; reads the view.
 */
export function heldAlone(c: Contract, view: SignalView, key: SeriesKey, r: RuleResult, base: BaselineNumbers, end: number, earliest: number, holdMs: number, gapMs: number, grid = 1): boolean {
  if (r.state !== 'breach' || (r.signal !== 'error_rate' && r.signal !== 'latency')) return false
  const from = onGrid(end - holdMs, grid)
  if (from < earliest) return false
  const w = view.window(key, from, end)
  if (r.signal === 'error_rate') {
    if (!(base.requests > 0) || !(w.requests > 0)) return false
    const p0 = base.errors / base.requests
    if (w.errors / w.requests < errorCriticalLevel(c, p0, errorThreshold(c, p0))) return false
  } else {
    if (!Number.isFinite(base.latencyUs) || w.latency.count === 0) return false
    const floor = latencyFloorUs(view.coverage(key)?.latencyBuckets, w.latency.valueAtQuantile(c.signals.latency.quantile))
    if (floor / 1000 < (upperLatencyUs(base) / 1000) * c.signals.latency.critical) return false
  }
  return everyReportBeyond(c, view, key, r.signal, base, w, gapMs)
}

/**
 * A hold's start on the grid of the series' window starts (`grid`: cadence.ts granularity; 0 or 1
 * leaves it): a series judged at the fine grid whose spans start on coarse buckets holds from the
 * coarse bucket's start, a little longer than asked, never shorter (the store answers a range that
 * starts inside a folded coarse bucket from that bucket's end).
 */
function onGrid(t: number, grid: number): number {
  return grid > 1 ? alignDown(t, grid) : t
}

/**
 * The other way one request signal decides alone, at any size beyond its threshold: a breach
 * confirmed (evidence at its full bound: the caller's `leads`) at every evaluation since its onset
 * (`r.onsetMs`, which the engine resets whenever an evaluation reads anything else) for at least
 * `singleSignalHold`, and every report of the series in the last `singleSignalHold` beyond the
 * threshold (as heldAlone). A version whose span p99 stays twice its baseline for five minutes is a
 * regression whatever the other signals say; a flapping signal resets its onset at every healthy
 * report. The counterpart of Flagger's default (5 failed 1-minute checks roll a canary back). Latency
 * only when its readings say how slow requests certainly are (`boundedLatency`), and a metric's at
 * its bucket's lower bound (everyReportBeyond). Pure.
 */
export function heldLong(c: Contract, view: SignalView, key: SeriesKey, r: RuleResult, base: BaselineNumbers, end: number, earliest: number, gapMs: number, grid = 1): boolean {
  const hold = c.singleSignalHold
  if (!(hold > 0) || r.state !== 'breach' || (r.signal !== 'error_rate' && r.signal !== 'latency')) return false
  if (r.signal === 'latency' && !boundedLatency(view.coverage(key))) return false
  if (r.onsetMs === undefined || r.onsetMs > end - hold) return false
  const from = onGrid(end - hold, grid)
  if (from < earliest) return false
  return everyReportBeyond(c, view, key, r.signal, base, view.window(key, from, end), gapMs)
}

/**
 * Every report in `w` beyond the signal's threshold (eachReport's runs); false without a baseline.
 * A metric's latency at its bucket's lower bound: a 1.3x slower p99 that crosses a bound reads at
 * the next bucket's midpoint, often 2x, but is certainly above only the bound it crossed.
 */
function everyReportBeyond(c: Contract, view: SignalView, key: SeriesKey, signal: 'error_rate' | 'latency', base: BaselineNumbers, w: WindowStats, gapMs: number): boolean {
  const need = Math.ceil(c.minSamples / c.slices)
  const cov = view.coverage(key)
  // a metric report's counts are spread evenly over its interval: a run shorter than one report
  // reads a part of it, not a report (0 for spans)
  const reportMs = reportInterval(cov)
  if (signal === 'error_rate') {
    if (!(base.requests > 0)) return false
    const threshold = errorThreshold(c, base.errors / base.requests)
    return eachReport(
      w,
      need,
      gapMs,
      (b) => b.requests,
      (a, z, n) => {
        let e = 0
        for (let i = a; i < z; i++) e += (w.buckets[i] as BucketStats).errors
        return e / n >= threshold
      },
      reportMs,
    )
  }
  const l = c.signals.latency
  if (!Number.isFinite(base.latencyUs)) return false
  const layout = cov?.latencyBuckets
  const threshold = certainThresholdMs(c, base)
  return eachReport(
    w,
    need,
    gapMs,
    (b) => b.latencyCount,
    (a, z) => {
      const s = view.window(key, (w.buckets[a] as BucketStats).startMs, (w.buckets[z - 1] as BucketStats).endMs)
      return latencyFloorUs(layout, s.latency.valueAtQuantile(l.quantile)) / 1000 >= threshold
    },
    reportMs,
  )
}

/**
 * Whether a latency reading of the series says how slow its requests certainly are: exact span
 * durations (no report interval), or a metric's buckets whose bounds are known. A metric point
 * without bounds (its mean only) does not, nor a series whose layout is not known yet. Nor are an
 * unbounded series' requests above a latency cut independent trials (one interval's mean puts all
 * of them above it or all below): the count tests of one window against a reference (the
 * validation gate's, freeze.ts's pre-existing scan) leave its latency alone.
 */
export function boundedLatency(cov: SeriesCoverage | undefined): boolean {
  return cov !== undefined && (cov.reportIntervalMs === 0 || cov.latencyBuckets !== undefined)
}

/**
 * Groups the window's buckets into runs of consecutive buckets holding at least `need` samples
 * and covering at least `minRunMs` each (a bucket that does is a run of its own; a short tail
 * joins the last run) and asks `beyond`
 * of each run [a, z) with its sample count. False on a gap or when no run holds `need` samples.
 * A gap is empty time of at least `gapMs` (the caller's: a report of the series, or a slice of its
 * confirmation span, whichever is longer; one bucket at least): a 60 s point's few requests, spread
 * over its interval's 5 s buckets in whole numbers, leave some of them empty, and so do a quiet
 * service's spans, without the series having stopped. `minRunMs`: the series' report interval (0
 * for spans). A 60 s series judged when its report arrives (src/signals/report-chains.ts) has the
 * newest minute of its window in 5 s buckets, which would otherwise be runs of their own: twelve
 * parts of one report, each as noisy as a report twelve times smaller, and the window's last
 * seconds of a report that ends after it (a fault held for three whole reports read as not held
 * because the window's end fell 41 s into the fourth, recovered one).
 */
function eachReport(w: WindowStats, need: number, gapMs: number, count: (b: BucketStats) => number, beyond: (a: number, z: number, n: number) => boolean, minRunMs = 0): boolean {
  const nb = w.buckets.length
  let a = 0
  let n = 0
  let lastA = -1
  let lastN = 0
  let emptyFrom = -1
  for (let j = 0; j < nb; j++) {
    const b = w.buckets[j] as BucketStats
    const k = count(b)
    if (k === 0) {
      if (emptyFrom < 0) emptyFrom = b.startMs
      if (b.endMs - emptyFrom >= gapMs) return false
      continue
    }
    emptyFrom = -1
    n += k
    if (n >= need && b.endMs - (w.buckets[a] as BucketStats).startMs >= minRunMs) {
      if (lastA >= 0 && !beyond(lastA, a, lastN)) return false
      lastA = a
      lastN = n
      a = j + 1
      n = 0
    }
  }
  // a window shorter than one report: its samples as one run, when they are enough
  if (lastA < 0) return n >= need && beyond(a, nb, n)
  // the short tail (fewer than `need` samples, or less than a report) is judged together with the last full run
  return beyond(lastA, nb, lastN + n)
}

/** The sequential latency test's cut for a baseline quantile (both microseconds): half way to the threshold. */
export function latencyCutUs(c: Contract, baseUs: number): number {
  return ((baseUs / 1000 + latencyThresholdMs(c, baseUs / 1000)) / 2) * 1000
}

/** BaselineNumbers.latencyUpperUs, or latencyUs without it */
function upperLatencyUs(base: BaselineNumbers): number {
  const u = base.latencyUpperUs
  return u !== undefined && u > base.latencyUs ? u : base.latencyUs
}

/**
 * The latency threshold a reading must be certainly beyond (its bucket's lower bound) where one
 * signal decides alone or a baseline is judged already breaching: from the baseline's upper reading
 * (BaselineNumbers.latencyUpperUs). With the best estimate instead, a Nezha adservice pod whose p99
 * alternates 60 / 400 ms minute by minute (held-out quiet case 2022-08-22 13:19) put its threshold
 * at 93 ms, under the SDK's 100 ms bound, and report runs straddling two minutes read "certainly
 * beyond" at 100 ms: a rollback on a flapping tail. The two-witness breach reads the estimate.
 */
export function certainThresholdMs(c: Contract, base: BaselineNumbers): number {
  return latencyThresholdMs(c, upperLatencyUs(base) / 1000)
}

export function latencyThresholdMs(c: Contract, baseMs: number): number {
  const l = c.signals.latency
  return Math.max(baseMs * l.multiplier, baseMs + l.minIncreaseMs)
}

export function latencyRule(c: Contract, view: SignalView, key: SeriesKey, w: WindowStats, base: BaselineNumbers | undefined, evidence: number, bound = 1 / c.alpha): RuleResult {
  const l = c.signals.latency
  if (l.mode === 'off') return offReading('latency')
  const samples = w.latency.count
  const value = samples > 0 ? w.latency.valueAtQuantile(l.quantile) / 1000 : 0
  if (base === undefined || base.latencyCount < c.minSamples || !Number.isFinite(base.latencyUs)) {
    return make('latency', l.mode, 'insufficient', value, 0, 0, samples, false, undefined, 'no baseline with enough latency samples')
  }
  const baseMs = base.latencyUs / 1000
  const threshold = latencyThresholdMs(c, baseMs)
  const mode = l.mode
  if (samples < c.minSamples) return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, `${samples} samples < floor ${c.minSamples}`, evidence, bound)
  const n = sliceCounts(w, c.slices)
  if (anyEmpty(sLat, n)) return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, 'telemetry gap in the span', evidence, bound)
  if (value < threshold) return make('latency', mode, 'healthy', value, baseMs, threshold, samples, false, undefined, '', evidence, bound)
  if (evidence < bound) {
    return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, `beyond the threshold, evidence ${fmtE(evidence)} < ${fmtE(bound)}`, evidence, bound)
  }
  // only on a confirmed aggregate: ask the view for each slice's own quantile (merged histograms, exact)
  const need = Math.ceil(c.minSamples / c.slices)
  const arriving = newestArriving(sLat, n, need, samples)
  let slow = -1
  for (let i = 0; i < n; i++) {
    const range = sliceRange(w, i, n)
    if (range === undefined) continue
    const s = view.window(key, range[0], range[1])
    if (s.latency.count === 0) return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, 'telemetry gap in the span', evidence, bound)
    if (arriving && i === n - 1) {
      if (s.latency.valueAtQuantile(l.quantile) / 1000 >= threshold) continue
      return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, 'newest slice still arriving', evidence, bound)
    }
    if (s.latency.count < need || s.latency.valueAtQuantile(l.quantile) / 1000 >= threshold) continue
    if (slow < 0) slow = w.latency.countAbove(threshold * 1000)
    if (sliceShort(s.latency.countAbove(threshold * 1000), s.latency.count, slow, samples)) {
      return make('latency', mode, 'healthy', value, baseMs, threshold, samples, false, undefined, 'not sustained over the span', evidence, bound)
    }
  }
  return make('latency', mode, 'breach', value, baseMs, threshold, samples, value >= baseMs * l.critical, w.fromMs, '', evidence, bound)
}

function fmtE(x: number): string {
  return x >= 1e6 || (x > 0 && x < 1e-3) ? x.toExponential(1) : x.toPrecision(3)
}

/**
 * Per-pod slopes of one resource kind -> their median, as a fraction of the request per minute.
 * A pod without a known request is judged relative to its own current level (slope / last reading):
 * "grows by x % of what it uses now per minute" — stricter for small pods, documented in the config.
 */
export function medianSlope(w: WindowStats, kind: ResourceKind, minPoints: number): { slope: number; pods: number; points: number } {
  const slopes: number[] = []
  let points = 0
  for (const p of w.resources) {
    if (p.resource !== kind || p.samples < minPoints) continue
    const f = Number.isFinite(p.fractionPerMin) ? p.fractionPerMin : p.last > 0 ? p.slopePerMin / p.last : NaN
    if (!Number.isFinite(f)) continue
    slopes.push(f)
    points += p.samples
  }
  return { slope: median(slopes), pods: slopes.length, points }
}

/**
 * Resource trajectory over [to - resource.window, to). `evalFrom` is the earliest time the range may
 * start (deployment + warmup). Breach: the median pod slope exceeds baseline slope + threshold over
 * the whole range AND over each half of it (a one-off jump is not a trajectory).
 */
export function resourceRule(
  c: Contract,
  view: SignalView,
  key: SeriesKey,
  to: number,
  evalFrom: number,
  base: Partial<Record<ResourceKind, number>> | undefined,
): RuleResult {
  const r = c.signals.resource
  if (r.mode === 'off') return offReading('resource')
  let from = to - r.window
  if (from < evalFrom) return make('resource', r.mode, 'insufficient', 0, 0, 0, 0, false, undefined, 'slope window not yet past deployment + warmup')
  let w = view.window(key, from, to)
  // readings every 60 s leave 3 in a 3 min window: the window grows (never before deployment +
  // warmup) until a pod holds `minPoints`, so the cadence of the exporter does not silence the signal
  for (const grow of RESOURCE_GROWTH) {
    if (r.kinds.some((k) => medianSlope(w, k, r.minPoints).pods > 0)) break
    const f = to - r.window * grow
    if (f < evalFrom) break
    from = f
    w = view.window(key, from, to)
  }
  const span = to - from
  let best: RuleResult | undefined
  for (const kind of r.kinds) {
    const m = medianSlope(w, kind, r.minPoints)
    if (m.pods === 0) continue
    const b = Math.max(0, base?.[kind] ?? 0)
    const threshold = b + r.threshold
    let res: RuleResult
    if (m.slope < threshold) res = make('resource', r.mode, 'healthy', m.slope, b, threshold, m.points, false, undefined, kind)
    else {
      const mid = from + span / 2
      const halfPoints = Math.max(2, Math.ceil(r.minPoints / 2))
      const h1 = medianSlope(view.window(key, from, mid), kind, halfPoints)
      const h2 = medianSlope(view.window(key, mid, to), kind, halfPoints)
      if (h1.pods === 0 || h2.pods === 0) res = make('resource', r.mode, 'insufficient', m.slope, b, threshold, m.points, false, undefined, `${kind}: too few readings in half the window`)
      else if (h1.slope < threshold || h2.slope < threshold) res = make('resource', r.mode, 'healthy', m.slope, b, threshold, m.points, false, undefined, `${kind}: not sustained`)
      else res = make('resource', r.mode, 'breach', m.slope, b, threshold, m.points, m.slope >= r.critical, from, kind)
    }
    if (best === undefined || rank(res) > rank(best) || (rank(res) === rank(best) && res.value - res.threshold > best.value - best.threshold)) best = res
  }
  return best ?? make('resource', r.mode, 'insufficient', 0, 0, 0, 0, false, undefined, `no pod with ${r.minPoints}+ readings of ${r.kinds.join('/')}`)
}

/** Factors by which the resource window may grow when no pod has enough readings in it. */
const RESOURCE_GROWTH = [1.5, 2, 3] as const

function rank(r: RuleResult): number {
  return r.state === 'breach' ? 2 : r.state === 'healthy' ? 1 : 0
}

/** Per-container readiness tracking of one watched version (fed by probe observations). */
export interface ContainerTrack {
  firstSeenMs: number
  everReady: boolean
}

export interface ProbeFailure {
  onsetMs: number
  container: string
  why: 'was ready, then failed' | 'not ready after startup grace'
}

/**
 * Probe: binary and immediate. A failure is a not-ready reading of the watched version, after the
 * deployment, from a container that was ready before (regression), or that is still not ready
 * `startupGrace` after its first reading (never became ready). A fresh container that is not yet
 * ready inside the grace is normal start-up and not a failure.
 */
export function probeRule(c: Contract, w: WindowStats, failure: ProbeFailure | undefined, failingNow: number, readingsSeen: number): RuleResult {
  const p = c.signals.probe
  if (p.mode === 'off') return offReading('probe')
  const samples = w.probes.readings
  if (failure !== undefined) {
    return make('probe', p.mode, 'breach', Math.max(1, failingNow), 0, 0, samples, true, failure.onsetMs, `${failure.container} ${failure.why}`)
  }
  if (readingsSeen === 0 && samples === 0) return make('probe', p.mode, 'insufficient', 0, 0, 0, 0, false, undefined, 'no readiness readings')
  return make('probe', p.mode, 'healthy', 0, 0, 0, samples, false, undefined, '')
}

/**
 * The validation gate's question about one pre-deploy window of the old version: was it beyond the
 * contract against the REST of the baseline (the window's own counts are taken out of the baseline,
 * so it is not compared with itself)?
 */
export function sliceErrorBeyond(c: Contract, w: WindowStats, base: BaselineNumbers): boolean {
  if (w.requests < c.minSamples) return false
  const restReq = base.requests - w.requests
  const restErr = base.errors - w.errors
  if (restReq < c.minSamples || restErr < 0) return false
  const n = sliceCounts(w, c.slices)
  return errorBeyond(c, w.errors, w.requests, restErr, restReq) && allSlicesAtLeast(n, errorThreshold(c, restErr / restReq))
}

/**
 * The same question for latency: the window's quantile beyond the threshold AND more of its
 * requests above the baseline's latency cut than the rest of the baseline has, at alpha (the same
 * conditional two-sample test as errors). A bare quantile of one window is not enough: a 15 s window
 * of 50-100 requests reads its p99 from its one or two slowest, and on explicit metric buckets one
 * request in the next bucket moves it a whole bucket up. `layout`: the series' metric buckets, if any.
 */
export function sliceLatencyBeyond(c: Contract, w: WindowStats, base: BaselineNumbers, layout?: LatencyBuckets): boolean {
  const n = w.latency.count
  if (n < c.minSamples || !Number.isFinite(base.latencyUs)) return false
  // a metric's quantile certainly beyond: its bucket's lower bound (gate.ts latencyBeyondReference)
  if (latencyFloorUs(layout, w.latency.valueAtQuantile(c.signals.latency.quantile)) / 1000 < certainThresholdMs(c, base)) return false
  const restN = base.latencyCount - n
  const slow = w.latency.countAbove(latencyCutUs(c, base.latencyUs))
  const restSlow = base.latencyAbove - slow
  if (restN < c.minSamples || restSlow < 0) return false
  return binomialUpperTail(slow, slow + restSlow, n / (n + restN)) <= c.alpha
}
