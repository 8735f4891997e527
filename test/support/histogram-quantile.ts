/**
 * A metric's quantile as pullback reads it and as Prometheus' classic `histogram_quantile` reads it,
 * for the tests that compare the two (test/normalize/buckets.property.test.ts against the documented
 * algorithm, test/interop/histogram-quantile.test.ts against a real Prometheus).
 */
import { expect } from 'vitest'

// the readings themselves live beside the bench that prints their accuracy
export { histogramQuantileAt, normalizedPoint, storeQuantile } from '../../bench/quantile-reading.js'

/**
 * pullback's reading `got` against Prometheus' `want` for a rank in `bucket`: equal (1e-9) wherever
 * the store interpolates; in the overflow bucket it reads its representative (the last bound), and in
 * the last finite bucket too when that representative is less than 1.2x from the overflow's
 * (src/normalize/buckets.ts), each through the store's histograms: in the bucket, read +-6.25 %.
 * Returns whether the comparison was exact.
 */
export function expectPrometheusReading(got: number, want: number, bucket: number, bounds: number[], label = ''): boolean {
  if (bucket < bounds.length - 1) {
    expect(Math.abs(got - want) / want, `${label} pullback ${got}, Prometheus ${want}`).toBeLessThanOrEqual(1e-9)
    return true
  }
  const lo = bucket === bounds.length ? (bounds[bounds.length - 1] as number) : bucket === 0 ? 0 : (bounds[bucket - 1] as number)
  const hi = bounds[Math.min(bucket, bounds.length - 1)] as number
  expect(got, label).toBeGreaterThanOrEqual(lo * 0.93)
  expect(got, label).toBeLessThanOrEqual(hi * 1.07)
  return false
}

/**
 * pullback's reading `got` of a rank that Prometheus places in `bucket`: inside that bucket (its lower
 * bound excluded, 0 for the first), or for the last finite and the overflow bucket, read through the
 * store's histograms as a representative: within +-7 % of the bucket's bounds.
 */
export function expectSameBucket(got: number, bucket: number, bounds: number[], label = ''): void {
  if (bucket >= bounds.length - 1) {
    expectPrometheusReading(got, Number.NaN, bucket, bounds, label)
    return
  }
  const lo = bucket === 0 ? 0 : (bounds[bucket - 1] as number)
  const hi = bounds[bucket] as number
  expect(got, `${label} pullback ${got} outside (${lo}, ${hi}]`).toBeGreaterThan(lo * (1 - 1e-9))
  expect(got, `${label} pullback ${got} outside (${lo}, ${hi}]`).toBeLessThanOrEqual(hi * (1 + 1e-9))
}
