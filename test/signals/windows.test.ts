import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as hdr from 'hdr-histogram-js'
import { SignalStore } from '../../src/signals/store.js'
import type { SeriesKey } from '../../src/normalize/observations.js'
import type { WindowStats } from '../../src/signals/view.js'

const K: SeriesKey = { namespace: 'n', service: 's', version: 'v1' }
const T0 = 1_700_000_040_000 // minute aligned
const stores: SignalStore[] = []
function mk(cfg: Record<string, unknown> = {}): SignalStore {
  const s = new SignalStore(cfg)
  stores.push(s)
  return s
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

function brute(values: number[], q: number, digits: number): number {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: digits as 1, autoResize: false, useWebAssembly: false })
  for (const v of values) h.recordValue(v)
  return h.getValueAtPercentile(q * 100)
}

describe('window quantiles', () => {
  it('equal a brute-force HDR quantile of the samples in the buckets answered (coarse, mixed and fine ranges)', () => {
    for (const digits of [1, 2]) {
      const s = mk({ histogram: { significantDigits: digits } })
      const samples: { t: number; v: number }[] = []
      let seed = 11 + digits
      const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
      for (let i = 0; i < 6000; i++) {
        const t = T0 + Math.floor(rnd() * 8 * 60_000)
        const v = Math.floor(Math.exp(rnd() * 15))
        samples.push({ t, v })
      }
      samples.sort((a, b) => a.t - b.t)
      for (const x of samples) s.series(K).recordRequest(x.t, x.v, false)
      const ranges: [number, number][] = [
        [0, 5 * 60_000],
        [2 * 60_000, 8 * 60_000],
        [7 * 60_000, 7 * 60_000 + 30_000],
        [7 * 60_000 + 25_000, 7 * 60_000 + 55_000],
        [0, 8 * 60_000],
      ]
      for (const [f, t] of ranges) {
        const w = s.window(K, T0 + f, T0 + t)
        const inBuckets = samples.filter((x) => w.buckets.some((b) => x.t >= b.startMs && x.t < b.endMs)).map((x) => x.v)
        expect(w.latency.count).toBe(inBuckets.length)
        expect(inBuckets.length).toBeGreaterThan(100)
        for (const q of [0, 0.01, 0.5, 0.9, 0.99, 0.999, 1]) expect(w.latency.valueAtQuantile(q)).toBe(brute(inBuckets, q, digits))
        for (const b of w.buckets) {
          const vs = samples.filter((x) => x.t >= b.startMs && x.t < b.endMs).map((x) => x.v)
          expect(b.latencyAtQuantile(0.99)).toBe(vs.length > 0 ? brute(vs, 0.99, digits) : NaN)
        }
      }
    }
  })

  it('a view asked later (after more data, head moves, folds) answers like a fresh window of its range', () => {
    const cfgs = [{}, { bucket: '1s', fineRetention: '4s', coarseBucket: '2s', retention: '20s' }]
    fc.assert(
      fc.property(
        fc.nat(cfgs.length - 1),
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('rec' as const), dt: fc.nat(4000), back: fc.nat(40_000), lat: fc.integer({ min: 0, max: 2_000_000 }) }),
            fc.record({ op: fc.constant('ask' as const), back: fc.nat(60_000), len: fc.integer({ min: 1, max: 24 }) }),
          ),
          { maxLength: 120 },
        ),
        (ci, ops) => {
          const s = mk(cfgs[ci])
          const bw = s.bucketMs
          let now = T0
          const views: WindowStats[] = []
          for (const o of ops) {
            if (o.op === 'rec') {
              now += o.dt
              s.series(K).recordRequest(o.back % 3 === 0 ? now - o.back : now, o.lat, false)
            } else {
              const end = Math.floor((now - o.back) / bw) * bw
              views.push(s.window(K, end - o.len * bw, end))
            }
          }
          for (const v of views) {
            const fresh = s.window(K, v.fromMs, v.toMs)
            if (v.latency.count === 0 || fresh.latency.count === 0) continue
            for (const q of [0.5, 0.99]) expect(v.latency.valueAtQuantile(q)).toBe(fresh.latency.valueAtQuantile(q))
          }
          s.shutdown()
        },
      ),
      { numRuns: 200 },
    )
  })
})
