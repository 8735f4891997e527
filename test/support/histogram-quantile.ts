/**
 * A metric's quantile as pullback reads it and as Prometheus' classic `histogram_quantile` reads it,
 * for the tests that compare the two (test/normalize/buckets.property.test.ts against the documented
 * algorithm, test/interop/histogram-quantile.test.ts against a real Prometheus).
 */
import { expect } from 'vitest'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { Observation, RequestObservation } from '../../src/normalize/observations.js'
import type { DecodedMetric, HistogramPoint } from '../../src/receivers/otlp/model.js'
import { SignalStore } from '../../src/signals/store.js'

const T = 1_700_000_000_000
const RES = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'cart-abc' }

/** The normalizer's request observation for one delta `http.server.request.duration` point ending at T. */
export function normalizedPoint(bounds: number[], bucketCounts: number[], unit = 's'): RequestObservation {
  const out: Observation[] = []
  const n = new Normalizer({}, { record: (o: Observation) => out.push(o) })
  const p: HistogramPoint = { startTimeMs: T - 60_000, timeMs: T, count: bucketCounts.reduce((a, b) => a + b, 0), sum: undefined, bounds, bucketCounts, attributes: {} }
  const m: DecodedMetric = { name: 'http.server.request.duration', unit, type: 'histogram', temporality: 1, points: [p] }
  n.metrics({ resourceMetrics: [{ resource: RES, metrics: [m] }] })
  return out[0] as RequestObservation
}

/**
 * pullback's reading at q of one delta point through the normalizer and the signal store, in the
 * point's unit (seconds); 'upper': LatencyView.upperAtQuantile
 */
export function storeQuantile(bounds: number[], counts: number[], q: number, reading: 'estimate' | 'upper' = 'estimate'): number {
  const o = normalizedPoint(bounds, counts)
  const store = new SignalStore({})
  store.record(o)
  const l = store.window(o.key, T - 120_000, T + 10_000).latency
  return (reading === 'upper' ? l.upperAtQuantile(q) : l.valueAtQuantile(q)) / 1e6
}

/**
 * Prometheus' classic `histogram_quantile` over one histogram (bounds ascending, counts per bucket,
 * the last one above the last bound), as its documentation states it: the rank q x count, the first
 * bucket whose cumulative count reaches it, linear interpolation from the bucket's lower bound (0 for
 * the first bucket) to its upper; a rank in the +Inf bucket answers the last finite bound. Also the
 * index of the bucket holding the rank (bounds.length: the +Inf bucket).
 */
export function histogramQuantileAt(q: number, bounds: number[], counts: number[]): { value: number; bucket: number } {
  const total = counts.reduce((a, b) => a + b, 0)
  const rank = q * total
  let cum = 0
  for (let i = 0; i < counts.length; i++) {
    const below = cum
    cum += counts[i] as number
    if (cum >= rank && (counts[i] as number) > 0) {
      if (i === bounds.length) return { value: bounds[bounds.length - 1] as number, bucket: i }
      const lo = i === 0 ? 0 : (bounds[i - 1] as number)
      return { value: lo + ((bounds[i] as number) - lo) * ((rank - below) / (counts[i] as number)), bucket: i }
    }
  }
  return { value: Number.NaN, bucket: -1 }
}

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
