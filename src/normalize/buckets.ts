/**
 * From a latency reading back to the histogram bucket it stands for. The normalizer turns a
 * metric's bucket counts into one representative value per bucket (normalizer.ts emitExplicit,
 * emitExp; the table in this folder's README); a quantile read from those values is a
 * representative, so the requests behind it lie anywhere in its bucket. `latencyFloorUs` answers
 * the lowest latency the reading certainly exceeds: the bound below the bucket. A rule that lets a
 * metric's latency decide on its own compares that floor, not the representative: with the SDK's
 * default bounds (..., 100, 250, 500 ms) a version 1.3x slower whose p99 crosses 250 ms reads
 * 375 ms (the midpoint) but is only certainly above 250 ms. Pure.
 */
import type { LatencyBuckets } from './observations.js'

/**
 * The lower bound (microseconds) of the bucket whose representative is nearest `us` (in ratio: the
 * store's histograms read a value up to one of their own buckets, a few per cent, above it), 0 for
 * the first bucket; `us` itself without a layout (spans: exact values), NaN for NaN.
 */
export function latencyFloorUs(b: LatencyBuckets | undefined, us: number): number {
  if (b === undefined || !(us > 0)) return us
  if (b.kind === 'exponential') {
    // bucket i covers (base^i, base^(i+1)], represented at base^(i+0.5): the nearest is i = round(log_base(us) - 0.5)
    const perLog2 = Math.pow(2, b.scale)
    const i = Math.round(Math.log2(us / b.factor) * perLog2 - 0.5)
    return Math.pow(2, i / perLog2) * b.factor
  }
  const bounds = b.boundsUs
  const n = bounds.length
  if (n === 0) return us
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
  return i === 0 ? 0 : Math.max(0, bounds[i - 1] as number)
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
