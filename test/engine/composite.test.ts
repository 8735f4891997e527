/**
 * The error test against the baseline's counts (src/engine/composite.ts): valid for the composite
 * null "the baseline's rate is some p and the new version's is at most p" however often it is
 * looked at, faster than the plug-in bound for a quiet baseline, and what lets a quiet service's
 * error rate corroborate a latency breach.
 */
import { describe, expect, it } from 'vitest'
import { compositeEvidence, errorGrid, feedGrid, newGridEvidence } from '../../src/engine/composite.js'
import { engineSchema, type EngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState } from '../../src/engine/evaluate.js'
import { eValue, feed, newEvidence } from '../../src/engine/evidence.js'
import { corroborationBound, errorLevel, type BaselineNumbers } from '../../src/engine/rules.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { prng as rng } from '../support/otlp-fixtures.js'
import { binomial } from '../support/h0.js'
import { FakeView } from './fake-view.js'

const cfg = engineSchema.parse({})
const c = cfg.defaults
const base = (errors: number, requests: number, pooled?: { events: number; samples: number }): BaselineNumbers => ({
  requests,
  errors,
  latencyUs: NaN,
  latencyCount: 0,
  latencyAbove: 0,
  shift: [],
  resourceSlope: {},
  pooled: pooled === undefined ? undefined : { fromMs: 0, errors: pooled, latency: undefined, shift: [] },
})

/**
 * One watch against a baseline of `nb` requests at rate `p`: `batches` batches of `size` requests at
 * rate `q`, the next batch's stakes from the last two batches (a metric series' confirmation span).
 * Returns the first batch at which each test reached `bound` (-1: never).
 */
function run(p: number, nb: number, q: number, batches: number, size: number, bound: number, r: () => number): { composite: number; plugIn: number } {
  const b = base(binomial(nb, p, r), nb)
  // a draw with many errors may leave the plug-in bound tight: no grid, this test never alarms (nor runs in the engine)
  const grid = errorGrid(b)
  const level = errorLevel(c, b)
  const g = newGridEvidence()
  const e = newEvidence()
  const hist: [number, number][] = []
  const out = { composite: -1, plugIn: -1 }
  for (let i = 0; i < batches; i++) {
    const bad = binomial(size, q, r)
    if (grid !== undefined) feedGrid(g, grid, size, bad)
    hist.push([size, bad])
    if (hist.length > 2) hist.shift()
    g.stakeN = hist.reduce((a, h) => a + h[0], 0)
    g.stakeBad = hist.reduce((a, h) => a + h[1], 0)
    feed(e, size, bad, level, g.stakeN, g.stakeBad)
    if (out.composite < 0 && grid !== undefined && compositeEvidence(g, grid) >= bound) out.composite = i
    if (out.plugIn < 0 && eValue(e) >= bound) out.plugIn = i
  }
  return out
}

describe('composite error test', () => {
  it.each([
    { name: 'quiet: 500 baseline requests at 0.5 %, 40 looks of 90', p: 0.005, nb: 500, batches: 40, size: 90 },
    { name: 'nearly clean: 500 baseline requests at 0.1 %, 40 looks of 90', p: 0.001, nb: 500, batches: 40, size: 90 },
    { name: 'busier: 1,500 baseline requests at 0.5 %, 60 looks of 100', p: 0.005, nb: 1500, batches: 60, size: 100 },
    { name: 'tiny: 200 baseline requests at 0.5 %, 40 looks of 20', p: 0.005, nb: 200, batches: 40, size: 20 },
  ])('under the composite null (the version at the baseline\'s own rate) it alarms at most alpha: $name', ({ p, nb, batches, size }) => {
    // alpha = 0.05 (bound 20) so that 2,000 runs can show the rate; the guarantee is the same at 0.001
    const runs = 2000
    const rate = (bound: number): number => {
      const r = rng(17)
      let alarms = 0
      for (let i = 0; i < runs; i++) if (run(p, nb, p, batches, size, bound, r).composite >= 0) alarms++
      return alarms / runs
    }
    const r20 = rate(20)
    const r2 = rate(2)
    expect(r20).toBeLessThanOrEqual(0.05)
    // Ville allows 1/2 at a bound of 2; the construction measures 0.008-0.055 here (0-0.002 at 20),
    // and 0.1 pins that slack. An Eb read at the top of each interval instead of its least (x e)
    // measured 0.1-0.2 in two of these worlds against session 28's lifted level, but only 0.03-0.08
    // against the baseline's own rate: this no longer tells that construction apart. A level of 0
    // (NaN evidence, reported as the largest e-value) it does: the nearly clean world alarms
    expect(r2).toBeLessThanOrEqual(0.1)
  })

  it('a quiet baseline: reaches the corroboration bound sooner than the plug-in bound does', () => {
    // 1.5 req/s exporting every 60 s, a 0.5 % baseline of 5 minutes, the version at 5 %
    const r = rng(23)
    let sooner = 0
    let later = 0
    for (let i = 0; i < 200; i++) {
      const x = run(0.005, 450, 0.05, 15, 90, corroborationBound(c), r)
      const plugIn = x.plugIn < 0 ? Infinity : x.plugIn
      const composite = x.composite < 0 ? Infinity : x.composite
      if (composite < plugIn) sooner++
      if (composite > plugIn) later++
    }
    expect(sooner).toBeGreaterThan(100)
    expect(later).toBeLessThan(sooner / 4)
  })

  it('a 5 % fault at 1.5 req/s with 60 s reports against six minutes of history at 0.5 %: a witness on the third report', () => {
    // the expected counts of bench/error-evidence.ts's row (1.5 req/s, 60 s): 2 errors in the
    // baseline's 450 requests, 90 requests and 4-5 errors per report. Against the level half way to
    // the threshold (before session 37) the witness needed 6 reports here (9 in the bench's
    // fractional counts)
    const grid = errorGrid(base(2, 450)) as NonNullable<ReturnType<typeof errorGrid>>
    const g = newGridEvidence()
    const reached: number[] = []
    const hist: [number, number][] = []
    for (let i = 0; i < 12; i++) {
      const bad = i % 2 === 0 ? 4 : 5
      feedGrid(g, grid, 90, bad)
      hist.push([90, bad])
      if (hist.length > 2) hist.shift()
      g.stakeN = hist.reduce((a, h) => a + h[0], 0)
      g.stakeBad = hist.reduce((a, h) => a + h[1], 0)
      if (compositeEvidence(g, grid) >= corroborationBound(c)) reached.push(i + 1)
    }
    expect(reached[0]).toBeLessThanOrEqual(3)
  })

  it('a clean baseline (no errors in its 540 requests): one error among 50 of the version is no witness', () => {
    // the grid's first rate is then 0, a level no bet is defined against (stakes of 1/level): it
    // once made the evidence NaN, reported as the largest e-value (a 1.3x slower version at
    // 1.2 req/s rolled back with its one error as the witness)
    const grid = errorGrid(base(0, 540)) as NonNullable<ReturnType<typeof errorGrid>>
    expect(grid.levels[0]).toBeGreaterThan(0)
    const g = newGridEvidence()
    feedGrid(g, grid, 49, 0)
    g.stakeN = 49
    g.stakeBad = 0
    feedGrid(g, grid, 1, 1)
    g.stakeN = 50
    g.stakeBad = 1
    feedGrid(g, grid, 5, 1)
    const e = compositeEvidence(g, grid)
    expect(Number.isFinite(e)).toBe(true)
    expect(e).toBeLessThan(corroborationBound(c))
  })

  it('its grid: ascending levels from the baseline rate, the least Eb (at most 1) first, a top far beyond any bound', () => {
    const g = errorGrid(base(2, 500))
    expect(g).toBeDefined()
    const { levels, logFloor, logTail } = g as NonNullable<typeof g>
    expect(levels[0]).toBeCloseTo(2 / 500, 12)
    for (let j = 1; j < levels.length; j++) expect(levels[j] as number).toBeGreaterThan(levels[j - 1] as number)
    expect(logFloor[0] as number).toBeLessThanOrEqual(0)
    for (let j = 1; j < logFloor.length; j++) expect(logFloor[j] as number).toBeGreaterThanOrEqual(logFloor[j - 1] as number)
    expect(logTail).toBeGreaterThanOrEqual(Math.log(1e8) - 1e-6)
    // nothing fed: the evidence is Eb at the baseline's own rate, below 1
    expect(compositeEvidence(newGridEvidence(), g as NonNullable<typeof g>)).toBeLessThan(1)
  })

  it('with a pooled history: the history counts, the infimum starting at the window rate', () => {
    const g = errorGrid(base(3, 500, { events: 10, samples: 2000 })) as NonNullable<ReturnType<typeof errorGrid>>
    expect(g.levels[0]).toBeCloseTo(3 / 500, 12)
    // the history (0.5 % of 2,000) makes rates well above the window's improbable sooner than the window alone
    const w = errorGrid(base(3, 500)) as NonNullable<ReturnType<typeof errorGrid>>
    expect(g.levels[g.levels.length - 1] as number).toBeLessThan(w.levels[w.levels.length - 1] as number)
  })

  it('no grid without baseline requests; one for a busy baseline and for an hour pooled', () => {
    expect(errorGrid(base(0, 0))).toBeUndefined()
    // until session 37 none was built where the plug-in bound is tight (a quarter of the effect)
    expect(errorGrid(base(300, 30_000))).toBeDefined()
    expect(errorGrid(base(0, 1_000_000))).toBeDefined()
    expect(errorGrid(base(3, 450, { events: 27, samples: 5400 }))).toBeDefined()
  })

  it('a busy baseline (1 % of 30,000): the counts witness is no later than the plug-in one', () => {
    // against the baseline's own rate the prior's price (Eb ~ 0.3 / sqrt(300) at that rate) is
    // smaller than what the lift costs the plug-in test: why a grid is now built at any traffic
    const r = rng(29)
    let later = 0
    for (let i = 0; i < 100; i++) {
      const x = run(0.01, 30_000, 0.035, 20, 500, corroborationBound(c), r)
      const plugIn = x.plugIn < 0 ? Infinity : x.plugIn
      const composite = x.composite < 0 ? Infinity : x.composite
      if (composite > plugIn) later++
    }
    expect(later).toBe(0)
  })
})

describe('a quiet service: the error rate corroborates a latency breach on the evidence of its baseline counts', () => {
  const V1 = { namespace: 'ns', service: 'svc', version: 'v1' }
  const V2 = { namespace: 'ns', service: 'svc', version: 'v2' }
  const D = 1_000_000_000_000
  const S = 1000

  it('decides, the error reading corroborating on its evidence against the baseline counts, before latency alone would', () => {
    const v = new FakeView()
    // 1.2 req/s: 6 requests per 5 s bucket; the old version's 6 minutes hold 2 errors in 432 (0.46 %)
    v.traffic(V1, D - 360 * S, D, { rps: 1.2, latencyMs: 100 })
    for (const at of [300, 100]) v.traffic(V1, D - at * S, D - (at - 5) * S, { rps: 1.2, errorRate: 0.2, latencyMs: 100 })
    // the new version: 1 error every third bucket (5.6 %), 2.5x slower
    for (let b = 0; b < 180; b++) v.traffic(V2, D + b * 5 * S, D + (b + 1) * 5 * S, { rps: 1.2, errorRate: b % 3 === 0 ? 0.2 : 0, latencyMs: 250 })
    const config: EngineConfig = cfg
    let state = initialState()
    const verdicts: Verdict[] = []
    for (let t = D; t <= D + 600 * S && verdicts.length === 0; t += 5 * S) {
      const out = evaluate(config, state, { now: t, watermark: t, view: v, newVersions: t === D ? [{ ...V2, firstSeenMs: D }] : [] })
      state = out.state
      verdicts.push(...out.verdicts)
    }
    expect(verdicts.map((x) => x.kind)).toEqual(['rollback'])
    // before latency's own hold (singleSignalHold, 300 s) decides it alone: the plug-in error test
    // alone never reaches the corroboration bound here
    expect(((verdicts[0] as Verdict).decidedAt - D) / S).toBeLessThan(300)
    const er = (verdicts[0] as Verdict).signals.find((x) => x.signal === 'error_rate')
    expect(er?.state).toBe('breach')
    expect(er?.critical).toBe(false)
    expect(er?.evidence as number).toBeGreaterThanOrEqual(corroborationBound(c))
    expect((verdicts[0] as Verdict).reason).toContain("corroborating: evidence against the baseline's counts")
  })
})
