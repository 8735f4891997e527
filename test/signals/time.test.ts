/**
 * Issue 11 item 1: one far-future timestamp must not blind the store. Telemetry time is kept per
 * series; the store's own time needs two series (or the wall clock, live) to move far.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { SignalStore } from '../../src/signals/store.js'
import type { SignalsConfigInput } from '../../src/signals/config.js'
import type { Observation, SeriesKey } from '../../src/normalize/observations.js'
import { ManualClock } from '../../src/common/clock.js'

const T0 = 1_767_225_600_000 // 2026-01-01, minute aligned
const Y2300 = Date.UTC(2300, 0, 1)
const A1: SeriesKey = { namespace: 'shop', service: 'cart', version: 'v1' }
const A2: SeriesKey = { namespace: 'shop', service: 'cart', version: 'v2' }
const B: SeriesKey = { namespace: 'shop', service: 'pay', version: 'v7' }
const EVIL: SeriesKey = { namespace: 'x', service: 'evil', version: '1' }

const stores: SignalStore[] = []
function mk(cfg: SignalsConfigInput = {}, clock?: ManualClock): SignalStore {
  const s = new SignalStore(cfg, clock === undefined ? {} : { clock })
  stores.push(s)
  return s
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

function req(key: SeriesKey, t: number, lat = 2_000, err = false): Observation {
  return { kind: 'request', key, timeMs: t, count: 1, errors: err ? 1 : 0, latenciesUs: [lat], latencyCounts: undefined }
}

/** 10 req/s for each key over [from, to), through record() and (every other key) the fast path */
function traffic(s: SignalStore, keys: SeriesKey[], from: number, to: number): void {
  for (let t = from; t < to; t += 100) {
    keys.forEach((k, i) => {
      if (i % 2 === 0) s.record(req(k, t))
      else s.series(k).recordRequest(t, 2_000, false)
    })
  }
}

/** the windows and the deployment detector still work: requests counted, a new version reported with a finite time */
function expectAlive(s: SignalStore, now: number): void {
  expect(s.window(A1, now - 30_000, now).requests).toBe(300)
  expect(s.window(B, now - 30_000, now).requests).toBe(300)
  s.drainNewVersions()
  s.record(req(A2, now + 100))
  const fresh = s.drainNewVersions()
  expect(fresh.map((v) => v.version)).toEqual(['v2'])
  expect(fresh[0]!.firstSeenMs).toBe(now + 100)
  expect(s.window(A2, now, now + 5_000).requests).toBe(1)
  for (const v of s.versions('shop', 'cart')) expect(Number.isFinite(v.firstSeenMs)).toBe(true)
  expect(s.stats().newestMs).toBeLessThan(now + 5 * 60_000)
}

describe('far-future timestamps (no clock: replay)', () => {
  it('a fresh store fed one span dated 2300 of another service keeps answering for normal traffic', () => {
    const s = mk()
    s.record(req(EVIL, Y2300))
    traffic(s, [A1, B], T0, T0 + 60_000)
    expectAlive(s, T0 + 60_000)
  })

  it('a fresh store fed one span dated 2300 of a real series: that series re-bases on normal traffic', () => {
    const s = mk()
    s.series(A1).recordRequest(Y2300, 2_000, false)
    traffic(s, [A1, B], T0, T0 + 60_000)
    expectAlive(s, T0 + 60_000)
    expect(s.stats().rebased).toBe(1)
    expect(s.window(A1, Y2300 - 5_000, Y2300 + 5_000).requests).toBe(0)
  })

  it('1,000 far-future spans in one batch (fast path and record) move neither the store nor the other series', () => {
    const s = mk()
    traffic(s, [A1, B], T0, T0 + 30_000)
    const h = s.series(EVIL)
    for (let i = 0; i < 1_000; i++) h.recordRequest(Y2300 + i, 1, false)
    for (let i = 0; i < 1_000; i++) s.record(req(EVIL, Y2300 + 1_000 + i))
    traffic(s, [A1, B], T0 + 30_000, T0 + 60_000)
    expectAlive(s, T0 + 60_000)
    const st = s.stats()
    expect(st.future).toBe(999) // the series' run of 1,000 drops accepts a jump at its end: of that series only
    expect(st.timeJumps).toBe(1)
  })

  it('1,000 far-future spans into a real series: it jumps, then re-bases on its normal traffic', () => {
    const s = mk()
    traffic(s, [A1, B], T0, T0 + 30_000)
    const h = s.series(A1)
    for (let i = 0; i < 1_000; i++) h.recordRequest(Y2300 + i, 1, false)
    traffic(s, [A1, B], T0 + 30_000, T0 + 60_000)
    expectAlive(s, T0 + 60_000)
    expect(s.stats().rebased).toBe(1)
  })

  it('a series idle for longer than maxFutureSkew resumes (the other series confirm the time)', () => {
    const s = mk()
    traffic(s, [A1, B], T0, T0 + 10_000)
    traffic(s, [B], T0 + 10_000, T0 + 6 * 60_000)
    traffic(s, [A1, B], T0 + 6 * 60_000, T0 + 7 * 60_000)
    expect(s.window(A1, T0 + 7 * 60_000 - 30_000, T0 + 7 * 60_000).requests).toBe(300)
    expect(s.stats().future).toBe(0)
  })

  it('a real jump of every series (a gap in a replay file) is followed, losing at most one observation per series', () => {
    const s = mk()
    traffic(s, [A1, B], T0, T0 + 30_000)
    const T1 = T0 + 2 * 3_600_000
    traffic(s, [A1, B], T1, T1 + 60_000)
    expect(s.stats().future).toBeLessThanOrEqual(2)
    expect(s.window(A1, T1 + 30_000, T1 + 60_000).requests).toBe(300)
    expect(s.window(B, T1 + 30_000, T1 + 60_000).requests).toBe(300)
    expect(s.stats().newestMs).toBeGreaterThanOrEqual(T1 + 55_000) // bucket granularity
  })

  it('a series whose observations were all dropped is not reported as a version (no Infinity first-seen time)', () => {
    const s = mk()
    traffic(s, [A1, B], T0, T0 + 10_000)
    s.drainNewVersions()
    s.series(A2).recordRequest(Y2300, 1, false)
    expect(s.drainNewVersions()).toEqual([])
    expect(s.versions('shop', 'cart').map((v) => v.version)).toEqual(['v1'])
    expect(s.coverage(A2)).toBeUndefined()
    // its first data announces it, once
    s.series(A2).recordRequest(T0 + 10_000, 1, false)
    s.series(A2).recordRequest(T0 + 10_001, 1, false)
    expect(s.drainNewVersions().map((v) => [v.version, v.firstSeenMs])).toEqual([['v2', T0 + 10_000]])
    expect(s.drainNewVersions()).toEqual([])
  })
})

describe('far-future timestamps (live: wall clock)', () => {
  it('drops and counts observations beyond now + maxClockSkew, even as the first one of a fresh store', () => {
    const clock = new ManualClock(T0)
    const s = mk({ maxClockSkew: '2m' }, clock)
    s.record(req(EVIL, Y2300))
    s.series(A1).recordRequest(T0 + 3 * 60_000, 1, false)
    expect(s.stats().future).toBe(2)
    expect(s.stats().newestMs).toBe(-Infinity)
    s.record(req(A1, T0 + 60_000)) // within the skew
    s.record(req(A1, T0 - 11 * 60_000)) // older than now - retention
    const st = s.stats()
    expect(st.future).toBe(2)
    expect(st.late).toBe(1)
    expect(s.window(A1, T0 + 60_000, T0 + 65_000).requests).toBe(1)
    // the clock moves on: what was too far ahead is accepted now
    clock.set(T0 + 2 * 60_000)
    s.series(A1).recordRequest(T0 + 3 * 60_000, 1, false)
    expect(s.window(A1, T0 + 3 * 60_000, T0 + 3 * 60_000 + 5_000).requests).toBe(1)
    expect(s.stats().future).toBe(2)
  })

  it('1,000 far-future spans cannot make any series jump', () => {
    const clock = new ManualClock(T0 + 60_000)
    const s = mk({}, clock)
    traffic(s, [A1, B], T0, T0 + 30_000)
    for (let i = 0; i < 2_000; i++) s.series(i % 2 === 0 ? A1 : EVIL).recordRequest(Y2300 + i, 1, false)
    expect(s.stats().timeJumps).toBe(0)
    traffic(s, [A1, B], T0 + 30_000, T0 + 60_000)
    expectAlive(s, T0 + 60_000)
  })
})
