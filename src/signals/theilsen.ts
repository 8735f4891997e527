/**
 * Theil-Sen estimator: the median of the slopes of all pairs of points. Robust to outliers (its
 * breakdown point is about 29 %: one wild reading among a few dozen does not move it), which is
 * why the resource signal uses it instead of least squares. O(n^2) in the number of readings; the
 * store bounds n (`resourceSamples`).
 *
 * `xs` and `ys` have the same length; pairs with equal x are skipped. Returns NaN when fewer than
 * two distinct x values exist. The slope is in y units per x unit.
 */
export function theilSenSlope(xs: ArrayLike<number>, ys: ArrayLike<number>, n = xs.length): number {
  if (n < 2) return NaN
  const slopes = new Float64Array((n * (n - 1)) / 2)
  let k = 0
  for (let i = 0; i < n; i++) {
    const xi = xs[i] as number
    const yi = ys[i] as number
    for (let j = i + 1; j < n; j++) {
      const dx = (xs[j] as number) - xi
      if (dx === 0) continue
      slopes[k++] = ((ys[j] as number) - yi) / dx
    }
  }
  if (k === 0) return NaN
  const s = slopes.subarray(0, k).sort()
  const mid = k >> 1
  return k % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}
