import { afterEach, describe, expect, it } from 'vitest'
import * as hdr from 'hdr-histogram-js'
import { SignalStore } from '../../src/signals/store.js'
import { signalsSchema } from '../../src/signals/config.js'
import type { Observation, SeriesKey } from '../../src/normalize/observations.js'

const K: SeriesKey = { namespace: 'shop', service: 'cart', version: 'v1' }
const K2: SeriesKey = { namespace: 'shop', service: 'cart', version: 'v2' }
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000) // minute aligned

const stores: SignalStore[] = []
function mk(cfg: Record<string, unknown> = {}): SignalStore {
  const s = new SignalStore(signalsSchema.parse(cfg))
  stores.push(s)
  return s
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

function req(key: SeriesKey, t: number, lat: number, err = false): Observation {
  return { kind: 'request', key, timeMs: t, count: 1, errors: err ? 1 : 0, latenciesUs: [lat], latencyCounts: undefined }
}

/** exact quantile as HDR reports it: built with the same settings, from all samples */
function bruteQuantile(values: number[], q: number, digits = 1): number {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: digits as 1, autoResize: false, useWebAssembly: false })
  for (const v of values) h.recordValue(Math.round(v))
  return h.getValueAtPercentile(q * 100)
}

describe('SignalStore windows', () => {
  it('counts requests and errors per bucket and over a window', () => {
    const s = mk()
    for (let i = 0; i < 60; i++) s.record(req(K, T0 + i * 1000, 1000 + i, i % 10 === 0))
    const w = s.window(K, T0, T0 + 30_000)
    expect(w.requests).toBe(30)
    expect(w.errors).toBe(3)
    expect(w.buckets).toHaveLength(6)
    expect(w.buckets.map((b) => b.requests)).toEqual([5, 5, 5, 5, 5, 5])
    expect(w.buckets[0]!.startMs).toBe(T0)
    expect(w.latency.count).toBe(30)
    // a range that ends mid-bucket excludes that bucket
    expect(s.window(K, T0, T0 + 7_000).requests).toBe(5)
  })

  it('sliding windows built by add/subtract equal a brute-force quantile', () => {
    const s = mk({ histogram: { significantDigits: 2 } })
    const samples: { t: number; v: number }[] = []
    let seed = 7
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    for (let i = 0; i < 3000; i++) {
      const t = T0 + Math.floor(rnd() * 120_000)
      const v = Math.floor(Math.exp(rnd() * 12))
      samples.push({ t, v })
    }
    samples.sort((a, b) => a.t - b.t)
    let next = 0
    for (let now = T0 + 30_000; now <= T0 + 120_000; now += 5_000) {
      while (next < samples.length && samples[next]!.t < now) {
        s.record(req(K, samples[next]!.t, samples[next]!.v))
        next++
      }
      const from = now - 30_000
      const inRange = samples.filter((x) => x.t >= from && x.t < now).map((x) => x.v)
      const w = s.window(K, from, now)
      expect(w.latency.count).toBe(inRange.length)
      for (const q of [0.5, 0.9, 0.99]) expect(w.latency.valueAtQuantile(q)).toBe(bruteQuantile(inRange, q, 2))
    }
  })

  it('late data into buckets of an already computed window is reflected in its running total', () => {
    const s = mk({ histogram: { significantDigits: 2 } })
    const vals: number[] = []
    for (let i = 0; i < 40; i++) {
      s.record(req(K, T0 + i * 1000, 1000))
      vals.push(1000)
    }
    expect(s.window(K, T0 + 5000, T0 + 35_000).latency.valueAtQuantile(0.99)).toBe(bruteQuantile(vals.slice(5, 35), 0.99, 2))
    const late = [T0 + 6000, T0 + 20_000, T0 + 21_000, T0 + 22_000]
    for (const t of late) s.record(req(K, t, 900_000))
    s.series(K).recordRequest(T0 + 30_000, 800_000, false)
    const w = s.window(K, T0 + 5000, T0 + 35_000)
    expect(w.latency.count).toBe(35)
    const all = [...vals.slice(5, 35), 900_000, 900_000, 900_000, 900_000, 800_000]
    expect(w.latency.valueAtQuantile(0.99)).toBe(bruteQuantile(all, 0.99, 2))
    expect(w.latency.valueAtQuantile(0.9)).toBe(bruteQuantile(all, 0.9, 2))
  })

  it('answers older ranges from coarse buckets after folding', () => {
    const s = mk()
    // 5 minutes at 10 req/s, 2 ms, then 2 minutes more at 50 ms
    for (let t = 0; t < 300_000; t += 100) s.record(req(K, T0 + t, 2_000))
    for (let t = 300_000; t < 420_000; t += 100) s.record(req(K, T0 + t, 50_000))
    const base = s.window(K, T0, T0 + 300_000)
    expect(base.requests).toBe(3000)
    expect(base.buckets.length).toBe(5) // five coarse minutes
    expect(base.latency.valueAtQuantile(0.99)).toBeLessThan(2_200)
    const recent = s.window(K, T0 + 390_000, T0 + 420_000)
    expect(recent.requests).toBe(300)
    expect(recent.latency.valueAtQuantile(0.5)).toBeGreaterThan(45_000)
    expect(s.retainedFromMs(K)).toBe(T0)
    // a mixed range: coarse minutes then fine buckets, no overlap, in time order
    const all = s.window(K, T0, T0 + 420_000)
    expect(all.requests).toBe(4200)
    for (let i = 1; i < all.buckets.length; i++) expect(all.buckets[i]!.startMs).toBe(all.buckets[i - 1]!.endMs)
  })

  it('drops late data beyond retention and far-future data, counted', () => {
    const s = mk({ retention: '10m', maxFutureSkew: '1m' })
    s.record(req(K, T0 + 3_600_000, 1000))
    s.record(req(K, T0, 1000)) // an hour old
    s.record(req(K, T0 + 3_600_000 + 3_600_000, 1000)) // an hour ahead
    const st = s.stats()
    expect(st.late).toBe(1)
    expect(st.future).toBe(1)
    expect(st.observations).toBe(1)
  })

  it('accepts a real jump of telemetry time after futureJumpAfter consecutive future drops', () => {
    const s = mk({ maxFutureSkew: '1m', futureJumpAfter: 3 })
    s.record(req(K, T0, 1000))
    for (let i = 0; i < 5; i++) s.record(req(K, T0 + 3_600_000 + i, 1000))
    expect(s.stats().future).toBe(2)
    expect(s.stats().timeJumps).toBe(1)
    expect(s.window(K, T0 + 3_600_000, T0 + 3_605_000).requests).toBe(3)
  })

  it('rejects NaN/negative latencies and clamps huge ones, without throwing', () => {
    const s = mk()
    s.record(req(K, T0, NaN))
    s.record(req(K, T0, -5))
    s.record(req(K, T0, Infinity))
    s.record(req(K, T0, 1e12))
    s.record(req(K, T0, 0))
    const st = s.stats()
    expect(st.rejectedValues).toBe(3)
    expect(st.clampedValues).toBe(1)
    const w = s.window(K, T0, T0 + 5000)
    expect(w.requests).toBe(5)
    expect(w.latency.count).toBe(2)
    expect(w.latency.valueAtQuantile(1)).toBeGreaterThanOrEqual(60_000_000)
  })
})

describe('SignalStore bounds', () => {
  it('overflow beyond maxSeries is counted and never crashes; pinned keys bypass it', () => {
    const s = mk({ maxSeries: 2, reserveForKnown: 0 })
    s.record(req({ ...K, service: 'a' }, T0, 1))
    s.record(req({ ...K, service: 'b' }, T0, 1))
    s.record(req({ ...K, service: 'c' }, T0, 1))
    s.series({ ...K, service: 'd' }).recordRequest(T0, 1, true)
    let st = s.stats()
    expect(st.series).toBe(2)
    expect(st.overflowed).toBe(2)
    expect(st.overflowErrors).toBe(1)
    s.pin({ ...K, service: 'watched' })
    s.record(req({ ...K, service: 'watched' }, T0, 1))
    st = s.stats()
    expect(st.series).toBe(3)
    expect(s.window({ ...K, service: 'watched' }, T0, T0 + 5000).requests).toBe(1)
  })

  it('idle series expire (telemetry time) and free their histograms; pinned ones stay', () => {
    const s = mk({ idleTtl: '2m', maxFutureSkew: '10m' })
    s.record(req(K, T0, 1000))
    s.pin(K2)
    s.record(req(K2, T0, 1000))
    expect(s.stats().histograms).toBe(2)
    s.record(req({ ...K, service: 'other' }, T0 + 5 * 60_000, 1000))
    const st = s.stats()
    expect(st.expired).toBe(1)
    expect(st.series).toBe(2)
    expect(s.retainedFromMs(K)).toBeUndefined()
    expect(s.retainedFromMs(K2)).toBe(T0)
    expect(st.histograms).toBe(2) // K2's and 'other's; K's went back to the pool
    expect(st.pooledHistograms).toBe(0) // K's histogram was reset and reused for 'other'
    s.unpin(K2)
    s.record(req({ ...K, service: 'other' }, T0 + 8 * 60_000, 1000))
    // K2 once unpinned; "other" is idle too, but its own observation keeps it (no new series, no new-version event)
    expect(s.stats().expired).toBe(2)
    expect(s.drainNewVersions().map((v) => v.service)).toEqual(['other']) // once
  })

  it('a stale fast-path handle re-resolves after expiry', () => {
    const s = mk({ idleTtl: '1m', maxFutureSkew: '10m' })
    const h = s.series(K)
    h.recordRequest(T0, 100, false)
    s.record(req(K2, T0 + 3 * 60_000, 1))
    expect(s.stats().expired).toBe(1)
    h.recordRequest(T0 + 3 * 60_000, 100, false)
    expect(s.window(K, T0 + 3 * 60_000, T0 + 3 * 60_000 + 5000).requests).toBe(1)
  })

  it('drainNewVersions reports each version once, versions() oldest first', () => {
    const s = mk()
    s.record(req(K, T0, 1))
    s.record(req(K, T0 + 1, 1))
    expect(s.drainNewVersions().map((v) => v.version)).toEqual(['v1'])
    s.record(req(K2, T0 + 10_000, 1))
    const d = s.drainNewVersions()
    expect(d).toHaveLength(1)
    expect(d[0]).toMatchObject({ namespace: 'shop', service: 'cart', version: 'v2', firstSeenMs: T0 + 10_000 })
    expect(s.drainNewVersions()).toEqual([])
    expect(s.versions('shop', 'cart').map((v) => v.version)).toEqual(['v1', 'v2'])
  })
})

describe('SignalStore resources and probes', () => {
  it('per-pod Theil-Sen slope as a fraction of the request per minute, robust to an outlier', () => {
    const s = mk()
    for (let i = 0; i < 20; i++) {
      const value = i === 7 ? 5e9 : 100e6 + i * 2e6 // +2 MB per 10 s = 12 MB/min, one wild reading
      s.record({ kind: 'resource', key: K, pod: 'p1', resource: 'memory', timeMs: T0 + i * 10_000, value, request: 240e6 })
    }
    const w = s.window(K, T0, T0 + 200_000)
    expect(w.resources).toHaveLength(1)
    const r = w.resources[0]!
    expect(r.samples).toBe(20)
    expect(r.slopePerMin).toBeCloseTo(12e6, -3)
    expect(r.fractionPerMin).toBeCloseTo(0.05, 4)
    expect(r.last).toBe(100e6 + 19 * 2e6)
  })

  it('probe failures per container in the range', () => {
    const s = mk()
    s.record({ kind: 'probe', key: K, pod: 'p1', container: 'app', timeMs: T0, ready: true })
    s.record({ kind: 'probe', key: K, pod: 'p1', container: 'app', timeMs: T0 + 10_000, ready: false })
    s.record({ kind: 'probe', key: K, pod: 'p2', container: 'app', timeMs: T0 + 20_000, ready: false })
    s.record({ kind: 'probe', key: K, pod: 'p2', container: 'app', timeMs: T0 + 20_000, ready: false }) // duplicate
    const p = s.window(K, T0, T0 + 30_000).probes
    expect(p).toEqual({ readings: 3, failures: 2, firstFailureMs: T0 + 10_000, lastFailureMs: T0 + 20_000, failing: ['p1/app', 'p2/app'] })
    expect(s.window(K, T0, T0 + 5_000).probes.failures).toBe(0)
  })
})

describe('signals config', () => {
  it('has defaults and rejects unknown keys and inconsistent sizes with the path', () => {
    const c = signalsSchema.parse({})
    expect(c).toMatchObject({ bucket: 5000, retention: 600_000, maxSeries: 20_000 })
    expect(() => signalsSchema.parse({ bogus: 1 })).toThrow()
    const r = signalsSchema.safeParse({ bucket: '7s' })
    expect(r.success).toBe(false)
    expect(JSON.stringify(r.error?.issues)).toContain('coarseBucket')
  })
})
