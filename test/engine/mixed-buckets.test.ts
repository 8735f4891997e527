/**
 * A 60 s metric series judged when its report arrives (src/signals/report-chains.ts) is read from
 * the real store as coarse minutes followed by the newest minute's 5 s buckets. The rules' slices
 * and a single signal's hold must read that window as reports, not as 5 s parts of one.
 */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig, mergeContract, type Contract } from '../../src/engine/config.js'
import { errorRateRule, heldLong, type BaselineNumbers, type RuleResult } from '../../src/engine/rules.js'
import { SignalStore } from '../../src/signals/store.js'
import type { RequestObservation } from '../../src/normalize/observations.js'

const K = { namespace: 'ns', service: 'svc', version: 'v2' }
const S = 1_000
const T0 = 1_700_000_040_000 // a minute edge
const PHASE = 19 * S
const base: BaselineNumbers = { requests: 6000, errors: 12, latencyUs: 100_000, latencyCount: 6000, latencyAbove: 0, shift: [], resourceSlope: {} }

/** one pod every 60 s on phase 19 s: report k covers (T0 + PHASE + (k-1) min, T0 + PHASE + k min], 600 requests */
function store(errorRates: readonly number[]): SignalStore {
  const s = new SignalStore({})
  errorRates.forEach((rate, i) => {
    const time = T0 + PHASE + (i + 1) * 60 * S
    const o: RequestObservation = { kind: 'request', key: K, timeMs: time, startMs: time - 60 * S, count: 600, errors: Math.round(600 * rate), latenciesUs: [], latencyCounts: undefined }
    s.record(o)
  })
  return s
}

describe('a 60 s series read as coarse minutes and the newest minute in 5 s buckets', () => {
  // reports 1-4 at 10 % errors, the fifth (the one that just arrived) back to 0 %
  const view = store([0.1, 0.1, 0.1, 0.1, 0])
  const end = T0 + 5 * 60 * S // the newest report (T0 + 5 min + 19 s) aligned down to its minute
  const c: Contract = mergeContract(defaultEngineConfig().defaults, { singleSignalHold: 180 * S })

  it('the window mixes bucket widths (the premise)', () => {
    const w = view.window(K, end - 180 * S, end)
    const widths = new Set(w.buckets.map((b) => b.endMs - b.startMs))
    expect(widths.has(5 * S)).toBe(true)
    expect([...widths].some((x) => x > 5 * S)).toBe(true)
  })

  it('slices are parts of the window\'s time: the last 41 s of the window, from the recovered report, are one slice of a minute, not three of 15 s', () => {
    const w = view.window(K, end - 120 * S, end)
    const r = errorRateRule(c, w, base, 1e12)
    // 10 % over the first 79 s of the span, 0 % over its last 41 s: a breach over two minute-slices
    // (the second holds 19 s of the fault); with slices counted in buckets the last two were 15 s of
    // the recovered report and the breach read "not sustained"
    expect(r.state).toBe('breach')
  })

  it('a hold over three whole faulty reports is held, though the window ends 41 s into a recovered fourth', () => {
    const w = view.window(K, end - 120 * S, end)
    const r: RuleResult = { ...errorRateRule(c, w, base, 1e12), onsetMs: end - 240 * S }
    expect(r.state).toBe('breach')
    // runs of one report at least (minRunMs): the last minute holds 19 s of the fault and reads
    // beyond; in 5 s runs its healthy buckets broke the hold
    expect(heldLong(c, view, K, r, base, end, end - 300 * S, 60 * S)).toBe(true)
  })

  it('and a fault that held only over the window\'s first minute is not held', () => {
    const v = store([0, 0, 0.1, 0, 0])
    const w = v.window(K, end - 120 * S, end)
    expect(errorRateRule(c, w, base, 1e12).state).not.toBe('breach')
    const r: RuleResult = { ...errorRateRule(c, w, base, 1e12), state: 'breach', onsetMs: end - 240 * S }
    expect(heldLong(c, v, K, r, base, end, end - 300 * S, 60 * S)).toBe(false)
  })
})
