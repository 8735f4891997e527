import { afterEach, describe, expect, it } from 'vitest'
import { SignalStore } from '../../src/signals/store.js'
import { signalsSchema } from '../../src/signals/config.js'
import type { ProbeStats } from '../../src/signals/view.js'
import type { SeriesKey } from '../../src/normalize/observations.js'

// The store keeps a series' probe readings as parallel arrays and shares equal id strings
// (src/signals/store.ts, ProbeLog): answers must be those of one sorted list of readings, where a
// reading of the same container at the same time replaces the earlier one and the oldest readings
// beyond `probeSamples` go first. The reference below is that list, written the plain way.

const K: SeriesKey = { namespace: 'shop', service: 'cart', version: 'v1' }
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000)

interface Reading {
  t: number
  id: string
  ready: boolean
}

class Reference {
  readonly list: Reading[] = []
  constructor(private readonly max: number) {}
  record(id: string, t: number, ready: boolean): void {
    let i = this.list.length
    while (i > 0 && (this.list[i - 1] as Reading).t > t) i--
    for (let j = i - 1; j >= 0 && (this.list[j] as Reading).t === t; j--) {
      const r = this.list[j] as Reading
      if (r.id === id) {
        r.ready = ready
        return
      }
    }
    this.list.splice(i, 0, { t, id, ready })
    while (this.list.length > this.max) this.list.shift()
  }
  stats(from: number, to: number): ProbeStats {
    const rs = this.list.filter((r) => r.t >= from && r.t < to)
    const bad = rs.filter((r) => !r.ready)
    return {
      readings: rs.length,
      failures: bad.length,
      firstFailureMs: bad[0]?.t,
      lastFailureMs: bad[bad.length - 1]?.t,
      failing: [...new Set(bad.map((r) => r.id))].sort(),
    }
  }
}

const stores: SignalStore[] = []
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

describe('probe readings kept as parallel arrays', () => {
  for (const [pods, max] of [
    [2, 256],
    [3, 16],
    [90, 64], // more containers than the id-sharing scan looks back over
  ] as const) {
    it(`answers as one sorted list of readings (${pods} pods x 2 containers, probeSamples ${max})`, () => {
      const store = new SignalStore(signalsSchema.parse({ probeSamples: max }))
      stores.push(store)
      const ref = new Reference(max)
      let x = 7 + pods
      const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
      for (let n = 0; n < 3000; n++) {
        // mostly in order, some late (up to 30 s back), duplicates at the same second
        const t = T0 + Math.floor(n / 10) * 1000 - (rnd() < 0.2 ? Math.floor(rnd() * 30) * 1000 : 0)
        const pod = `p${Math.floor(rnd() * pods)}`
        const container = rnd() < 0.5 ? 'app' : 'sidecar'
        const ready = rnd() < 0.8
        store.record({ kind: 'probe', key: K, pod, container, timeMs: t, ready })
        ref.record(`${pod}/${container}`, t, ready)
        if (n % 250 === 249) {
          const hi = T0 + Math.floor(n / 10) * 1000 + 1000
          for (const [from, to] of [
            [T0, hi],
            [hi - 20_000, hi],
            [hi - 45_000, hi - 15_000],
          ] as const) {
            expect(store.window(K, from, to).probes, `after ${n + 1} readings, [${from - T0}, ${to - T0})`).toEqual(ref.stats(from, to))
          }
        }
      }
    })
  }
})
