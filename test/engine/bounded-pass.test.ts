/**
 * A bounded pass (EngineInput.pass: one tick as several calls, each at most N evaluations' worth of
 * work) gives what one unbounded call gives: the same verdicts, statuses, pins and counters, tick by
 * tick, over a fleet large enough for the pass's freeze budget to defer freezes (more than 500
 * watches wait at once), with deployment events, the actuator's rollback events (recovery
 * watches), probe readings (one never-ready container) and bad releases. Events, new versions and
 * probes must be applied once per pass and the freeze budget must be the pass's, not the call's.
 */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState, type EngineInput, type EngineOutput, type PassCursor } from '../../src/engine/evaluate.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import type { ProbeObservation } from '../../src/normalize/observations.js'
import { SignalStore } from '../../src/signals/store.js'

const D = 1_767_225_600_000
const N = 600
const TICKS = 40
/** services below BAD serve 30 % errors in their new version; PROBE_BAD's new container is never ready; EVENT's deployment is announced */
const BAD = 6
const PROBE_BAD = 10
const EVENT = 20

interface Run {
  /** per tick: the outputs of its calls, merged */
  ticks: { verdicts: unknown[]; statuses: unknown[]; pin: unknown[]; unpin: unknown[] }[]
  counters: Record<string, number>
  calls: number
}

function fleet(turn: number | undefined): Run {
  const store = new SignalStore({ maxSeries: 2 * N + 10 })
  let x = 11
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
  for (let i = 0; i < N; i++) {
    const r = store.series({ namespace: 'ns', service: `svc${i}`, version: 'v1' })
    for (let s = -360; s < 0; s++) for (let j = 0; j < 2; j++) r.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
  }
  store.drainNewVersions()
  const handles = Array.from({ length: N }, (_, i) => store.series({ namespace: 'ns', service: `svc${i}`, version: 'v2' }))
  /** services rolled back: their old version serves again (the recovery watch judges it) */
  const restored = new Set<number>()
  // a 30 s span (6 ticks before the first one completes) leaves room to spread the freezes
  const d = defaultEngineConfig()
  const cfg = { ...d, defaults: { ...d.defaults, window: 30_000, slices: 3 } }
  let state = initialState()
  const run: Run = { ticks: [], counters: {}, calls: 0 }
  let pendingEvents: DeploymentEvent[] = [{ namespace: 'ns', service: `svc${EVENT}`, version: 'v2', time: D, kind: 'deploy', previousVersion: 'v1', source: 'test' }]
  for (let t = 0; t < TICKS; t++) {
    const probes: ProbeObservation[] = []
    for (const [i, h] of handles.entries()) {
      const h1 = restored.has(i) ? store.series({ namespace: 'ns', service: `svc${i}`, version: 'v1' }) : h
      for (let s = t * 5; s < t * 5 + 5; s++) for (let j = 0; j < 2; j++) h1.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < (i < BAD && h1 === h ? 0.3 : 0.005))
      if (i < 30) {
        // readiness of two pods, newest first (the engine orders them)
        for (const s of [t * 5 + 4, t * 5]) {
          for (const pod of ['a', 'b']) probes.push({ kind: 'probe', key: { namespace: 'ns', service: `svc${i}`, version: 'v2' }, pod, container: 'app', timeMs: D + s * 1000, ready: i !== PROBE_BAD })
        }
      }
    }
    for (const p of probes) store.record(p)
    const wm = D + (t + 1) * 5000 - cfg.lateness
    const input: EngineInput = { now: wm, watermark: wm, view: store, newVersions: store.drainNewVersions(), deployments: pendingEvents, probes }
    pendingEvents = []
    const tick = { verdicts: [] as unknown[], statuses: [] as unknown[], pin: [] as unknown[], unpin: [] as unknown[] }
    let cursor: PassCursor | undefined
    for (;;) {
      const out: EngineOutput = evaluate(cfg, state, turn === undefined ? input : { ...input, pass: { maxEvaluations: turn, ...(cursor !== undefined ? { cursor } : {}) } })
      run.calls += 1
      state = out.state
      tick.verdicts.push(...out.verdicts)
      tick.statuses.push(...out.statuses)
      tick.pin.push(...out.pin)
      tick.unpin.push(...out.unpin)
      // the actuator's rollback event after a rollback verdict, applied at the next tick
      for (const v of out.verdicts) {
        if (v.kind === 'rollback' && !v.dryRun) restored.add(Number(v.service.slice(3)))
        if (v.kind === 'rollback' && !v.dryRun) pendingEvents.push({ namespace: v.namespace, service: v.service, version: v.baselineVersion, time: v.decidedAt, kind: 'rollback', previousVersion: v.version, source: 'test', decisionId: v.id })
      }
      if (out.next === undefined) break
      cursor = out.next
    }
    run.ticks.push(tick)
  }
  run.counters = { ...state.counters }
  store.shutdown()
  return run
}

describe('a bounded pass decides as one call', () => {
  const one = fleet(undefined)

  it('the fleet exercises what a pass must handle once', () => {
    const verdicts = one.ticks.flatMap((t) => t.verdicts) as { kind: string; service: string }[]
    // the bad releases and the never-ready container are rolled back and their recoveries judged
    expect(verdicts.filter((v) => v.kind === 'rollback').map((v) => v.service).sort()).toEqual(['svc0', 'svc1', 'svc10', 'svc2', 'svc3', 'svc4', 'svc5'])
    expect(verdicts.filter((v) => v.kind === 'recovered').length).toBeGreaterThan(0)
    expect(one.counters.freezesDeferred).toBeGreaterThan(0)
    expect(one.counters.deploymentEvents).toBeGreaterThan(1)
    expect(one.calls).toBe(TICKS)
  })

  it.each([1, 7, 100])('turns of %i evaluations', (turn) => {
    const sliced = fleet(turn)
    expect(sliced.calls).toBeGreaterThan(TICKS * (turn === 100 ? 2 : 20))
    for (let t = 0; t < TICKS; t++) {
      const a = one.ticks[t]
      const b = sliced.ticks[t]
      expect({ tick: t, ...b }).toEqual({ tick: t, ...a })
    }
    expect(sliced.counters).toEqual(one.counters)
  }, 120_000)

  it('a continuation call must repeat its pass’s input', () => {
    const store = new SignalStore({})
    const cfg = defaultEngineConfig()
    const state = initialState()
    const first = evaluate(cfg, state, { now: 1, watermark: 1, view: store, deployments: [{ namespace: 'ns', service: 's', version: 'v2', time: 0, kind: 'deploy', previousVersion: 'v1', source: 't' }, { namespace: 'ns', service: 't', version: 'v2', time: 0, kind: 'deploy', previousVersion: 'v1', source: 't' }], pass: { maxEvaluations: 1 } })
    expect(first.next).toBeDefined()
    expect(() => evaluate(cfg, state, { now: 1, watermark: 1, view: store, deployments: [], pass: { maxEvaluations: 1, cursor: first.next as PassCursor } })).toThrow(/repeat the pass/)
    store.shutdown()
  })
})
