/** The engine end to end on a fake view: detection, baseline, compound rule, modes, gate, watch, recovery, ids, bounds. */
import { describe, expect, it } from 'vitest'
import { engineSchema, type EngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState, type EngineInput, type EngineOutput, type EngineState } from '../../src/engine/evaluate.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import { deploymentId, verdictId } from '../../src/engine/ids.js'
import type { Verdict } from '../../src/engine/verdict.js'
import type { LatencyBuckets, ProbeObservation } from '../../src/normalize/observations.js'
import { FakeView } from './fake-view.js'

const V1 = { namespace: 'ns', service: 'svc', version: 'v1' }
const V2 = { namespace: 'ns', service: 'svc', version: 'v2' }
const D = 1_000_000_000_000 // deploy time, bucket aligned
const S = 1000
/** the cases below are written for a 10 s span in 2 slices (the default is 15 s in 3, config/pullback.yaml); a case's own defaults win */
const cfgOf = (raw: { defaults?: object; services?: object } & Record<string, unknown> = {}): EngineConfig =>
  engineSchema.parse({ ...raw, defaults: { window: '10s', slices: 2, ...(raw.defaults ?? {}) } })

/** v1 healthy for 6 minutes before D; v2 from D on with the given traffic. */
function world(v2: { rps?: number; errorRate?: number; latencyMs?: number } = {}, until = D + 600 * S): FakeView {
  const v = new FakeView()
  v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  v.traffic(V2, D, until, { rps: 20, errorRate: 0.005, latencyMs: 100, ...v2 })
  return v
}

/** v1 healthy for 6 minutes before D; v2 from D on in steps of `stepS`, each with the error rate `errorRate(seconds since D)`. */
function bursty(stepS: number, errorRate: (sinceS: number) => number): FakeView {
  const v = new FakeView()
  v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  for (let t = D; t < D + 600 * S; t += stepS * S) v.traffic(V2, t, t + stepS * S, { rps: 20, errorRate: errorRate((t - D) / S), latencyMs: 100 })
  return v
}

interface Run {
  state: EngineState
  verdicts: Verdict[]
  outs: EngineOutput[]
}

/** Ticks every 5 s from D to `until`; the new version is announced by telemetry at D unless `events` says otherwise. */
function drive(
  cfg: EngineConfig,
  view: FakeView,
  o: {
    until?: number
    events?: Record<number, DeploymentEvent[]>
    probes?: ProbeObservation[]
    telemetry?: boolean
    onVerdict?: (v: Verdict, at: number) => DeploymentEvent[]
    /** before the tick whose watermark is t (data arriving between ticks) */
    beforeTick?: (t: number) => void
  } = {},
): Run {
  let state = initialState()
  const verdicts: Verdict[] = []
  const outs: EngineOutput[] = []
  let queued: DeploymentEvent[] = []
  for (let t = D; t <= (o.until ?? D + 600 * S); t += 5 * S) {
    o.beforeTick?.(t)
    const input: EngineInput = {
      now: t + 5 * S,
      watermark: t,
      view,
      newVersions: t === D && o.telemetry !== false ? [{ ...V2, firstSeenMs: D }] : [],
      deployments: [...queued, ...(o.events?.[t] ?? [])],
      probes: (o.probes ?? []).filter((p) => p.timeMs >= t - 5 * S && p.timeMs < t),
    }
    queued = []
    const out = evaluate(cfg, state, input)
    state = out.state
    outs.push(out)
    for (const v of out.verdicts) {
      verdicts.push(v)
      queued.push(...(o.onVerdict?.(v, t) ?? []))
    }
  }
  return { state, verdicts, outs }
}

const kinds = (r: Run) => r.verdicts.map((v) => `${v.kind}${v.dryRun ? '/dry' : ''}`)
/** did any evaluation read `signal` as a breach */
const everBreached = (r: Run, signal: string) => r.outs.some((o) => o.statuses[0]?.signals.find((x) => x.signal === signal)?.state === 'breach')

describe('deployment detection', () => {
  it('a new version of a known service starts a watch with the previous version as baseline', () => {
    const r = drive(cfgOf(), world(), { until: D + 60 * S })
    expect(r.outs[0]?.pin).toEqual([V2, V1])
    const st = r.outs.at(-1)?.statuses[0]
    expect(st).toMatchObject({ version: 'v2', baselineVersion: 'v1', status: 'healthy', deploymentId: deploymentId('ns', 'svc', 'v2', D) })
  })

  it('the first version of a new service is not a deployment', () => {
    const v = new FakeView().traffic(V2, D, D + 60 * S, { rps: 20 })
    const r = drive(cfgOf(), v, { until: D + 60 * S })
    expect(r.state.watches.size).toBe(0)
  })

  it('an explicit event wins over telemetry detection of the same version (no duplicate watch)', () => {
    const ev: DeploymentEvent = { ...V2, time: D - 10 * S, kind: 'deploy', source: 'argocd', artifact: 'img@sha256:ab', previousVersion: 'v1' }
    const r = drive(cfgOf(), world({ errorRate: 0.5 }), { until: D + 120 * S, events: { [D]: [ev] } })
    expect(r.state.counters.deploymentsDetected).toBe(0)
    expect(r.verdicts).toHaveLength(1)
    expect(r.verdicts[0]).toMatchObject({ deployedAt: D - 10 * S, artifact: 'img@sha256:ab', deploymentId: deploymentId('ns', 'svc', 'v2', D - 10 * S) })
  })

  it('an event whose watch period is already over is counted as stale and not judged', () => {
    const ev: DeploymentEvent = { ...V2, time: D - 700 * S, kind: 'deploy', source: 'argocd' }
    const r = drive(cfgOf(), world({ errorRate: 0.5 }), { until: D + 60 * S, telemetry: false, events: { [D]: [ev] } })
    expect(r.state.counters.staleEvents).toBe(1)
    expect(r.verdicts).toEqual([])
  })

  it('an explicit event after telemetry detection replaces the guess', () => {
    const ev: DeploymentEvent = { ...V2, time: D - 2 * S, kind: 'deploy', source: 'argocd' }
    const r = drive(cfgOf(), world(), { until: D + 30 * S, events: { [D + 10 * S]: [ev] } })
    expect(r.state.watches.size).toBe(1)
    expect([...r.state.watches.values()][0]?.deployedAt).toBe(D - 2 * S)
  })
})

describe('compound rule, critical, modes', () => {
  it('one non-critical breach alone: status breach, no verdict (singleSignalHold off)', () => {
    const r = drive(cfgOf({ defaults: { singleSignalHold: 0 } }), world({ errorRate: 0.04 }))
    expect(kinds(r)).toEqual([])
    expect(r.outs.some((o) => o.statuses[0]?.status === 'breach')).toBe(true)
  })

  it('one non-critical breach held for singleSignalHold (5 min) suffices alone, saying so', () => {
    const r = drive(cfgOf(), world({ errorRate: 0.04 }))
    expect(kinds(r)).toEqual(['rollback'])
    const v = r.verdicts[0] as Verdict
    const er = v.signals.find((x) => x.signal === 'error_rate')
    expect(er).toMatchObject({ state: 'breach', critical: true })
    expect(v.signals.find((x) => x.signal === 'latency')?.state).toBe('healthy')
    expect(v.reason).toContain('held 300s beyond the threshold')
    expect(v.reason).toContain('(baseline bounded over the 6 min before the deployment)')
    // 4 % against a threshold of about 2.5 %: the evidence reaches 1/alpha with the span
    // [D+85s, D+100s), the breach's onset (D+90s with the baseline window alone: the minute of v1
    // before it, pooled, narrows the error level, history-pool.ts); held from it for 5 min, judged
    // on committed data (the watermark at onset + 300 s, now 5 s later)
    expect(er?.onsetMs).toBe(D + 85 * S)
    expect(v.decidedAt - D).toBe(390 * S)
    const alone = drive(cfgOf({ defaults: { baselineHistory: false } }), world({ errorRate: 0.04 })).verdicts
    expect(alone.map((x) => [x.signals.find((y) => y.signal === 'error_rate')?.onsetMs, x.decidedAt - D])).toEqual([[D + 90 * S, 395 * S]])
    expect(alone[0]!.reason).not.toContain('baseline bounded')
    // a shorter hold decides sooner; shorter than two windows is refused (the critical level's hold)
    expect(drive(cfgOf({ defaults: { singleSignalHold: '2m' } }), world({ errorRate: 0.04 })).verdicts.map((x) => x.decidedAt - D)).toEqual([210 * S])
    expect(() => cfgOf({ defaults: { singleSignalHold: '15s' } })).toThrow(/singleSignalHold/)
  })

  it('latency alone does not decide while the version serves a surge beyond loadFactor x its snapshot\'s traffic (load.ts)', () => {
    // a clean version; from D+60s traffic quadruples and load slows every request 1.6x, for 8 minutes
    const surge = (rps: number) => {
      const v = new FakeView()
      v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
      v.traffic(V2, D, D + 60 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
      v.traffic(V2, D + 60 * S, D + 600 * S, { rps, errorRate: 0.005, latencyMs: 160 })
      return v
    }
    const r = drive(cfgOf(), surge(80))
    expect(kinds(r)).toEqual([])
    const held = r.outs.flatMap((o) => o.statuses.flatMap((st) => st.signals.filter((x) => x.signal === 'latency' && x.state === 'breach')))
    expect(held.some((x) => /under load: traffic beyond 2x the baseline's/.test((x as { note?: string }).note ?? ''))).toBe(true)
    // the same slowdown at the snapshot's traffic is the version's: held for 5 min, rolled back
    expect(kinds(drive(cfgOf(), surge(20)))).toEqual(['rollback'])
    // a surge within the factor does not hold it back, and the factor is the contract's
    expect(kinds(drive(cfgOf(), surge(36)))).toEqual(['rollback'])
    expect(kinds(drive(cfgOf({ defaults: { signals: { latency: { loadFactor: 5 } } } }), surge(80)))).toEqual(['rollback'])
  })

  it('latency at its critical level, held, waits under a surge too, and decides at the snapshot\'s traffic', () => {
    const surge = (rps: number) => {
      const v = new FakeView()
      v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
      v.traffic(V2, D, D + 600 * S, { rps, errorRate: 0.005, latencyMs: 350 })
      return v
    }
    const calm = drive(cfgOf(), surge(20))
    expect(kinds(calm)).toEqual(['rollback'])
    // the critical level's hold (span + one report), not the 5 min one
    expect((calm.verdicts[0] as Verdict).decidedAt - D).toBeLessThan(60 * S)
    const loaded = drive(cfgOf(), surge(80))
    expect(kinds(loaded)).toEqual([])
    const notes = loaded.outs.flatMap((o) => o.statuses.flatMap((st) => st.signals.map((x) => (x as { note?: string }).note ?? '')))
    expect(notes.some((n) => n.startsWith('at its critical level, under load'))).toBe(true)
  })

  it('a p99 held beyond its threshold decides alone from spans, and from a metric only when its bucket\'s lower bound is beyond', () => {
    // 2x slower (beyond 1.5x + 20 ms, short of the 3x critical level), nothing else
    const spans = drive(cfgOf(), world({ latencyMs: 200 }))
    expect(kinds(spans)).toEqual(['rollback'])
    expect((spans.verdicts[0] as Verdict).reason).toContain('held 300s beyond the threshold')
    // metrics with the SDK's default bounds (ms): latencies are bucket representatives (midpoints)
    const sdk: LatencyBuckets = { kind: 'explicit', boundsUs: [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10_000].map((x) => x * 1000) }
    const metrics = (v1Ms: number, v2Ms: number, layout: LatencyBuckets | undefined) => {
      const v = new FakeView()
      v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: v1Ms })
      v.traffic(V2, D, D + 600 * S, { rps: 20, errorRate: 0.005, latencyMs: v2Ms })
      return drive(cfgOf(), v.reportEvery(V1, 10 * S, layout).reportEvery(V2, 10 * S, layout))
    }
    // (50, 75] -> (100, 250]: certainly above 100 ms, beyond 1.5 x 62.5 ms
    const certain = metrics(62.5, 175, sdk)
    expect(kinds(certain)).toEqual(['rollback'])
    expect((certain.verdicts[0] as Verdict).reason).toContain('held 300s beyond the threshold; p99 in a bucket above 100ms]')
    // (100, 250] -> (250, 500]: reads 2.1x, but a 1.3x slower version crossing 250 ms reads the
    // same; certainly above only 250 ms, short of 1.5 x 175 ms
    const crossing = metrics(175, 375, sdk)
    expect(everBreached(crossing, 'latency')).toBe(true)
    expect(kinds(crossing)).toEqual([])
    // without a known layout (a point with its mean only) a metric's latency is not held alone
    expect(kinds(metrics(62.5, 175, undefined))).toEqual([])
  })

  it('a breach that lapses for one report restarts the single signal\'s hold (4 % errors for 4 of every 5 minutes)', () => {
    const r = drive(cfgOf(), bursty(60, (s) => (s % 300 === 240 ? 0.005 : 0.04)))
    expect(everBreached(r, 'error_rate')).toBe(true)
    expect(kinds(r)).toEqual([])
  })

  it('two confirmed breaches in the same window: rollback', () => {
    const r = drive(cfgOf(), world({ errorRate: 0.1, latencyMs: 200 }))
    expect(kinds(r)).toEqual(['rollback'])
    const v = r.verdicts[0] as Verdict
    expect(v.signals.map((s) => s.signal)).toEqual(['error_rate', 'latency', 'resource', 'probe'])
    expect(v.id).toBe(verdictId(v.deploymentId, 'rollback'))
    // the first window wholly after the deployment is [D, D+10s): judged once the series' own data
    // reaches D+10s (early firing, now = D+10s), not when the watermark does (now = D+15s)
    expect(v.decidedAt).toBe(D + 10 * S)
    const late = drive(cfgOf({ earlyFiring: false }), world({ errorRate: 0.1, latencyMs: 200 }))
    expect(late.verdicts.map((x) => [x.kind, x.decidedAt])).toEqual([['rollback', D + 15 * S]])
  })

  it('early firing judges span series only: a metric series waits for its complete data as before', () => {
    const spans = world({ errorRate: 0.1, latencyMs: 200 })
    const metrics = world({ errorRate: 0.1, latencyMs: 200 })
    metrics.reportEvery(V2, 5 * S)
    const t = (v: FakeView) => drive(cfgOf(), v).verdicts.map((x) => x.decidedAt - D)
    const tLate = (v: FakeView) => drive(cfgOf({ earlyFiring: false }), v).verdicts.map((x) => x.decidedAt - D)
    expect(t(spans)).toEqual([10 * S])
    expect(t(metrics)).toEqual(tLate(metrics))
  })

  it('a batch whose newest span ends just before a bucket edge: that bucket is judged once the clock passes the edge', () => {
    // batch span processors export at any phase; one leaving 1 ms before an edge holds its pod's
    // spans of that bucket but the last millisecond, and proving the bucket over would wait a whole
    // batch for the next one
    class JustBeforeEdge extends FakeView {
      override coverage(k: Parameters<FakeView['coverage']>[0]): ReturnType<FakeView['coverage']> {
        const c = super.coverage(k)
        return c === undefined ? c : { ...c, newestMs: c.newestMs - 1, completeUntilMs: c.completeUntilMs - 1 }
      }
    }
    const v = new JustBeforeEdge()
    v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    v.traffic(V2, D, D + 600 * S, { rps: 20, errorRate: 0.1, latencyMs: 200 })
    // at the tick whose clock is t + 5s, the batches sent up to then: data up to t + 5s - 1ms
    const r = drive(cfgOf(), v, { beforeTick: (t) => (v.visibleUntil = t + 5 * S) })
    expect(r.verdicts.map((x) => [x.kind, x.decidedAt - D])).toEqual([['rollback', 10 * S]])
  })

  it('after an early look that could not decide, the commit of the same bucket is judged even if no newer data came', () => {
    const run = (earlyFiring: boolean) => {
      const v = world({ errorRate: 0.1, latencyMs: 200 })
      return drive(cfgOf({ earlyFiring }), v, {
        beforeTick: (t) => {
          // the look at [D, D+10s) (watermark D+5s) finds its newest bucket still empty (a gap:
          // insufficient); that bucket arrives before the watermark passes it, and then the series
          // sends nothing newer for a while
          if (t === D + 5 * S) {
            v.visibleUntil = D + 10 * S
            v.traffic(V2, D + 5 * S, D + 10 * S, { rps: 0 })
          }
          if (t === D + 10 * S) v.traffic(V2, D + 5 * S, D + 10 * S, { rps: 20, errorRate: 0.1, latencyMs: 200 })
          if (t === D + 60 * S) v.visibleUntil = Infinity
        },
      })
    }
    const r = run(true)
    expect(r.outs[1]?.statuses[0]?.signals.find((x) => x.signal === 'error_rate')?.state).toBe('insufficient')
    // judged when the watermark passes D+10s (now D+15s), as with earlyFiring: false, not once newer data comes
    expect(r.verdicts.map((x) => [x.kind, x.decidedAt - D])).toEqual([['rollback', 15 * S]])
    expect(run(false).verdicts.map((x) => [x.kind, x.decidedAt - D])).toEqual([['rollback', 15 * S]])
  })

  it('the early look commits no evidence: the tests consume only what the watermark passed', () => {
    const r = drive(cfgOf(), world({ errorRate: 0.01 }), { until: D + 60 * S })
    const w = [...r.state.watches.values()][0] as unknown as { evidence: { doneUntil: number }; lastEvalEnd: number }
    // the last tick: watermark D+60s, the series' data (and now) D+65s
    expect(w.lastEvalEnd).toBe(D + 65 * S)
    expect(w.evidence.doneUntil).toBe(D + 60 * S)
  })

  it('a critical error rate suffices alone', () => {
    expect(kinds(drive(cfgOf(), world({ errorRate: 0.35 })))).toEqual(['rollback'])
  })

  it('a large single-cause effect (20 % fast 5xx, 40x the baseline) rolls back alone once held for a span and one more report', () => {
    const r = drive(cfgOf(), world({ errorRate: 0.2 }))
    expect(kinds(r)).toEqual(['rollback'])
    const v = r.verdicts[0] as Verdict
    expect(v.signals.find((x) => x.signal === 'error_rate')).toMatchObject({ state: 'breach', critical: true })
    expect(v.signals.find((x) => x.signal === 'latency')?.state).toBe('healthy')
    // the first span [D, D+10s) confirms the breach; it suffices alone once every report of
    // [D, D+15s) is beyond (the span and one more 5 s report), judged once the watermark reaches
    // D+15s (the hold is judged on committed data, not on an early look, see the next test)
    expect(v.decidedAt - D).toBe(20 * S)
  })

  it('an early look does not stretch a single signal\'s hold: a burst that ended inside the newest bucket is judged on the complete bucket', () => {
    const v = new FakeView()
    v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    // 20 % errors over [D, D+10s) and the first half second of [D+10s, D+15s), clean after
    v.traffic(V2, D, D + 10 * S, { rps: 20, errorRate: 0.2, latencyMs: 100 })
    v.traffic(V2, D + 15 * S, D + 600 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    const r = drive(cfgOf(), v, {
      beforeTick: (t) => {
        // the look at [D+10s, D+15s) (watermark D+10s) has only the batches of the pods that
        // exported early in it: the burst's tail, a third of the bucket's requests; the rest
        // arrives before the watermark passes it
        if (t === D + 10 * S) v.traffic(V2, D + 10 * S, D + 15 * S, { rps: 6, errorRate: 0.2, latencyMs: 100 })
        if (t === D + 15 * S) v.traffic(V2, D + 10 * S, D + 15 * S, { rps: 20, errorRate: 0.02, latencyMs: 100 })
      },
    })
    // the look saw [D, D+15s) beyond in every report (what the hold asks) and the error rate a breach
    const look = r.outs[2]?.statuses[0]?.signals.find((x) => x.signal === 'error_rate')
    expect(look).toMatchObject({ state: 'breach' })
    expect(kinds(r)).toEqual([])
  })

  it('a look that cannot judge its newest bucket still lets a single signal held in the committed data decide, as at the watermark alone', () => {
    const v = world({ errorRate: 0.2 })
    const r = drive(cfgOf(), v, {
      beforeTick: (t) => {
        // at every look the newest bucket has no request yet (a gap in the look's span: insufficient);
        // it is complete by the next tick
        if (t > D) v.traffic(V2, t - 5 * S, t, { rps: 20, errorRate: 0.2, latencyMs: 100 })
        v.traffic(V2, t, t + 5 * S, { rps: 0 })
      },
    })
    expect(kinds(r)).toEqual(['rollback'])
    expect((r.verdicts[0] as Verdict).decidedAt - D).toBe(20 * S)
    expect(kinds(drive(cfgOf({ earlyFiring: false }), world({ errorRate: 0.2 })))).toEqual(['rollback'])
  })

  it('a flapping single signal (20 % errors for 10 s of every 30 s) does not roll back alone', () => {
    const r = drive(cfgOf(), bursty(10, (s) => (s % 30 === 0 ? 0.2 : 0.005)))
    // each burst fills a whole span (a confirmed breach), never the three reports a single signal needs
    expect(everBreached(r, 'error_rate')).toBe(true)
    expect(kinds(r)).toEqual([])
  })

  it('the same 20 % errors held for 30 s of every minute are sustained: one signal rolls back alone', () => {
    expect(kinds(drive(cfgOf(), bursty(30, (s) => (s % 60 === 0 ? 0.2 : 0.005))))).toEqual(['rollback'])
  })

  it('minSignals 1 per service: one breach suffices', () => {
    const cfg = cfgOf({ services: { 'ns/svc': { minSignals: 1 } } })
    expect(kinds(drive(cfg, world({ errorRate: 0.04 })))).toEqual(['rollback'])
    expect(kinds(drive(cfgOf({ defaults: { singleSignalHold: 0 }, services: { 'other/svc': { minSignals: 1 } } }), world({ errorRate: 0.04 })))).toEqual([])
  })

  it('a decision that needs an observe-mode signal is a dry run; the enforce-only decision comes later if it arrives', () => {
    const cfg = cfgOf({ defaults: { signals: { latency: { mode: 'observe' } } } })
    const r = drive(cfg, world({ errorRate: 0.04, latencyMs: 200 }))
    // the error rate alone, an enforce signal, decides once held for singleSignalHold
    expect(kinds(r)).toEqual(['rollback/dry', 'rollback'])
    expect((r.verdicts[1] as Verdict).reason).toContain('held 300s')
    expect(r.verdicts[0]?.id).toBe(verdictId(r.verdicts[0]?.deploymentId as string, 'rollback/dry-run'))
    expect(r.verdicts[0]?.signals.find((s) => s.signal === 'latency')).toMatchObject({ mode: 'observe', state: 'breach' })
  })

  it('off signals are reported as off and never count', () => {
    const cfg = cfgOf({ defaults: { signals: { errorRate: { mode: 'off' } } } })
    const r = drive(cfg, world({ errorRate: 0.5 }), { until: D + 120 * S })
    expect(kinds(r)).toEqual([])
    expect(r.outs.at(-1)?.statuses[0]?.signals[0]).toMatchObject({ signal: 'error_rate', state: 'off' })
  })
})

describe('baseline while the old version serves beside the new one (baseline-source.ts)', () => {
  /** v1 keeps serving beside v2 after D (a canary, a rollout in progress); both behave as `both` from D on */
  const beside = (both: { errorRate: number; latencyMs: number }, v2 = both): FakeView => {
    const v = new FakeView()
    v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    v.traffic(V1, D, D + 600 * S, { rps: 20, ...both })
    v.traffic(V2, D, D + 600 * S, { rps: 20, ...v2 })
    return v
  }

  it('a shared degradation (both versions 10 % errors and 2x slower since the deployment) is judged against the live old version: no rollback', () => {
    const r = drive(cfgOf(), beside({ errorRate: 0.1, latencyMs: 200 }))
    expect(kinds(r)).toEqual([])
  })

  it('an old version whose live p99 reads beyond the cut by its long tail keeps the snapshot: a 2x slower new version is rolled back against it', () => {
    // every `of` requests, `tail` of them at `tailMs`, the rest at `ms`: a long tail at the p99's onset
    const cycle = (ms: number, tailMs: number, tail: number, of: number) => {
      let i = 0
      return () => (i++ % of < tail ? tailMs : ms)
    }
    const v = new FakeView()
    v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, sample: cycle(100, 600, 1, 125) })
    // since the deployment 1.5 % of the old version's requests are in the tail: its p99 over the
    // few hundred requests it serves reads 600 ms, 6x the snapshot's, yet 9 of 600 at a 1 % level is
    // nothing to switch baselines for (P ~ 0.2)
    v.traffic(V1, D, D + 600 * S, { rps: 20, errorRate: 0.005, sample: cycle(100, 600, 3, 200) })
    v.traffic(V2, D, D + 600 * S, { rps: 20, errorRate: 0.04, sample: cycle(200, 1200, 3, 200) })
    const r = drive(cfgOf(), v, { until: D + 120 * S })
    expect(kinds(r)).toEqual(['rollback'])
    expect(r.verdicts[0]?.baselineSource).toBe('snapshot')
  })

  it('the new version alone degrading is judged against the tighter snapshot and rolled back, saying so', () => {
    const r = drive(cfgOf(), beside({ errorRate: 0.005, latencyMs: 100 }, { errorRate: 0.1, latencyMs: 200 }))
    expect(kinds(r)).toEqual(['rollback'])
    expect(r.verdicts[0]?.baselineSource).toBe('snapshot')
  })
})

describe('validation gate', () => {
  it('old version already breaching before the deployment: incident with onset before deployedAt', () => {
    const v = new FakeView()
    v.traffic(V1, D - 360 * S, D - 90 * S, { rps: 20, errorRate: 0.005 })
    v.traffic(V1, D - 90 * S, D, { rps: 20, errorRate: 0.4 })
    v.traffic(V2, D, D + 600 * S, { rps: 20, errorRate: 0.4 })
    const r = drive(cfgOf(), v)
    expect(kinds(r)).toEqual(['incident'])
    const er = r.verdicts[0]?.signals.find((s) => s.signal === 'error_rate')
    expect(er?.onsetMs).toBeLessThan(D)
    expect(er?.onsetMs).toBeGreaterThanOrEqual(D - 90 * S)
  })

  it('a pre-existing error breach plus a fresh latency breach: incident (the fresh one alone is not enough)', () => {
    const v = new FakeView()
    v.traffic(V1, D - 360 * S, D - 60 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    v.traffic(V1, D - 60 * S, D, { rps: 20, errorRate: 0.2, latencyMs: 100 })
    v.traffic(V2, D, D + 600 * S, { rps: 20, errorRate: 0.2, latencyMs: 200 })
    expect(kinds(drive(cfgOf(), v))).toEqual(['incident'])
  })
})

describe('probe', () => {
  const p = (pod: string, t: number, ready: boolean): ProbeObservation => ({ kind: 'probe', key: V2, pod, container: 'app', timeMs: t, ready })
  const healthy = () => world()

  it('not ready during the startup grace, then ready: healthy', () => {
    const probes = [p('a', D + 1 * S, false), p('a', D + 20 * S, false), p('a', D + 40 * S, true), p('a', D + 60 * S, true)]
    expect(kinds(drive(cfgOf(), healthy(), { probes, until: D + 120 * S }))).toEqual([])
  })

  it('was ready, then failed: immediate critical breach and rollback', () => {
    const probes = [p('a', D + 1 * S, true), p('a', D + 11 * S, false)]
    const r = drive(cfgOf(), healthy(), { probes, until: D + 120 * S })
    expect(kinds(r)).toEqual(['rollback'])
    expect(r.verdicts[0]?.decidedAt).toBe(D + 20 * S)
    expect(r.verdicts[0]?.signals[3]).toMatchObject({ signal: 'probe', state: 'breach', critical: true, onsetMs: D + 11 * S })
  })

  it('still not ready after the grace: failure', () => {
    const probes = [0, 20, 40, 61, 70].map((s) => p('a', D + s * S, false))
    const r = drive(cfgOf(), healthy(), { probes, until: D + 120 * S })
    expect(kinds(r)).toEqual(['rollback'])
    expect(r.verdicts[0]?.reason).toMatch(/not ready after startup grace/)
  })

  it('a grace of 0 makes any not-ready reading a failure', () => {
    const r = drive(cfgOf({ defaults: { signals: { probe: { startupGrace: 0 } } } }), healthy(), { probes: [p('a', D + 1 * S, false)], until: D + 60 * S })
    expect(kinds(r)).toEqual(['rollback'])
  })

  it('failures of the old version or before the deployment are not the new version\'s', () => {
    const probes: ProbeObservation[] = [{ ...p('old', D + 5 * S, false), key: V1 }, p('a', D - 5 * S, false)]
    expect(kinds(drive(cfgOf(), healthy(), { probes, until: D + 120 * S }))).toEqual([])
  })
})

describe('watch period and bounds', () => {
  it('evaluation stops after the watch: a late breach is not judged, series are unpinned', () => {
    const v = new FakeView()
    v.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005 })
    v.traffic(V2, D, D + 130 * S, { rps: 20, errorRate: 0.005 })
    v.traffic(V2, D + 130 * S, D + 300 * S, { rps: 20, errorRate: 0.6 })
    const r = drive(cfgOf({ defaults: { watch: '2m', signals: { resource: { mode: 'off' } } } }), v, { until: D + 300 * S })
    expect(kinds(r)).toEqual([])
    expect(r.state.watches.size).toBe(0)
    expect(r.outs.flatMap((o) => o.unpin)).toEqual([V2, V1])
  })

  it('at most one final verdict per deployment', () => {
    const r = drive(cfgOf(), world({ errorRate: 0.5, latencyMs: 500 }))
    expect(kinds(r)).toEqual(['rollback'])
  })

  it('watched deployments are bounded and the overflow counted', () => {
    const v = new FakeView()
    const news = []
    for (let i = 0; i < 3; i++) {
      const a = { namespace: 'ns', service: `s${i}`, version: 'a' }
      const b = { ...a, version: 'b' }
      v.traffic(a, D - 60 * S, D, { rps: 1 }).traffic(b, D, D + 10 * S, { rps: 1 })
      news.push({ ...b, firstSeenMs: D })
    }
    const out = evaluate(cfgOf({ maxWatched: 2 }), initialState(), { now: D, watermark: D, view: v, newVersions: news })
    expect(out.state.watches.size).toBe(2)
    expect(out.state.counters.watchOverflow).toBe(1)
  })
})

describe('recovery verification', () => {
  const restoreAfterRollback = (v: Verdict, at: number): DeploymentEvent[] =>
    v.kind === 'rollback' ? [{ namespace: v.namespace, service: v.service, version: v.baselineVersion, time: at, kind: 'rollback', source: 'test', decisionId: v.id }] : []

  it('restored version within the original baseline: recovered', () => {
    const v = world({ errorRate: 0.5, latencyMs: 300 }, D + 40 * S)
    v.traffic(V1, D + 40 * S, D + 400 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    const r = drive(cfgOf(), v, { until: D + 300 * S, onVerdict: restoreAfterRollback })
    expect(kinds(r)).toEqual(['rollback', 'recovered'])
    expect(r.verdicts[1]).toMatchObject({ restoredVersion: 'v1', version: 'v2', deploymentId: r.verdicts[0]?.deploymentId, id: verdictId(r.verdicts[0]?.deploymentId as string, 'recovered') })
    // judged at the end of the 90 s verification window
    expect((r.verdicts[1]?.decidedAt as number) - (r.verdicts[0]?.decidedAt as number)).toBeGreaterThanOrEqual(90 * S)
  })

  it('restored version breaching the original baseline: not-recovered', () => {
    const v = world({ errorRate: 0.5, latencyMs: 300 }, D + 40 * S)
    v.traffic(V1, D + 40 * S, D + 400 * S, { rps: 20, errorRate: 0.5, latencyMs: 100 })
    const r = drive(cfgOf(), v, { until: D + 300 * S, onVerdict: restoreAfterRollback })
    expect(kinds(r)).toEqual(['rollback', 'not-recovered'])
    expect(r.verdicts[1]?.reason).toMatch(/still breaching/)
  })

  it('no data from the restored version: not-recovered, saying why', () => {
    const v = world({ errorRate: 0.5, latencyMs: 300 }, D + 40 * S)
    const r = drive(cfgOf(), v, { until: D + 300 * S, onVerdict: restoreAfterRollback })
    expect(kinds(r)).toEqual(['rollback', 'not-recovered'])
    expect(r.verdicts[1]?.reason).toMatch(/insufficient data/)
    // the span the reason names is the one judged: the contract's window (10 s here), no report interval
    expect(r.verdicts[1]?.reason).toMatch(/last confirmation span \(at least 10s/)
    expect(r.verdicts[1]?.reason).toMatch(/error_rate: insufficient, 0 requests, 0 requests < floor 50/)
  })

  it('a restored version with requests above the floor that still cannot be judged says why, not only its count', () => {
    // the restored v1 serves 20 req/s but only every other 5 s report arrives: a gap in every span
    const v = world({ errorRate: 0.5, latencyMs: 300 }, D + 40 * S)
    for (let t = D + 40 * S; t < D + 400 * S; t += 10 * S) v.traffic(V1, t, t + 5 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    const r = drive(cfgOf(), v, { until: D + 300 * S, onVerdict: restoreAfterRollback })
    expect(kinds(r)).toEqual(['rollback', 'not-recovered'])
    expect(r.verdicts[1]?.reason).toMatch(/error_rate: insufficient, \d+ requests, telemetry gap in the span/)
  })

  it('a rollback event nobody decided is counted and ignored', () => {
    const ev: DeploymentEvent = { ...V1, time: D, kind: 'rollback', source: 'human' }
    const r = drive(cfgOf(), world(), { until: D + 10 * S, events: { [D]: [ev] } })
    expect(r.state.counters.rollbackEventsUnmatched).toBe(1)
  })
})

describe('determinism', () => {
  it('the same inputs give the same verdicts and ids', () => {
    const a = drive(cfgOf(), world({ errorRate: 0.4 })).verdicts
    const b = drive(cfgOf(), world({ errorRate: 0.4 })).verdicts
    expect(a).toEqual(b)
    expect(deploymentId('ns', 'svc', 'v2', D)).toMatch(/^[0-9a-f]{32}$/)
    expect(deploymentId('ns', 'svc', 'v2', D)).not.toBe(deploymentId('ns', 'svc', 'v2', D + 1))
  })
})
