import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { interpolatedQuantileUs, latencyFloorUs } from '../../src/normalize/buckets.js'
import { SignalStore } from '../../src/signals/store.js'
import { expectPrometheusReading, expectSameBucket, histogramQuantileAt, normalizedPoint, storeQuantile } from '../support/histogram-quantile.js'
import { lognormalCounts, readingAccuracy, slowerRatio } from '../../bench/quantile-reading.js'

const T = 1_700_000_000_000
const SDK_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

// ascending, distinct, positive bounds (seconds), 1-20 of them
const boundsArb = fc
  .uniqueArray(fc.double({ min: 1e-4, max: 100, noNaN: true }), { minLength: 1, maxLength: 20 })
  .map((xs) => [...xs].sort((a, b) => a - b))
  .filter((xs) => xs.every((x, i) => i === 0 || x / (xs[i - 1] as number) > 1.0001))

// bounds at least 1.3x apart (interpolated buckets: buckets.ts MIN_INTERPOLATED_RATIO), 2-12 of them,
// all under 30 s (the store's histograms track up to 60 s)
const wideBoundsArb = fc
  .array(fc.double({ min: 1.3, max: 4, noNaN: true }), { minLength: 1, maxLength: 11 })
  .chain((ratios) => fc.double({ min: 1e-3, max: 1, noNaN: true }).map((b0) => ratios.reduce<number[]>((xs, r) => [...xs, (xs[xs.length - 1] as number) * r], [b0])))
  .filter((xs) => (xs[xs.length - 1] as number) <= 30)

describe('a metric quantile is interpolated inside its bucket, by the density its neighbours show', () => {
  /** each of 300 random histograms (wide bounds, 0-40 per bucket) at p50, p90, p99: pullback's reading, Prometheus' and its bucket */
  const eachReading = (check: (r: { bounds: number[]; counts: number[]; q: number; got: number; want: number; bucket: number }) => void) =>
    fc.assert(
      fc.property(wideBoundsArb, fc.array(fc.nat(40), { minLength: 13, maxLength: 13 }), fc.constantFrom(0.5, 0.9, 0.99), (bounds, raw, q) => {
        const counts = raw.slice(0, bounds.length + 1)
        fc.pre(counts.some((c) => c > 0))
        const { value: want, bucket } = histogramQuantileAt(q, bounds, counts)
        check({ bounds, counts, q, got: storeQuantile(bounds, counts, q), want, bucket })
      }),
      { numRuns: 300 },
    )

  it("lies in the bucket Prometheus' histogram_quantile places the rank in; equals it in the first bucket (no lower bound to take a log of)", () => {
    eachReading(({ bounds, got, want, bucket }) => {
      if (bucket === 0) expectPrometheusReading(got, want, bucket, bounds)
      else expectSameBucket(got, bucket, bounds)
    })
  })

  it("upperAtQuantile is the higher of that reading and Prometheus' histogram_quantile (exact where the store interpolates)", () => {
    eachReading(({ bounds, counts, q, got, want, bucket }) => {
      const upper = storeQuantile(bounds, counts, q, 'upper')
      expect(upper).toBeGreaterThanOrEqual(got)
      if (bucket < bounds.length - 1) expect(Math.abs(upper - Math.max(got, want)) / upper).toBeLessThanOrEqual(1e-9)
    })
  })

  it('is monotone in q within a bucket: a higher quantile never reads lower', () => {
    fc.assert(
      fc.property(wideBoundsArb, fc.array(fc.nat(40), { minLength: 13, maxLength: 13 }), fc.double({ min: 0.05, max: 0.94, noNaN: true }), (bounds, raw, q) => {
        const counts = raw.slice(0, bounds.length + 1)
        fc.pre(counts.some((c) => c > 0))
        expect(storeQuantile(bounds, counts, q + 0.05)).toBeGreaterThanOrEqual(storeQuantile(bounds, counts, q) * (1 - 1e-9))
      }),
      { numRuns: 200 },
    )
  })

  it('log-normal latencies in the SDK\'s default buckets: p50 / p90 / p99 nearer their true value than histogram_quantile in 95 of 105, 1.16x off at worst (linear: 1.69x)', () => {
    // `node dist/bench/quantile-reading.js` prints the same figures
    const a = readingAccuracy()
    expect(a.readings).toBeGreaterThan(80)
    expect(a.nearer / a.readings).toBeGreaterThan(0.88)
    expect(a.worst).toBeLessThan(1.2)
    expect(a.worstLinear).toBeGreaterThan(1.65)
  })

  it('the SDK\'s default bounds: a 2x slower p99 inside (100, 250] ms reads 2.06x (linearly 1.47x), a 1.3x slower one 1.29x; the baseline p99 111 ms reads 110 ms (linearly 168 ms)', () => {
    // bench/false-rollbacks.ts drawn run #2: median 39 ms, log sigma 0.45; both p99s in (100, 250] ms
    const base = lognormalCounts(0.039, 0.45, 100_000)
    const truth = 0.039 * Math.exp(0.45 * 2.3263479)
    expect(Math.abs(storeQuantile(SDK_BOUNDS_S, base, 0.99) / truth - 1)).toBeLessThan(0.03)
    expect(histogramQuantileAt(0.99, SDK_BOUNDS_S, base).value / truth).toBeGreaterThan(1.45)
    const slow = lognormalCounts(0.078, 0.45, 100_000)
    expect(latencyFloorUs({ kind: 'explicit', boundsUs: SDK_BOUNDS_S.map((x) => x * 1e6) }, storeQuantile(SDK_BOUNDS_S, slow, 0.99) * 1e6)).toBe(100_000)
    const r2 = slowerRatio(2)
    expect(r2.pullback).toBeGreaterThan(1.8)
    expect(r2.prometheus).toBeLessThan(1.5)
    const r13 = slowerRatio(1.3)
    expect(r13.pullback).toBeGreaterThan(1.2)
    expect(r13.pullback).toBeLessThan(1.45)
  })

  it('a layout starting at 0 (OpenTelemetry Java\'s older default bounds, milliseconds) reads every quantile inside its bucket; (0, 5] lends no slope', () => {
    const bounds = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000].map((x) => x / 1000)
    fc.assert(
      fc.property(fc.array(fc.nat(40), { minLength: 16, maxLength: 16 }), fc.constantFrom(0.5, 0.9, 0.99), (counts, q) => {
        fc.pre(counts.some((c) => c > 0))
        const { bucket } = histogramQuantileAt(q, bounds, counts)
        const got = storeQuantile(bounds, counts, q)
        expect(Number.isNaN(got)).toBe(false)
        if (bucket > 0) expectSameBucket(got, bucket, bounds)
      }),
      { numRuns: 300 },
    )
    // (0, 5] has no width in log latency: (5, 10]'s slope comes from (10, 25], where the density falls
    const falling = [0, 100, 100, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    expect(storeQuantile(bounds, falling, 105 / 210) * 1000).toBeLessThan(5.5)
  })

  it('a bucket whose neighbours are not told apart by the store, or empty on both sides, is still read inside it', () => {
    // a lone bucket: 100 requests in (0.1, 0.25] s, nothing around it
    const counts = new Array<number>(SDK_BOUNDS_S.length + 1).fill(0)
    counts[6] = 100
    const got = storeQuantile(SDK_BOUNDS_S, counts, 0.5)
    expect(got).toBeGreaterThan(0.1)
    expect(got).toBeLessThanOrEqual(0.25)
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
