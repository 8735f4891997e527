/**
 * The engine's types: its input and output per call, its state (the watches, their index, pending
 * recoveries, counters) and the record of one watched deployment or recovery verification. The
 * state is the caller's and is advanced in place (evaluate.ts); persist.ts writes it as changelog
 * records, so a field added to a Watch carries over to restarts without changes there.
 */
import type { ProbeObservation, SeriesKey } from '../normalize/observations.js'
import type { SignalView, VersionInfo } from '../signals/view.js'
import type { Contract } from './config.js'
import type { DeploymentEvent } from './events.js'
import type { BaselineHealth } from './gate.js'
import type { BaselineNumbers, ContainerTrack, ProbeFailure, RuleResult } from './rules.js'
import type { WatchEvidence } from './sequential.js'
import type { BaselineHealthState, DeploymentStatus, SignalName, SignalReading, Verdict } from './verdict.js'

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

export interface Watch extends WatchedVersion {
  id: string
  /** series of the watched version and of the baseline version */
  key: SeriesKey
  oldKey: SeriesKey
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
  /**
   * the largest evidence each request signal's test has shown in this watch, as a second witness
   * may count it (readings.ts witnessMax). A watch persisted by a release without it has other
   * top-level fields and is not restored (persist.ts: counted as `skipped.shape`)
   */
  witnessed: { error: number; latency: number }
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

export interface RecoveryParent {
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

/** What a watch is of: a deployment (or a recovery verification) of one service's version. */
export interface WatchedVersion {
  kind: 'deploy' | 'rollback'
  namespace: string
  service: string
  /** the watched version: the new release, or for recovery the restored version */
  version: string
  baselineVersion: string
  deployedAt: number
}

export interface WatchStatus extends WatchedVersion {
  deploymentId: string
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
