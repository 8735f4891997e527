/**
 * The evaluation pipeline: receivers hand decoded OTLP here (TelemetryConsumer); it normalizes into
 * the signal store, and on every `tick(now, watermark)` runs the pure engine over the store and
 * returns the verdicts and per-deployment statuses. Used by `pullback replay` (virtual clock), the
 * live sidecar (wall clock) and the demo.
 *
 * Synchronous and single-threaded: consume*, deployment() and tick() must be called from one event
 * loop turn at a time (they are, by construction: none of them awaits).
 *
 * Bounds: deployment events and probe readings waiting for the next tick are capped
 * (MAX_PENDING_EVENTS, MAX_PENDING_PROBES; overflow counted in `stats()`); timelines (only when
 * `recordTimeline`) keep at most MAX_TIMELINES deployments and MAX_TICKS ticks each.
 *
 * State (only with `state`): `restore()` before the first tick puts back what an earlier
 * incarnation persisted (src/engine/persist.ts); after each tick the changed records go to the
 * state sink (src/state), a watch at most once per `minWriteIntervalMs` unless its status, decision
 * or baseline changed; records the sink refuses (queue full) are counted and handed again later.
 */
import type { ConsumeResult, TelemetryConsumer } from '../receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../receivers/otlp/model.js'
import type { Observation, ObservationSink, ProbeObservation, SeriesKey } from '../normalize/observations.js'
import { Normalizer } from '../normalize/normalizer.js'
import type { NormalizeConfig } from '../normalize/config.js'
import { SignalStore, type SignalStoreOptions } from '../signals/store.js'
import type { SignalsConfig } from '../signals/config.js'
import type { EngineConfig } from '../engine/config.js'
import { evaluate, initialState, type EngineCounters, type EngineState, type WatchStatus } from '../engine/evaluate.js'
import type { DeploymentEvent } from '../engine/events.js'
import type { Verdict } from '../engine/verdict.js'
import type { DeploymentTimeline, ReportInput } from '../report/model.js'
import { ConfigError } from '../config/load.js'
import { EngineChangelog, type ChangelogStats, type RestoreReport, type StateChanges, type StoredRecord, type VersionLedgerOptions } from '../engine/persist.js'
import type { SignalView } from '../signals/view.js'
import type { StateSink } from '../state/store.js'

export interface PipelineOptions {
  engine: EngineConfig
  signals?: Partial<SignalsConfig> | SignalsConfig
  normalize?: Partial<NormalizeConfig> | NormalizeConfig
  /** keep per-deployment tick records for a report (replay --report) */
  recordTimeline?: boolean
  /** persist the engine's state through this sink (the sidecar's StateStore) */
  state?: PipelineStateOptions
  /** live only: the wall clock, which bounds telemetry time in the signal store (signals.maxClockSkew) */
  clock?: SignalStoreOptions['clock']
  /**
   * the engine's evaluation mode (EngineInput.evaluation): 'full' (default) reports every evaluated
   * watch's status each tick; 'incremental' skips the readings of evaluations that cannot decide
   * (same verdicts, a status per watch at least every 30 s of telemetry time). A recorded timeline
   * (`recordTimeline`) always evaluates in full: the report shows every tick.
   */
  evaluation?: 'full' | 'incremental'
}

export interface PipelineStateOptions {
  sink: StateSink
  minWriteIntervalMs: number
  /** versions known per service; `ttlMs` defaults to signals.idleTtl */
  versions: Omit<VersionLedgerOptions, 'ttlMs'> & { ttlMs?: number }
}

export interface TickResult {
  verdicts: Verdict[]
  statuses: WatchStatus[]
}

export interface PipelineStats {
  engine: EngineCounters
  watched: number
  pendingEventsDropped: number
  pendingProbesDropped: number
  timelinesDropped: number
  /** present when the state is persisted */
  state?: ChangelogStats & { refused: number }
}

const MAX_PENDING_EVENTS = 10_000
const MAX_PENDING_PROBES = 200_000
const MAX_TIMELINES = 10_000
const MAX_TICKS = 20_000

export class Pipeline implements TelemetryConsumer {
  readonly store: SignalStore
  readonly normalizer: Normalizer
  private readonly engineCfg: EngineConfig
  private state: EngineState = initialState()
  private events: DeploymentEvent[] = []
  private probes: ProbeObservation[] = []
  /** the store's pins are not counted, two watches may share a series: count here */
  private readonly pinCount = new Map<string, { key: SeriesKey; n: number }>()
  private readonly timelines: Map<string, DeploymentTimeline> | undefined
  private readonly dropped = { events: 0, probes: 0, timelines: 0 }
  private readonly changelog: EngineChangelog | undefined
  private readonly stateSink: StateSink | undefined
  private readonly view: SignalView
  private stateRefused = 0
  /** the normalizer's sink: the store, with probe readings tapped for the engine */
  private readonly tee: ObservationSink
  private readonly evaluation: 'full' | 'incremental'

  constructor(opts: PipelineOptions) {
    this.engineCfg = opts.engine
    this.evaluation = opts.recordTimeline === true ? 'full' : (opts.evaluation ?? 'full')
    this.store = new SignalStore(opts.signals ?? {}, { clock: opts.clock })
    checkAlignment(this.engineCfg, this.store.bucketMs, this.store.config)
    const store = this.store
    // probe readings are tapped on their way to the store: the engine's per-container startup grace needs each reading
    const tee: ObservationSink & { series: SignalStore['series'] } = {
      record: (obs: Observation) => {
        if (obs.kind === 'probe') {
          if (this.probes.length < MAX_PENDING_PROBES) this.probes.push(obs)
          else this.dropped.probes += 1
        }
        store.record(obs)
      },
      series: (key) => store.series(key),
    }
    this.tee = tee
    this.normalizer = new Normalizer(opts.normalize ?? {}, tee)
    this.timelines = opts.recordTimeline === true ? new Map() : undefined
    if (opts.state !== undefined) {
      const ttlMs = opts.state.versions.ttlMs ?? this.store.config.idleTtl
      this.changelog = new EngineChangelog({ engine: this.engineCfg, minWriteIntervalMs: opts.state.minWriteIntervalMs, versions: { ...opts.state.versions, ttlMs } })
      this.stateSink = opts.state.sink
      this.view = this.changelog.view(store, () => store.stats().newestMs)
    } else this.view = store
  }

  /**
   * Puts back the records an earlier incarnation persisted (read by StateStore.load()); call before
   * the first tick. Restored watches are pinned in the signal store; records this incarnation cannot
   * hold are deleted, and with `now` so are watches that ended long before it. Without `state`
   * nothing is restored.
   */
  restore(records: Iterable<StoredRecord>, now?: number): RestoreReport | undefined {
    if (this.changelog === undefined) return undefined
    const r = this.changelog.restore(this.state, records, { now })
    for (const k of r.pins) this.pin(k)
    if (r.deletes.length > 0) this.handOver({ upserts: [], deletes: r.deletes })
    return r
  }

  /** Hands every state change not yet handed, ignoring the write interval (shutdown). */
  persistNow(now: number): void {
    if (this.changelog !== undefined) this.handOver(this.changelog.exportChanges(this.state, now, true))
  }

  consumeTraces(req: TracesRequest): ConsumeResult {
    return this.normalizer.traces(req)
  }

  consumeMetrics(req: MetricsRequest): ConsumeResult {
    return this.normalizer.metrics(req)
  }

  /**
   * An observation that did not come through this pipeline's normalizer (the decider re-recording
   * partials from ingest nodes, src/decider): recorded exactly as the normalizer's observations are,
   * probe readings included for the engine's startup grace.
   */
  recordObservation(obs: Observation): void {
    this.tee.record(obs)
  }

  /** An announced deployment or rollback; applied at the next tick. */
  deployment(ev: DeploymentEvent): void {
    if (this.events.length >= MAX_PENDING_EVENTS) {
      this.dropped.events += 1
      return
    }
    this.events.push(ev)
  }

  /** Newest telemetry time seen by the store (unix ms), -Infinity before any. */
  newestTelemetryMs(): number {
    return this.store.stats().newestMs
  }

  /** One evaluation: `now` stamps decisions, `watermark` bounds the windows judged. */
  tick(now: number, watermark: number): TickResult {
    const seen = this.store.drainNewVersions()
    const input = {
      now,
      watermark,
      view: this.view,
      newVersions: this.changelog !== undefined ? this.changelog.seenVersions(seen, watermark, this.store.stats().newestMs) : seen,
      deployments: this.events,
      probes: this.probes,
      evaluation: this.evaluation,
    }
    this.events = []
    this.probes = []
    const out = evaluate(this.engineCfg, this.state, input)
    this.state = out.state
    for (const k of out.pin) this.pin(k)
    for (const k of out.unpin) this.unpin(k)
    if (this.timelines !== undefined) this.record(out.statuses, out.verdicts)
    if (this.changelog !== undefined) {
      this.changelog.refreshVersions(this.store, this.store.stats().newestMs)
      this.handOver(this.changelog.exportChanges(this.state, now))
    }
    return { verdicts: out.verdicts, statuses: out.statuses }
  }

  stats(): PipelineStats {
    return {
      engine: { ...this.state.counters },
      watched: this.state.watches.size,
      pendingEventsDropped: this.dropped.events,
      pendingProbesDropped: this.dropped.probes,
      timelinesDropped: this.dropped.timelines,
      ...(this.changelog !== undefined ? { state: { ...this.changelog.stats(), refused: this.stateRefused } } : {}),
    }
  }

  /** The recorded timelines as a report input (empty unless `recordTimeline`). */
  report(meta: { title: string; source: string; generatedAt: number; input: Record<string, number> }): ReportInput {
    return { ...meta, timelines: [...(this.timelines?.values() ?? [])] }
  }

  shutdown(): void {
    this.store.shutdown()
  }

  private handOver(changes: StateChanges): void {
    if (this.stateSink === undefined || this.changelog === undefined) return
    if (changes.upserts.length === 0 && changes.deletes.length === 0) return
    const res = this.stateSink.write(changes)
    if (res.refused.length > 0) {
      this.stateRefused += res.refused.length
      this.changelog.forget(res.refused)
    }
  }

  private pin(key: SeriesKey): void {
    const id = `${key.namespace}\u0000${key.service}\u0000${key.version}`
    const e = this.pinCount.get(id)
    if (e !== undefined) e.n += 1
    else {
      this.pinCount.set(id, { key, n: 1 })
      this.store.pin(key)
    }
  }

  private unpin(key: SeriesKey): void {
    const id = `${key.namespace}\u0000${key.service}\u0000${key.version}`
    const e = this.pinCount.get(id)
    if (e === undefined) return
    e.n -= 1
    if (e.n <= 0) {
      this.pinCount.delete(id)
      this.store.unpin(key)
    }
  }

  private record(statuses: readonly WatchStatus[], verdicts: readonly Verdict[]): void {
    const tl = this.timelines as Map<string, DeploymentTimeline>
    for (const s of statuses) {
      let t = tl.get(s.deploymentId)
      if (t === undefined) {
        if (tl.size >= MAX_TIMELINES) {
          this.dropped.timelines += 1
          continue
        }
        t = {
          deploymentId: s.deploymentId,
          namespace: s.namespace,
          service: s.service,
          version: s.version,
          baselineVersion: s.baselineVersion,
          deployedAt: s.deployedAt,
          kind: s.kind,
          ticks: [],
          verdicts: [],
        }
        tl.set(s.deploymentId, t)
      }
      if (t.ticks.length < MAX_TICKS) t.ticks.push({ t: s.t, status: s.status, signals: s.signals })
    }
    for (const v of verdicts) {
      // recovery verdicts carry the original deployment's id; file them under the recovery timeline when there is one
      const target =
        v.restoredVersion !== undefined
          ? [...tl.values()].find((t) => t.kind === 'rollback' && t.service === v.service && t.namespace === v.namespace && t.version === v.restoredVersion)
          : tl.get(v.deploymentId)
      ;(target ?? tl.get(v.deploymentId))?.verdicts.push(v)
    }
  }
}

/** The engine's windows must be answerable by the store's buckets (and still be in its fine ring when judged). */
function checkAlignment(cfg: EngineConfig, bucketMs: number, sc: SignalsConfig): void {
  const contracts = [['defaults', cfg.defaults] as const, ...Object.entries(cfg.services).map(([k, c]) => [`services[${JSON.stringify(k)}]`, c] as const)]
  for (const [where, c] of contracts) {
    const slice = c.window / c.slices
    if (slice % bucketMs !== 0) {
      throw new ConfigError(`engine.${where}.window: ${c.window} ms in ${c.slices} slices is not a multiple of signals.bucket (${bucketMs} ms)`)
    }
    if (c.window + cfg.lateness > sc.fineRetention) {
      throw new ConfigError(`engine.${where}.window: window + engine.lateness (${c.window + cfg.lateness} ms) exceed signals.fineRetention (${sc.fineRetention} ms)`)
    }
    if (c.baselineWindow + c.window > sc.retention) {
      throw new ConfigError(`engine.${where}.baselineWindow: baselineWindow + window (${c.baselineWindow + c.window} ms) exceed signals.retention (${sc.retention} ms)`)
    }
    if (c.signals.resource.window % (2 * bucketMs) !== 0) {
      throw new ConfigError(`engine.${where}.signals.resource.window: must be a multiple of 2 x signals.bucket (${2 * bucketMs} ms)`)
    }
  }
}
