import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { HistogramPool, SLAB_HISTOGRAMS } from '../../src/signals/histograms.js'
import { CountsHistogram, HdrLayout } from '../../src/signals/hdr.js'

const SETTINGS = { lowestUs: 1, highestUs: 60_000_000, significantDigits: 1, poolSize: 4 }

describe('HistogramPool slabs', () => {
  it('histograms of one slab share its buffer without overlapping: each keeps only its own values', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(2 * SLAB_HISTOGRAMS + 2), fc.integer({ min: 0, max: 60_000_000 })), { maxLength: 400 }), (writes) => {
        const pool = new HistogramPool(SETTINGS)
        const hs = Array.from({ length: 2 * SLAB_HISTOGRAMS + 3 }, () => pool.take())
        const plain = hs.map(() => new CountsHistogram(pool.layout))
        for (const [i, v] of writes) {
          hs[i]!.recordValue(v)
          plain[i]!.recordValue(v)
        }
        for (let i = 0; i < hs.length; i++) {
          expect(Array.from(hs[i]!.counts)).toEqual(Array.from(plain[i]!.counts))
          expect(hs[i]!.total).toBe(plain[i]!.total)
        }
        expect(pool.slabs).toBe(3)
        expect(hs[0]!.counts.buffer).toBe(hs[SLAB_HISTOGRAMS - 1]!.counts.buffer)
        expect(hs[0]!.counts.buffer).not.toBe(hs[SLAB_HISTOGRAMS]!.counts.buffer)
      }),
    )
  })

  it('a histogram given back is reset and handed out again before a new slab part is used', () => {
    const pool = new HistogramPool(SETTINGS)
    const a = pool.take()
    a.recordValue(1234)
    pool.give(a)
    const b = pool.take()
    expect(b).toBe(a)
    expect(b.total).toBe(0)
    expect(b.counts.every((c) => c === 0)).toBe(true)
    expect(pool.created).toBe(1)
  })

  it('after drain, new histograms come from a new slab', () => {
    const pool = new HistogramPool(SETTINGS)
    const a = pool.take()
    pool.drain()
    const b = pool.take()
    expect(b.counts.buffer).not.toBe(a.counts.buffer)
    expect(pool.slabs).toBe(2)
  })

  it('storage of the wrong length is refused', () => {
    const layout = new HdrLayout(SETTINGS)
    expect(() => new CountsHistogram(layout, new Uint32Array(layout.length + 1))).toThrow(/counts holds/)
  })
})
