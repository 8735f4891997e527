/**
 * One pseudo-deployment on recorded history, judged by the real pipeline (src/runtime/pipeline.ts,
 * the code `pullback replay` and the live sidecar run): the service's history is presented as
 * version "A" up to the deploy time t and as version "B" after it, with a deployment event at t.
 * Nothing changed at t, so any rollback verdict is a false rollback. With an `inject`ion (an added
 * error ratio, or latencies multiplied) after t, the same run measures whether a regression of that
 * size is caught within the watch.
 *
 * The history is fed as the normalizer would feed a metric exporter's points: each step's delta
 * covering (T - step, T], latency bucket counts at their bucket's representative value (midpoint;
 * first bucket half its bound; overflow at the last bound), resource readings per pod (the new
 * version's pods renamed, as a rollout replaces pods). The engine ticks after every step with the
 * watermark `engine.lateness` behind, as replay ticks after every line (before the deploy only the
 * last step's tick: nothing is watched yet), and twice at the end.
 */
import { Pipeline } from '../runtime/pipeline.js'
import { SignalStore } from '../signals/store.js'
import { evaluate, initialState, type EngineInput, type EngineState } from '../engine/evaluate.js'
import type { DeploymentEvent } from '../engine/events.js'
import type { SeriesKey } from '../normalize/observations.js'
import type { EngineConfig } from '../engine/config.js'
import type { Verdict } from '../engine/verdict.js'
import type { SignalsConfig } from '../signals/config.js'
import type { SignalName } from '../engine/verdict.js'
import type { ServiceHistory } from './history.js'

export interface Injection {
  /** absolute error ratio added to the new version's requests (0.05 = 5 points more 5xx) */
  errorStep?: number
  /** the new version's latencies multiplied by this */
  latencyFactor?: number
}

export type PseudoOutcome =
  | { kind: 'rollback'; afterMs: number; dryRun: boolean; signals: SignalName[] }
  | { kind: 'incident'; afterMs: number }
  /** the watch ended without a decision; `judgedTicks` = ticks at which the deployment was not `insufficient` */
  | { kind: 'none'; judgedTicks: number }

export interface BacktestConfig {
  engine: EngineConfig
  signals: SignalsConfig
}

const VERSION_A = 'calibrate-a'
const VERSION_B = 'calibrate-b'

/** History needed before t (store retention: the baseline plus the older history the gate compares it with). */
export function leadMs(cfg: BacktestConfig): number {
  return cfg.signals.retention
}

/** History needed after t: the watch, then enough for the last windows to complete. */
export function tailMs(cfg: BacktestConfig, service: string, stepMs: number): number {
  const c = cfg.engine.services[service] ?? cfg.engine.defaults
  return c.watch + 2 * stepMs + cfg.engine.lateness
}

export function pseudoDeploy(h: ServiceHistory, deployMs: number, cfg: BacktestConfig, inject: Injection = {}): PseudoOutcome {
  return pseudoDeployMany(h, deployMs, [cfg], inject)[0] as PseudoOutcome
}

/** engine configurations already checked by a Pipeline (its constructor's alignment checks) */
const checked = new WeakSet<EngineConfig>()

function check(cfg: BacktestConfig): void {
  if (checked.has(cfg.engine)) return
  // the Pipeline constructor throws what the live sidecar would refuse (windows the store cannot answer)
  new Pipeline({ engine: cfg.engine, signals: cfg.signals, evaluation: 'incremental' }).shutdown()
  checked.add(cfg.engine)
}

/** One engine replayed on the shared store: its own state and pins, as a Pipeline of its own would hold them. */
interface Lane {
  cfg: EngineConfig
  state: EngineState
  pins: Map<string, number>
  judgedTicks: number
  outcome: PseudoOutcome | undefined
}

/**
 * The same pseudo-deployment judged under several engine configurations at once: the history is fed
 * ONCE into one signal store, and every configuration's engine (its own state, the pins it holds)
 * is ticked on it, as `Pipeline.tick` does (`evaluate` over the store, the store's new versions and
 * the pending deployment events handed to each). The store does not depend on the engine
 * configuration (pins only keep series from expiring, and a lane's pins are released when it
 * decides), so each outcome is the one a Pipeline of its own would reach (test/calibrate:
 * pseudoDeployMany equals pseudoDeploy per configuration). The configurations must share `signals`
 * and their watch (tailMs); a group that does not is replayed apart.
 */
export function pseudoDeployMany(h: ServiceHistory, deployMs: number, cfgs: readonly BacktestConfig[], inject: Injection = {}): PseudoOutcome[] {
  if (cfgs.length === 0) return []
  const r = h.requests
  const ns = h.service.namespace
  const name = h.service.name
  const svcKey = ns === '' ? name : `${ns}/${name}`
  const c0 = cfgs[0] as BacktestConfig
  const tail = tailMs(c0, svcKey, r.stepMs)
  const lateness = c0.engine.lateness
  if (cfgs.some((c) => c.signals !== c0.signals || tailMs(c, svcKey, r.stepMs) !== tail || c.engine.lateness !== lateness)) {
    return cfgs.map((c) => pseudoDeployMany(h, deployMs, [c], inject)[0] as PseudoOutcome)
  }
  for (const c of cfgs) check(c)
  const from = deployMs - leadMs(c0)
  const to = deployMs + tail
  const store = new SignalStore(c0.signals)
  const lanes: Lane[] = cfgs.map((c) => ({ cfg: c.engine, state: initialState(), pins: new Map(), judgedTicks: 0, outcome: undefined }))
  // pins of all lanes, counted: the store holds a series pinned while any lane pins it
  const pinned = new Map<string, number>()
  const pinOf = (lane: Lane, key: SeriesKey, d: 1 | -1) => {
    const id = `${key.namespace}\u0000${key.service}\u0000${key.version}`
    const mine = lane.pins.get(id) ?? 0
    if (d < 0 && mine === 0) return
    lane.pins.set(id, mine + d)
    const all = (pinned.get(id) ?? 0) + d
    pinned.set(id, all)
    if (d > 0 && all === 1) store.pin(key)
    else if (d < 0 && all === 0) store.unpin(key)
  }
  const release = (lane: Lane) => {
    for (const [id, n] of lane.pins) {
      if (n <= 0) continue
      const [kns, ksvc, kver] = id.split('\u0000') as [string, string, string]
      for (let k = 0; k < n; k++) pinOf(lane, { namespace: kns, service: ksvc, version: kver }, -1)
    }
  }
  let open = lanes.length
  let events: DeploymentEvent[] = []
  // one tick of every undecided lane, as Pipeline.tick: the store's new versions and the pending events go to each
  const tick = (now: number, watermark: number, countJudged: boolean) => {
    const input: EngineInput = { now, watermark, view: store, newVersions: store.drainNewVersions(), deployments: events, probes: [], evaluation: 'incremental' }
    events = []
    for (const lane of lanes) {
      if (lane.outcome !== undefined) continue
      const out = evaluate(lane.cfg, lane.state, input)
      lane.state = out.state
      for (const k of out.pin) pinOf(lane, k, 1)
      for (const k of out.unpin) pinOf(lane, k, -1)
      const o = outcomeOf(out, deployMs)
      if (o !== undefined) {
        lane.outcome = o
        open -= 1
        release(lane)
        continue
      }
      if (countJudged) for (const s of out.statuses) if (s.version === VERSION_B && s.status !== 'insufficient') lane.judgedTicks += 1
    }
  }
  try {
    const width = r.boundsS.length + 1
    const reps = new Array<number>(width)
    for (let j = 0; j < width; j++) {
      const lo = j === 0 ? 0 : (r.boundsS[j - 1] as number)
      const hi = j < r.boundsS.length ? (r.boundsS[j] as number) : lo
      reps[j] = (j === 0 ? hi / 2 : j === width - 1 ? lo : (lo + hi) / 2) * 1e6
    }
    // resource readings are merged in time order with the request steps: one cursor per pod series
    const cursors = h.resources.map((s) => firstAfter(s.timesMs, from))
    const iFrom = Math.max(1, Math.ceil((from - r.startMs) / r.stepMs))
    const iTo = Math.min(r.counts.length - 1, Math.floor((to - r.startMs) / r.stepMs))
    let announced = false
    let errCarry = 0
    for (let i = iFrom; i <= iTo && open > 0; i++) {
      const T = r.startMs + i * r.stepMs
      if (!announced && T > deployMs) {
        events.push({ namespace: ns, service: name, version: VERSION_B, time: deployMs, kind: 'deploy', previousVersion: VERSION_A, source: 'pullback-calibrate' })
        announced = true
      }
      const after = T > deployMs
      const version = after ? VERSION_B : VERSION_A
      const key = { namespace: ns, service: name, version }
      for (let k = 0; k < h.resources.length; k++) {
        const s = h.resources[k]!
        let c = cursors[k] as number
        while (c < s.timesMs.length && (s.timesMs[c] as number) <= T) {
          const tm = s.timesMs[c] as number
          const v = tm > deployMs ? VERSION_B : VERSION_A
          store.record({
            kind: 'resource',
            key: { namespace: ns, service: name, version: v },
            pod: v === VERSION_B ? `${s.pod}-b` : s.pod,
            resource: s.resource,
            timeMs: tm,
            value: s.values[c] as number,
            request: Number.isNaN(s.request) ? undefined : s.request,
          })
          c++
        }
        cursors[k] = c
      }
      const count = r.counts[i] as number
      if (!Number.isNaN(count) && count > 0) {
        let errors = r.errors[i] as number
        let factor = 1
        if (after) {
          if (inject.errorStep !== undefined && inject.errorStep > 0) {
            // the added errors are spread exactly: fractional requests carry to the next step
            const add = inject.errorStep * count + errCarry
            const whole = Math.floor(add)
            errCarry = add - whole
            errors = Math.min(count, errors + whole)
          }
          if (inject.latencyFactor !== undefined) factor = inject.latencyFactor
        }
        const lats: number[] = []
        const ns_: number[] = []
        for (let j = 0; j < width; j++) {
          const n = r.latency[i * width + j] as number
          if (n > 0) {
            lats.push((reps[j] as number) * factor)
            ns_.push(n)
          }
        }
        store.record({ kind: 'request', key, timeMs: T, startMs: T - r.stepMs, count, errors, latenciesUs: lats, latencyCounts: lats.length > 0 ? ns_ : undefined })
      }
      // before the deploy nothing is watched: one tick at the last step before it registers version A (as replay's ticks would have)
      if (T + r.stepMs <= deployMs) continue
      tick(T, T - lateness, true)
    }
    const end = r.startMs + iTo * r.stepMs
    for (let k = 0; k < 2 && open > 0; k++) tick(end, end, false)
    return lanes.map((l) => l.outcome ?? { kind: 'none', judgedTicks: l.judgedTicks })
  } finally {
    store.shutdown()
  }
}

/** index of the first time > t (times ascending): a binary search, as a pseudo-deploy reads a few minutes of a month */
export function firstAfter(times: Float64Array, t: number): number {
  let lo = 0
  let hi = times.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((times[mid] as number) <= t) lo = mid + 1
    else hi = mid
  }
  return lo
}

function outcomeOf(res: { verdicts: readonly Verdict[] }, deployMs: number): PseudoOutcome | undefined {
  for (const v of res.verdicts) {
    if (v.version !== VERSION_B) continue
    if (v.kind === 'rollback') {
      return { kind: 'rollback', afterMs: v.decidedAt - deployMs, dryRun: v.dryRun, signals: v.signals.filter((s) => s.state === 'breach').map((s) => s.signal) }
    }
    if (v.kind === 'incident') return { kind: 'incident', afterMs: v.decidedAt - deployMs }
  }
  return undefined
}

/** Pseudo-deploy times spread evenly over the history where lead and tail fit, aligned to the step. */
export function deployTimes(h: ServiceHistory, cfg: BacktestConfig, n: number): number[] {
  const r = h.requests
  return deployTimesOf(h.service, h.firstDataMs, h.lastDataMs, r.startMs, r.stepMs, cfg, n)
}

/** deployTimes from the data span alone (before the rest of the history is read). */
export function deployTimesOf(service: { namespace: string; name: string }, firstDataMs: number, lastDataMs: number, startMs: number, stepMs: number, cfg: BacktestConfig, n: number): number[] {
  const svcKey = service.namespace === '' ? service.name : `${service.namespace}/${service.name}`
  const first = firstDataMs + leadMs(cfg)
  const last = lastDataMs - tailMs(cfg, svcKey, stepMs)
  if (!(last > first) || n <= 0) return []
  const out: number[] = []
  const gap = (last - first) / Math.max(1, n)
  for (let k = 0; k < n; k++) {
    const t = first + gap * (k + 0.5)
    // on the grid: the new version's first report covers (t, t + step], as a fresh exporter's would
    const aligned = startMs + Math.floor((t - startMs) / stepMs) * stepMs
    if (out.length === 0 || aligned > (out[out.length - 1] as number)) out.push(aligned)
  }
  return out
}

/**
 * The spans of history the pseudo-deploys at deployTimesOf(...) read: [t - lead - step, t + tail + step]
 * each. The search (calibration, held-out, power) only ever deploys at these times, so a source may
 * read the expensive series (latency buckets) in these spans only.
 */
export function deployWindows(service: { namespace: string; name: string }, firstDataMs: number, lastDataMs: number, startMs: number, stepMs: number, cfg: BacktestConfig, n: number): { startMs: number; endMs: number }[] {
  const key = service.namespace === '' ? service.name : `${service.namespace}/${service.name}`
  return deployTimesOf(service, firstDataMs, lastDataMs, startMs, stepMs, cfg, n).map((t) => ({ startMs: t - leadMs(cfg) - stepMs, endMs: t + tailMs(cfg, key, stepMs) + stepMs }))
}
