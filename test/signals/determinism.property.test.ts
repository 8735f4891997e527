import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { SignalStore } from '../../src/signals/store.js'
import type { Observation, SeriesKey } from '../../src/normalize/observations.js'
import type { WindowStats } from '../../src/signals/view.js'

const T0 = 1_700_000_040_000 // minute aligned
const KEYS: SeriesKey[] = [
  { namespace: 'n', service: 's', version: 'v1' },
  { namespace: 'n', service: 's', version: 'v2' },
]
const CFG = { maxFutureSkew: 3_600_000 }
const stores: SignalStore[] = []
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

const obsArb: fc.Arbitrary<Observation> = fc.oneof(
  {
    arbitrary: fc.record({
      k: fc.nat(1),
      t: fc.nat(8 * 60_000 - 1),
      lat: fc.oneof(fc.integer({ min: 0, max: 5_000_000 }), fc.constant(NaN)),
      n: fc.integer({ min: 1, max: 3 }),
      err: fc.nat(2),
    }).map(({ k, t, lat, n, err }): Observation => ({
      kind: 'request',
      key: KEYS[k]!,
      timeMs: T0 + t,
      count: n,
      errors: Math.min(err, n),
      latenciesUs: [lat, lat * 2],
      latencyCounts: [n, 1],
    })),
    weight: 8,
  },
  fc.record({ k: fc.nat(1), t: fc.nat(8 * 60_000 - 1), v: fc.integer({ min: 0, max: 1e9 }), pod: fc.constantFrom('a', 'b') }).map(
    ({ k, t, v, pod }): Observation => ({ kind: 'resource', key: KEYS[k]!, pod, resource: 'memory', timeMs: T0 + t, value: v, request: 2e9 }),
  ),
  fc.record({ k: fc.nat(1), t: fc.nat(8 * 60_000 - 1), ready: fc.boolean() }).map(
    ({ k, t, ready }): Observation => ({ kind: 'probe', key: KEYS[k]!, pod: 'p', container: 'c', timeMs: T0 + t, ready }),
  ),
)

const RANGES: [number, number][] = [
  [0, 30_000],
  [0, 8 * 60_000],
  [5 * 60_000, 8 * 60_000],
  [7 * 60_000 + 15_000, 7 * 60_000 + 45_000],
  [2 * 60_000, 7 * 60_000],
  [7 * 60_000, 9 * 60_000],
]

function summary(w: WindowStats): unknown {
  return {
    requests: w.requests,
    errors: w.errors,
    latCount: w.latency.count,
    q: [0.5, 0.9, 0.99, 1].map((q) => w.latency.valueAtQuantile(q)),
    buckets: w.buckets.map((b) => [b.startMs, b.endMs, b.requests, b.errors, b.latencyCount, b.latencyAtQuantile(0.99)]),
    resources: w.resources,
    probes: w.probes,
  }
}

/** all ranges of all keys; `rot` rotates the query order so that running totals are reused in different ways */
function snapshot(s: SignalStore, rot = 0): unknown {
  const order = RANGES.map((_, i) => (i + rot) % RANGES.length)
  const out = KEYS.map((k) => {
    const byRange: unknown[] = []
    for (const i of order) byRange[i] = summary(s.window(k, T0 + RANGES[i]![0], T0 + RANGES[i]![1]))
    return byRange
  })
  return out
}

describe('determinism', () => {
  it('any batch split and any order, with queries in between, gives identical window stats', () => {
    fc.assert(
      fc.property(
        fc.array(obsArb, { minLength: 1, maxLength: 150 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.nat(),
        (obs, cuts, seed) => {
          const a = new SignalStore(CFG)
          const b = new SignalStore(CFG)
          stores.push(a, b)
          for (const o of obs) a.record(o)
          // b: a permutation, in batches, with window queries (which move the running totals) between batches
          const perm = obs.map((o, i) => ({ o, r: (i * 2654435761 + seed) % 1000003 })).sort((x, y) => x.r - y.r).map((x) => x.o)
          const points = [...new Set(cuts.map((c) => c % perm.length))].sort((x, y) => x - y)
          let start = 0
          let last = 0
          for (const end of [...points, perm.length]) {
            for (const o of perm.slice(start, end)) b.record(o)
            start = end
            last = (end + seed) % RANGES.length
            const [from, to] = RANGES[last]!
            for (const k of KEYS) b.window(k, T0 + from, T0 + to).latency.valueAtQuantile(0.99)
            for (const k of KEYS) b.window(k, T0 + from + 5000, T0 + to + 5000).latency.valueAtQuantile(0.99)
          }
          // b first answers the range it last queried (its running totals sit there), a answers fresh
          expect(snapshot(b, last)).toEqual(snapshot(a))
        },
      ),
      { numRuns: 150 },
    )
  })

  it('window totals equal a brute-force sum of the observations in the range (fine region)', () => {
    fc.assert(
      fc.property(fc.array(obsArb, { minLength: 1, maxLength: 100 }), (obs) => {
        const s = new SignalStore(CFG)
        stores.push(s)
        for (const o of obs) s.record(o)
        const newest = Math.max(...obs.map((o) => o.timeMs))
        const to = Math.floor(newest / 5000) * 5000 + 5000
        // the fine ring, and a range reaching back into the coarse minutes (minute-aligned start)
        for (const from of [to - 60_000, Math.floor((to - 5 * 60_000) / 60_000) * 60_000]) {
          for (const k of KEYS) {
            const inRange = obs.filter((o) => o.kind === 'request' && o.key === k && o.timeMs >= from && o.timeMs < to)
            const w = s.window(k, from, to)
            expect(w.requests).toBe(inRange.reduce((n, o) => n + (o.kind === 'request' ? o.count : 0), 0))
            expect(w.errors).toBe(inRange.reduce((n, o) => n + (o.kind === 'request' ? o.errors : 0), 0))
            const lat = inRange.reduce((n, o) => n + (o.kind === 'request' && o.latenciesUs[0]! >= 0 ? o.count + 1 : 0), 0)
            expect(w.latency.count).toBe(lat)
            expect(w.buckets.reduce((n, b) => n + b.requests, 0)).toBe(w.requests)
          }
        }
      }),
      { numRuns: 100 },
    )
  })
})
