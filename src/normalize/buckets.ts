/**
 * From a latency reading back to the histogram bucket it stands for. The normalizer turns a
 * metric's bucket counts into one representative value per bucket (normalizer.ts emitExplicit,
 * emitExp; the table in this folder's README). Two questions about such values are answered here:
 *
 *   - `interpolatedQuantileUs`: where in its bucket a quantile lies, by the counts below and in the
 *     bucket, and by how the density falls (or rises) across the bucket, read from its neighbours'
 *     counts. The store's windows read a metric's quantiles this way (src/signals/store.ts), so a
 *     2x slower p99 that stays inside the SDK's (100, 250] ms bucket reads about 2x, where
 *     Prometheus' linear `histogram_quantile` reads 1.47x: always in the same bucket as the Grafana
 *     panel over the same histogram, nearer the true quantile inside it.
 *   - `latencyFloorUs`: the lowest latency a reading certainly exceeds, the lower bound of the
 *     bucket holding it. A rule that lets a metric's latency decide on its own compares that floor:
 *     with the SDK's default bounds (..., 100, 250, 500 ms) a version 1.3x slower whose p99 crosses
 *     250 ms may read 300 ms but is certainly above 250 ms only.
 * Pure.
 */
import type { LatencyBuckets } from './observations.js'

/**
 * The lower bound (microseconds) of the bucket holding `us`, 0 for the first bucket; `us` itself
 * without a layout (spans: exact values), NaN for NaN. A reading is a representative (the bucket's
 * midpoint, a few per cent high when read back from the store's histograms), or a quantile
 * interpolated inside its bucket: either lies in its bucket's (lower, upper]. The overflow bucket's
 * representative is the last bound itself, and its floor that bound.
 */
export function latencyFloorUs(b: LatencyBuckets | undefined, us: number): number {
  if (b === undefined || !(us > 0)) return us
  if (b.kind === 'exponential') {
    // bucket i covers (base^i, base^(i+1)]: i = ceil(log_base(us)) - 1
    const perLog2 = Math.pow(2, b.scale)
    const i = Math.ceil(Math.log2(us / b.factor) * perLog2 - 1e-9) - 1
    return Math.pow(2, i / perLog2) * b.factor
  }
  const bounds = b.boundsUs
  const n = bounds.length
  if (n === 0) return us
  if (us >= (bounds[n - 1] as number)) return Math.max(0, bounds[n - 1] as number)
  // the largest bound below us
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((bounds[mid] as number) < us) lo = mid + 1
    else hi = mid
  }
  return lo === 0 ? 0 : Math.max(0, bounds[lo - 1] as number)
}

/**
 * Neighbouring representatives closer than this ratio are not interpolated between: the store's
 * histograms (1 significant digit: a value read up to 6.25 % high) cannot count them apart, and a
 * bucket that narrow is read within a few per cent of its bounds anyway.
 */
const MIN_INTERPOLATED_RATIO = 1.2

/**
 * The quantile `q` of `total` latencies that are bucket representatives of layout `b`, interpolated
 * inside the bucket holding it: `rep` is the histogram's own reading at `q` (a representative, read a
 * few per cent high), `countAbove(us)` the samples wholly above `us` (src/signals/view.ts
 * LatencyView). With `below` samples under the bucket and `inside` in it, the quantile's rank
 * q x total lies a share f = (rank - below) / inside of the bucket's samples into it. Where that
 * share lies in latency depends on the density inside the bucket, which the counts do not give:
 *   - explicit bounds (lo, hi] with lo > 0: the log-density is taken as a straight line in log
 *     latency whose slope is that between the neighbouring buckets' densities (their counts per
 *     unit of log latency, each + PSEUDO_COUNT; across both neighbours, or this bucket and the one
 *     neighbour the store tells apart), and f is placed by that density. A latency tail falls
 *     across the SDK's wide buckets (100, 250], (250, 500]: most of a bucket's requests crowd its
 *     lower end, which a linear reading places evenly, so a baseline p99 whose rank lies in the
 *     bucket reads high and a ratio of two p99s in one bucket reads compressed toward 1 (a 2x
 *     slower version read 1.33x: bench drawn run #2, `node dist/bench/false-rollbacks.js --runs
 *     1000 --errors 0.05 --slower 2`). Log-normal latencies of 5-400 ms median in the SDK's
 *     buckets read their p50 / p90 / p99 at most 1.16x off this way, linearly up to 1.69x, and
 *     nearer the truth in 95 of 105 readings (`node dist/bench/quantile-reading.js`).
 *   - the first explicit bucket (0, b0] and a bucket with no neighbour told apart: linearly, as
 *     Prometheus' classic `histogram_quantile` does;
 *   - exponential buckets: geometrically (their width is a constant ratio, and only those of scale 1
 *     or less are interpolated at all).
 * The bucket's samples are counted between the geometric means of its representative and its
 * neighbours'. The overflow bucket (above the last bound) has no upper bound: its reading stays the
 * last bound, as in `histogram_quantile`. `rep` unchanged when a neighbour's representative is too
 * close (MIN_INTERPOLATED_RATIO), for NaN or 0, and when the counts do not place the rank in the
 * bucket. `reading` 'upper': the higher of that and the linear reading `histogram_quantile` gives
 * (LatencyView.upperAtQuantile), from the same counts.
 */
export function interpolatedQuantileUs(b: LatencyBuckets, q: number, total: number, rep: number, countAbove: (us: number) => number, reading: 'density' | 'upper' = 'density'): number {
  if (!(rep > 0) || !(total > 0)) return rep
  const bucket = bucketOf(b, rep)
  if (bucket === undefined) return rep
  const { index, lo, hi, splitBelow, splitAbove } = bucket
  const aboveLo = splitBelow === undefined ? total : countAbove(splitBelow)
  const aboveHi = countAbove(splitAbove)
  const inside = aboveLo - aboveHi
  if (!(inside > 0)) return rep
  const at = (q * total - (total - aboveLo)) / inside
  const f = at < 0 ? 0 : at > 1 ? 1 : at
  if (b.kind === 'exponential') return lo * Math.pow(hi / lo, f)
  const linear = lo + f * (hi - lo)
  if (!(lo > 0)) return linear
  const k = logDensitySlope(b.boundsUs, index, inside, aboveLo, aboveHi, countAbove)
  if (k === undefined) return linear
  const density = withinBucket(lo, hi, f, k)
  return reading === 'upper' ? Math.max(density, linear) : density
}

/** Pseudo-count added to each bucket before its density is compared with a neighbour's: an empty neighbour is "less than one", not "none". */
const PSEUDO_COUNT = 0.5

/**
 * The slope of the log of the latency density (per unit of log latency) around bucket `i`, (bounds[i-1],
 * bounds[i]], holding `inside` samples (`aboveLo` above its lower split, `aboveHi` above its upper),
 * from its neighbours' counts: central across both when both are bounded and told apart by the
 * store (MIN_INTERPOLATED_RATIO), else one-sided. undefined when neither is.
 */
function logDensitySlope(bounds: readonly number[], i: number, inside: number, aboveLo: number, aboveHi: number, countAbove: (us: number) => number): number | undefined {
  const n = bounds.length
  if (i < 1 || i >= n) return undefined
  // bucket j is (bounds[j-1], bounds[j]]; usable when bounded above 0 (1 <= j < n, bounds[j-1] > 0: a
  // layout may start at 0, OpenTelemetry Java's older default did) and its reps are apart from both neighbours'
  const apart = (j: number) => j >= 1 && j < n && (bounds[j - 1] as number) > 0 && rep(bounds, j) / rep(bounds, j - 1) >= MIN_INTERPOLATED_RATIO && rep(bounds, j + 1) / rep(bounds, j) >= MIN_INTERPOLATED_RATIO
  const split = (j: number) => Math.sqrt(rep(bounds, j) * rep(bounds, j + 1)) // between bucket j and j + 1
  // the splits around bucket i were counted by the caller: only the outer splits are new
  const count = (j: number) => (j === i ? inside : j < i ? countAbove(split(j - 1)) - aboveLo : aboveHi - countAbove(split(j)))
  const logDensity = (j: number) => Math.log((count(j) + PSEUDO_COUNT) / Math.log((bounds[j] as number) / (bounds[j - 1] as number)))
  const centre = (j: number) => 0.5 * Math.log((bounds[j] as number) * (bounds[j - 1] as number))
  const a = apart(i - 1) ? i - 1 : i
  const z = apart(i + 1) ? i + 1 : i
  if (a === z) return undefined
  return (logDensity(z) - logDensity(a)) / (centre(z) - centre(a))
}

/** The point a share `f` of the way through (lo, hi] by count, the density in log latency proportional to exp(k log x) inside. */
function withinBucket(lo: number, hi: number, f: number, k: number): number {
  const w = Math.log(hi / lo)
  const kw = Math.max(-50, Math.min(50, k * w))
  if (Math.abs(kw) < 1e-9) return lo * Math.exp(f * w)
  const t = Math.log1p(f * Math.expm1(kw)) / kw
  return lo * Math.exp(t * w)
}

/**
 * The bounds (microseconds) of the bucket whose representative is nearest `us` (in ratio), and the
 * values that split its representative from its neighbours' (none below the first bucket), when it
 * can be interpolated: not the overflow bucket, and neither neighbour's representative closer than
 * MIN_INTERPOLATED_RATIO.
 */
function bucketOf(b: LatencyBuckets, us: number): { index: number; lo: number; hi: number; splitBelow: number | undefined; splitAbove: number } | undefined {
  if (b.kind === 'exponential') {
    const perLog2 = Math.pow(2, b.scale)
    const base = Math.pow(2, 1 / perLog2)
    if (base < MIN_INTERPOLATED_RATIO) return undefined
    // representatives at base^(i + 0.5): the nearest is i = round(log_base(us) - 0.5); the splits are the bounds
    const i = Math.round(Math.log2(us / b.factor) * perLog2 - 0.5)
    const lo = Math.pow(2, i / perLog2) * b.factor
    const hi = lo * base
    return { index: i, lo, hi, splitBelow: lo, splitAbove: hi }
  }
  const bounds = b.boundsUs
  const n = bounds.length
  if (n === 0) return undefined
  const i = nearestRep(bounds, us)
  if (i === n) return undefined
  const hi = bounds[i] as number
  if (!(hi > 0)) return undefined
  const r = rep(bounds, i)
  const up = rep(bounds, i + 1)
  if (up / r < MIN_INTERPOLATED_RATIO) return undefined
  if (i === 0) return { index: 0, lo: 0, hi, splitBelow: undefined, splitAbove: Math.sqrt(r * up) }
  const down = rep(bounds, i - 1)
  if (r / down < MIN_INTERPOLATED_RATIO) return undefined
  return { index: i, lo: Math.max(0, bounds[i - 1] as number), hi, splitBelow: Math.sqrt(r * down), splitAbove: Math.sqrt(r * up) }
}

/** Index of the bucket (0 .. n, n the overflow) whose representative is nearest `us` in ratio. */
function nearestRep(bounds: readonly number[], us: number): number {
  const n = bounds.length
  // representatives ascend with the bucket: first b0 / 2, then midpoints, the overflow at b[n-1]
  let lo = 0
  let hi = n + 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (rep(bounds, mid) < us) lo = mid + 1
    else hi = mid
  }
  // lo: the first bucket whose representative is >= us; its neighbour below may be nearer
  let i = lo
  if (i > 0 && (i === n + 1 || us / rep(bounds, i - 1) < rep(bounds, i) / us)) i--
  return Math.min(i, n)
}

function rep(bounds: readonly number[], i: number): number {
  const n = bounds.length
  if (i === 0) return Math.max(0, bounds[0] as number) / 2
  if (i === n) return bounds[n - 1] as number
  return ((bounds[i - 1] as number) + (bounds[i] as number)) / 2
}

/** Whether two layouts describe the same buckets (the same object, or equal bounds / scale and unit). */
export function sameLayout(a: LatencyBuckets, b: LatencyBuckets): boolean {
  if (a === b) return true
  if (a.kind === 'exponential') return b.kind === 'exponential' && a.scale === b.scale && a.factor === b.factor
  if (b.kind !== 'explicit') return false
  return a.boundsUs.length === b.boundsUs.length && a.boundsUs.every((x, i) => x === b.boundsUs[i])
}
