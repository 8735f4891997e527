/**
 * Theil-Sen estimator: the median of the slopes of all pairs of points. Robust to outliers (its
 * breakdown point is about 29 %: one wild reading among a few dozen does not move it), which is
 * why the resource signal uses it instead of least squares. O(n^2) in the number of readings; the
 * store bounds n (`resourceSamples`).
 *
 * `xs` and `ys` have the same length; pairs with equal x are skipped. Returns NaN when fewer than
 * two distinct x values exist. The slope is in y units per x unit.
 *
 * The median is found by selection (expected linear time) in a reused buffer, not by sorting a new
 * array: the resource rule and every baseline freeze run this for each pod, and a 10,000-deployment
 * tick cannot afford a sort per pod. Selection returns the same order statistics as a sort.
 */

/** Pairwise slopes (reused: the estimator never re-enters itself); grows to n(n-1)/2 of the largest n seen. */
let scratch = new Float64Array(256)

export function theilSenSlope(xs: ArrayLike<number>, ys: ArrayLike<number>, n = xs.length): number {
  if (n < 2) return NaN
  const pairs = (n * (n - 1)) / 2
  if (scratch.length < pairs) scratch = new Float64Array(Math.max(pairs, 2 * scratch.length))
  const slopes = scratch
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
  const mid = k >> 1
  const hi = select(slopes, k, mid)
  if (k % 2 === 1) return hi
  // after selection every element left of `mid` is <= slopes[mid]: the lower middle is their maximum
  let lo = slopes[0] as number
  for (let i = 1; i < mid; i++) if ((slopes[i] as number) > lo) lo = slopes[i] as number
  return (lo + hi) / 2
}

/**
 * The k-th smallest of a[0..n) (Hoare's selection with a median-of-three pivot), leaving a[0..k)
 * <= a[k] <= a[k+1..n). Values are finite (slopes of finite readings with distinct x).
 */
function select(a: Float64Array, n: number, k: number): number {
  let left = 0
  let right = n - 1
  while (right > left) {
    const m = (left + right) >>> 1
    // median of three as the pivot, moved to a[m]
    if ((a[left] as number) > (a[m] as number)) swap(a, left, m)
    if ((a[left] as number) > (a[right] as number)) swap(a, left, right)
    if ((a[m] as number) > (a[right] as number)) swap(a, m, right)
    const pivot = a[m] as number
    let i = left
    let j = right
    while (i <= j) {
      while ((a[i] as number) < pivot) i++
      while ((a[j] as number) > pivot) j--
      if (i <= j) {
        swap(a, i, j)
        i++
        j--
      }
    }
    if (k <= j) right = j
    else if (k >= i) left = i
    else break
  }
  return a[k] as number
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i] as number
  a[i] = a[j] as number
  a[j] = t
}
