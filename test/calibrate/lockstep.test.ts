/**
 * pseudoDeployMany (src/calibrate/backtest.ts): several engine configurations judged on one shared
 * replay must each reach the outcome a Pipeline of their own reaches. The reference here is the
 * replay through the real Pipeline (src/runtime/pipeline.ts) exactly as backtest.ts fed it before
 * the shared replay existed; if a lane's state, pins or input leaked into another's, or the replay
 * drifted from the Pipeline's tick, the outcomes would differ on this flappy history (it has both
 * rollbacks and quiet deploys under the configurations below).
 */
import { describe, expect, it } from 'vitest'
import { history, type SynthService } from './synthetic.js'
import { deployTimes, firstAfter, leadMs, pseudoDeploy, pseudoDeployMany, tailMs, type BacktestConfig, type Injection, type PseudoOutcome } from '../../src/calibrate/backtest.js'
import type { ServiceHistory } from '../../src/calibrate/history.js'
import { mergeContract, type ContractOverride } from '../../src/engine/config.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { parseConfig } from '../../src/config/load.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 10, 1)
const cfg = parseConfig({})
const bc: BacktestConfig = { engine: cfg.engine, signals: cfg.signals }
const flappy: SynthService = { namespace: 'shop', name: 'search', rps: 8, errorRatio: 0.005, medianS: 0.05, sigma: 0.5, noisyHours: 0.6, noisyMinutes: 20, noisyErrors: 8, noisyLatency: 2, pods: 2, memoryBytes: 300e6, memoryRequestBytes: 256e6 }

/** the reference: one Pipeline per pseudo-deploy, fed and ticked as backtest.ts documents */
function viaPipeline(h: ServiceHistory, deployMs: number, c: BacktestConfig, inject: Injection = {}): PseudoOutcome {
  const r = h.requests
  const { namespace: ns, name } = h.service
  const from = deployMs - leadMs(c)
  const to = deployMs + tailMs(c, `${ns}/${name}`, r.stepMs)
  const p = new Pipeline({ engine: c.engine, signals: c.signals, evaluation: 'incremental' })
  const width = r.boundsS.length + 1
  const reps = Array.from({ length: width }, (_, j) => {
    const lo = j === 0 ? 0 : (r.boundsS[j - 1] as number)
    const hi = j < r.boundsS.length ? (r.boundsS[j] as number) : lo
    return (j === 0 ? hi / 2 : j === width - 1 ? lo : (lo + hi) / 2) * 1e6
  })
  const outcome = (res: ReturnType<Pipeline['tick']>): PseudoOutcome | undefined => {
    for (const v of res.verdicts) {
      if (v.version !== 'calibrate-b') continue
      if (v.kind === 'rollback') return { kind: 'rollback', afterMs: v.decidedAt - deployMs, dryRun: v.dryRun, signals: v.signals.filter((s) => s.state === 'breach').map((s) => s.signal) }
      if (v.kind === 'incident') return { kind: 'incident', afterMs: v.decidedAt - deployMs }
    }
    return undefined
  }
  try {
    const cursors = h.resources.map((s) => firstAfter(s.timesMs, from))
    const iFrom = Math.max(1, Math.ceil((from - r.startMs) / r.stepMs))
    const iTo = Math.min(r.counts.length - 1, Math.floor((to - r.startMs) / r.stepMs))
    let announced = false
    let carry = 0
    let judged = 0
    for (let i = iFrom; i <= iTo; i++) {
      const T = r.startMs + i * r.stepMs
      if (!announced && T > deployMs) {
        p.deployment({ namespace: ns, service: name, version: 'calibrate-b', time: deployMs, kind: 'deploy', previousVersion: 'calibrate-a', source: 'pullback-calibrate' })
        announced = true
      }
      const after = T > deployMs
      h.resources.forEach((s, k) => {
        let x = cursors[k] as number
        for (; x < s.timesMs.length && (s.timesMs[x] as number) <= T; x++) {
          const b = (s.timesMs[x] as number) > deployMs
          p.recordObservation({ kind: 'resource', key: { namespace: ns, service: name, version: b ? 'calibrate-b' : 'calibrate-a' }, pod: b ? `${s.pod}-b` : s.pod, resource: s.resource, timeMs: s.timesMs[x] as number, value: s.values[x] as number, request: Number.isNaN(s.request) ? undefined : s.request })
        }
        cursors[k] = x
      })
      const count = r.counts[i] as number
      if (count > 0) {
        let errors = r.errors[i] as number
        if (after && inject.errorStep !== undefined) {
          const add = inject.errorStep * count + carry
          carry = add - Math.floor(add)
          errors = Math.min(count, errors + Math.floor(add))
        }
        const f = after ? (inject.latencyFactor ?? 1) : 1
        const lats: number[] = []
        const ns_: number[] = []
        for (let j = 0; j < width; j++) {
          const n = r.latency[i * width + j] as number
          if (n > 0) {
            lats.push((reps[j] as number) * f)
            ns_.push(n)
          }
        }
        p.recordObservation({ kind: 'request', key: { namespace: ns, service: name, version: after ? 'calibrate-b' : 'calibrate-a' }, timeMs: T, startMs: T - r.stepMs, count, errors, latenciesUs: lats, latencyCounts: lats.length > 0 ? ns_ : undefined })
      }
      if (T + r.stepMs <= deployMs) continue
      const res = p.tick(T, T - c.engine.lateness)
      const o = outcome(res)
      if (o !== undefined) return o
      for (const s of res.statuses) if (s.version === 'calibrate-b' && s.status !== 'insufficient') judged += 1
    }
    const end = r.startMs + iTo * r.stepMs
    for (let k = 0; k < 2; k++) {
      const o = outcome(p.tick(end, end))
      if (o !== undefined) return o
    }
    return { kind: 'none', judgedTicks: judged }
  } finally {
    p.shutdown()
  }
}

const withOverride = (o: ContractOverride): BacktestConfig => ({ engine: { ...bc.engine, services: { 'shop/search': mergeContract(bc.engine.defaults, o) } }, signals: bc.signals })

describe('pseudoDeployMany', () => {
  const h = history(flappy, START, START + 2 * DAY, 60_000, 2)
  const cfgs = [
    bc,
    withOverride({ window: 45_000, minSamples: 100, signals: { errorRate: { minDelta: 0.05, relativeFactor: 3 }, latency: { multiplier: 2, minIncreaseMs: 100 } } } as ContractOverride),
    withOverride({ signals: { errorRate: { minDelta: 0.12, relativeFactor: 5 }, latency: { multiplier: 3, minIncreaseMs: 400, critical: 3 } } } as ContractOverride),
  ]
  const times = deployTimes(h, bc, 12)

  it('gives every configuration the outcome of its own Pipeline replay, on the same shared feed', () => {
    const kinds = new Set<string>()
    for (const t of times) {
      const many = pseudoDeployMany(h, t, cfgs)
      const alone = cfgs.map((c) => viaPipeline(h, t, c))
      expect(many).toEqual(alone)
      for (const o of many) kinds.add(o.kind)
    }
    // the history must exercise both kinds, or the comparison proves little
    expect(kinds.has('rollback')).toBe(true)
    expect(kinds.has('none')).toBe(true)
  })

  it('pseudoDeploy with an injected regression equals the Pipeline replay', () => {
    for (const t of times.slice(0, 4)) {
      for (const inj of [{ errorStep: 0.05 }, { latencyFactor: 2 }]) expect(pseudoDeploy(h, t, bc, inj)).toEqual(viaPipeline(h, t, bc, inj))
    }
  })
})
