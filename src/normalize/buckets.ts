/**
 * From a latency reading back to the histogram bucket it stands for. The normalizer turns a
 * metric's bucket counts into one representative value per bucket (normalizer.ts emitExplicit,
 * emitExp; the table in this folder's README). Two questions about such values are answered here:
 *
 *   - `interpolatedQuantileUs`: where in its bucket a quantile lies, by the counts below and in the
 *     bucket, linearly as Prometheus' `histogram_quantile` does (log-linearly for exponential
 *     buckets). The store's windows read a metric's quantiles this way (src/signals/store.ts), so a
 *     2x slower p99 that stays inside the SDK's (100, 250] ms bucket still moves, and the number is
 *     the one the user's Grafana panel shows for the same histogram.
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
 * q x total lies at (rank - below) / inside of the way through the bucket: linearly from its lower
 * to its upper bound (explicit; the first bucket from 0), geometrically for exponential buckets.
 * The bucket's samples are counted between the geometric means of its representative and its
 * neighbours'. The overflow bucket (above the last bound) has no upper bound: its reading stays the
 * last bound, as in `histogram_quantile`. `rep` unchanged when a neighbour's representative is too
 * close (MIN_INTERPOLATED_RATIO), for NaN or 0, and when the counts do not place the rank in the
 * bucket.
 */
export function interpolatedQuantileUs(b: LatencyBuckets, q: number, total: number, rep: number, countAbove: (us: number) => number): number {
  if (!(rep > 0) || !(total > 0)) return rep
  const bucket = bucketOf(b, rep)
  if (bucket === undefined) return rep
  const { lo, hi, splitBelow, splitAbove } = bucket
  const aboveLo = splitBelow === undefined ? total : countAbove(splitBelow)
  const inside = aboveLo - countAbove(splitAbove)
  if (!(inside > 0)) return rep
  const at = (q * total - (total - aboveLo)) / inside
  const f = at < 0 ? 0 : at > 1 ? 1 : at
  return b.kind === 'exponential' ? lo * Math.pow(hi / lo, f) : lo + f * (hi - lo)
}

/**
 * The bounds (microseconds) of the bucket whose representative is nearest `us` (in ratio), and the
 * values that split its representative from its neighbours' (none below the first bucket), when it
 * can be interpolated: not the overflow bucket, and neither neighbour's representative closer than
 * MIN_INTERPOLATED_RATIO.
 */
function bucketOf(b: LatencyBuckets, us: number): { lo: number; hi: number; splitBelow: number | undefined; splitAbove: number } | undefined {
  if (b.kind === 'exponential') {
    const perLog2 = Math.pow(2, b.scale)
    const base = Math.pow(2, 1 / perLog2)
    if (base < MIN_INTERPOLATED_RATIO) return undefined
    // representatives at base^(i + 0.5): the nearest is i = round(log_base(us) - 0.5); the splits are the bounds
    const i = Math.round(Math.log2(us / b.factor) * perLog2 - 0.5)
    const lo = Math.pow(2, i / perLog2) * b.factor
    const hi = lo * base
    return { lo, hi, splitBelow: lo, splitAbove: hi }
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
  if (i === 0) return { lo: 0, hi, splitBelow: undefined, splitAbove: Math.sqrt(r * up) }
  const down = rep(bounds, i - 1)
  if (r / down < MIN_INTERPOLATED_RATIO) return undefined
  return { lo: Math.max(0, bounds[i - 1] as number), hi, splitBelow: Math.sqrt(r * down), splitAbove: Math.sqrt(r * up) }
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
