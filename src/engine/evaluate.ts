/**
 * The decision engine: evaluate(cfg, state, input) -> { state, verdicts, statuses }.
 *
 * Pure: no I/O, no timers, no wall clock; time comes in `input.now` / `input.watermark`, data
 * through the read-only SignalView, events as plain values. The state is owned by the caller and
 * is advanced in place (a 10,000-deployment state is not copied per tick): callers must use the
 * returned state and never an earlier reference. The same inputs always give the same outputs.
 *
 * Life of a watched deployment:
 *   detected (telemetry: new service.version of a known service; or an explicit deploy event, which
 *   wins for the same version) -> baseline frozen once the watermark passes the deployment time
 *   (old version, [deployedAt - baselineWindow, deployedAt), plain numbers) -> evaluated at every
 *   new bucket boundary for `watch` -> at most one final verdict (rollback | incident), optionally
 *   preceded by one dry-run verdict -> ended (series unpinned).
 * After a rollback event (kind 'rollback', the restored version) a recovery watch judges the
 * restored version against the ORIGINAL frozen baseline for `verificationWindow`.
 */
import type { ProbeObservation, ResourceKind, SeriesKey } from '../normalize/observations.js'
import { serviceId } from '../normalize/observations.js'
import { alignDown, type SignalView, type VersionInfo, type WindowStats } from '../signals/view.js'
import { contractFor, type Contract, type EngineConfig } from './config.js'
import type { DeploymentEvent } from './events.js'
import { deploymentId, verdictId } from './ids.js'
import {
  corroborationBound,
  errorRateRule,
  latencyRule,
  medianSlope,
  offReading,
  probeRule,
  resourceRule,
  sliceErrorBeyond,
  sliceLatencyBeyond,
  boundedLatency,
  heldAlone,
  heldLong,
  type BaselineNumbers,
  type ContainerTrack,
  type ProbeFailure,
  type RuleResult,
} from './rules.js'
import { alignUp } from './stats.js'
import { baselineSpan, deploySpan, earlyEnd, endGranularity, evaluationEnd, granularity, minSpan, reportInterval } from './cadence.js'
import { judgeBaseline, requestNumbers, windowShift, type BaselineHealth } from './gate.js'
import { pooledHistory } from './history-pool.js'
import { errorGrid } from './composite.js'
import { advance, errorCountsEvidence, errorEvidence, latencyEvidence, newWatchEvidence, peek, type Levels, type WatchEvidence } from './sequential.js'
import { errorLevel, latencyLevels, shiftLevels } from './rules.js'
import { latencyFloorUs } from '../normalize/buckets.js'
import { liveWorseThanSnapshot } from './baseline-source.js'
import { loadConfounds, loadRatio, underLoadNote } from './load.js'
import type { BaselineHealthState, DeploymentStatus, SignalName, SignalReading, Verdict } from './verdict.js'

/** A new version seen in telemetry (SignalStore.drainNewVersions()). */
export type VersionSeen = Pick<VersionInfo, 'namespace' | 'service' | 'version' | 'firstSeenMs'>

export interface EngineInput {
  /** decision time (unix ms): wall clock live, telemetry clock in replay */
  now: number
  /** telemetry time up to which windows are complete (newest telemetry - lateness) */
  watermark: number
  view: SignalView
  newVersions?: readonly VersionSeen[]
  deployments?: readonly DeploymentEvent[]
  /** readiness readings since the last call, any order; needed for the per-container startup grace */
  probes?: readonly ProbeObservation[]
  /**
   * 'full' (the default): every evaluated watch computes its four readings and reports a status.
   * 'incremental': an evaluation that cannot decide anything (no evidence at its bound, no probe
   * failure, no resource breach: see `readings`) only advances the watch's state and reports no
   * status, unless it crosses the watch's status grid (every STATUS_EVERY_MS of telemetry time);
   * the watch keeps its last status meanwhile. Verdicts are the same in both modes.
   */
  evaluation?: 'full' | 'incremental'
  /**
   * Bounded work per call: one pass (one logical tick) as several calls, e.g. one per event-loop
   * turn (src/runtime/evaluation-scheduler.ts). Absent: the whole pass in this call. Present: this
   * call does about `maxEvaluations` evaluations' worth of work at most (see PASS_WORK; 1/8: one
   * item per call) and at least one item, from where `cursor` says (absent: a new pass), and
   * returns `next` while the pass is not complete. Every call of a pass must repeat the first call's input (the same `now`,
   * `watermark`, view and the same deployments / newVersions / probes arrays): events, new versions
   * and probe readings are applied once per pass, by the calls that reach them, before any watch is
   * evaluated; the freeze budget is the pass's. The verdicts and statuses of a pass's calls,
   * concatenated, are those of one unbounded call on the same state and data.
   */
  pass?: { maxEvaluations: number; cursor?: PassCursor }
}

/**
 * Where a bounded pass stopped (EngineInput.pass). Opaque to callers; advanced in place by the
 * next call of the same pass.
 */
export interface PassCursor {
  readonly kind: 'pass-cursor'
  /** @internal the pass's input, checked on every continuation */
  readonly now: number
  readonly watermark: number
  readonly deployments: readonly DeploymentEvent[] | undefined
  readonly newVersions: readonly VersionSeen[] | undefined
  readonly probes: readonly ProbeObservation[] | undefined
  /** @internal progress */
  event: number
  version: number
  sortedProbes: ProbeObservation[] | undefined
  probe: number
  order: Watch[] | undefined
  scan: number
  waiting: number
  left: number
  budget: number
  freezes: number
  at: number
}

export interface FrozenBaseline {
  version: string
  fromMs: number
  toMs: number
  numbers: BaselineNumbers
}

interface Watch {
  id: string
  /** series of the watched version and of the baseline version */
  key: SeriesKey
  oldKey: SeriesKey
  kind: 'deploy' | 'rollback'
  namespace: string
  service: string
  /** the watched version: the new release, or for recovery the restored version */
  version: string
  baselineVersion: string
  deployedAt: number
  source: string
  artifact: string | undefined
  contract: Contract
  endsAt: number
  /** set at freeze; replaced, never changed in place (the state export caches its bytes: persist.ts FIXED_FIELDS) */
  baseline: FrozenBaseline | undefined
  /** signals whose breach the old version already showed before the deployment, with the onset */
  preExisting: Partial<Record<SignalName, number>>
  lastEvalEnd: number
  /** the end up to which the last evaluation committed (below lastEvalEnd after an early look) */
  lastCommitEnd: number
  status: DeploymentStatus
  decided: 'none' | 'dry' | 'final'
  onsets: Partial<Record<SignalName, number>>
  containers: Map<string, ContainerTrack>
  failingNow: Set<string>
  probeFailure: ProbeFailure | undefined
  probeReadings: number
  /** anytime-valid evidence against the baseline since the deployment (sequential.ts) */
  evidence: WatchEvidence
  /** the same against the history before an unhealthy baseline (gate.ts), for the incident path */
  refEvidence: WatchEvidence
  /** was the frozen baseline itself healthy? set at freeze; never changed in place (as `baseline`) */
  health: BaselineHealth | undefined
  /** the resource rule's last reading and the evaluation end it was computed at (see RESOURCE_EVERY_MS) */
  resourceLast: RuleResult | undefined
  resourceAt: number
  /** the old version had too few requests to be a live baseline; not asked again before this time */
  oldIdleUntil: number
  /**
   * the last evaluation saw an enforced request signal beyond its threshold with its evidence
   * growing but short of the bound: at the watch's end it is extended (contract.maxWatch)
   */
  suspect: boolean
  // recovery watches only
  parent: RecoveryParent | undefined
}

interface RecoveryParent {
  deploymentId: string
  version: string
  baselineVersion: string
  baselineSource: 'snapshot' | 'live'
  deployedAt: number
  artifact: string | undefined
  baseline: FrozenBaseline | undefined
  contract: Contract
  decisionId: string
}

export interface EngineCounters {
  deploymentsDetected: number
  deploymentEvents: number
  duplicateEvents: number
  /** events whose watch or verification period had already passed when they arrived */
  staleEvents: number
  rollbackEventsUnmatched: number
  watchOverflow: number
  containerOverflow: number
  evaluations: number
  /** baseline freezes put off to a later call by the per-call bound (one per watch and call) */
  freezesDeferred: number
  /** evaluations (incremental) that could not decide and so computed no readings and reported no status */
  quietEvaluations: number
  /** watch ends put off by one span because a request signal was suspect (contract.maxWatch) */
  watchExtensions: number
}

export interface EngineState {
  watches: Map<string, Watch>
  /** "<serviceId>\u0000<version>" -> ids of watches of that version (probe routing, dedupe) */
  byVersion: Map<string, Set<string>>
  /** decided rollbacks awaiting their rollback event, by serviceId (newest wins) */
  pendingRecovery: Map<string, RecoveryParent>
  counters: EngineCounters
}

export interface WatchStatus {
  deploymentId: string
  kind: 'deploy' | 'rollback'
  namespace: string
  service: string
  version: string
  baselineVersion: string
  deployedAt: number
  /** end of the evaluated window */
  t: number
  status: DeploymentStatus
  /** the frozen baseline's own health (gate.ts); 'unknown' before the freeze or without history */
  baselineHealth: BaselineHealthState
  signals: SignalReading[]
}

export interface EngineOutput {
  state: EngineState
  verdicts: Verdict[]
  statuses: WatchStatus[]
  /** series to keep (pin) / release (unpin) in the store, because a watch started / ended */
  pin: SeriesKey[]
  unpin: SeriesKey[]
  /** a bounded call (EngineInput.pass) that did not complete its pass: hand this back as `pass.cursor` */
  next?: PassCursor
}

/** Containers tracked per watch at most (more are counted in containerOverflow and not tracked). */
const MAX_CONTAINERS = 4096
/** How long an old version without live traffic is left alone before it is asked again (live canary baseline). */
const OLD_RECHECK_MS = 60_000
/** In incremental evaluation, a watch reports its status at least this often (telemetry time). */
const STATUS_EVERY_MS = 30_000
/**
 * A watch's phase in [0, mod) from 6 characters of its id (hex digits of a hash) starting at `at`,
 * so that watches deployed in the same tick run periodic work in different ticks.
 */
function idPhase(id: string, at: number, mod: number): number {
  let h = 0
  for (let i = at; i < at + 6 && i < id.length; i++) h = h * 16 + (id.charCodeAt(i) & 15)
  return h % mod
}
/** Baselines frozen per pass (one unbounded call, or the calls of one bounded pass) at least (when that many wait), see freezeBudget. */
const MIN_FREEZES_PER_CALL = 500

function awaitsFreeze(w: Watch, input: EngineInput): boolean {
  return w.baseline === undefined && w.kind === 'deploy' && w.baselineVersion !== '' && input.watermark >= w.deployedAt
}

/**
 * How many evaluations (one per `g` of telemetry) are left before the watch needs its baseline: its
 * first confirmation span complete (the first reading against the baseline), or at once when a
 * probe failed (a decision that can come before that span, and names the baseline's health).
 */
function freezeDue(w: Watch, dataEnd: number, g: number, interval: number): number {
  if (w.probeFailure !== undefined) return 0
  const end = Math.min(dataEnd, alignDown(w.endsAt, g))
  return Math.ceil((alignUp(w.deployedAt, g) + minSpan(w.contract, interval, g) - end) / g)
}

/** One watch's part of freezeBudget: the evaluations left before it needs its baseline; undefined when it waits for no freeze. */
function freezeLeft(w: Watch, input: EngineInput): number | undefined {
  if (!awaitsFreeze(w, input)) return undefined
  const cov = input.view.coverage(w.key)
  const g = granularity(w.contract, input.view, cov)
  return freezeDue(w, evaluationEnd(cov, input.watermark, g), g, reportInterval(cov))
}

/**
 * Freezes this pass may make beyond those due now, from the `waiting` watches and the fewest
 * evaluations `left` before one of them is due (freezeLeft over every watch at the start of the
 * pass's watch loop): the waiting ones spread evenly over the evaluations left (at least
 * MIN_FREEZES_PER_CALL), so a mass rollout's freezes are done in the ticks before their first spans
 * complete, not all in one.
 */
function freezeBudget(waiting: number, left: number): number {
  if (waiting === 0) return 0
  return Math.max(MIN_FREEZES_PER_CALL, Math.ceil(waiting / Math.max(1, left)))
}

/**
 * Work units of a bounded pass (EngineInput.pass), in eighths of an evaluation, from the 10,000-watch
 * bench's profile: a baseline freeze reads minutes of the old version (~10 evaluations), a new watch
 * (event or new version) ~3, a watch visited without a new bucket, a freeze-budget look at a watch
 * and a probe reading ~1/8.
 */
const PASS_WORK = { evaluation: 8, freeze: 80, newWatch: 24, visit: 1, probe: 1 } as const

function newCursor(input: EngineInput): PassCursor {
  return {
    kind: 'pass-cursor',
    now: input.now,
    watermark: input.watermark,
    deployments: input.deployments,
    newVersions: input.newVersions,
    probes: input.probes,
    event: 0,
    version: 0,
    sortedProbes: undefined,
    probe: 0,
    order: undefined,
    scan: 0,
    waiting: 0,
    left: Infinity,
    budget: 0,
    freezes: 0,
    at: 0,
  }
}

/** Pending recoveries kept at most. */
const MAX_PENDING = 10_000

export function initialState(): EngineState {
  return {
    watches: new Map(),
    byVersion: new Map(),
    pendingRecovery: new Map(),
    counters: { deploymentsDetected: 0, deploymentEvents: 0, duplicateEvents: 0, staleEvents: 0, rollbackEventsUnmatched: 0, watchOverflow: 0, containerOverflow: 0, evaluations: 0, freezesDeferred: 0, quietEvaluations: 0, watchExtensions: 0 },
  }
}

const vkey = (ns: string, svc: string, version: string) => `${serviceId(ns, svc)}\u0000${version}`

/** Number of watches (deployments and recovery verifications) currently held. */
export function watchedCount(s: EngineState): number {
  return s.watches.size
}

export function evaluate(cfg: EngineConfig, state: EngineState, input: EngineInput): EngineOutput {
  const out: EngineOutput = { state, verdicts: [], statuses: [], pin: [], unpin: [] }
  // one pass in phases (events, new versions, probe readings, the freeze budget, the watches), each
  // item counted in PASS_WORK; an unbounded call runs them all (limit Infinity), a bounded one stops
  // where the limit is reached and hands back the cursor. The order is the same either way.
  const cur = input.pass?.cursor ?? newCursor(input)
  if (cur.now !== input.now || cur.watermark !== input.watermark || cur.deployments !== input.deployments || cur.newVersions !== input.newVersions || cur.probes !== input.probes) {
    throw new Error('evaluate: a continuation call of a bounded pass must repeat the pass\'s input (now, watermark, deployments, newVersions, probes)')
  }
  // a fraction of an evaluation is allowed down to one unit (1/8: one item per call, tests)
  const limit = input.pass === undefined ? Infinity : Math.max(1, input.pass.maxEvaluations * PASS_WORK.evaluation)
  let work = 0
  const deployments = input.deployments ?? []
  while (cur.event < deployments.length && work < limit) {
    onEvent(cfg, state, input, deployments[cur.event++] as DeploymentEvent, out)
    work += PASS_WORK.newWatch
  }
  const newVersions = input.newVersions ?? []
  while (cur.version < newVersions.length && work < limit) {
    onNewVersion(cfg, state, input, newVersions[cur.version++] as VersionSeen, out)
    work += PASS_WORK.newWatch
  }
  if (input.probes !== undefined && input.probes.length > 0) {
    const sorted = (cur.sortedProbes ??= sortProbes(input.probes))
    while (cur.probe < sorted.length && work < limit) {
      onProbe(state, sorted[cur.probe++] as ProbeObservation)
      work += PASS_WORK.probe
    }
  }
  // the watches of the pass: those held once its events and new versions are applied
  const order = (cur.order ??= work < limit ? [...state.watches.values()] : undefined)
  if (order === undefined) return { ...out, next: cur }
  while (cur.scan < order.length && work < limit) {
    const left = freezeLeft(order[cur.scan++] as Watch, input)
    work += PASS_WORK.visit
    if (left === undefined) continue
    cur.waiting += 1
    if (left < cur.left) cur.left = left
  }
  if (cur.scan < order.length) return { ...out, next: cur }
  const bucketMs = input.view.bucketMs
  if (cur.at === 0) cur.budget = freezeBudget(cur.waiting, cur.left)
  const budget = cur.budget
  while (cur.at < order.length && work < limit) {
    const w = order[cur.at++] as Watch
    // ended by an earlier call of this pass (only the watch itself ends a watch here: never today)
    if (state.watches.get(w.id) !== w) continue
    work += PASS_WORK.visit
    // judged up to where this version's data is complete (metrics every 60 s lag their export),
    // on bucket boundaries the store answers whole for this series' cadence
    const cov = input.view.coverage(w.key)
    const interval = reportInterval(cov)
    const g = granularity(w.contract, input.view, cov)
    // a deployment is judged as each report completes its data (cadence.ts endGranularity); a
    // recovery verification is not time-critical and keeps to the grid of its window starts
    const ge = w.kind === 'deploy' ? endGranularity(input.view, cov, g) : g
    const dataEnd = evaluationEnd(cov, input.watermark, ge)
    // a deployment's span series may be judged before the watermark (cadence.ts earlyEnd); a recovery
    // verification is not time-critical and keeps to complete data
    const headEnd = cfg.earlyFiring && w.kind === 'deploy' ? earlyEnd(cov, input.now, dataEnd, g, bucketMs) : dataEnd
    if (awaitsFreeze(w, input)) {
      // A freeze reads minutes of the old version (the baseline, its history, its pods' slopes). A
      // mass rollout detected in one tick would freeze thousands at once and stall the tick, so a
      // call freezes at most `budget`; the rest wait for a later call, never beyond the point where
      // the watch needs its baseline (see freezeDue). Its data (before the watermark) is complete either way.
      if (freezeDue(w, headEnd, g, interval) <= 0 || cur.freezes < budget) {
        freeze(w, input.view, bucketMs)
        cur.freezes += 1
        work += PASS_WORK.freeze
      } else state.counters.freezesDeferred += 1
    }
    let over: boolean
    let end: number
    if (w.kind === 'deploy') {
      end = Math.min(headEnd, alignDown(w.endsAt, ge))
      over = input.watermark >= w.endsAt
    } else {
      // a verification needs one full confirmation span of the restored version: with 60 s metrics
      // that is longer than the default 90 s; and it waits (bounded) for data still in flight
      const effEnd = Math.max(w.endsAt, alignUp(w.deployedAt, g) + minSpan(w.contract, interval, g))
      const waitedOut = input.watermark >= effEnd + 2 * interval + w.contract.window
      // once the wait is over the verification is judged on its full period: data that never came
      // (the restored pods went away) is missing data, never a reason to judge an earlier window
      end = waitedOut ? alignDown(effEnd, g) : Math.min(dataEnd, alignDown(effEnd, g))
      over = end >= alignDown(effEnd, g) || waitedOut
    }
    // a recovery verification is always judged once more at its end, even without a new bucket;
    // after an early look a deployment is judged again when the watermark commits more, even if
    // its newest data has not moved (what the look could not confirm, the commit may)
    const commitEnd = w.kind === 'deploy' ? Math.min(end, dataEnd) : end
    if (w.decided !== 'final' && (end > w.lastEvalEnd || commitEnd > w.lastCommitEnd || (over && w.kind === 'rollback'))) {
      // incremental: an evaluation that cannot decide reports no status, except when it crosses
      // the watch's status grid (a status at least every STATUS_EVERY_MS of telemetry time)
      const ph = input.evaluation === 'incremental' ? idPhase(w.id, 8, STATUS_EVERY_MS) : 0
      const quietOk = input.evaluation === 'incremental' && Math.floor((end + ph) / STATUS_EVERY_MS) === Math.floor((w.lastEvalEnd + ph) / STATUS_EVERY_MS)
      w.lastEvalEnd = end
      w.lastCommitEnd = commitEnd
      work += PASS_WORK.evaluation
      if (w.kind === 'deploy') evalDeploy(w, input, end, commitEnd, g, ge, interval, out, state, quietOk)
      else evalRecovery(w, input, end, g, interval, out, over)
    }
    if (over && w.kind === 'deploy' && w.decided !== 'final' && w.suspect) {
      // the sequential tests are anytime-valid: letting a suspect one run on costs no false-alarm
      // guarantee, it only gives a quiet service the requests its evidence needs
      const cap = w.deployedAt + w.contract.maxWatch
      if (w.endsAt < cap) {
        w.endsAt = Math.min(cap, w.endsAt + Math.max(w.contract.window, g, interval))
        state.counters.watchExtensions += 1
        over = false
      }
    }
    if (over) endWatch(state, w, out)
  }
  if (cur.at < order.length) out.next = cur
  return out
}

function pinKeys(w: Watch): SeriesKey[] {
  const keys: SeriesKey[] = [{ namespace: w.namespace, service: w.service, version: w.version }]
  if (w.baselineVersion !== '' && w.baselineVersion !== w.version) keys.push({ namespace: w.namespace, service: w.service, version: w.baselineVersion })
  return keys
}

function addWatch(cfg: EngineConfig, state: EngineState, w: Watch, out: EngineOutput): boolean {
  if (state.watches.size >= cfg.maxWatched) {
    state.counters.watchOverflow += 1
    return false
  }
  state.watches.set(w.id, w)
  const k = vkey(w.namespace, w.service, w.version)
  let set = state.byVersion.get(k)
  if (set === undefined) state.byVersion.set(k, (set = new Set()))
  set.add(w.id)
  out.pin.push(...pinKeys(w))
  return true
}

function endWatch(state: EngineState, w: Watch, out: EngineOutput): void {
  state.watches.delete(w.id)
  const k = vkey(w.namespace, w.service, w.version)
  const set = state.byVersion.get(k)
  set?.delete(w.id)
  if (set !== undefined && set.size === 0) state.byVersion.delete(k)
  out.unpin.push(...pinKeys(w))
}

function newWatch(cfg: EngineConfig, f: {
  kind: 'deploy' | 'rollback'
  namespace: string
  service: string
  version: string
  baselineVersion: string
  deployedAt: number
  source: string
  artifact: string | undefined
  contract?: Contract
}): Watch {
  const contract = f.contract ?? contractFor(cfg, serviceId(f.namespace, f.service))
  return {
    id: deploymentId(f.namespace, f.service, f.version, f.deployedAt),
    key: { namespace: f.namespace, service: f.service, version: f.version },
    oldKey: { namespace: f.namespace, service: f.service, version: f.baselineVersion },
    kind: f.kind,
    namespace: f.namespace,
    service: f.service,
    version: f.version,
    baselineVersion: f.baselineVersion,
    deployedAt: f.deployedAt,
    source: f.source,
    artifact: f.artifact,
    contract,
    endsAt: f.deployedAt + (f.kind === 'deploy' ? contract.watch : contract.verificationWindow),
    baseline: undefined,
    preExisting: {},
    lastEvalEnd: -Infinity,
    lastCommitEnd: -Infinity,
    status: 'insufficient',
    decided: 'none',
    onsets: { error_rate: undefined, latency: undefined, resource: undefined, probe: undefined },
    containers: new Map(),
    failingNow: new Set(),
    probeFailure: undefined,
    probeReadings: 0,
    evidence: newWatchEvidence(contract.signals.latency.shiftQuantiles.length),
    refEvidence: newWatchEvidence(contract.signals.latency.shiftQuantiles.length),
    health: undefined,
    resourceLast: undefined,
    resourceAt: -Infinity,
    oldIdleUntil: -Infinity,
    suspect: false,
    parent: undefined,
  }
}

/** The version the new one replaces: the other version of the service seen before it, most recently active. */
function previousVersion(view: SignalView, ns: string, svc: string, version: string, at: number): string | undefined {
  let best: VersionInfo | undefined
  for (const v of view.versions(ns, svc)) {
    if (v.version === version || v.firstSeenMs > at) continue
    if (best === undefined || v.lastSeenMs > best.lastSeenMs) best = v
  }
  return best?.version
}

function deployWatchOf(state: EngineState, ns: string, svc: string, version: string): Watch | undefined {
  for (const id of state.byVersion.get(vkey(ns, svc, version)) ?? []) {
    const w = state.watches.get(id)
    if (w !== undefined && w.kind === 'deploy') return w
  }
  return undefined
}

function onNewVersion(cfg: EngineConfig, state: EngineState, input: EngineInput, v: VersionSeen, out: EngineOutput): void {
  if (deployWatchOf(state, v.namespace, v.service, v.version) !== undefined) return // an explicit event came first: it wins
  const prev = previousVersion(input.view, v.namespace, v.service, v.version, v.firstSeenMs)
  if (prev === undefined) return // first version of a new service: nothing to compare, not a deployment
  const w = newWatch(cfg, {
    kind: 'deploy',
    namespace: v.namespace,
    service: v.service,
    version: v.version,
    baselineVersion: prev,
    // whole milliseconds: the id and the verdict's unixMs fields stay integers
    deployedAt: Math.floor(v.firstSeenMs),
    source: 'telemetry',
    artifact: undefined,
  })
  if (addWatch(cfg, state, w, out)) state.counters.deploymentsDetected += 1
}

function onEvent(cfg: EngineConfig, state: EngineState, input: EngineInput, ev: DeploymentEvent, out: EngineOutput): void {
  state.counters.deploymentEvents += 1
  // an event whose watch (or verification) would already be over (redelivery after a restart, a
  // late announcement) is not judged: its window cannot be observed as it happened
  const c = contractFor(cfg, serviceId(ev.namespace, ev.service))
  if (ev.time + (ev.kind === 'deploy' ? c.watch : c.verificationWindow) <= input.watermark) {
    state.counters.staleEvents += 1
    return
  }
  if (ev.kind === 'rollback') return onRollbackEvent(cfg, state, ev, out)
  const existing = deployWatchOf(state, ev.namespace, ev.service, ev.version)
  if (existing !== undefined) {
    if (existing.source !== 'telemetry' || existing.decided !== 'none') {
      state.counters.duplicateEvents += 1
      return
    }
    // the announced deployment replaces the telemetry guess: its time and previous version are authoritative
    endWatch(state, existing, out)
  }
  const baselineVersion = ev.previousVersion ?? previousVersion(input.view, ev.namespace, ev.service, ev.version, ev.time) ?? ''
  addWatch(
    cfg,
    state,
    newWatch(cfg, { kind: 'deploy', namespace: ev.namespace, service: ev.service, version: ev.version, baselineVersion, deployedAt: ev.time, source: ev.source, artifact: ev.artifact }),
    out,
  )
}

function onRollbackEvent(cfg: EngineConfig, state: EngineState, ev: DeploymentEvent, out: EngineOutput): void {
  const sid = serviceId(ev.namespace, ev.service)
  const parent = state.pendingRecovery.get(sid)
  if (parent === undefined || (ev.decisionId !== undefined && ev.decisionId !== parent.decisionId)) {
    state.counters.rollbackEventsUnmatched += 1
    return
  }
  state.pendingRecovery.delete(sid)
  const w = newWatch(cfg, {
    kind: 'rollback',
    namespace: ev.namespace,
    service: ev.service,
    version: ev.version,
    baselineVersion: parent.baselineVersion,
    deployedAt: ev.time,
    source: ev.source,
    artifact: ev.artifact,
    contract: parent.contract,
  })
  w.parent = parent
  w.baseline = parent.baseline
  addWatch(cfg, state, w, out)
}

/** Probe readings are applied in telemetry-time order (onProbe), whatever order they came in. */
function sortProbes(probes: readonly ProbeObservation[]): ProbeObservation[] {
  return [...probes].sort((a, b) => a.timeMs - b.timeMs)
}

function onProbe(state: EngineState, p: ProbeObservation): void {
  const ids = state.byVersion.get(vkey(p.key.namespace, p.key.service, p.key.version))
  if (ids === undefined) return
  for (const id of ids) {
    const w = state.watches.get(id)
    if (w === undefined || p.timeMs < w.deployedAt) continue
    const cid = `${p.pod}/${p.container}`
    let t = w.containers.get(cid)
    if (t === undefined) {
      if (w.containers.size >= MAX_CONTAINERS) {
        state.counters.containerOverflow += 1
        continue
      }
      w.containers.set(cid, (t = { firstSeenMs: p.timeMs, everReady: false }))
    }
    w.probeReadings += 1
    if (p.ready) {
      t.everReady = true
      w.failingNow.delete(cid)
      continue
    }
    const grace = w.contract.signals.probe.startupGrace
    if (t.everReady || p.timeMs - t.firstSeenMs >= grace) {
      w.failingNow.add(cid)
      if (w.probeFailure === undefined) {
        w.probeFailure = { onsetMs: p.timeMs, container: cid, why: t.everReady ? 'was ready, then failed' : 'not ready after startup grace' }
      }
    }
  }
}

function baselineNumbers(c: Contract, w: WindowStats): BaselineNumbers {
  const resourceSlope: Partial<Record<ResourceKind, number>> = {}
  for (const kind of c.signals.resource.kinds) {
    const m = medianSlope(w, kind, c.signals.resource.minPoints)
    if (m.pods > 0) resourceSlope[kind] = m.slope
  }
  return { ...requestNumbers(c, w), resourceSlope, pooled: undefined }
}

const NONE: RuleResult[] = []
const isBreach = (r: RuleResult) => r.state === 'breach'
/** readings(): nothing can be decided at this evaluation (see there) */
const QUIET = Symbol('quiet')
const NO_LEVELS: Levels = { errorLevel: NaN, latencyCutUs: NaN, latencyLevel: NaN, shift: [], errorGrid: undefined }
/**
 * Levels per baseline numbers object: a frozen snapshot is judged against the same levels every
 * tick (their upper bounds cost a bisection each); a live baseline is a new object per tick.
 */
const levelCache = new WeakMap<BaselineNumbers, Levels>()

/**
 * The levels the sequential tests judge a batch against, from (frozen or live) baseline numbers.
 * `frozen`: the numbers are a watch's snapshot, the same object for the whole watch, which alone
 * carries an error grid (composite.ts: its bettors need levels that never move).
 */
function levelsOf(c: Contract, n: BaselineNumbers | undefined, frozen: boolean): Levels {
  if (n === undefined) return NO_LEVELS
  let lv = levelCache.get(n)
  if (lv === undefined) levelCache.set(n, (lv = computeLevels(c, n, frozen)))
  return lv
}

function computeLevels(c: Contract, n: BaselineNumbers, frozen: boolean): Levels {
  const lat = n.latencyCount >= c.minSamples && Number.isFinite(n.latencyUs) ? latencyLevels(c, n) : undefined
  return {
    errorLevel: n.requests >= c.minSamples ? errorLevel(c, n) : NaN,
    latencyCutUs: lat?.cutUs ?? NaN,
    latencyLevel: lat?.level ?? NaN,
    shift: lat !== undefined ? shiftLevels(c, n) : [],
    errorGrid: frozen && n.requests >= c.minSamples ? errorGrid(n) : undefined,
  }
}

/**
 * Freezes the old version's pre-deploy numbers, and checks the validation gate's question once:
 * was the old version, in the last window(s) before the deployment, already beyond the thresholds
 * this baseline implies? If so that signal's breach is pre-existing (onset before the deployment).
 * Each window scanned is the old series' shortest confirmation span (cadence.ts minSpan: the
 * contract's window and two of its reports, on its grid), the duration a breach after the
 * deployment must hold: a pre-existing breach is sustained by the same standard. Scanned in
 * `window` steps instead, a 45 s exporter's last 15 s (a third of one report) was one look at a
 * tail's chance swing (a single look at alpha per signal), and two drawn bad deploys of 1,000
 * became incidents on it (`false-rollbacks.js --intervals 20,30,45 --histograms exponential
 * --errors 0.05 --slower 2`: #394 and #776, 45 s metrics).
 */
function freeze(w: Watch, view: SignalView, bucketMs: number): void {
  if (w.baselineVersion === '') return
  const c = w.contract
  const key = { namespace: w.namespace, service: w.service, version: w.baselineVersion }
  const to = alignDown(w.deployedAt, bucketMs)
  const retained = view.retainedFromMs(key)
  const { fromMs: from, win: bw } = baselineSpan(c, view, key, to, retained === undefined ? -Infinity : alignUp(retained, bucketMs))
  const numbers = baselineNumbers(c, bw)
  w.health = judgeBaseline(c, view, key, bw, bucketMs)
  numbers.pooled = c.baselineHistory ? pooledHistory(c, view, key, bw, numbers, w.health) : undefined
  w.baseline = { version: w.baselineVersion, fromMs: from, toMs: to, numbers }
  if (numbers.requests >= c.minSamples) {
    // scan back window by window while the old version was beyond; the earliest such window start is the onset
    let errOnset: number | undefined
    let latOnset: number | undefined
    let errOn = true
    // an unbounded latency (metric means) is no count test's evidence (rules.ts boundedLatency)
    const cov = view.coverage(key)
    let latOn = numbers.latencyCount >= c.minSamples && boundedLatency(cov)
    const layout = cov?.latencyBuckets
    const g = granularity(c, view, cov)
    const span = minSpan(c, reportInterval(cov), g)
    for (let end = to, start = alignDown(end - span, g); start >= from && (errOn || latOn); end = start, start = alignDown(end - span, g)) {
      const pw = view.window(key, start, end)
      if (errOn && sliceErrorBeyond(c, pw, numbers)) errOnset = start
      else errOn = false
      if (latOn && sliceLatencyBeyond(c, pw, numbers, layout)) latOnset = start
      else latOn = false
    }
    if (errOnset !== undefined) w.preExisting.error_rate = errOnset
    if (latOnset !== undefined) w.preExisting.latency = latOnset
  }
}

interface Readings {
  list: RuleResult[]
  source: 'snapshot' | 'live'
  /** breaches against the history before an unhealthy baseline (gate.ts), onset = that breach's onset */
  preExisting: RuleResult[]
}

/**
 * A live baseline must be serving beside the candidate for the whole span: every slice holds its
 * share of the sample floor. The last draining old pod of a rolling update (a few requests from one
 * pod, in one slice) is not a population to judge against; the frozen snapshot is.
 */
function servesThroughout(ow: WindowStats, slices: number, minSamples: number): boolean {
  const width = (ow.toMs - ow.fromMs) / slices
  const need = Math.ceil(minSamples / slices)
  for (let i = 0; i < slices; i++) {
    let n = 0
    for (const b of ow.buckets) if (b.startMs >= ow.fromMs + i * width && b.startMs < ow.fromMs + (i + 1) * width) n += b.requests
    if (n < need) return false
  }
  return true
}

/**
 * Resource readings arrive every 10-60 s and their slope is a Theil-Sen fit over minutes: the rule
 * is re-run at most this often (telemetry time) per watch, or when the baseline source changes.
 */
const RESOURCE_EVERY_MS = 15_000

function resourceReading(
  w: Watch,
  view: SignalView,
  key: SeriesKey,
  end: number,
  g: number,
  evalFrom: number,
  base: Partial<Record<ResourceKind, number>> | undefined,
  source: 'snapshot' | 'live',
): RuleResult {
  if (w.resourceLast !== undefined && source === 'snapshot' && end - w.resourceAt < RESOURCE_EVERY_MS && end >= w.resourceAt) return w.resourceLast
  const r = resourceRule(w.contract, view, key, end, evalFrom, base)
  // the first reading of a watch is dated back by a phase of its own (its id), so that watches
  // deployed in the same tick (a mass rollout) re-run the rule in different ticks, not all at once
  w.resourceAt = w.resourceLast === undefined && source === 'snapshot' ? end - resourcePhase(w.id, g) : end
  w.resourceLast = source === 'snapshot' ? r : undefined
  return r
}

/** A watch's phase of the resource rule's cadence: a multiple of `g` below RESOURCE_EVERY_MS, from its id (hex). */
function resourcePhase(id: string, g: number): number {
  const steps = Math.floor(RESOURCE_EVERY_MS / g)
  return steps > 1 ? idPhase(id, 0, steps) * g : 0
}

/**
 * Readings at `end`, or undefined while the first confirmation span after the deployment is not
 * complete yet, or QUIET when `quietOk` and no rule can be in breach at `end`: the sequential tests
 * consumed the new data (as always), neither test's evidence (nor, for an unhealthy baseline, the
 * evidence against the history before it) reached its bound, no probe failed and the resource rule
 * (run on its own cadence, as always) is not in breach. A breach of a request signal needs its
 * evidence at the bound (rules.ts), so such an evaluation cannot decide anything: the error, latency
 * and probe readings are not computed. Every state change a full evaluation makes is made.
 */
function readings(w: Watch, input: EngineInput, end: number, commitEnd: number, g: number, interval: number, base: FrozenBaseline | undefined, allowLive: boolean, quietOk = false, ge = g): Readings | typeof QUIET | undefined {
  const c = w.contract
  const view = input.view
  const key = w.key
  const earliest = alignUp(w.deployedAt, g)
  const baselineMs = base !== undefined ? Math.max(c.baselineWindow, base.toMs - base.fromMs) : c.baselineWindow
  // `ge`: the grid the judgement ends on (cadence.ts endGranularity; `g` for a recovery); a span may
  // lie on it while the store still holds it finely (deploySpan), else on `g` from `earliest`
  const cov = ge < g ? view.coverage(key) : undefined
  const spanAt = (t: number) => deploySpan(c, view, key, cov, t, w.deployedAt, g, ge, interval, baselineMs)
  const span = spanAt(end)
  if (span === undefined) return undefined
  const win = span.win
  const from = span.fromMs
  let numbers = base?.numbers
  // the numbers the sequential tests' levels come from: the snapshot object itself (its levels are
  // cached per object) unless the live numbers replace it
  let levelsFrom = base?.numbers
  let source: 'snapshot' | 'live' = 'snapshot'
  if (allowLive && w.baselineVersion !== '') {
    // canary: the old version serving beside the new one in the same span is the fairer baseline
    const oldKey = w.oldKey
    // After a finished rollout the old version serves nothing; it is then re-checked once a minute
    // (telemetry time) rather than at every tick. A canary's old version keeps serving and is read each tick.
    const ow = end >= w.oldIdleUntil ? view.window(oldKey, from, end) : undefined
    if (ow !== undefined && ow.requests < c.minSamples) w.oldIdleUntil = end + OLD_RECHECK_MS
    if (ow !== undefined && ow.requests >= c.minSamples && servesThroughout(ow, c.slices, c.minSamples)) {
      source = 'live'
      const liveResources: Partial<Record<ResourceKind, number>> = {}
      const r = c.signals.resource
      if (r.mode !== 'off') {
        const rw = view.window(oldKey, end - r.window, end)
        for (const kind of r.kinds) {
          const m = medianSlope(rw, kind, r.minPoints)
          if (m.pods > 0) liveResources[kind] = m.slope
        }
      }
      // its numbers: the old version over all of its time beside the new one since the deployment
      // (at most `baselineWindow`), not only this span: a span of two reports holds too few of its
      // requests for a tight upper bound, and the evidence it is compared with covers that time too
      const lf = Math.max(earliest, end - c.baselineWindow)
      const lw = lf < from ? view.window(oldKey, lf, end) : ow
      const resourceSlope = { ...(base?.numbers.resourceSlope ?? {}), ...liveResources }
      // the request signals keep the (tighter) snapshot unless the old version is now worse than it
      if (base === undefined || liveWorseThanSnapshot(c, lw, base.numbers, levelsOf(c, base.numbers, true))) {
        numbers = { ...requestNumbers(c, lw, false), shift: windowShift(c, lw), resourceSlope }
        levelsFrom = numbers
      } else {
        source = 'snapshot'
        numbers = Object.keys(liveResources).length === 0 ? base.numbers : { ...base.numbers, resourceSlope }
      }
    }
  }
  // the sequential tests consume the newly complete data once, against this evaluation's levels.
  // A new release's evidence starts at its first request, not at its first whole bucket: the series
  // is the version's own (a watch detected from telemetry has no data before `deployedAt`; one from
  // an event may hold a few of the same version's requests stamped just before it), and more of the
  // version's data only makes the anytime-valid test sooner, never less valid. The span (the
  // "sustained" question) still starts at the first whole bucket. A restored version (recovery) served
  // before its rollback, so its partial bucket is another period's data: excluded.
  const evidenceFrom = w.kind === 'deploy' ? alignDown(w.deployedAt, g) : earliest
  // Early firing (end past the watermark's commitEnd): the tests commit the data up to commitEnd
  // (their next stakes, fixed from the span up to `end`, queued at `end`) and look at the rest
  // without consuming it (sequential.ts peek) when their levels are the frozen snapshot's, the same
  // at the look as at the later commit; a live baseline's levels move, so its tests wait for the
  // watermark. In steady state the look at a bucket and its later commit bet the same stake.
  const early = commitEnd < end
  const lv = levelsOf(c, levelsFrom, source === 'snapshot')
  advance(w.evidence, view, key, evidenceFrom, commitEnd, lv, win, interval, end)
  const ev = early && source === 'snapshot' ? peek(w.evidence, view, key, evidenceFrom, end, lv, win, interval) : w.evidence
  const evalFrom = w.kind === 'deploy' ? w.deployedAt + c.signals.resource.warmup : w.deployedAt
  const h = w.health
  const againstHistory = h !== undefined && h.state === 'unhealthy' && h.reference !== undefined && source === 'snapshot'
  // the history's tests (a pre-existing breach, not time-critical) commit only, no early look
  if (againstHistory) advance(w.refEvidence, view, key, evidenceFrom, commitEnd, levelsOf(c, h.reference, false), win, interval, end)
  let resource: RuleResult | undefined
  if (quietOk && w.probeFailure === undefined) {
    const bound = 1 / c.alpha
    const below = (e: WatchEvidence) => errorEvidence(e) < bound && latencyEvidence(e) < bound
    if (below(ev) && (!againstHistory || below(w.refEvidence))) {
      resource = resourceReading(w, view, key, end, g, evalFrom, numbers?.resourceSlope, source)
      if (resource.state !== 'breach') {
        // what the loop below does for readings that are not breaches
        w.onsets.error_rate = undefined
        w.onsets.latency = undefined
        w.onsets.resource = undefined
        w.onsets.probe = undefined
        return QUIET
      }
    }
  }
  const list = [
    errorRateRule(c, win, numbers, errorEvidence(ev)),
    latencyRule(c, view, key, win, numbers, latencyEvidence(ev)),
    resource ?? resourceReading(w, view, key, end, g, evalFrom, numbers?.resourceSlope, source),
    probeRule(c, win, w.probeFailure, w.failingNow.size, w.probeReadings),
  ]
  // An early look may not confirm what the committed data already does: its newest bucket is
  // partial, so the span can hold fewer than `minSamples` or a slice less than its share. A reading
  // beyond its threshold but not a breach is then also taken on the committed data (up to the
  // watermark, the committed evidence) and a breach there stands in for it: no decision comes later
  // than with `earlyFiring: false`. Only for a reading beyond its threshold: a healthy series costs
  // nothing more.
  if (early && numbers !== undefined) {
    // the committed span is read once, for whichever of the two readings needs it
    let cs: ReturnType<typeof deploySpan> | null = null
    for (const i of [0, 1] as const) {
      const r = list[i] as RuleResult
      if (r.state === 'breach' || !(r.threshold > 0 && r.value >= r.threshold)) continue
      if (cs === null) cs = spanAt(commitEnd)
      if (cs === undefined) break
      const rc = i === 0 ? errorRateRule(c, cs.win, numbers, errorEvidence(w.evidence)) : latencyRule(c, view, key, cs.win, numbers, latencyEvidence(w.evidence))
      if (rc.state === 'breach') list[i] = rc
    }
  }
  // a request signal beyond its threshold beside one that reached 1/alpha is a witness at the
  // corroboration bound (rules.ts corroborationBound); never critical, never a leader. The error
  // witness may also count its evidence against the baseline's counts (composite.ts)
  const [er, lat] = list as [RuleResult, RuleResult]
  if (lat.state === 'breach' && er.state === 'insufficient' && er.threshold > 0 && er.value >= er.threshold) {
    const plugIn = errorEvidence(ev)
    const counts = errorCountsEvidence(ev, lv)
    const witness = errorRateRule(c, win, numbers, Math.max(plugIn, counts), corroborationBound(c))
    if (witness.state === 'breach') list[0] = corroborating(witness, counts > plugIn ? " against the baseline's counts" : '')
  } else if (er.state === 'breach' && corroborates(c, lat)) list[1] = corroborating(latencyRule(c, view, key, win, numbers, latencyEvidence(ev), corroborationBound(c)))
  // a breach that continues from the previous tick keeps its first onset. A request signal beyond
  // its critical level suffices alone only when held in every report over the shortest span and one
  // more report, or over the confirmation span as it grew when that is longer (an error ratio at the
  // absolute `critical` at once): a single-cause fault is sustained; a spike of one report (a cold
  // start of a few seconds) never fills three reports
  for (const r of list) {
    if (r.state === 'breach') {
      const prev = w.onsets[r.signal]
      if (prev !== undefined && r.signal !== 'probe') r.onsetMs = Math.min(prev, r.onsetMs ?? prev)
      w.onsets[r.signal] = r.onsetMs
      if (r.signal === 'error_rate' || r.signal === 'latency') {
        // one witness: critical only when held (rules.ts heldAlone); an error ratio at the absolute
        // `critical` level suffices at once. A corroborating witness is never critical.
        // The hold is judged on committed data only: an early look reads the newest bucket before
        // every pod's batch is in, and a pod whose batch has not come has sent only the bucket's
        // first part, so a burst that ended inside that bucket would look up to one bucket longer
        // than it was; how long it held is a single signal's only guard against a burst (two
        // signals each carry their own evidence and may decide on the look).
        // A breach below its critical level suffices alone too once held for `singleSignalHold`
        // (rules.ts heldLong), on committed data for the same reason. Both holds read a metric's
        // latency at its bucket's lower bound (normalize/buckets.ts): its p99 is a bucket's midpoint
        // (SDK default bounds 100, 250, 500 ms), so a 1.3x shift across a bound reads 2x, beyond the
        // threshold in every report; read at the midpoint the hold rolled back 77 of 1,000 1.3x-slower
        // deployments, 75 of them on metrics (`node dist/bench/false-rollbacks.js --runs 1000 --slower 1.3`).
        // A quiet service's confirmation span grows until it holds minSamples, so the hold covers
        // the span as it grew (over the shortest one it would hold too few requests to judge), and a
        // gap is empty time as long as one slice of that span or one report, whichever is longer:
        // the span's own rule (a slice without any request is a gap); a 0.1 req/s service leaves
        // most 5 s buckets empty without having stopped (test/engine/cadence.test.ts).
        // Latency alone against the snapshot waits while the version serves a surge (load.ts): load
        // slows every version, and nothing serves beside it to tell the two apart.
        const absolute = r.critical && r.signal === 'error_rate' && r.value >= c.signals.errorRate.critical
        const spanMs = span.toMs - span.fromMs
        const gapMs = Math.max(interval, g, spanMs / c.slices)
        // three reports (the shortest span and one more report) on the grid the judgement ends on, `ge`:
        // a 20-45 s exporter's hold is 60-135 s from the minute edge before (heldAlone starts it on
        // `g`), not a 60 s exporter's 180 s; before, 20 % fast 5xx on 20 s metrics waited 116 s
        // (median from the first export) where 15 s metrics took 30 s (`false-rollbacks.js
        // --intervals 20,30,45 --errors 0.2`)
        const aloneMs = Math.max(minSpan(c, interval, ge) + Math.max(interval, ge), spanMs)
        // a hold starts on the grid of the span's starts (cadence.ts endGranularity: a range the store answers whole)
        const underLoad = (holdMs: number): boolean =>
          r.signal === 'latency' && source === 'snapshot' && base !== undefined && loadConfounds(c, loadRatio(view, key, { requests: base.numbers.requests, fromMs: base.fromMs, toMs: base.toMs }, alignDown(commitEnd - holdMs, g), commitEnd))
        const lead = leads(c, r)
        const heldCritical = lead && numbers !== undefined && heldAlone(c, view, key, r, numbers, commitEnd, earliest, aloneMs, gapMs, g)
        r.critical = lead && (absolute || (heldCritical && !underLoad(aloneMs)))
        if (!r.critical && lead && numbers !== undefined && heldLong(c, view, key, r, numbers, commitEnd, earliest, gapMs, g)) {
          r.critical = !underLoad(c.singleSignalHold)
          r.note = `held ${c.singleSignalHold / 1000}s beyond the threshold${r.critical ? '' : `, ${underLoadNote(c)}`}`
        } else if (heldCritical && !r.critical) r.note = `at its critical level, ${underLoadNote(c)}`
        // a metric's p99 decided alone at its bucket's lower bound: the verdict says what was compared
        const layout = r.critical && r.signal === 'latency' ? view.coverage(key)?.latencyBuckets : undefined
        if (layout !== undefined) {
          const floor = `p99 in a bucket above ${Number((latencyFloorUs(layout, r.value * 1000) / 1000).toFixed(3))}ms`
          r.note = r.note === '' ? floor : `${r.note}; ${floor}`
        }
      }
    } else w.onsets[r.signal] = undefined // not `delete`: keeps the object out of V8 dictionary mode
  }
  if (!againstHistory || h === undefined || h.reference === undefined) return { list, source, preExisting: NONE }
  const preExisting: RuleResult[] = []
  {
    const note = `against the history before the baseline (${h.note})`
    if (h.onsets.error_rate !== undefined) {
      const r = errorRateRule(c, win, h.reference, errorEvidence(w.refEvidence))
      if (r.state === 'breach') preExisting.push({ ...r, critical: false, onsetMs: h.onsets.error_rate, note })
    }
    if (h.onsets.latency !== undefined) {
      const r = latencyRule(c, view, key, win, h.reference, latencyEvidence(w.refEvidence))
      if (r.state === 'breach') preExisting.push({ ...r, critical: false, onsetMs: h.onsets.latency, note })
    }
  }
  return { list, source, preExisting }
}

/** A reading that may become a corroborating witness: beyond its threshold, evidence short of 1/alpha but at the corroboration bound. */
function corroborates(c: Contract, r: RuleResult): boolean {
  return r.state === 'insufficient' && r.threshold > 0 && r.value >= r.threshold && r.evidence !== undefined && r.evidence >= corroborationBound(c) && r.evidence < 1 / c.alpha
}

function corroborating(r: RuleResult, how = ''): RuleResult {
  if (r.state === 'breach') r.note = `corroborating: evidence${how} ${(r.evidence ?? 0).toPrecision(3)} >= ${(r.evidenceBound ?? 0).toPrecision(3)}`
  return r
}

/** A request-signal breach judged at the full bound (1/alpha), not a corroborating one. */
function leads(c: Contract, r: RuleResult): boolean {
  return r.evidenceBound === undefined || r.evidenceBound >= 1 / c.alpha
}

/** Does this set of confirmed breaches suffice for a decision? A probe or critical breach alone; else minSignals of them. */
function suffices(c: Contract, set: readonly RuleResult[]): boolean {
  return set.some((r) => r.critical) || set.length >= c.minSignals
}

function strip(list: readonly RuleResult[]): SignalReading[] {
  return list.map(({ note: _note, ...r }) => r)
}

/** Says so in a verdict when the snapshot's levels were narrowed by the old version's longer history (history-pool.ts). */
function pooledNote(b: FrozenBaseline | undefined, source: 'snapshot' | 'live'): string {
  const p = b?.numbers.pooled
  if (source !== 'snapshot' || b === undefined || p === undefined || (p.errors === undefined && p.latency === undefined)) return ''
  return ` (baseline bounded over the ${Math.round((b.toMs - p.fromMs) / 60_000)} min before the deployment)`
}

function describe(r: RuleResult): string {
  const fmt = (v: number) =>
    r.signal === 'error_rate' ? `${(v * 100).toFixed(2)}%` : r.signal === 'latency' ? `${v.toFixed(1)}ms` : r.signal === 'resource' ? `${(v * 100).toFixed(2)}%/min` : String(v)
  const head = `${r.signal}${r.mode === 'observe' ? ' (observe)' : ''}${r.critical ? ' (critical)' : ''}`
  if (r.signal === 'probe') return `${head}: ${r.note}`
  return `${head}: ${fmt(r.value)} vs baseline ${fmt(r.baseline)}, threshold ${fmt(r.threshold)}, ${r.samples} samples${r.note !== '' ? ` [${r.note}]` : ''}`
}

/** an enforced request signal beyond its threshold whose evidence has grown but not reached the bound */
function suspect(x: RuleResult): boolean {
  return (
    x.mode === 'enforce' &&
    x.state === 'insufficient' &&
    (x.signal === 'error_rate' || x.signal === 'latency') &&
    x.threshold > 0 &&
    x.value >= x.threshold &&
    x.evidence !== undefined &&
    x.evidenceBound !== undefined &&
    x.evidence > 1 &&
    x.evidence < x.evidenceBound
  )
}

function evalDeploy(w: Watch, input: EngineInput, end: number, commitEnd: number, g: number, ge: number, interval: number, out: EngineOutput, state: EngineState, quietOk: boolean): void {
  const c = w.contract
  state.counters.evaluations += 1
  // only spans that lie wholly after the deployment are judged: data before it belongs to another release
  const r = readings(w, input, end, commitEnd, g, interval, w.baseline, true, quietOk, ge)
  // before the first span only a probe failure can decide (pendingList)
  if (r === QUIET || (r === undefined && quietOk && w.probeFailure === undefined)) {
    state.counters.quietEvaluations += 1
    return
  }
  const list = r?.list ?? pendingList(c, w, input, end)
  w.suspect = list.some(suspect)
  const source = r?.source ?? 'snapshot'
  const preFromHistory = r?.preExisting ?? NONE
  if (preFromHistory.length === 0 && !list.some(isBreach)) {
    // the common case: nothing to decide
    const st = statusOf(list)
    w.status = st
    out.statuses.push(statusRecord(w, end, st, list))
    return
  }
  const breaches = list.filter(isBreach)
  for (const b of breaches) {
    const pre = w.preExisting[b.signal]
    if (pre !== undefined && source === 'snapshot') b.onsetMs = Math.min(pre, b.onsetMs ?? pre)
  }
  const fresh = (x: RuleResult) => (x.onsetMs ?? end) >= w.deployedAt
  const isEnforce = (x: RuleResult) => x.mode === 'enforce'
  const enforce = breaches.filter(isEnforce)
  // pre-existing: breaches whose onset predates the deployment, and breaches against the history
  // before an unhealthy baseline. One is enough for an incident: it is a notice, not an action.
  const pre = [...breaches.filter((x) => !fresh(x)), ...preFromHistory]
  let decision: { kind: 'rollback' | 'incident'; dryRun: boolean; set: RuleResult[] } | undefined
  if (suffices(c, enforce.filter(fresh))) decision = { kind: 'rollback', dryRun: false, set: enforce.filter(fresh) }
  else if (pre.some(isEnforce)) decision = { kind: 'incident', dryRun: false, set: [...enforce.filter(fresh), ...pre.filter(isEnforce)] }
  else if (suffices(c, breaches.filter(fresh))) decision = { kind: 'rollback', dryRun: true, set: breaches.filter(fresh) }
  else if (pre.length > 0) decision = { kind: 'incident', dryRun: true, set: [...breaches.filter(fresh), ...pre] }

  let status: DeploymentStatus = statusOf(list)
  if (decision !== undefined) {
    status = decision.kind
    const emit = decision.dryRun ? w.decided === 'none' : true
    if (emit) {
      const health = w.health?.state ?? 'unknown'
      const reasonHead =
        decision.kind === 'incident'
          ? 'breach began before the deployment (pre-existing condition, validation gate)'
          : `${decision.set.length} confirmed breach${decision.set.length > 1 ? 'es' : ''} after the deployment` +
            (health === 'unhealthy' ? ` (the baseline itself was unhealthy: ${w.health?.note ?? ''})` : '') +
            pooledNote(w.baseline, source)
      const v: Verdict = {
        kind: decision.kind,
        dryRun: decision.dryRun,
        id: verdictId(w.id, decision.dryRun ? `${decision.kind}/dry-run` : decision.kind),
        deploymentId: w.id,
        namespace: w.namespace,
        service: w.service,
        version: w.version,
        baselineVersion: w.baselineVersion,
        baselineSource: source,
        deployedAt: w.deployedAt,
        decidedAt: input.now,
        ...(w.artifact !== undefined ? { artifact: w.artifact } : {}),
        baselineHealth: health,
        reason: `${reasonHead}${decision.dryRun ? ' (dry run: observe-mode signals needed)' : ''}: ${decision.set.map(describe).join('; ')}`,
        signals: strip(list),
      }
      out.verdicts.push(v)
      w.decided = decision.dryRun ? 'dry' : 'final'
      if (!decision.dryRun && decision.kind === 'rollback') {
        if (state.pendingRecovery.size >= MAX_PENDING) {
          const oldest = state.pendingRecovery.keys().next().value
          if (oldest !== undefined) state.pendingRecovery.delete(oldest)
        }
        const sid = serviceId(w.namespace, w.service)
        state.pendingRecovery.delete(sid)
        state.pendingRecovery.set(sid, {
          deploymentId: w.id,
          version: w.version,
          baselineVersion: w.baselineVersion,
          baselineSource: source,
          deployedAt: w.deployedAt,
          artifact: w.artifact,
          baseline: w.baseline,
          contract: c,
          decisionId: v.id,
        })
      }
    }
  }
  w.status = status
  out.statuses.push(statusRecord(w, end, status, list))
}

function pendingList(c: Contract, w: Watch, input: EngineInput, end: number): RuleResult[] {
  return [
    pendingFor(c, 'error_rate'),
    pendingFor(c, 'latency'),
    pendingFor(c, 'resource'),
    probeRule(c, input.view.window(w.key, end - c.window, end), w.probeFailure, w.failingNow.size, w.probeReadings),
  ]
}

function pendingFor(c: Contract, signal: 'error_rate' | 'latency' | 'resource'): RuleResult {
  const mode = (signal === 'error_rate' ? c.signals.errorRate : signal === 'latency' ? c.signals.latency : c.signals.resource).mode
  if (mode === 'off') return offReading(signal)
  return { signal, state: 'insufficient', mode, value: 0, baseline: 0, threshold: 0, samples: 0, critical: false, note: 'first full window after the deployment not complete yet' }
}

function statusOf(list: readonly RuleResult[]): DeploymentStatus {
  // loops rather than filter/some with closures: it runs for every watch at every pass
  let reqHealthy = false
  let reqAllOff = true
  let anyHealthy = false
  for (const r of list) {
    if (r.state === 'breach') return 'breach'
    const req = r.signal === 'error_rate' || r.signal === 'latency'
    if (r.state === 'healthy') {
      anyHealthy = true
      if (req) reqHealthy = true
    }
    if (req && r.state !== 'off') reqAllOff = false
  }
  if (reqHealthy) return 'healthy'
  if (reqAllOff && anyHealthy) return 'healthy'
  return 'insufficient'
}

function statusRecord(w: Watch, t: number, status: DeploymentStatus, list: RuleResult[]): WatchStatus {
  return {
    deploymentId: w.id,
    kind: w.kind,
    namespace: w.namespace,
    service: w.service,
    version: w.version,
    baselineVersion: w.baselineVersion,
    deployedAt: w.deployedAt,
    t,
    status,
    baselineHealth: w.health?.state ?? 'unknown',
    // the rules' readings as they are (with their `note`, which a report can show); not copied per tick
    signals: list,
  }
}

/**
 * Recovery verification of the restored version against the original frozen baseline:
 * - any confirmed enforce breach during the verification window -> not-recovered at once;
 * - at its end: recovered when the last confirmation span (the window and two of the series'
 *   reports, cadence.ts) had no breach and at least one request signal (error rate or latency) was
 *   judged healthy in it; not-recovered when that span did not hold enough data to judge
 *   ("insufficient data" is not evidence of recovery).
 */
function evalRecovery(w: Watch, input: EngineInput, end: number, g: number, interval: number, out: EngineOutput, final: boolean): void {
  const c = w.contract
  const parent = w.parent as RecoveryParent
  const r = readings(w, input, end, end, g, interval, w.baseline, false)
  const list = (r !== QUIET ? r?.list : undefined) ?? pendingList(c, w, input, end)
  const breaches = list.filter((r) => r.state === 'breach' && r.mode === 'enforce')
  let kind: 'recovered' | 'not-recovered' | undefined
  let reason = ''
  if (breaches.length > 0) {
    kind = 'not-recovered'
    reason = `restored version still breaching the original baseline: ${breaches.map(describe).join('; ')}`
  } else if (final) {
    // judged on the last window, not on any earlier tick: a restored version that had data early in
    // the verification window and none at its end (its pods gone) has not shown that it recovered
    const lastSufficient = list.some((r) => (r.signal === 'error_rate' || r.signal === 'latency') && r.state === 'healthy')
    if (lastSufficient) {
      kind = 'recovered'
      reason = `all signals within the original baseline for the ${c.verificationWindow / 1000}s verification window`
    } else {
      kind = 'not-recovered'
      // each request signal's own reason (too few requests, a gap in the span, evidence short of
      // its bound while beyond the threshold): the request count alone can be above the floor
      const why = list
        .filter((r) => (r.signal === 'error_rate' || r.signal === 'latency') && r.state !== 'off')
        .map((r) => `${r.signal}: ${r.state}, ${r.samples} requests${r.note !== '' ? `, ${r.note}` : ''}`)
        .join('; ')
      reason = `insufficient data: neither error rate nor latency of the restored version could be judged healthy over its last confirmation span (at least ${minSpan(c, interval, g) / 1000}s: the window, or two reports of a metric series when longer) at the end of the ${c.verificationWindow / 1000}s verification window (${why}; floor ${c.minSamples} requests); recovery cannot be confirmed`
    }
  }
  const status: DeploymentStatus = statusOf(list)
  w.status = status
  out.statuses.push(statusRecord(w, end, status, list))
  if (kind === undefined) return
  w.decided = 'final'
  out.verdicts.push({
    kind,
    dryRun: false,
    id: verdictId(parent.deploymentId, kind),
    deploymentId: parent.deploymentId,
    namespace: w.namespace,
    service: w.service,
    version: parent.version,
    baselineVersion: parent.baselineVersion,
    baselineSource: 'snapshot',
    deployedAt: parent.deployedAt,
    decidedAt: input.now,
    ...(parent.artifact !== undefined ? { artifact: parent.artifact } : {}),
    restoredVersion: w.version,
    reason,
    signals: strip(list),
  })
}
