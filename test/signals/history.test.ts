import { afterEach, describe, expect, it } from 'vitest'
import { SignalStore } from '../../src/signals/store.js'
import { signalsSchema } from '../../src/signals/config.js'
import { LAT_BUCKETS, latBucket, latLow, LongHistory, SLOT_BYTES } from '../../src/signals/history.js'
import type { SeriesKey } from '../../src/normalize/observations.js'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { judgeBaseline } from '../../src/engine/gate.js'

const K: SeriesKey = { namespace: 'shop', service: 'cart', version: 'v1' }
const M = 60_000
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % M) // minute aligned

const stores: SignalStore[] = []
function mk(cfg: Record<string, unknown> = {}): SignalStore {
  const s = new SignalStore(signalsSchema.parse(cfg))
  stores.push(s)
  return s
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

/** 10 req/s from T0 for `minutes`; errors and latency per minute from `shape` */
function fill(s: SignalStore, minutes: number, shape: (m: number) => { errorEvery: number; latUs: number }): void {
  const h = s.series(K)
  let x = 11
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
  for (let m = 0; m < minutes; m++) {
    const { errorEvery, latUs } = shape(m)
    for (let i = 0; i < 600; i++) h.recordRequest(T0 + m * M + i * 100, latUs * Math.exp(0.5 * (rnd() - 0.5)), errorEvery > 0 && i % errorEvery === 0)
  }
}

describe('LongHistory', () => {
  it('buckets latencies in 2^(1/3) steps from 1 ms, and reads quantiles within +-12 %', () => {
    expect(latBucket(500)).toBe(0)
    expect(latBucket(1000)).toBe(1)
    expect(latBucket(2000)).toBe(4)
    expect(latBucket(1e12)).toBe(LAT_BUCKETS - 1)
    const h = new LongHistory(3, M)
    h.fold(10, 100, 7, (visit) => {
      visit(50_000, 99)
      visit(400_000, 1)
    })
    const s = h.summary(10 * M, 11 * M)
    expect(s).toMatchObject({ requests: 100, errors: 7, latencyCount: 100 })
    expect(s.valueAtQuantile(0.5) / 50_000).toBeGreaterThan(0.88)
    expect(s.valueAtQuantile(0.5) / 50_000).toBeLessThan(1.13)
    expect(s.valueAtQuantile(1) / 400_000).toBeGreaterThan(0.88)
    expect(s.countAbove(200_000)).toBe(1)
    expect(s.countAbove(latLow(latBucket(400_000)))).toBe(0) // only buckets wholly above the cut
  })

  it('keeps `slots` minutes: an older one is dropped, a reused slot starts empty', () => {
    const h = new LongHistory(3, M)
    for (let c = 0; c < 5; c++) h.fold(c, 10, 1, () => undefined)
    expect(h.minutes()).toEqual([4, 3, 2])
    expect(h.fold(1, 10, 1, () => undefined)).toBe(false)
    expect(h.summary(0, 10 * M).requests).toBe(30)
    expect(h.bytes).toBe(3 * SLOT_BYTES)
  })

  it('16-bit latency counts halve with a scale instead of saturating (proportions kept)', () => {
    const h = new LongHistory(1, M)
    h.fold(0, 200_000, 0, (visit) => {
      visit(10_000, 198_000)
      visit(100_000, 2_000)
    })
    const s = h.summary(0, M)
    expect(Math.abs(s.latencyCount - 200_000) / 200_000).toBeLessThan(0.01)
    expect(Math.abs(s.countAbove(50_000) - 2_000) / 2_000).toBeLessThan(0.01)
  })

  it('countReaching also counts the bucket holding the cut: an upper bound on the samples above it', () => {
    const h = new LongHistory(1, M)
    h.fold(0, 30, 0, (visit) => {
      visit(10_000, 10) // 10 ms: in [7.9, 10.1) ms, below the cut
      visit(11_000, 10) // 11 ms: in [10.1, 12.7) ms, the bucket holding the cut
      visit(100_000, 10)
    })
    const s = h.summary(0, M)
    // a cut at 10.5 ms: 10 samples certainly above it, 20 possibly
    expect(s.countAbove(10_500)).toBe(10)
    expect(s.countReaching(10_500)).toBe(20)
    // nothing reaches above the last bucket's lower edge but that bucket
    expect(s.countReaching(1e12)).toBe(0)
    expect(s.countReaching(0)).toBe(30)
  })
})

describe('SignalStore long history', () => {
  it('summarises the minutes that leave the retention, exactly for counts, and counts its bytes', () => {
    const s = mk({ retention: '10m', history: '60m' })
    fill(s, 25, (m) => ({ errorEvery: m < 5 ? 100 : 0, latUs: 20_000 }))
    const h = s.history(K)
    expect(h).toBeDefined()
    const starts = h?.starts ?? []
    // 25 minutes written; the coarse ring ends one minute behind the head (the fine ring holds the
    // newest minute) and holds 11 (10 min + 1): the first 13 are history
    expect(starts).toHaveLength(13)
    expect(starts[0]).toBe(T0 + 12 * M)
    expect(Math.max(...starts) + M).toBeLessThanOrEqual(s.retainedFromMs(K) ?? 0)
    const sum = h?.summary(T0, T0 + 13 * M)
    expect(sum?.requests).toBe(13 * 600)
    expect(sum?.errors).toBe(5 * 6)
    expect(s.stats()).toMatchObject({ historyFolds: 13, historyBytes: 60 * SLOT_BYTES })
  })

  it('history: 0 keeps none; a series younger than its retention has none', () => {
    const off = mk({ history: 0 })
    fill(off, 25, () => ({ errorEvery: 0, latUs: 20_000 }))
    expect(off.history(K)).toBeUndefined()
    expect(off.stats().historyBytes).toBe(0)
    const young = mk()
    fill(young, 5, () => ({ errorEvery: 0, latUs: 20_000 }))
    expect(young.history(K)).toBeUndefined()
  })

  it('frees the history with its series (idle expiry)', () => {
    const s = mk({ idleTtl: '1m' })
    fill(s, 15, () => ({ errorEvery: 0, latUs: 20_000 }))
    expect(s.stats().historyBytes).toBeGreaterThan(0)
    // another service moves the store's time on; the idle series expires
    const other = s.series({ namespace: 'shop', service: 'x', version: 'v1' })
    const o2 = s.series({ namespace: 'shop', service: 'y', version: 'v1' })
    for (let t = 15 * M; t < 20 * M; t += 1000) {
      other.recordRequest(T0 + t, 1000, false)
      o2.recordRequest(T0 + t, 1000, false)
    }
    s.sweep()
    expect(s.history(K)).toBeUndefined()
    expect(s.stats().historyBytes).toBe(0)
  })
})

describe('validation gate with the long history (engine)', () => {
  const c = defaultEngineConfig().defaults
  const freezeAt = (s: SignalStore, deployMin: number) => {
    const to = T0 + deployMin * M
    const bw = s.window(K, to - c.baselineWindow, to)
    return judgeBaseline(c, s, K, bw, s.bucketMs)
  }

  it('a breach that began 12 min before the deployment (beyond the 10 min retention) is unhealthy', () => {
    const s = mk()
    // healthy (0.2 % errors, 20 ms) for 2 min, then 8 % errors and 1.8x latency until the deployment at minute 14
    fill(s, 14, (m) => (m < 2 ? { errorEvery: 500, latUs: 20_000 } : { errorEvery: 12, latUs: 36_000 }))
    const h = freezeAt(s, 14)
    expect(h.state).toBe('unhealthy')
    expect(h.onsets.error_rate).toBe(T0 + 2 * M)
    expect(h.referenceToMs).toBe(T0 + 2 * M)
    expect(h.reference?.requests).toBe(2 * 600)
    expect(h.note).toMatch(/long history/)
  })

  it('a steady healthy service with an hour of history stays healthy (the scan over 60 minutes is corrected)', () => {
    const s = mk()
    let x = 5
    const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
    // 0.5-1.5 % errors and 15-25 ms from minute to minute: noise, not a breach
    fill(s, 75, () => ({ errorEvery: Math.round(66 + 134 * rnd()), latUs: 15_000 + 10_000 * rnd() }))
    expect(s.history(K)?.starts.length).toBe(60)
    expect(freezeAt(s, 75).state).toBe('healthy')
  })
})
