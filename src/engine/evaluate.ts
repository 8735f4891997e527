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
 *
 * The stages of one pass live beside it: watches.ts (watches begin and end), freeze.ts (the
 * baseline), readings.ts (signal readings at an evaluation), decide.ts (statuses and verdicts);
 * state.ts holds the types.
 */
import { alignDown } from '../signals/view.js'
import type { EngineConfig } from './config.js'
import type { DeploymentEvent } from './events.js'
import type { ProbeObservation } from '../normalize/observations.js'
import { alignUp } from './stats.js'
import { commitGranularity, earlyEnd, endGranularity, evaluationEnd, granularity, minSpan, reportInterval } from './cadence.js'
import { idPhase } from './ids.js'
import { freeze } from './freeze.js'
import { evalDeploy, evalRecovery } from './decide.js'
import { endWatch, onEvent, onNewVersion, onProbe, sortProbes } from './watches.js'
import type { EngineInput, EngineOutput, EngineState, PassCursor, VersionSeen, Watch } from './state.js'

export type { EngineCounters, EngineInput, EngineOutput, EngineState, FrozenBaseline, PassCursor, VersionSeen, WatchStatus } from './state.js'

/** In incremental evaluation, a watch reports its status at least this often (telemetry time). */
const STATUS_EVERY_MS = 30_000

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

export function initialState(): EngineState {
  return {
    watches: new Map(),
    byVersion: new Map(),
    pendingRecovery: new Map(),
    counters: { deploymentsDetected: 0, deploymentEvents: 0, duplicateEvents: 0, staleEvents: 0, rollbackEventsUnmatched: 0, watchOverflow: 0, containerOverflow: 0, evaluations: 0, freezesDeferred: 0, quietEvaluations: 0, watchExtensions: 0 },
  }
}

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
    const dataEnd = evaluationEnd(cov, input.watermark, ge, g)
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
    // (and commits only what stays readable, cadence.ts commitGranularity)
    const commitEnd = w.kind === 'deploy' ? Math.min(end, alignDown(dataEnd, commitGranularity(input.view, cov, g, ge))) : end
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
