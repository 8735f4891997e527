/** The signal rules one by one, table-driven, against the fake view. */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig, mergeContract, type Contract, type ContractOverride } from '../../src/engine/config.js'
import { certainThresholdMs, errorLevel, errorRateRule, latencyRule, resourceRule, sliceLatencyBeyond, type BaselineNumbers } from '../../src/engine/rules.js'
import { eValue, feed, newEvidence } from '../../src/engine/evidence.js'
import type { WindowStats } from '../../src/signals/view.js'
import { binomialLowerTail, binomialUpperTail, logGamma } from '../../src/engine/stats.js'
import { FakeView } from './fake-view.js'

const K = { namespace: 'ns', service: 'svc', version: 'v2' }
const T = 1_000_000_000_000 // window end, bucket aligned
const base = (o: Partial<BaselineNumbers> = {}): BaselineNumbers => ({ requests: 3000, errors: 15, latencyUs: 100_000, latencyCount: 3000, latencyAbove: 0, shift: [], resourceSlope: {}, ...o })
// these cases are written for a 30 s span in three 10 s slices (the rules take the span they are given)
const contract = (o: ContractOverride = {}): Contract => mergeContract({ ...defaultEngineConfig().defaults, window: 30_000, slices: 3 }, o)

describe('binomial upper tail', () => {
  const brute = (k: number, n: number, p: number) => {
    let s = 0
    for (let i = k; i <= n; i++) s += Math.exp(logGamma(n + 1) - logGamma(i + 1) - logGamma(n - i + 1)) * p ** i * (1 - p) ** (n - i)
    return s
  }
  it.each([
    [2, 3, 0.1],
    [5, 20, 0.05],
    [30, 300, 0.05],
    [60, 600, 0.005],
  ])('P(X >= %i | n=%i, p=%f) matches brute force', (k, n, p) => {
    expect(binomialUpperTail(k, n, p)).toBeCloseTo(brute(k, n, p), 10)
  })
  it('is 1 when k is not above the mean', () => expect(binomialUpperTail(5, 100, 0.1)).toBe(1))
  it.each([
    [0, 12, 1 / 3],
    [1, 20, 0.3],
    [2, 124, 1 / 3],
  ])('P(X <= %i | n=%i, p=%f) matches brute force', (k, n, p) => {
    expect(binomialLowerTail(k, n, p)).toBeCloseTo(1 - (k + 1 <= n ? brute(k + 1, n, p) : 0), 10)
  })
  it('lower tail is 1 when k is not below the mean', () => expect(binomialLowerTail(10, 100, 0.1)).toBe(1))
})

/** The e-value one look at the window gives (one batch through the real sequential test). */
function oneLook(c: Contract, w: WindowStats, b: BaselineNumbers): number {
  return eValue(feed(newEvidence(), w.requests, w.errors, errorLevel(c, b), w.requests, w.errors))
}

function threeInSixty(v: FakeView): void {
  for (let s = 0; s < 3; s++) {
    v.traffic(K, T - 30_000 + s * 10_000, T - 25_000 + s * 10_000, { rps: 2, errorRate: 0.1 })
    v.traffic(K, T - 25_000 + s * 10_000, T - 20_000 + s * 10_000, { rps: 2, errorRate: 0 })
  }
}

describe('error rate rule', () => {
  // slices of the default 30 s window: [T-30, T-20), [T-20, T-10), [T-10, T)
  // `real`: the evidence of one look at the window; otherwise evidence is taken as overwhelming (1e9)
  const cases: { name: string; fill: (v: FakeView) => void; c?: ContractOverride; b?: Partial<BaselineNumbers>; state: string; critical?: boolean; real?: boolean }[] = [
    { name: '2 errors in 3 requests: below the floor', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 0.1, errorRate: 1 }), state: 'insufficient' },
    {
      name: '2 errors in 3 requests with floor 1: not evidence',
      fill: (v) => v.traffic(K, T - 30_000, T - 25_000, { rps: 0.2, errorRate: 1 }).traffic(K, T - 20_000, T - 15_000, { rps: 0.2, errorRate: 0 }).traffic(K, T - 10_000, T - 5000, { rps: 0.2, errorRate: 1 }),
      c: { minSamples: 1 },
      state: 'insufficient',
      real: true,
    },
    { name: '4 % sustained vs 0.5 %: breach, below the critical level', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.04 }), state: 'breach', critical: false },
    { name: '10 % sustained vs 0.5 %: breach at the relative critical level (10x, +5 points)', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.1 }), state: 'breach', critical: true },
    { name: '10 % sustained vs 0.5 %, one look at 600 requests: evidence', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.1 }), state: 'breach', real: true },
    { name: '40 % sustained: critical breach', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.4 }), state: 'breach', critical: true },
    { name: '1.5 % vs 0.5 %: below the absolute delta', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.015 }), state: 'healthy' },
    {
      name: 'a spike in one slice only: not sustained',
      fill: (v) => v.traffic(K, T - 30_000, T - 20_000, { rps: 20, errorRate: 0.6 }).traffic(K, T - 20_000, T, { rps: 20, errorRate: 0.005 }),
      state: 'healthy',
    },
    {
      // 4 errors in each of the first two slices of 50, none in the third: the third's 0 of 50 is
      // what 8 errors spread over the span give one slice in three with probability (2/3)^8 = 4 %
      name: '8 % held, one slice of 50 without an error: sustained (its share of 8 errors is not improbably low)',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 5, errorRate: 0.08 }).traffic(K, T - 10_000, T, { rps: 5, errorRate: 0 }),
      state: 'breach',
    },
    {
      // 6 + 6 + 0: (2/3)^12 < 1 %
      name: '12 % in two slices, none in the third: not sustained',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 5, errorRate: 0.12 }).traffic(K, T - 10_000, T, { rps: 5, errorRate: 0 }),
      state: 'healthy',
    },
    {
      // the early look's newest bucket holds what has arrived of it: 10 requests where 200 will be
      name: '10 % in two slices of 200, the newest holding 10 requests: still arriving, insufficient (not judged on two slices)',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 20, errorRate: 0.1 }).traffic(K, T - 10_000, T, { rps: 1, errorRate: 0 }),
      state: 'insufficient',
    },
    {
      name: '10 % in two slices of 200, the newest holding 10 requests of which 2 failed: the arriving slice shows the breach itself',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 20, errorRate: 0.1 }).traffic(K, T - 10_000, T, { rps: 1, errorRate: 0.2 }),
      state: 'breach',
    },
    {
      name: '10 % in the oldest and newest slices of 200, 10 requests between them: the quiet slice is skipped, breach',
      fill: (v) => v.traffic(K, T - 30_000, T - 20_000, { rps: 20, errorRate: 0.1 }).traffic(K, T - 20_000, T - 10_000, { rps: 1, errorRate: 0 }).traffic(K, T - 10_000, T, { rps: 20, errorRate: 0.1 }),
      state: 'breach',
    },
    {
      name: 'a telemetry gap (a slice without requests) is insufficient, never a breach',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 20, errorRate: 0.5 }),
      state: 'insufficient',
    },
    { name: 'baseline below the floor: insufficient', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.5 }), b: { requests: 10, errors: 0 }, state: 'insufficient' },
    { name: 'relative factor: 9 % vs a 5 % baseline (threshold 10 %) stays healthy', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.09 }), b: { requests: 3000, errors: 150 }, state: 'healthy' },
    { name: 'mode off', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 20, errorRate: 0.5 }), c: { signals: { errorRate: { mode: 'off' } } }, state: 'off' },
    // 3 errors in 60 requests, one per slice (5 %): the baseline's own size sets the threshold (its upper bound)
    { name: '3 in 60 vs a clean baseline of 300: beyond the threshold, but not evidence (the upper bound of 0/300 is ~2.3 %)', fill: (v) => threeInSixty(v), b: { requests: 300, errors: 0 }, state: 'insufficient', real: true },
    { name: '3 in 60 vs a clean baseline of 30,000: beyond, but one look is not evidence', fill: (v) => threeInSixty(v), b: { requests: 30_000, errors: 0 }, state: 'insufficient', real: true },
    { name: '5 % of 1,200 vs a clean baseline of 30,000: evidence in one look', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 40, errorRate: 0.05 }), b: { requests: 30_000, errors: 0 }, state: 'breach', real: true },
  ]
  it.each(cases)('$name', ({ fill, c, b, state, critical, real }) => {
    const v = new FakeView()
    fill(v)
    const w = v.window(K, T - 30_000, T)
    const r = errorRateRule(contract(c), w, base(b), real === true ? oneLook(contract(c), w, base(b)) : 1e9)
    expect(r.state).toBe(state)
    if (critical !== undefined) expect(r.critical).toBe(critical)
    if (state === 'breach') expect(r.onsetMs).toBe(T - 30_000)
  })
})

/** A latency sampler: one value of `slow` ms in every `n`, `fast` otherwise. */
function every(n: number, slow: number, fast: number): () => number {
  let i = 0
  return () => (i++ % n === 0 ? slow : fast)
}

describe('latency rule', () => {
  const cases: { name: string; fill: (v: FakeView) => void; b?: Partial<BaselineNumbers>; state: string; critical?: boolean; threshold?: number }[] = [
    { name: '160 ms vs 100 ms: beyond 1.5x', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 10, latencyMs: 160 }), state: 'breach', critical: false, threshold: 150 },
    { name: '140 ms vs 100 ms: within 1.5x', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 10, latencyMs: 140 }), state: 'healthy' },
    { name: '350 ms vs 100 ms: critical (3x)', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 10, latencyMs: 350 }), state: 'breach', critical: true },
    { name: '10 ms vs 2 ms: 5x but under the 20 ms minimum increase', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 10, latencyMs: 10 }), b: { latencyUs: 2000 }, state: 'healthy', threshold: 22 },
    {
      name: 'slow only in the last slice: not sustained',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 10, latencyMs: 100 }).traffic(K, T - 10_000, T, { rps: 10, latencyMs: 900 }),
      state: 'healthy',
    },
    {
      // slices of 50: two slow requests in each of the first two, none in the third, whose p99 (its
      // maximum) reads 100 ms; 0 of the span's 4 slow requests falls in a third of it with
      // probability (2/3)^4 = 20 %
      name: 'a p99 held, one slice of 50 whose maximum is under the threshold: sustained',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 5, sample: every(25, 900, 100) }).traffic(K, T - 10_000, T, { rps: 5, latencyMs: 100 }),
      state: 'breach',
    },
    { name: 'gap: insufficient', fill: (v) => v.traffic(K, T - 20_000, T, { rps: 10, latencyMs: 900 }), state: 'insufficient' },
    {
      name: 'slow in two slices of 100, the newest holding 5 requests: still arriving, insufficient',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 10, latencyMs: 900 }).traffic(K, T - 10_000, T, { rps: 0.5, latencyMs: 100 }),
      state: 'insufficient',
    },
    {
      name: 'slow in two slices of 100, the newest holding 5 slow requests: the arriving slice shows the breach itself',
      fill: (v) => v.traffic(K, T - 30_000, T - 10_000, { rps: 10, latencyMs: 900 }).traffic(K, T - 10_000, T, { rps: 0.5, latencyMs: 900 }),
      state: 'breach',
    },
    { name: 'too few samples', fill: (v) => v.traffic(K, T - 30_000, T, { rps: 1, latencyMs: 900 }), state: 'insufficient' },
  ]
  it.each(cases)('$name', ({ fill, b, state, critical, threshold }) => {
    const v = new FakeView()
    fill(v)
    const r = latencyRule(contract(), v, K, v.window(K, T - 30_000, T), base(b), 1e9)
    expect(r.state).toBe(state)
    if (critical !== undefined) expect(r.critical).toBe(critical)
    if (threshold !== undefined) expect(r.threshold).toBeCloseTo(threshold, 6)
  })
})

describe('resource rule', () => {
  const MiB = 1024 * 1024
  const REQ = 512 * MiB
  const from = T - 180_000
  const grow = (fracPerMin: number, start = 200 * MiB) => (t: number) => start + ((t - from) / 60_000) * fracPerMin * REQ
  const cases: { name: string; fill: (v: FakeView) => void; baseSlope?: number; evalFrom?: number; state: string; critical?: boolean }[] = [
    { name: 'flat pods: healthy', fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0), REQ).resource(K, 'p1', from, T, 10_000, grow(0), REQ), state: 'healthy' },
    { name: 'leak of 5 %/min: breach', fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0.05), REQ).resource(K, 'p1', from, T, 10_000, grow(0.05), REQ), state: 'breach', critical: false },
    { name: 'leak of 15 %/min: critical', fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0.15), REQ), state: 'breach', critical: true },
    { name: 'baseline grew as fast: healthy', fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0.05), REQ), baseSlope: 0.04, state: 'healthy' },
    {
      name: 'median across pods: one leaking pod of three is not the version',
      fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0.2), REQ).resource(K, 'p1', from, T, 10_000, grow(0), REQ).resource(K, 'p2', from, T, 10_000, grow(0), REQ),
      state: 'healthy',
    },
    { name: 'a single jump, flat otherwise: Theil-Sen ignores it', fill: (v) => v.resource(K, 'p0', from, T, 10_000, (t) => (t > T - 60_000 ? 300 * MiB : 200 * MiB), REQ), state: 'healthy' },
    { name: 'no request: slope relative to the current level', fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0.05), undefined), state: 'breach' },
    { name: 'too few readings', fill: (v) => v.resource(K, 'p0', from, T, 60_000, grow(0.5), REQ), evalFrom: from, state: 'insufficient' },
    {
      name: 'readings every 60 s: the window grows (after deploy + warmup) until a pod holds minPoints',
      fill: (v) => v.resource(K, 'p0', T - 360_000, T, 60_000, grow(0.05), REQ).resource(K, 'p1', T - 360_000, T, 60_000, grow(0.05), REQ),
      evalFrom: T - 360_000,
      state: 'breach',
    },
    { name: 'window starts before deploy + warmup', fill: (v) => v.resource(K, 'p0', from, T, 10_000, grow(0.5), REQ), evalFrom: from + 1, state: 'insufficient' },
  ]
  it.each(cases)('$name', ({ fill, baseSlope, evalFrom, state, critical }) => {
    const v = new FakeView()
    fill(v)
    const r = resourceRule(contract(), v, K, T, evalFrom ?? from, baseSlope === undefined ? {} : { memory: baseSlope })
    expect(r.state).toBe(state)
    if (critical !== undefined) expect(r.critical).toBe(critical)
  })
})

describe('pre-deploy latency window beyond the rest of the baseline (sliceLatencyBeyond)', () => {
  const c = contract({ window: 15_000 })
  const BW = 300_000
  /** 5 min of the old version at 100 ms with 1 % at 150 ms; its last 15 s as given */
  const view = (last: () => number) => {
    let i = 0
    const v = new FakeView()
    v.traffic(K, T - BW, T - 15_000, { rps: 5, sample: () => (++i % 100 === 0 ? 150 : 100) })
    v.traffic(K, T - 15_000, T, { rps: 5, sample: last })
    return v
  }
  const judge = (v: FakeView) => {
    const bw = v.window(K, T - BW, T)
    const p99 = bw.latency.valueAtQuantile(0.99)
    const cut = ((p99 / 1000 + Math.max(1.5 * (p99 / 1000), p99 / 1000 + 20)) / 2) * 1000
    const numbers = base({ requests: bw.requests, errors: 0, latencyUs: p99, latencyCount: bw.latency.count, latencyAbove: bw.latency.countAbove(cut) })
    return sliceLatencyBeyond(c, v.window(K, T - 15_000, T), numbers)
  }
  it('one slow request in a window of 75 moves its p99 beyond the threshold, but is not a breach', () => {
    let i = 0
    const v = view(() => (++i === 40 ? 600 : 100))
    expect(v.window(K, T - 15_000, T).latency.valueAtQuantile(0.99) / 1000).toBe(600)
    expect(judge(v)).toBe(false)
  })
  it('a window with one request in ten that slow is', () => {
    let i = 0
    expect(judge(view(() => (++i % 10 === 0 ? 600 : 100)))).toBe(true)
  })
  it("a metric's p99 is certainly beyond only past the threshold from the baseline's upper reading (histogram_quantile's, when higher)", () => {
    let i = 0
    const v = view(() => (++i % 10 === 0 ? 600 : 100))
    const bw = v.window(K, T - BW, T)
    const p99 = bw.latency.valueAtQuantile(0.99)
    const numbers = base({ requests: bw.requests, errors: 0, latencyUs: p99, latencyCount: bw.latency.count, latencyAbove: bw.latency.countAbove(175_000) })
    const sdk = { kind: 'explicit' as const, boundsUs: [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000].map((x) => x * 1000) }
    // the window's p99 (600 ms) is certainly above 500 ms: beyond 1.5 x 150 ms, not beyond 1.5 x 400 ms
    expect(sliceLatencyBeyond(c, v.window(K, T - 15_000, T), numbers, sdk)).toBe(true)
    expect(sliceLatencyBeyond(c, v.window(K, T - 15_000, T), { ...numbers, latencyUpperUs: 400_000 }, sdk)).toBe(false)
  })
})

describe('certainThresholdMs: the threshold a reading must be certainly beyond', () => {
  const c = contract()
  it("is taken from the baseline's upper reading when it is higher, else from its estimate", () => {
    // the Nezha adservice case: estimate 61.85 ms (threshold 92.8 ms, under the SDK's 100 ms bound), histogram_quantile 67.86 ms
    expect(certainThresholdMs(c, base({ latencyUs: 61_850 }))).toBeCloseTo(92.775, 6)
    expect(certainThresholdMs(c, base({ latencyUs: 61_850, latencyUpperUs: 67_860 }))).toBeCloseTo(101.79, 6)
    expect(certainThresholdMs(c, base({ latencyUs: 61_850, latencyUpperUs: 50_000 }))).toBeCloseTo(92.775, 6)
  })
})
