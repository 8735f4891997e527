/**
 * From readings to outcomes: a deployment's status and its verdict (the compound condition: a
 * critical or probe breach alone, else `minSignals` confirmed breaches; a breach that began before
 * the deployment makes an incident), and a recovery verification's `recovered | not-recovered`.
 */
import { serviceId } from '../normalize/observations.js'
import type { Contract } from './config.js'
import { minSpan } from './cadence.js'
import { verdictId } from './ids.js'
import { isBreach, NONE, QUIET, readings } from './readings.js'
import { offReading, probeRule, type RuleResult } from './rules.js'
import type { EngineInput, EngineOutput, EngineState, FrozenBaseline, RecoveryParent, Watch, WatchStatus } from './state.js'
import type { DeploymentStatus, SignalReading, Verdict } from './verdict.js'

/** Pending recoveries kept at most. */
const MAX_PENDING = 10_000

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

export function evalDeploy(w: Watch, input: EngineInput, end: number, commitEnd: number, g: number, ge: number, interval: number, out: EngineOutput, state: EngineState, quietOk: boolean): void {
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
export function evalRecovery(w: Watch, input: EngineInput, end: number, g: number, interval: number, out: EngineOutput, final: boolean): void {
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
