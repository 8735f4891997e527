/** The anytime-valid sequential test: false alarms bounded however often it looks, fast when the effect is real. */
import { describe, expect, it } from 'vitest'
import { eValue, feed, kellyStake, newEvidence, rateUpperBound } from '../../src/engine/evidence.js'
import { prng as rng } from '../support/otlp-fixtures.js'
import { binomial } from '../support/h0.js'

/**
 * Runs one watch: `batches` batches of `size` requests with bad-probability p, judged against
 * `level`; the stake of the next batch is set from the last `recent` batches. Returns the first
 * batch index at which the e-value reached `bound`, or -1.
 */
function run(p: number, level: number, batches: number, size: number, bound: number, r: () => number, recent = 6): number {
  const e = newEvidence()
  const hist: [number, number][] = []
  for (let i = 0; i < batches; i++) {
    const bad = binomial(size, p, r)
    hist.push([size, bad])
    if (hist.length > recent) hist.shift()
    const rn = hist.reduce((a, h) => a + h[0], 0)
    const rb = hist.reduce((a, h) => a + h[1], 0)
    feed(e, size, bad, level, rn, rb)
    if (eValue(e) >= bound) return i
  }
  return -1
}

describe('sequential evidence (betting martingale)', () => {
  it.each([
    { name: 'spans: 120 looks of 100 requests', batches: 120, size: 100 },
    { name: '60 s metrics: 10 looks of 1,200 requests', batches: 10, size: 1200 },
    { name: 'low traffic: 120 looks of 5 requests', batches: 120, size: 5 },
  ])('under H0 (p at the level) the false-alarm rate stays below alpha: $name', ({ batches, size }) => {
    // alpha = 0.05 (bound 20) so that 2,000 runs can show the rate; the guarantee is the same at 0.001
    const r = rng(7)
    let alarms = 0
    const runs = 2000
    for (let i = 0; i < runs; i++) if (run(0.03, 0.03, batches, size, 20, r) >= 0) alarms++
    expect(alarms / runs).toBeLessThanOrEqual(0.05)
  })

  it('a version at a lower rate than the level almost never alarms', () => {
    const r = rng(11)
    let alarms = 0
    for (let i = 0; i < 1000; i++) if (run(0.01, 0.03, 120, 100, 1000, r) >= 0) alarms++
    expect(alarms).toBe(0)
  })

  it('a real effect is found fast, and at any cadence', () => {
    const r = rng(3)
    // 10 % bad against a 3 % level: 100 requests per 5 s look (20 req/s)
    const spans = run(0.1, 0.03, 120, 100, 1000, r)
    expect(spans).toBeGreaterThanOrEqual(0)
    expect(spans).toBeLessThan(6)
    // the same traffic as one 60 s metric report per look: decided at the first or second report
    const metrics = run(0.1, 0.03, 10, 1200, 1000, r)
    expect(metrics).toBeGreaterThanOrEqual(0)
    expect(metrics).toBeLessThanOrEqual(1)
  })

  it('a fault that starts late in the watch is found as fast as one at the start (good data costs nothing)', () => {
    const r = rng(5)
    const e = newEvidence()
    let rn = 0
    let rb = 0
    for (let i = 0; i < 100; i++) {
      const bad = binomial(100, 0.005, r)
      feed(e, 100, bad, 0.03, 600, (rb = bad * 6))
      rn = 600
    }
    const before = eValue(e)
    let at = -1
    for (let i = 0; i < 20 && at < 0; i++) {
      const bad = binomial(100, 0.1, r)
      feed(e, 100, bad, 0.03, rn, (rb = Math.round(rb * 0.5 + bad * 3)))
      if (eValue(e) >= 1000) at = i
    }
    expect(before).toBeLessThan(1)
    expect(at).toBeGreaterThanOrEqual(0)
    expect(at).toBeLessThan(8)
  })

  it('overwhelming evidence stays a finite number (verdicts are signed canonical JSON)', () => {
    const e = newEvidence()
    for (let i = 0; i < 50; i++) feed(e, 10_000, 9_000, 0.01, 10_000, 9_000)
    expect(Number.isFinite(eValue(e))).toBe(true)
    expect(eValue(e)).toBeGreaterThan(1e100)
  })

  it('kelly stake: zero at or below the level, capped above it', () => {
    expect(kellyStake(100, 1, 0.03)).toBe(0)
    expect(kellyStake(0, 0, 0.03)).toBe(0)
    expect(kellyStake(100, 10, 0.03)).toBeGreaterThan(0)
    expect(kellyStake(100, 100, 0.03) * 0.03).toBeLessThanOrEqual(0.5 + 1e-12)
  })
})

describe('rate upper bound', () => {
  it('covers the true rate with probability >= 1 - delta', () => {
    const r = rng(9)
    let misses = 0
    for (let i = 0; i < 4000; i++) if (rateUpperBound(binomial(300, 0.02, r), 300, 0.05) < 0.02) misses++
    expect(misses / 4000).toBeLessThanOrEqual(0.05)
  })
  it('is above zero for zero observed events and shrinks with more data', () => {
    const a = rateUpperBound(0, 300, 0.001)
    const b = rateUpperBound(0, 30_000, 0.001)
    expect(a).toBeGreaterThan(0.01)
    expect(b).toBeLessThan(0.001)
    expect(rateUpperBound(0, 0, 0.001)).toBe(1)
  })
})
