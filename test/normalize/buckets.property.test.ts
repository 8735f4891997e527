import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { latencyFloorUs } from '../../src/normalize/buckets.js'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { Observation, RequestObservation } from '../../src/normalize/observations.js'
import type { DecodedMetric, HistogramPoint } from '../../src/receivers/otlp/model.js'
import { SignalStore } from '../../src/signals/store.js'

const T = 1_700_000_000_000
const SDK_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const RES = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'cart-abc' }

/** The normalizer's request observations for one delta histogram point. */
function normalized(bounds: number[], bucketCounts: number[], unit = 's'): RequestObservation {
  const out: Observation[] = []
  const n = new Normalizer({}, { record: (o: Observation) => out.push(o) })
  const p: HistogramPoint = { startTimeMs: T - 60_000, timeMs: T, count: bucketCounts.reduce((a, b) => a + b, 0), sum: undefined, bounds, bucketCounts, attributes: {} }
  const m: DecodedMetric = { name: 'http.server.request.duration', unit, type: 'histogram', temporality: 1, points: [p] }
  n.metrics({ resourceMetrics: [{ resource: RES, metrics: [m] }] })
  return out[0] as RequestObservation
}

// ascending, distinct, positive bounds (seconds), 1-20 of them
const boundsArb = fc
  .uniqueArray(fc.double({ min: 1e-4, max: 100, noNaN: true }), { minLength: 1, maxLength: 20 })
  .map((xs) => [...xs].sort((a, b) => a - b))
  .filter((xs) => xs.every((x, i) => i === 0 || x / (xs[i - 1] as number) > 1.0001))

describe('latencyFloorUs: from a representative back to its bucket', () => {
  it('every representative the normalizer emits maps to its own bucket\'s lower bound (first bucket: 0)', () => {
    fc.assert(
      fc.property(boundsArb, (bounds) => {
        const counts = new Array<number>(bounds.length + 1).fill(1)
        const o = normalized(bounds, counts)
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
      const o = normalized(SDK_BOUNDS_S, counts)
      const store = new SignalStore({})
      store.record(o)
      const w = store.window(o.key, T - 120_000, T + 10_000)
      const p99 = w.latency.valueAtQuantile(0.99)
      expect(p99).toBeGreaterThanOrEqual(o.latenciesUs[0] as number)
      expect(store.coverage(o.key)?.latencyBuckets).toBe(o.latencyBuckets)
      expect(latencyFloorUs(o.latencyBuckets, p99)).toBe(i === 0 ? 0 : (SDK_BOUNDS_S[i - 1] as number) * 1e6)
    }
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
