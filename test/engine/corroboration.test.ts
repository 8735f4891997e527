/**
 * A second witness beside a leader: a request signal beyond its threshold counts at the
 * corroboration bound (1/sqrt(alpha)) once the other request signal's evidence reached 1/alpha; on
 * its own, or beside a signal that has not reached 1/alpha, it decides nothing.
 */
import { describe, expect, it } from 'vitest'
import { engineSchema, type EngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState, type WatchStatus } from '../../src/engine/evaluate.js'
import { corroborationBound } from '../../src/engine/rules.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { FakeView } from './fake-view.js'

const V1 = { namespace: 'ns', service: 'svc', version: 'v1' }
const V2 = { namespace: 'ns', service: 'svc', version: 'v2' }
const D = 1_000_000_000_000 // bucket aligned
const S = 1000

function world(v2: { errorRate?: number; latencyMs?: number }): FakeView {
  const v = new FakeView()
  v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  v.traffic(V2, D, D + 900 * S, { rps: 20, errorRate: 0.005, latencyMs: 100, ...v2 })
  return v
}

function drive(cfg: EngineConfig, view: FakeView, until = D + 600 * S): { statuses: WatchStatus[]; verdicts: Verdict[] } {
  let state = initialState()
  const statuses: WatchStatus[] = []
  const verdicts: Verdict[] = []
  for (let t = D; t <= until; t += 5 * S) {
    const out = evaluate(cfg, state, { now: t, watermark: t, view, newVersions: t === D ? [{ ...V2, firstSeenMs: D }] : [] })
    state = out.state
    statuses.push(...out.statuses)
    verdicts.push(...out.verdicts)
  }
  return { statuses, verdicts }
}

const reading = (v: Verdict, signal: string) => v.signals.find((s) => s.signal === signal)

describe('corroborating witness', () => {
  const cfg = engineSchema.parse({})
  const c = cfg.defaults
  const full = 1 / c.alpha
  const corr = corroborationBound(c)

  it('is 1/sqrt(alpha): about 32 at the default alpha', () => {
    expect(corr).toBeCloseTo(Math.sqrt(1000), 6)
    expect(corroborationBound({ ...c, alpha: 0.01 })).toBeCloseTo(10, 6)
  })

  it('a mild error rate beside a confirmed latency breach decides before its own evidence reaches 1/alpha', () => {
    const r = drive(cfg, world({ errorRate: 0.04, latencyMs: 250 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    const v = r.verdicts[0] as Verdict
    const er = reading(v, 'error_rate')
    const lat = reading(v, 'latency')
    expect(lat?.state).toBe('breach')
    expect(lat?.evidence as number).toBeGreaterThanOrEqual(full)
    expect(er?.state).toBe('breach')
    expect(er?.critical).toBe(false)
    expect(er?.evidenceBound as number).toBeCloseTo(corr, 6)
    expect(er?.evidence as number).toBeGreaterThanOrEqual(corr)
    expect(er?.evidence as number).toBeLessThan(full)
    expect(v.reason).toContain('corroborating')
  })

  it('the same error rate alone never decides, though its evidence passes the corroboration bound', () => {
    // (with singleSignalHold off: held for 5 min, a breach decides alone, evaluate.test.ts)
    const r = drive(engineSchema.parse({ defaults: { singleSignalHold: 0 } }), world({ errorRate: 0.04 }))
    expect(r.verdicts).toEqual([])
    const evidences = r.statuses.map((s) => s.signals.find((x) => x.signal === 'error_rate')?.evidence ?? 0)
    expect(Math.max(...evidences)).toBeGreaterThan(corr)
  })

  it('in every reading, a breach short of 1/alpha stands beside the other request signal at 1/alpha, and is never critical', () => {
    const worlds = [
      { errorRate: 0.04, latencyMs: 250 },
      { errorRate: 0.03, latencyMs: 400 },
      { errorRate: 0.2, latencyMs: 160 },
      { errorRate: 0.04 },
      { latencyMs: 250 },
    ]
    let corroborated = 0
    for (const w of worlds) {
      for (const s of drive(cfg, world(w)).statuses) {
        for (const [a, b] of [['error_rate', 'latency'], ['latency', 'error_rate']] as const) {
          const x = s.signals.find((r) => r.signal === a)
          const y = s.signals.find((r) => r.signal === b)
          if (x?.state !== 'breach' || (x.evidence ?? 0) >= full) continue
          corroborated += 1
          expect(x.critical).toBe(false)
          expect(x.evidence as number).toBeGreaterThanOrEqual(corr)
          expect(y?.state).toBe('breach')
          expect(y?.evidence as number).toBeGreaterThanOrEqual(full)
        }
      }
    }
    expect(corroborated).toBeGreaterThan(0)
  })
})
