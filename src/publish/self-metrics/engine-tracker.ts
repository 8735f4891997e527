/**
 * Turns the engine's per-tick output (WatchStatus[] and Verdict[]) into the two read models the
 * outside world looks at: the EngineSnapshot behind pullback.signal.* / pullback.decisions, and the
 * JSON of the admin server's /status. The assembler calls `observe()` after every evaluate() and
 * registers `snapshot` / `status` with SelfMetrics and AdminServer.
 *
 * Bounds: at most `maxWatched` watched deployments (the least recently updated is evicted, counted in
 * `evicted`), entries not updated for `ttlMs` are dropped (a watch that ended stops reporting), and
 * the last `maxVerdicts` verdicts are kept for /status.
 */
import type { Clock } from '../../common/clock.js'
import { systemClock } from '../../common/clock.js'
import type { WatchStatus } from '../../engine/evaluate.js'
import type { DeploymentStatus, SignalReading, Verdict, VerdictKind } from '../../engine/verdict.js'
import type { DecisionCount, EngineSnapshot, WatchedService } from '../self-metrics.js'

export interface EngineTrackerOptions {
  clock?: Clock
  /** default 10,000 */
  maxWatched?: number
  /** default 15 min: longer than the default watch (10 min) plus verification */
  ttlMs?: number
  /** default 50 */
  maxVerdicts?: number
}

interface Entry {
  status: WatchStatus
  updatedMs: number
  detectionSeconds?: number
}

export interface VerdictSummary {
  id: string
  kind: Verdict['kind']
  dryRun: boolean
  namespace: string
  service: string
  version: string
  baselineVersion: string
  deployedAt: string
  decidedAt: string
  reason: string
  breaches: string[]
}

export interface StatusDocument {
  generatedAt: string
  /** an entry that could not be built is `{ deploymentId, error }` (see watchedEntry) */
  watched: ({
    deploymentId: string
    kind: WatchStatus['kind']
    namespace: string
    service: string
    version: string
    baselineVersion: string
    deployedAt: string
    status: DeploymentStatus
    signals: Pick<SignalReading, 'signal' | 'state' | 'mode' | 'value' | 'baseline' | 'threshold' | 'samples'>[]
  } | { deploymentId: string; error: string })[]
  lastVerdicts: VerdictSummary[]
  decisions: DecisionCount[]
  evicted: number
}

/** the verdict kinds of src/engine/verdict.ts */
const DECISION_KINDS: readonly VerdictKind[] = ['rollback', 'incident', 'recovered', 'not-recovered']

export class EngineTracker {
  private readonly entries = new Map<string, Entry>()
  private readonly verdicts: VerdictSummary[] = []
  private readonly decisionCounts = new Map<string, DecisionCount>()
  private readonly clock: Clock
  private readonly maxWatched: number
  private readonly ttlMs: number
  private readonly maxVerdicts: number
  /** watches evicted because maxWatched was reached */
  evicted = 0

  constructor(opts: EngineTrackerOptions = {}) {
    this.clock = opts.clock ?? systemClock
    this.maxWatched = opts.maxWatched ?? 10_000
    this.ttlMs = opts.ttlMs ?? 15 * 60_000
    this.maxVerdicts = opts.maxVerdicts ?? 50
    // Every series a decision can create exists at 0 from the start: a counter born at its first
    // increment shows 1 in its first Prometheus sample, and `increase()` / `changes()` over it are 0,
    // so the first rollback of each kind would never appear on the dashboard (found against a real
    // Prometheus, test/interop/dashboard-prometheus.test.ts).
    for (const kind of DECISION_KINDS) for (const outcome of ['decided', 'dry_run']) this.decisionCounts.set(`${kind}\u0000${outcome}`, { kind, outcome, count: 0 })
  }

  /** feed one evaluate() result; verdicts count as outcome `dry_run` or `decided` */
  observe(statuses: readonly WatchStatus[], verdicts: readonly Verdict[]): void {
    const now = this.clock.now()
    for (const s of statuses) {
      const prev = this.entries.get(s.deploymentId)
      // re-insert so Map order is least-recently-updated first
      this.entries.delete(s.deploymentId)
      const e: Entry = { status: s, updatedMs: now }
      if (prev?.detectionSeconds !== undefined) e.detectionSeconds = prev.detectionSeconds
      this.entries.set(s.deploymentId, e)
    }
    for (const v of verdicts) {
      const e = this.entries.get(v.deploymentId)
      if (e !== undefined) e.detectionSeconds = Math.max(0, v.decidedAt - v.deployedAt) / 1000
      this.recordDecision(v.kind, v.dryRun ? 'dry_run' : 'decided')
      this.verdicts.push(summarize(v))
      if (this.verdicts.length > this.maxVerdicts) this.verdicts.splice(0, this.verdicts.length - this.maxVerdicts)
    }
    this.prune(now)
  }

  /** count a decision outcome decided elsewhere (e.g. publish: published / publish_failed) */
  recordDecision(kind: string, outcome: string): void {
    const key = `${kind}\u0000${outcome}`
    const c = this.decisionCounts.get(key)
    if (c) c.count += 1
    else this.decisionCounts.set(key, { kind, outcome, count: 1 })
  }

  snapshot = (): EngineSnapshot => {
    this.prune(this.clock.now())
    const services: WatchedService[] = []
    for (const e of this.entries.values()) {
      const s = e.status
      const w: WatchedService = {
        namespace: s.namespace,
        service: s.service,
        version: s.version,
        signals: s.signals.map((r) => ({ signal: r.signal, state: r.state, mode: r.mode, value: r.value, baseline: r.baseline, threshold: r.threshold, ...(r.evidence !== undefined ? { evidence: r.evidence } : {}) })),
      }
      if (e.detectionSeconds !== undefined) w.detectionSeconds = e.detectionSeconds
      services.push(w)
    }
    return { services, decisions: [...this.decisionCounts.values()].map((d) => ({ ...d })) }
  }

  status = (): StatusDocument => {
    const now = this.clock.now()
    this.prune(now)
    return {
      generatedAt: isoOf(now),
      watched: [...this.entries.values()].map(({ status: s }) => watchedEntry(s)),
      lastVerdicts: [...this.verdicts].reverse(),
      decisions: [...this.decisionCounts.values()].map((d) => ({ ...d })),
      evicted: this.evicted,
    }
  }

  private prune(now: number): void {
    // Map order is least recently updated first, so expiry stops at the first fresh entry
    for (const [id, e] of this.entries) {
      if (now - e.updatedMs <= this.ttlMs) break
      this.entries.delete(id)
    }
    while (this.entries.size > this.maxWatched) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
      this.evicted += 1
    }
  }
}

type WatchedEntry = StatusDocument['watched'][number]

/**
 * One /status entry. An entry that cannot be built (a malformed status from a bug upstream) becomes
 * `{ deploymentId, error }`: one bad watch never turns the whole document into an error.
 */
function watchedEntry(s: WatchStatus): WatchedEntry {
  try {
    return {
      deploymentId: s.deploymentId,
      kind: s.kind,
      namespace: s.namespace,
      service: s.service,
      version: s.version,
      baselineVersion: s.baselineVersion,
      deployedAt: isoOf(s.deployedAt),
      status: s.status,
      signals: s.signals.map((r) => ({ signal: r.signal, state: r.state, mode: r.mode, value: r.value, baseline: r.baseline, threshold: r.threshold, samples: r.samples })),
    }
  } catch (err) {
    return { deploymentId: String(s.deploymentId), error: `status entry could not be built: ${err instanceof Error ? err.message : String(err)}` }
  }
}

function summarize(v: Verdict): VerdictSummary {
  return {
    id: v.id,
    kind: v.kind,
    dryRun: v.dryRun,
    namespace: v.namespace,
    service: v.service,
    version: v.version,
    baselineVersion: v.baselineVersion,
    deployedAt: isoOf(v.deployedAt),
    decidedAt: isoOf(v.decidedAt),
    reason: v.reason,
    breaches: v.signals.filter((s) => s.state === 'breach').map((s) => s.signal),
  }
}

/** An ISO time for /status, or the raw number when it is not a representable date: /status survives any input. */
function isoOf(ms: number): string {
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString()
}
