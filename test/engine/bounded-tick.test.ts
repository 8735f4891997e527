/**
 * Bounded work per tick on the real signal store: a mass rollout's baseline freezes are spread over
 * the ticks before the first confirmation spans complete (not all in the detection tick), and
 * incremental evaluation reports statuses only on each watch's 30 s grid while nothing can be
 * decided, with the verdicts of full evaluation.
 */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState, type EngineOutput } from '../../src/engine/evaluate.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { SignalStore } from '../../src/signals/store.js'

const D = 1_767_225_600_000

/**
 * `n` services, each with a baseline version (2 req/s for 6 min) and a new version from D (2 req/s),
 * ticked every 5 s for `ticks` ticks. Services below `bad` serve 30 % errors in their new version.
 */
function fleet(n: number, ticks: number, evaluation: 'full' | 'incremental', bad = 0): { outs: EngineOutput[]; verdicts: Verdict[] } {
  const store = new SignalStore({ maxSeries: 2 * n + 10 })
  let x = 7
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
  for (let i = 0; i < n; i++) {
    const r = store.series({ namespace: 'ns', service: `svc${i}`, version: 'v1' })
    for (let s = -360; s < 0; s++) for (let j = 0; j < 2; j++) r.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
  }
  store.drainNewVersions()
  const handles = Array.from({ length: n }, (_, i) => store.series({ namespace: 'ns', service: `svc${i}`, version: 'v2' }))
  // a 30 s span (6 ticks before the first one completes) leaves room to spread the freezes
  const d = defaultEngineConfig()
  const cfg = { ...d, defaults: { ...d.defaults, window: 30_000, slices: 3 } }
  let state = initialState()
  const outs: EngineOutput[] = []
  const verdicts: Verdict[] = []
  for (let t = 0; t < ticks; t++) {
    for (const [i, h] of handles.entries()) {
      for (let s = t * 5; s < t * 5 + 5; s++) for (let j = 0; j < 2; j++) h.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < (i < bad ? 0.3 : 0.005))
    }
    const wm = D + (t + 1) * 5000 - cfg.lateness
    const out = evaluate(cfg, state, { now: wm, watermark: wm, view: store, newVersions: store.drainNewVersions(), evaluation })
    state = out.state
    outs.push(out)
    verdicts.push(...out.verdicts)
  }
  store.shutdown()
  return { outs, verdicts }
}

describe('bounded work per tick', () => {
  it('spreads a mass rollout’s freezes over the ticks before the first spans, and all are frozen when those complete', () => {
    const n = 1500
    const { outs } = fleet(n, 8, 'full')
    const frozen = (o: EngineOutput) => o.statuses.filter((s) => s.baselineHealth !== 'unknown').length
    // the first tick past the deployment (tick 1) finds 1500 waiting and 6 ticks before the first
    // spans complete: max(500, 1500 / 6) per tick, so all are frozen by tick 3, none in one tick
    expect(frozen(outs[0] as EngineOutput)).toBe(0)
    expect(frozen(outs[1] as EngineOutput)).toBe(500)
    expect(frozen(outs[2] as EngineOutput)).toBe(1000)
    expect(frozen(outs[3] as EngineOutput)).toBe(n)
    expect(frozen(outs[6] as EngineOutput)).toBe(n)
    expect((outs[7] as EngineOutput).state.counters.freezesDeferred).toBeGreaterThan(0)
  })

  it('incremental evaluation: statuses on the 30 s grid while nothing can be decided, the same verdicts as full', () => {
    const full = fleet(40, 30, 'full', 5)
    const inc = fleet(40, 30, 'incremental', 5)
    expect(full.verdicts.map((v) => v.service).sort()).toEqual(['svc0', 'svc1', 'svc2', 'svc3', 'svc4'])
    expect(inc.verdicts).toEqual(full.verdicts)
    const count = (r: { outs: EngineOutput[] }) => r.outs.reduce((a, o) => a + o.statuses.length, 0)
    // every watch reports at its first evaluation and at least once per 30 s (6 ticks)
    expect(count(inc)).toBeLessThan(count(full) / 3)
    expect(count(inc)).toBeGreaterThanOrEqual(35 * 5)
    const last = inc.outs[inc.outs.length - 1] as EngineOutput
    expect(last.state.counters.quietEvaluations).toBeGreaterThan(0)
  })
})
