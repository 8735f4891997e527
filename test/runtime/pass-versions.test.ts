/**
 * With `state`, a pass records the versions it was handed in the state's version ledger in bounded
 * steps before its first engine call (EngineChangelog.classifyVersions / noteVersions), not all in
 * beginPass: detection at 10,000 services noted 10,000 ledger entries in one event-loop turn. The
 * engine still sees a complete ledger, so the pass ends as tick() does on the same data: the same
 * verdicts and statuses, the same records handed over, the same ledger.
 */
import { describe, expect, it } from 'vitest'
import type { StateChanges } from '../../src/engine/persist.js'
import { statePipeline } from './state-pipeline.js'

const D = 1_767_225_600_000
const S = 1000
const SERVICES = 200

function pipeline(): ReturnType<typeof statePipeline> {
  const { p, writes } = statePipeline()
  // every service's v1 for 6 min, seen by one tick (first versions: not deployments), then v2's first requests
  for (let i = 0; i < SERVICES; i++) {
    const r = p.store.series({ namespace: 'ns', service: `svc-${i}`, version: 'v1' })
    for (let s = -360; s < 0; s += 2) r.recordRequest(D + s * S, 20_000, false)
  }
  p.tick(D - S, D - 6 * S)
  for (let i = 0; i < SERVICES; i++) {
    const r = p.store.series({ namespace: 'ns', service: `svc-${i}`, version: 'v2' })
    for (let s = 0; s < 5; s++) r.recordRequest(D + s * S + 500, 20_000, false)
  }
  return { p, writes }
}

const lines = (writes: readonly StateChanges[]) => writes.flatMap((w) => [...w.deletes.map((d) => `- ${d.key}`), ...w.upserts.map((u) => `+ ${u.key} ${u.value}`)]).sort()

describe('a pass records new versions in bounded steps before the engine', () => {
  it('notes a few versions per step, calls the engine only after the last, and ends as tick() does', () => {
    const one = pipeline()
    const w0 = one.writes.length
    const ref = one.p.tick(D + 5 * S, D)

    const x = pipeline()
    const x0 = x.writes.length
    expect(x.p.beginPass(D + 5 * S, D)).toBe('started')
    const detected: number[] = []
    let steps = 0
    for (;;) {
      const step = x.p.stepPass(8)
      steps += 1
      detected.push(x.p.stats().engine.deploymentsDetected)
      if (step.kind === 'done') {
        expect(step.result).toEqual(ref)
        break
      }
      if (steps > 100_000) throw new Error('the pass does not end')
    }
    // 8 evaluations' worth per step: 8 versions per step, so 25 steps before the engine's first call
    expect(detected.slice(0, SERVICES / 8)).toEqual(new Array(SERVICES / 8).fill(0))
    expect(detected[SERVICES / 8]).toBeGreaterThan(0)
    expect(ref.statuses.length).toBe(SERVICES)
    expect(x.p.stats().engine.deploymentsDetected).toBe(SERVICES)
    expect(lines(x.writes.slice(x0))).toEqual(lines(one.writes.slice(w0)))
    expect(x.p.stats().state?.trackedServices).toBe(one.p.stats().state?.trackedServices)
  })

  it('tick() and finishOpenPass() in the middle of the noting finish it in one call', () => {
    const one = pipeline()
    const ref = one.p.tick(D + 5 * S, D)
    const x = pipeline()
    expect(x.p.beginPass(D + 5 * S, D)).toBe('started')
    for (let i = 0; i < 3; i++) expect(x.p.stepPass(8).kind).toBe('more')
    expect(x.p.finishOpenPass()).toEqual(ref)
    expect(x.p.stats().state?.trackedServices).toBe(one.p.stats().state?.trackedServices)
  })
})
