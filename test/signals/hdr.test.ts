import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as hdr from 'hdr-histogram-js'
import { CountsHistogram, HdrLayout, valueAtPercentile } from '../../src/signals/hdr.js'

hdr.initWebAssemblySync()

const SETTINGS = [
  { lowestUs: 1, highestUs: 60_000_000, significantDigits: 1 },
  { lowestUs: 1, highestUs: 60_000_000, significantDigits: 2 },
  { lowestUs: 1, highestUs: 60_000_000, significantDigits: 3 },
  { lowestUs: 10, highestUs: 3_600_000_000, significantDigits: 2 },
  { lowestUs: 3, highestUs: 1000, significantDigits: 1 },
  // values beyond 2^32 take the non-32-bit index path
  { lowestUs: 1, highestUs: 20_000_000_000, significantDigits: 1 },
]

function lib(s: (typeof SETTINGS)[0], wasm: boolean) {
  return hdr.build({
    lowestDiscernibleValue: s.lowestUs,
    highestTrackableValue: s.highestUs,
    numberOfSignificantValueDigits: s.significantDigits as 1 | 2 | 3,
    bitBucketSize: 32,
    autoResize: false,
    useWebAssembly: wasm,
  })
}

const PERCENTILES = [0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]

describe('CountsHistogram matches hdr-histogram-js', () => {
  it('same answers as the library (JS and WebAssembly) for random values, counts and percentiles', () => {
    fc.assert(
      fc.property(
        fc.nat(SETTINGS.length - 1),
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 5 })), { minLength: 1, maxLength: 300 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (si, values, extraP) => {
          const s = SETTINGS[si]!
          const layout = new HdrLayout(s)
          const mine = new CountsHistogram(layout)
          const js = lib(s, false)
          const wasm = lib(s, true)
          for (const [u, n] of values) {
            // spread over the whole range on a log scale, integers, <= highest
            const v = Math.min(s.highestUs, Math.round(Math.exp(u * Math.log(s.highestUs + 1)) - 1))
            mine.recordValueWithCount(v, n)
            js.recordValueWithCount(v, n)
            wasm.recordValueWithCount(v, n)
          }
          for (const p of [...PERCENTILES, extraP]) {
            const want = js.getValueAtPercentile(p)
            expect(mine.getValueAtPercentile(p)).toBe(want)
            expect(wasm.getValueAtPercentile(p)).toBe(want)
          }
          expect(mine.total).toBe(js.totalCount)
          wasm.destroy()
        },
      ),
      { numRuns: 300 },
    )
  })

  it('every index boundary value lands where the library puts it', () => {
    for (const s of SETTINGS) {
      const layout = new HdrLayout(s)
      const h = new CountsHistogram(layout)
      const js = lib(s, false)
      for (let i = 0; i < layout.length; i++) {
        const lo = layout.lowest[i]!
        if (lo > s.highestUs) break
        for (const v of [lo, Math.min(layout.highest[i]!, s.highestUs)]) {
          h.reset()
          h.recordValue(v)
          js.reset()
          js.recordValue(v)
          expect([v, h.getValueAtPercentile(50), h.getValueAtPercentile(0)]).toEqual([v, js.getValueAtPercentile(50), js.getValueAtPercentile(0)])
          expect(layout.index(v)).toBe(i)
        }
      }
    }
  })

  it('add, subtract, reset and the quantile of a sum equal recording everything into one histogram', () => {
    const layout = new HdrLayout(SETTINGS[0]!)
    const parts = [0, 1, 2, 3].map(() => new CountsHistogram(layout))
    const all = lib(SETTINGS[0]!, false)
    let seed = 3
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    for (let i = 0; i < 4000; i++) {
      const v = Math.round(Math.exp(rnd() * 14))
      parts[i % 4]!.recordValue(v)
      all.recordValue(v)
    }
    const sum = new CountsHistogram(layout)
    for (const p of parts) sum.add(p)
    const extra = new CountsHistogram(layout)
    extra.recordValueWithCount(59_000_000, 7)
    sum.add(extra)
    sum.subtract(extra)
    for (const p of PERCENTILES) {
      expect(sum.getValueAtPercentile(p)).toBe(all.getValueAtPercentile(p))
      expect(valueAtPercentile(parts, parts.length, p)).toBe(all.getValueAtPercentile(p))
    }
    sum.reset()
    expect(sum.total).toBe(0)
    expect(sum.counts.every((c) => c === 0)).toBe(true)
    expect(sum.getValueAtPercentile(99)).toBe(0)
  })
})
