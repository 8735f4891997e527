/**
 * Aggregates spread over the interval they cover (issue 10), `coverage()` and `countAbove()`.
 */
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SignalStore } from '../../src/signals/store.js'
import { HdrLayout } from '../../src/signals/hdr.js'
import type { SignalsConfigInput } from '../../src/signals/config.js'
import type { Observation, RequestObservation, SeriesKey } from '../../src/normalize/observations.js'

const T0 = 1_767_225_600_000 // minute aligned
const K: SeriesKey = { namespace: 'n', service: 's', version: 'v1' }
const stores: SignalStore[] = []
function mk(cfg: SignalsConfigInput = {}): SignalStore {
  const s = new SignalStore(cfg)
  stores.push(s)
  return s
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

function point(t: number, start: number | undefined, count: number, errors: number, lats: number[], counts: number[]): RequestObservation {
  const o: RequestObservation = { kind: 'request', key: K, timeMs: t, count, errors, latenciesUs: lats, latencyCounts: counts }
  if (start !== undefined) o.startMs = start
  return o
}

describe('spreading an aggregate over (startMs, timeMs]', () => {
  it('a 60 s delta fills the twelve 5 s buckets it covers, exact integer totals', () => {
    const s = mk()
    s.record(point(T0 + 60_000, T0, 120, 12, [1_000, 50_000], [100, 20]))
    const w = s.window(K, T0 - 5_000, T0 + 65_000)
    expect(w.buckets.map((b) => [b.startMs - T0, b.requests])).toEqual(Array.from({ length: 12 }, (_, i) => [i * 5_000, 10]))
    expect(w.buckets.map((b) => b.errors)).toEqual(Array<number>(12).fill(1))
    expect(w.requests).toBe(120)
    expect(w.errors).toBe(12)
    expect(w.latency.count).toBe(120)
    for (const b of w.buckets) {
      expect(b.latencyCount).toBe(10)
      expect(Number.isInteger(b.latencyCount)).toBe(true)
    }
    expect(s.stats().spread).toBe(1)
  })

  it('in proportion to the overlap with each bucket; an end on a bucket boundary puts nothing in the next bucket', () => {
    const s = mk()
    s.record(point(T0 + 10_000, T0 + 3_000, 7, 0, [], []))
    s.series({ ...K, service: 'other' }).recordRequest(T0 + 14_000, 1, false)
    const w = s.window(K, T0, T0 + 15_000)
    expect(w.buckets.map((b) => b.requests)).toEqual([2, 5, 0])
    // within one bucket, ending on its end
    s.record(point(T0 + 10_000, T0 + 6_000, 4, 0, [], []))
    expect(s.window(K, T0, T0 + 15_000).buckets.map((b) => b.requests)).toEqual([2, 9, 0])
  })

  it('start at or after the end, or absent: everything at timeMs', () => {
    const s = mk()
    s.record(point(T0 + 12_000, T0 + 12_000, 3, 1, [10], [3]))
    s.record(point(T0 + 12_000, T0 + 20_000, 3, 1, [10], [3]))
    s.record(point(T0 + 12_000, undefined, 3, 1, [10], [3]))
    const w = s.window(K, T0, T0 + 15_000)
    expect(w.buckets.map((b) => b.requests)).toEqual([0, 0, 9])
    expect(s.stats().spread).toBe(0)
  })

  it('an interval longer than maxSpread is spread over its last maxSpread only, totals kept', () => {
    const s = mk({ maxSpread: '1m' })
    s.record(point(T0 + 3_600_000, T0, 1_200, 0, [100], [1_200]))
    const w = s.window(K, T0 + 3_600_000 - 120_000, T0 + 3_600_000)
    expect(w.requests).toBe(1_200)
    expect(w.buckets.filter((b) => b.requests > 0).map((b) => [b.startMs - T0 - 3_540_000, b.requests])).toEqual(
      Array.from({ length: 12 }, (_, i) => [i * 5_000, 100]),
    )
    expect(s.retainedFromMs(K)).toBe(T0 + 3_540_000)
  })

  it('pieces older than the fine ring go to the coarse ring', () => {
    const s = mk({ fineRetention: '1m', maxSpread: '5m' })
    s.record(point(T0 + 300_000, T0, 600, 60, [1_000], [600]))
    const w = s.window(K, T0, T0 + 300_000)
    expect(w.requests).toBe(600)
    expect(w.errors).toBe(60)
    expect(w.latency.count).toBe(600)
    expect(w.buckets[0]).toMatchObject({ startMs: T0, endMs: T0 + 60_000, requests: 120 })
  })

  it('never more errors than requests in a bucket; totals exact; the same in any order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ end: fc.integer({ min: 0, max: 400_000 }), len: fc.integer({ min: 0, max: 200_000 }), c: fc.nat(50), e: fc.nat(50), n1: fc.nat(9), n2: fc.nat(9) }),
          { minLength: 1, maxLength: 30 },
        ),
        fc.nat(),
        (pts, seed) => {
          const obs: Observation[] = pts.map((p) => point(T0 + p.end, T0 + p.end - p.len, p.c, Math.min(p.e, p.c), [1_000, 70_000], [p.n1, p.n2]))
          const a = mk({ maxFutureSkew: '1h' })
          const b = mk({ maxFutureSkew: '1h' })
          for (const o of obs) a.record(o)
          const perm = obs.map((o, i) => ({ o, r: (i * 2654435761 + seed) % 1000003 })).sort((x, y) => x.r - y.r)
          for (const { o } of perm) b.record(o)
          const wa = a.window(K, T0 - 300_000, T0 + 405_000)
          const wb = b.window(K, T0 - 300_000, T0 + 405_000)
          expect(wa.requests).toBe(pts.reduce((n, p) => n + p.c, 0))
          expect(wa.errors).toBe(pts.reduce((n, p) => n + Math.min(p.e, p.c), 0))
          expect(wa.latency.count).toBe(pts.reduce((n, p) => n + p.n1 + p.n2, 0))
          for (const bk of wa.buckets) expect(bk.errors).toBeLessThanOrEqual(bk.requests)
          expect(wb.buckets.map((x) => [x.startMs, x.requests, x.errors, x.latencyCount])).toEqual(wa.buckets.map((x) => [x.startMs, x.requests, x.errors, x.latencyCount]))
          expect(wb.latency.valueAtQuantile(0.99)).toBe(wa.latency.valueAtQuantile(0.99))
        },
      ),
      { numRuns: 100 },
    )
  })
})

describe('coverage()', () => {
  it('spans: report interval 0, complete up to the newest time', () => {
    const s = mk()
    expect(s.coverage(K)).toBeUndefined()
    s.series(K).recordRequest(T0 + 1_234, 5, false)
    // fineFromMs: the fine ring's 60 s end at the newest 5 s bucket
    expect(s.coverage(K)).toEqual({ newestMs: T0 + 1_234, reportIntervalMs: 0, completeUntilMs: T0 + 1_234, fineFromMs: T0 - 55_000 })
  })

  it('metric points every 60 s: interval 60 s; a slower exporter of the same series counts; a shrunk interval is followed after two old intervals', () => {
    const s = mk()
    for (let t = T0 + 60_000; t <= T0 + 300_000; t += 60_000) s.record(point(t, t - 60_000, 10, 0, [], []))
    // one exporter (one report chain): complete up to its newest report
    expect(s.coverage(K)).toEqual({ newestMs: T0 + 300_000, reportIntervalMs: 60_000, completeUntilMs: T0 + 300_000, fineFromMs: T0 + 240_000 })
    // a second exporter every 10 s: the 60 s one still reports, so 60 s stays
    for (let t = T0 + 310_000; t <= T0 + 360_000; t += 10_000) s.record(point(t, t - 10_000, 1, 0, [], []))
    s.record(point(T0 + 360_000, T0 + 300_000, 10, 0, [], []))
    expect(s.coverage(K)?.reportIntervalMs).toBe(60_000)
    // the 60 s exporter stops: after two of its intervals the 10 s cadence is reported
    for (let t = T0 + 370_000; t <= T0 + 500_000; t += 10_000) s.record(point(t, t - 10_000, 1, 0, [], []))
    expect(s.coverage(K)).toEqual({ newestMs: T0 + 500_000, reportIntervalMs: 10_000, completeUntilMs: T0 + 500_000, fineFromMs: T0 + 440_000 })
  })

  it('complete up to the millisecond: nanosecond float noise in the times never holds a series back by a bucket', () => {
    const s = mk()
    // times decoded from nanoseconds: 1768468140000.0002 ms and the like, an interval of 60000.0002 ms
    const ns = (ms: number) => Number(BigInt(ms) * 1_000_000n + 244n) / 1e6
    const T = 1_768_467_960_000
    for (let t = T + 60_000; t <= T + 240_000; t += 60_000) s.record(point(ns(t), ns(t - 60_000) - 0.0005, 10, 0, [], []))
    expect(s.coverage(K)?.reportIntervalMs).toBeGreaterThan(60_000)
    // one chain despite the noise (a start within 1 ms of a head extends it); its head, rounded
    expect(s.coverage(K)?.completeUntilMs).toBe(T + 240_000)
    // a second exporter on another phase: complete up to its head, rounded
    for (let t = T + 90_000; t <= T + 210_000; t += 60_000) s.record(point(ns(t), ns(t - 60_000), 10, 0, [], []))
    expect(s.coverage(K)?.completeUntilMs).toBe(T + 210_000)
  })

  it('an interval is bounded by maxSpread (a fresh stream since hours)', () => {
    const s = mk({ maxSpread: '5m' })
    s.record(point(T0 + 3_600_000, T0, 10, 0, [], []))
    expect(s.coverage(K)?.reportIntervalMs).toBe(300_000)
  })
})

describe('countAbove()', () => {
  it('counts samples in buckets whose lowest equivalent value is above the threshold, over fine and coarse buckets', () => {
    const s = mk()
    const layout = new HdrLayout({ lowestUs: 1, highestUs: 60_000_000, significantDigits: 1 })
    const values: number[] = []
    let seed = 3
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    for (let t = 0; t < 400_000; t += 250) {
      const v = Math.floor(Math.exp(rnd() * 14))
      values.push(v)
      s.series(K).recordRequest(T0 + t, v, false)
    }
    const w = s.window(K, T0, T0 + 400_000)
    for (const us of [0, 1, 15, 16, 17, 1_000, 1_023, 1_024, 100_000, 1e9]) {
      const want = values.filter((v) => (layout.lowest[layout.index(v)] as number) > us).length
      expect(w.latency.countAbove(us)).toBe(want)
      expect(w.buckets.reduce((n, b) => n + b.latencyCountAbove(us), 0)).toBe(want)
    }
    expect(w.latency.countAbove(-1)).toBe(values.length)
    expect(w.latency.countAbove(NaN)).toBe(0)
    // a value in the threshold's own bucket is not above it
    const one = mk()
    one.series(K).recordRequest(T0, 1_100, false)
    const lo = layout.lowest[layout.index(1_100)] as number
    expect(one.window(K, T0, T0 + 5_000).latency.countAbove(lo)).toBe(0)
    expect(one.window(K, T0, T0 + 5_000).latency.countAbove(lo - 1)).toBe(1)
    expect(mk().window(K, T0, T0 + 5_000).latency.countAbove(0)).toBe(0)
  })
})
