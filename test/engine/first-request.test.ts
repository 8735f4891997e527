/**
 * Time from a new version's first request to a verdict: its evidence starts at its first request
 * (the partial first bucket counts), while the span, the "sustained" question, still starts at its
 * first whole bucket.
 */
import { describe, expect, it } from 'vitest'
import { engineSchema, type EngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState, type WatchStatus } from '../../src/engine/evaluate.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { FakeView } from './fake-view.js'

const V1 = { namespace: 'ns', service: 'svc', version: 'v1' }
const V2 = { namespace: 'ns', service: 'svc', version: 'v2' }
const D = 1_000_000_000_000 // bucket aligned
const S = 1000

function world(v2: { errorRate?: number; latencyMs?: number; rps?: number }): FakeView {
  const v = new FakeView()
  v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  v.traffic(V2, D, D + 600 * S, { rps: 20, errorRate: 0.005, latencyMs: 100, ...v2 })
  return v
}

/** Ticks every 5 s; the new version is announced by telemetry with its first request at `firstSeenMs`. */
function drive(cfg: EngineConfig, view: FakeView, firstSeenMs: number, until = D + 120 * S): { statuses: WatchStatus[]; verdicts: Verdict[] } {
  let state = initialState()
  const statuses: WatchStatus[] = []
  const verdicts: Verdict[] = []
  for (let t = D; t <= until; t += 5 * S) {
    const out = evaluate(cfg, state, { now: t, watermark: t, view, newVersions: t === D ? [{ ...V2, firstSeenMs }] : [] })
    state = out.state
    statuses.push(...out.statuses)
    verdicts.push(...out.verdicts)
  }
  return { statuses, verdicts }
}

const errorEvidenceAt = (r: { statuses: WatchStatus[] }, t: number) => r.statuses.find((s) => s.t === t)?.signals.find((x) => x.signal === 'error_rate')?.evidence

describe('evidence from the first request', () => {
  const cfg = engineSchema.parse({})

  it('the partial first bucket of a new version feeds its evidence; the span still starts at its first whole bucket', () => {
    // first request 1 s into the bucket [D, D+5s): the first whole bucket is D+5s, the first span [D+5s, D+20s)
    const faulty = world({ errorRate: 0.06 })
    const withPartial = drive(cfg, faulty, D + 1 * S)
    // the same deployment announced at the bucket boundary D+5s: the bucket [D, D+5s) is not the release's
    const without = drive(cfg, faulty, D + 5 * S)
    const t = D + 20 * S
    const a = errorEvidenceAt(withPartial, t)
    const b = errorEvidenceAt(without, t)
    expect(a).toBeDefined()
    expect(b).toBeDefined()
    expect(a as number).toBeGreaterThan(b as number)
    // no reading before the first whole span, either way
    expect(withPartial.statuses.every((s) => s.t >= t || s.signals.every((x) => x.evidence === undefined))).toBe(true)
  })

  it('a healthy version gains no evidence from its partial bucket', () => {
    const r = drive(cfg, world({}), D + 1 * S)
    expect(r.verdicts).toEqual([])
    expect(errorEvidenceAt(r, D + 20 * S) as number).toBeLessThan(2)
  })
})
