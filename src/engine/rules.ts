/**
 * The four signal rules. Each turns windows of the SignalView plus a frozen (or live) baseline into
 * one SignalReading. Pure; a rule never mutates anything.
 *
 * Common contract of a confirmed breach (error rate, latency): the window [from, to) holds at least
 * `minSamples`, the window aggregate is beyond the threshold, AND each of the `slices` equal
 * sub-windows holds data and is beyond the threshold too ("held for the whole window"). A slice
 * without data is a telemetry gap: the reading is `insufficient`, never a breach.
 */
import type { ResourceKind, SeriesKey } from '../normalize/observations.js'
import type { SignalView, WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import { binomialUpperTail, median } from './stats.js'
import type { SignalMode, SignalName, SignalReading, SignalState } from './verdict.js'

/** The baseline numbers a reading is judged against; frozen once per deployment (or read live from a canary's old version). */
export interface BaselineNumbers {
  requests: number
  errors: number
  /** latency at the contract's quantile, microseconds; NaN without samples */
  latencyUs: number
  latencyCount: number
  /** median slope across the old version's pods per resource kind (fraction of request per minute); absent when unknown */
  resourceSlope: Partial<Record<ResourceKind, number>>
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

/** Sums buckets into `slices` equal slices of [from, to) (into sReq/sErr/sLat[0..slices)). */
function sliceCounts(w: WindowStats, from: number, to: number, slices: number): number {
  const width = (to - from) / slices
  sReq.fill(0, 0, slices)
  sErr.fill(0, 0, slices)
  sLat.fill(0, 0, slices)
  for (const b of w.buckets) {
    const i = Math.min(slices - 1, Math.max(0, Math.floor((b.startMs - from) / width)))
    sReq[i] = (sReq[i] as number) + b.requests
    sErr[i] = (sErr[i] as number) + b.errors
    sLat[i] = (sLat[i] as number) + b.latencyCount
  }
  return slices
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
 * Is the error ratio of (errors, requests) beyond the contract against the baseline counts?
 * Practically: the ratio is at or above the threshold. Statistically: a one-sided exact test that
 * both samples share one error rate, conditional on the total number of errors (the comparison of
 * two Poisson/binomial rates): given k = errors + baseErrors, the window's share of them is
 * Binomial(k, requests / (requests + baseRequests)) under H0. It accounts for the size of BOTH
 * samples: 3 errors in 60 requests against a clean baseline of 300 is p = (1/6)^3 = 0.005, not
 * evidence; 60 in 600 against 15 in 3000 is overwhelming.
 */
function errorBeyond(c: Contract, errors: number, requests: number, baseErrors: number, baseRequests: number): boolean {
  if (requests <= 0 || baseRequests <= 0) return false
  const p0 = baseErrors / baseRequests
  if (errors / requests < errorThreshold(c, p0)) return false
  return binomialUpperTail(errors, errors + baseErrors, requests / (requests + baseRequests)) <= c.signals.errorRate.maxPValue
}

export function errorRateRule(c: Contract, w: WindowStats, base: BaselineNumbers | undefined): RuleResult {
  const e = c.signals.errorRate
  const samples = w.requests
  const value = samples > 0 ? w.errors / samples : 0
  if (e.mode === 'off') return offReading('error_rate')
  if (base === undefined || base.requests < c.minSamples) {
    return make('error_rate', e.mode, 'insufficient', value, base && base.requests > 0 ? base.errors / base.requests : 0, 0, samples, false, undefined, 'no baseline with enough requests')
  }
  const p0 = base.errors / base.requests
  const threshold = errorThreshold(c, p0)
  const mode = e.mode
  if (samples < c.minSamples) return make('error_rate', mode, 'insufficient', value, p0, threshold, samples, false, undefined, `${samples} requests < floor ${c.minSamples}`)
  const n = sliceCounts(w, w.fromMs, w.toMs, c.slices)
  if (anyEmpty(sReq, n)) return make('error_rate', mode, 'insufficient', value, p0, threshold, samples, false, undefined, 'telemetry gap in the window')
  // the exact test asks whether this many errors could come from the baseline's rate, given both sample sizes
  if (!errorBeyond(c, w.errors, samples, base.errors, base.requests)) return make('error_rate', mode, 'healthy', value, p0, threshold, samples, false, undefined, '')
  // the aggregate is significant; "held for the whole window" asks that every slice's ratio is beyond the threshold too
  if (!allSlicesAtLeast(n, threshold)) return make('error_rate', mode, 'healthy', value, p0, threshold, samples, false, undefined, 'not sustained over the window')
  return make('error_rate', mode, 'breach', value, p0, threshold, samples, value >= e.critical, w.fromMs, '')
}

export function latencyThresholdMs(c: Contract, baseMs: number): number {
  const l = c.signals.latency
  return Math.max(baseMs * l.multiplier, baseMs + l.minIncreaseMs)
}

export function latencyRule(c: Contract, view: SignalView, key: SeriesKey, w: WindowStats, base: BaselineNumbers | undefined): RuleResult {
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
  if (samples < c.minSamples) return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, `${samples} samples < floor ${c.minSamples}`)
  if (anyEmpty(sLat, sliceCounts(w, w.fromMs, w.toMs, c.slices))) return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, 'telemetry gap in the window')
  if (value < threshold) return make('latency', mode, 'healthy', value, baseMs, threshold, samples, false, undefined, '')
  // only on an aggregate breach: ask the view for each slice's own quantile (merged histograms, exact)
  const width = (w.toMs - w.fromMs) / c.slices
  for (let i = 0; i < c.slices; i++) {
    const s = view.window(key, w.fromMs + i * width, w.fromMs + (i + 1) * width)
    if (s.latency.count === 0) return make('latency', mode, 'insufficient', value, baseMs, threshold, samples, false, undefined, 'telemetry gap in the window')
    if (s.latency.valueAtQuantile(l.quantile) / 1000 < threshold) return make('latency', mode, 'healthy', value, baseMs, threshold, samples, false, undefined, 'not sustained over the window')
  }
  return make('latency', mode, 'breach', value, baseMs, threshold, samples, value >= baseMs * l.critical, w.fromMs, '')
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
  const from = to - r.window
  if (from < evalFrom) return make('resource', r.mode, 'insufficient', 0, 0, 0, 0, false, undefined, 'slope window not yet past deployment + warmup')
  const w = view.window(key, from, to)
  let best: RuleResult | undefined
  for (const kind of r.kinds) {
    const m = medianSlope(w, kind, r.minPoints)
    if (m.pods === 0) continue
    const b = Math.max(0, base?.[kind] ?? 0)
    const threshold = b + r.threshold
    let res: RuleResult
    if (m.slope < threshold) res = make('resource', r.mode, 'healthy', m.slope, b, threshold, m.points, false, undefined, kind)
    else {
      const mid = from + r.window / 2
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
  const n = sliceCounts(w, w.fromMs, w.toMs, c.slices)
  return errorBeyond(c, w.errors, w.requests, restErr, restReq) && allSlicesAtLeast(n, errorThreshold(c, restErr / restReq))
}
