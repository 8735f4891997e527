/**
 * The latency evidence's shift tests (rules.ts shiftLevels, sequential.ts): a slower bulk is
 * evidence long before a 1 % tail holds enough samples, and a version that is not slower (or only
 * a little: a scaled copy within half the contract's effect) stays within alpha however often it
 * is looked at.
 */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig, mergeContract, type Contract, type ContractOverride } from '../../src/engine/config.js'
import { requestNumbers } from '../../src/engine/gate.js'
import { latencyLevels, shiftLevels, type BaselineNumbers } from '../../src/engine/rules.js'
import { advance, latencyEvidence, newWatchEvidence, type Levels } from '../../src/engine/sequential.js'
import { prng } from '../support/otlp-fixtures.js'
import { FakeView } from './fake-view.js'

const OLD = { namespace: 'ns', service: 'svc', version: 'v1' }
const NEW = { namespace: 'ns', service: 'svc', version: 'v2' }
const T0 = 1_000_000_000_000
const BUCKET = 5000

const contract = (o: ContractOverride = {}): Contract => mergeContract(defaultEngineConfig().defaults, o)

/** a lognormal latency around `medianMs` (sigma 0.6: p99 about 4x the median) */
function lognormal(r: () => number, medianMs: number): () => number {
  return () => {
    const u = Math.max(r(), 1e-12)
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r())
    return medianMs * Math.exp(0.6 * z)
  }
}

function levels(c: Contract, base: BaselineNumbers): Levels {
  const l = latencyLevels(c, base)
  return { errorLevel: NaN, latencyCutUs: l.cutUs, latencyLevel: l.level, shift: shiftLevels(c, base), errorGrid: undefined }
}

/**
 * A baseline of 5 min at `rps`, then the new version at `rps` with its latency `factor` x the old;
 * evidence fed bucket by bucket for `buckets` buckets. Returns the first bucket index at which the
 * latency evidence reached `bound`, or -1.
 */
function watch(c: Contract, seed: number, rps: number, factor: number, buckets: number, bound: number): number {
  const r = prng(seed)
  const view = new FakeView(BUCKET)
  view.traffic(OLD, T0 - 300_000, T0, { rps, sample: lognormal(r, 40) })
  view.traffic(NEW, T0, T0 + buckets * BUCKET, { rps, sample: lognormal(r, 40 * factor) })
  const base: BaselineNumbers = { ...requestNumbers(c, view.window(OLD, T0 - 300_000, T0)), resourceSlope: {} }
  const lv = levels(c, base)
  const e = newWatchEvidence(c.signals.latency.shiftQuantiles.length)
  for (let i = 1; i <= buckets; i++) {
    const end = T0 + i * BUCKET
    advance(e, view, NEW, T0, end, lv, view.window(NEW, Math.max(T0, end - 15_000), end))
    if (latencyEvidence(e) >= bound) return i - 1
  }
  return -1
}

describe('latency shift evidence', () => {
  it('baseline numbers carry each shift quantile with its samples above its cut', () => {
    const c = contract()
    const view = new FakeView(BUCKET).traffic(OLD, T0, T0 + 60_000, { rps: 100, sample: lognormal(prng(1), 40) })
    const n = requestNumbers(c, view.window(OLD, T0, T0 + 60_000))
    expect(n.shift).toHaveLength(2)
    const [median, p90] = n.shift
    expect(median?.us).toBeGreaterThan(30_000)
    expect(median?.us).toBeLessThan(50_000)
    expect(p90?.us).toBeGreaterThan(median?.us ?? Infinity)
    // above half way to 1.5x (1.25x the median): roughly P(Z > ln 1.25 / 0.6) = 36 % of 6,000
    expect(median?.above).toBeGreaterThan(1500)
    expect(median?.above).toBeLessThan(2800)
    expect(shiftLevels(c, { ...n, resourceSlope: {} }).map((l) => l.level)).toEqual([0.5, expect.closeTo(0.1, 1)])
    // an empty list tests the tail only
    expect(requestNumbers(contract({ signals: { latency: { shiftQuantiles: [] } } }), view.window(OLD, T0, T0 + 60_000)).shift).toEqual([])
  })

  it('a 2x slower version at 2 req/s is confirmed within a minute; the tail alone is not', () => {
    const shifts = contract()
    const tailOnly = contract({ signals: { latency: { shiftQuantiles: [] } } })
    const withShift: number[] = []
    const without: number[] = []
    for (let seed = 1; seed <= 10; seed++) {
      withShift.push(watch(shifts, seed, 2, 2, 24, 1000))
      without.push(watch(tailOnly, seed, 2, 2, 24, 1000))
    }
    // 12 buckets = 60 s = 120 requests
    for (const b of withShift) {
      expect(b).toBeGreaterThanOrEqual(0)
      expect(b).toBeLessThan(12)
    }
    expect(without.filter((b) => b >= 0 && b < 12).length).toBeLessThan(withShift.length / 2)
  })

  it.each([
    { name: 'the same distribution', factor: 1 },
    { name: 'a 1.2x scaled copy (within half the 1.5x effect)', factor: 1.2 },
  ])('under the null ($name) looked at every 5 s for 10 min, false alarms stay below alpha', ({ factor }) => {
    // alpha = 0.05 (bound 20) so that 300 runs can show the rate; the guarantee is the same at 0.001
    const c = contract()
    let alarms = 0
    const runs = 300
    for (let seed = 1; seed <= runs; seed++) if (watch(c, 1000 + seed, 5, factor, 120, 20) >= 0) alarms++
    expect(alarms / runs).toBeLessThanOrEqual(0.05)
  })
})
