/**
 * Issue 11 item 2: a flood of new service names fills `maxSeries`; the next version of a service
 * with history must still get its series (reserve for known services, eviction of unknown ones).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { SignalStore } from '../../src/signals/store.js'
import type { SignalsConfigInput } from '../../src/signals/config.js'
import type { Observation, SeriesKey } from '../../src/normalize/observations.js'

const T0 = 1_767_225_600_000
const V1: SeriesKey = { namespace: 'shop', service: 'checkout', version: 'v1' }
const V2: SeriesKey = { namespace: 'shop', service: 'checkout', version: 'v2' }

const stores: SignalStore[] = []
function mk(cfg: SignalsConfigInput): SignalStore {
  const s = new SignalStore(cfg)
  stores.push(s)
  return s
}
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

function req(key: SeriesKey, t: number): Observation {
  return { kind: 'request', key, timeMs: t, count: 1, errors: 0, latenciesUs: [2_000], latencyCounts: undefined }
}

/** checkout v1 for two minutes at 10 req/s, then `n` distinct service names, one span each (half through handles) */
function historyThenFlood(s: SignalStore, n: number, prefix = 'flood'): number {
  for (let t = T0; t < T0 + 120_000; t += 100) s.record(req(V1, t))
  const t = T0 + 120_000
  for (let i = 0; i < n; i++) {
    const k = { namespace: 'x', service: `${prefix}${i}`, version: '1' }
    if (i % 2 === 0) s.record(req(k, t + (i % 1000)))
    else s.series(k).recordRequest(t + (i % 1000), 1, false)
  }
  return t + 1_000
}

describe('cardinality flood', () => {
  it('unknown services fill only maxSeries minus the reserve; a new version of a known service still gets its series', () => {
    const s = mk({ maxSeries: 100, reserveForKnown: 0.2 })
    const t = historyThenFlood(s, 5_000)
    let st = s.stats()
    expect(st.series).toBe(80)
    expect(st.overflowUnknown).toBe(4_921)
    expect(st.overflowed).toBe(st.overflowUnknown + st.overflowFull)
    for (let i = 0; i < 50; i++) s.series(V2).recordRequest(t + i * 100, 3_000, i % 10 === 0)
    expect(s.window(V2, t - (t % 5_000), t + 10_000).requests).toBe(50)
    expect(s.drainNewVersions().some((v) => v.version === 'v2')).toBe(true)
    st = s.stats()
    expect(st.series).toBe(81)
    expect(st.evicted).toBe(0)
  })

  it('when the reserve is used up, a known service evicts the least recently updated series of an unknown one', () => {
    const s = mk({ maxSeries: 10, reserveForKnown: 0.2 })
    const t = historyThenFlood(s, 100)
    // the reserve: two more versions of the known service
    s.record(req({ ...V1, version: 'v3' }, t))
    s.record(req({ ...V1, version: 'v4' }, t))
    expect(s.stats().series).toBe(10)
    s.record(req(V2, t + 1))
    const st = s.stats()
    expect(st.series).toBe(10)
    expect(st.evicted).toBe(1)
    expect(s.window(V2, t - (t % 5_000), t + 5_000).requests).toBe(1)
    // the oldest flood series went (flood0 was the first, at t - 1000)
    expect(s.retainedFromMs({ namespace: 'x', service: 'flood0', version: '1' })).toBeUndefined()
    expect(s.retainedFromMs({ namespace: 'x', service: 'flood1', version: '1' })).toBeDefined()
  })

  it('an unknown service with several versions cannot use the reserve; with nothing left to evict a known one overflows as full', () => {
    const s = mk({ maxSeries: 5, reserveForKnown: 0.4 }) // 3 places for unknown services
    for (let t = T0; t < T0 + 120_000; t += 1_000) {
      s.record(req(V1, t))
      s.record(req({ namespace: 'y', service: 'old', version: '1' }, t))
    }
    // a fresh service with two versions: the first takes the last unknown place, the second is refused
    s.record(req({ namespace: 'x', service: 'new', version: 'a' }, T0 + 120_000))
    s.record(req({ namespace: 'x', service: 'new', version: 'b' }, T0 + 120_000))
    expect(s.stats().overflowUnknown).toBe(1)
    s.record(req(V2, T0 + 120_000))
    s.record(req({ ...V1, version: 'v3' }, T0 + 120_000))
    expect(s.stats().series).toBe(5)
    // full: the only series of an unknown service (x/new a) makes room
    s.record(req({ ...V1, version: 'v4' }, T0 + 121_000))
    let st = s.stats()
    expect(st.evicted).toBe(1)
    expect(s.versions('x', 'new')).toEqual([])
    // full of known services: refused, counted as full
    s.record(req({ ...V1, version: 'v5' }, T0 + 121_000))
    st = s.stats()
    expect(st.overflowFull).toBe(1)
    expect(st.overflowed).toBe(2)
    expect(st.series).toBe(5)
  })

  it('a flood of new names between two drains cannot push out the new-version event of a known service', () => {
    const s = mk({ maxSeries: 1_000, maxPendingVersions: 100, reserveForKnown: 0.2 })
    const t = historyThenFlood(s, 500)
    s.record(req(V2, t))
    const st = s.stats()
    expect(st.versionsDropped).toBe(500 + 1 - 80) // v1 and 79 flood names queued, the rest dropped
    expect(s.drainNewVersions().map((v) => v.version)).toContain('v2')
  })

  it('a pinned (watched) key always gets its series', () => {
    const s = mk({ maxSeries: 10 })
    historyThenFlood(s, 100)
    const watched = { namespace: 'z', service: 'new', version: 'v9' }
    s.pin(watched)
    s.record(req(watched, T0 + 121_000))
    expect(s.window(watched, T0 + 120_000, T0 + 125_000).requests).toBe(1)
  })
})
