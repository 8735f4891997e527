import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { interpolatedQuantileUs, latencyFloorUs } from '../../src/normalize/buckets.js'
import { SignalStore } from '../../src/signals/store.js'
import { expectPrometheusReading, histogramQuantileAt, normalizedPoint, storeQuantile } from '../support/histogram-quantile.js'

const T = 1_700_000_000_000
const SDK_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

// ascending, distinct, positive bounds (seconds), 1-20 of them
const boundsArb = fc
  .uniqueArray(fc.double({ min: 1e-4, max: 100, noNaN: true }), { minLength: 1, maxLength: 20 })
  .map((xs) => [...xs].sort((a, b) => a - b))
  .filter((xs) => xs.every((x, i) => i === 0 || x / (xs[i - 1] as number) > 1.0001))

const histogramQuantile = (q: number, bounds: number[], counts: number[]): number => histogramQuantileAt(q, bounds, counts).value

// bounds at least 1.3x apart (interpolated buckets: buckets.ts MIN_INTERPOLATED_RATIO), 2-12 of them,
// all under 30 s (the store's histograms track up to 60 s)
const wideBoundsArb = fc
  .array(fc.double({ min: 1.3, max: 4, noNaN: true }), { minLength: 1, maxLength: 11 })
  .chain((ratios) => fc.double({ min: 1e-3, max: 1, noNaN: true }).map((b0) => ratios.reduce<number[]>((xs, r) => [...xs, (xs[xs.length - 1] as number) * r], [b0])))
  .filter((xs) => (xs[xs.length - 1] as number) <= 30)

describe('a metric quantile is interpolated inside its bucket, as histogram_quantile does', () => {
  it('equals Prometheus\' classic histogram_quantile over the same buckets (the last two within the store\'s precision)', () => {
    fc.assert(
      fc.property(wideBoundsArb, fc.array(fc.nat(40), { minLength: 13, maxLength: 13 }), fc.constantFrom(0.5, 0.9, 0.99), (bounds, raw, q) => {
        const counts = raw.slice(0, bounds.length + 1)
        fc.pre(counts.some((c) => c > 0))
        const { value: want, bucket } = histogramQuantileAt(q, bounds, counts)
        expectPrometheusReading(storeQuantile(bounds, counts, q), want, bucket, bounds)
      }),
      { numRuns: 300 },
    )
  })

  it('the SDK\'s default bounds: a slower p99 inside (100, 250] ms moves with it (read at the midpoint, both were 175 ms)', () => {
    // 1,000 requests: the baseline with 30 in (100, 250] ms, the version with 80 there and 5 above
    const base = [0, 0, 100, 300, 300, 270, 30, 0, 0, 0, 0, 0, 0, 0, 0]
    const slow = [0, 0, 20, 100, 300, 495, 80, 5, 0, 0, 0, 0, 0, 0, 0]
    const b = storeQuantile(SDK_BOUNDS_S, base, 0.99) * 1000
    const v = storeQuantile(SDK_BOUNDS_S, slow, 0.99) * 1000
    expect(b).toBeCloseTo(histogramQuantile(0.99, SDK_BOUNDS_S, base) * 1000, 6)
    expect(b).toBeCloseTo(100 + 150 * ((990 - 970) / 30), 6)
    expect(v).toBeCloseTo(100 + 150 * ((990 - 915) / 80), 6)
    expect(latencyFloorUs({ kind: 'explicit', boundsUs: SDK_BOUNDS_S.map((x) => x * 1e6) }, v * 1000)).toBe(100_000)
  })

  it('exponential buckets wide enough (scale <= 1) are interpolated geometrically; finer ones keep the representative', () => {
    // scale 0: buckets (2^i, 2^(i+1)] ms; 100 samples, 50 at the representative of (4, 8] ms, 50 at that of (8, 16]
    const reps = [Math.SQRT2 * 4000, Math.SQRT2 * 8000]
    const above = (us: number) => reps.filter((r) => r > us).length * 50
    const layout = { kind: 'exponential' as const, scale: 0, factor: 1000 }
    expect(interpolatedQuantileUs(layout, 0.9, 100, reps[1] as number, above)).toBeCloseTo(8000 * Math.pow(2, 0.8), 6)
    expect(interpolatedQuantileUs(layout, 0.25, 100, reps[0] as number, above)).toBeCloseTo(4000 * Math.pow(2, 0.5), 6)
    const fine = { kind: 'exponential' as const, scale: 3, factor: 1000 }
    expect(interpolatedQuantileUs(fine, 0.9, 100, 12_345, above)).toBe(12_345)
  })
})

describe('latencyFloorUs: from a reading back to its bucket', () => {
  it('every representative the normalizer emits maps to its own bucket\'s lower bound (first bucket: 0)', () => {
    fc.assert(
      fc.property(boundsArb, (bounds) => {
        const counts = new Array<number>(bounds.length + 1).fill(1)
        const o = normalizedPoint(bounds, counts)
        expect(o.latencyBuckets?.kind).toBe('explicit')
        o.latenciesUs.forEach((us, i) => {
          const want = i === 0 ? 0 : (bounds[i - 1] as number) * 1e6
          expect(latencyFloorUs(o.latencyBuckets, us)).toBeCloseTo(want, 3)
        })
      }),
    )
  })

  it('a p99 read back from the signal store (its histograms read up to a few per cent high) still finds its bucket', () => {
    // the SDK's default bounds: the store's reading of each representative maps to the right floor
    for (let i = 0; i <= SDK_BOUNDS_S.length; i++) {
      const counts = new Array<number>(SDK_BOUNDS_S.length + 1).fill(0)
      counts[i] = 100
      const o = normalizedPoint(SDK_BOUNDS_S, counts)
      const store = new SignalStore({})
      store.record(o)
      const w = store.window(o.key, T - 120_000, T + 10_000)
      const p99 = w.latency.valueAtQuantile(0.99)
      expect(p99).toBeGreaterThanOrEqual(o.latenciesUs[0] as number)
      expect(store.coverage(o.key)?.latencyBuckets).toBe(o.latencyBuckets)
      expect(latencyFloorUs(o.latencyBuckets, p99)).toBe(i === 0 ? 0 : (SDK_BOUNDS_S[i - 1] as number) * 1e6)
    }
  })

  it('an interpolated reading anywhere in (lower, upper] maps to the lower bound', () => {
    const layout = { kind: 'explicit' as const, boundsUs: SDK_BOUNDS_S.map((x) => x * 1e6) }
    expect(latencyFloorUs(layout, 100_001)).toBe(100_000)
    expect(latencyFloorUs(layout, 249_999)).toBe(100_000)
    expect(latencyFloorUs(layout, 250_000)).toBe(100_000)
    expect(latencyFloorUs(layout, 4_900)).toBe(0)
    expect(latencyFloorUs(layout, 10_000_000)).toBe(10_000_000) // the overflow bucket's representative
  })

  it('exponential buckets: the geometric midpoint of (base^i, base^(i+1)] maps to base^i', () => {
    fc.assert(
      fc.property(fc.integer({ min: -2, max: 8 }), fc.integer({ min: -50, max: 200 }), (scale, i) => {
        const base = Math.pow(2, Math.pow(2, -scale))
        const rep = Math.pow(base, i + 0.5) * 1000
        expect(latencyFloorUs({ kind: 'exponential', scale, factor: 1000 }, rep) / (Math.pow(base, i) * 1000)).toBeCloseTo(1, 9)
      }),
    )
  })

  it('no layout (spans, a point without bounds): the reading itself', () => {
    expect(latencyFloorUs(undefined, 123_456)).toBe(123_456)
    expect(latencyFloorUs({ kind: 'explicit', boundsUs: [] }, 5)).toBe(5)
    expect(latencyFloorUs({ kind: 'explicit', boundsUs: [100] }, Number.NaN)).toBeNaN()
  })
})
