/**
 * How watches begin and end: a new version seen in telemetry, a deployment event (which wins for
 * the same version), a rollback event (a recovery verification of the restored version), readiness
 * readings routed to the watches of their version; the index by version and the series a watch pins
 * in the store while it runs.
 */
import type { ProbeObservation, SeriesKey } from '../normalize/observations.js'
import { serviceId } from '../normalize/observations.js'
import type { SignalView, VersionInfo } from '../signals/view.js'
import { contractFor, type Contract, type EngineConfig } from './config.js'
import type { DeploymentEvent } from './events.js'
import { deploymentId } from './ids.js'
import { newWatchEvidence } from './sequential.js'
import type { EngineInput, EngineOutput, EngineState, VersionSeen, Watch, WatchedVersion } from './state.js'

/** Containers tracked per watch at most (more are counted in containerOverflow and not tracked). */
const MAX_CONTAINERS = 4096

const vkey = (ns: string, svc: string, version: string) => `${serviceId(ns, svc)}\u0000${version}`

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

export function endWatch(state: EngineState, w: Watch, out: EngineOutput): void {
  state.watches.delete(w.id)
  const k = vkey(w.namespace, w.service, w.version)
  const set = state.byVersion.get(k)
  set?.delete(w.id)
  if (set !== undefined && set.size === 0) state.byVersion.delete(k)
  out.unpin.push(...pinKeys(w))
}

function newWatch(cfg: EngineConfig, f: WatchedVersion & Pick<Watch, 'source' | 'artifact'> & { contract?: Contract }): Watch {
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
    witnessed: { error: 0, latency: 0 },
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

export function onNewVersion(cfg: EngineConfig, state: EngineState, input: EngineInput, v: VersionSeen, out: EngineOutput): void {
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

export function onEvent(cfg: EngineConfig, state: EngineState, input: EngineInput, ev: DeploymentEvent, out: EngineOutput): void {
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
export function sortProbes(probes: readonly ProbeObservation[]): ProbeObservation[] {
  return [...probes].sort((a, b) => a.timeMs - b.timeMs)
}

export function onProbe(state: EngineState, p: ProbeObservation): void {
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
