/**
 * pullback's own metrics, exported as OTLP/gRPC with the OpenTelemetry SDK so that Grafana (through a
 * Collector and Prometheus, or any OTLP backend) shows what the sidecar sees and decides.
 *
 * Contract:
 * - Components never call OpenTelemetry. They expose plain `stats()` functions and the assembler
 *   registers them here (`registerIngest`, `registerConsumer`, `registerSignalStore`,
 *   `registerEngine`, `registerActuator`). The functions are read only at collection time (every
 *   export interval), in one batch callback, so a stats() call costs nothing between exports.
 * - Counters in stats objects MUST be cumulative since process start (monotonic); they are exported
 *   as cumulative OTLP sums, the temporality Prometheus needs.
 * - A stats() function that throws skips its series for that collection and is reported once to
 *   `onError`; it never breaks the export of the rest.
 * - `METRICS` is the catalogue of every metric name, unit, kind and attribute set. The Grafana
 *   dashboard (k8s/grafana-dashboard.json) is checked against it by test/k8s.
 *
 * Signal state encoding (pullback.signal.state): 0 healthy, 1 insufficient, 2 breach, -1 off.
 * Signal value units (pullback.signal.value / .baseline / .threshold, unit `{value}` because the
 * signals differ): error_rate ratio 0..1, latency seconds (the engine's milliseconds / 1000),
 * resource fraction of the pod's request per minute, probe failures in the window.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { Attributes, BatchObservableResult, Histogram, Meter, Observable } from '@opentelemetry/api'
import { Metadata } from '@grpc/grpc-js'
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type AggregationOption,
  type AggregationTemporality,
  type InstrumentType,
  type MetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics'
import type { Component } from '../common/lifecycle.js'
import { errorMessage } from '../common/errors.js'
import type { Clock } from '../common/clock.js'
import { systemClock } from '../common/clock.js'
import type { ConsumerStats } from '../kafka/types.js'
import type { SignalMode, SignalState } from '../engine/verdict.js'
import type { ResolvedTelemetry } from '../runtime/config.js'

// ---------------------------------------------------------------------------------------------
// Plain snapshot types the components hand over. Minimal on purpose: numbers and names only.

/**
 * One receiver (OTLP gRPC, OTLP HTTP, Kafka spans, ...). From src/receivers' ReceiverStats:
 * `{ accepted: s.acceptedSpans + s.acceptedPoints, rejected: { ...s.rejected, partial: s.partial } }`.
 */
export interface IngestStats {
  /** cumulative items (spans, data points) handed to the pipeline */
  accepted: number
  /**
   * cumulative refusals by reason: whole requests for request-level reasons (decode, too_large,
   * overloaded, ...), items for item-level ones (partial)
   */
  rejected: Readonly<Record<string, number>>
}

/** The signal window store. */
export interface SignalStoreStats {
  /** series (service x version) currently held */
  series: number
  /** cumulative observations dropped because the series limit was reached */
  overflow: number
}

export interface WatchedSignal {
  /** error_rate | latency | resource | probe */
  signal: string
  state: SignalState
  mode: SignalMode
  /** in the engine's unit (SignalReading): latency in ms, converted to seconds on export */
  value: number
  baseline: number
  threshold: number
  /** error_rate and latency: the sequential test's e-value (its bound is 1/alpha) */
  evidence?: number
}

export interface WatchedService {
  namespace: string
  service: string
  version: string
  signals: readonly WatchedSignal[]
  /** seconds from the deployment to the latest verdict about it, when there was one */
  detectionSeconds?: number
}

export interface DecisionCount {
  /** rollback | incident | recovered | not-recovered */
  kind: string
  /** what became of it, e.g. published | dry_run | publish_failed */
  outcome: string
  /** cumulative */
  count: number
}

export interface EngineSnapshot {
  services: readonly WatchedService[]
  decisions: readonly DecisionCount[]
}

/**
 * Cumulative event counters of one component that has no metric of its own (the decider's
 * assignments and late partials, the partials publisher's drops, TLS reloads, refused
 * authentications, ...): event name -> count since process start. Only monotonic counters belong
 * here; gauges (queue depths, partitions owned) do not.
 */
export type ComponentEvents = Readonly<Record<string, number>>

export interface ActuatorStats {
  /** cumulative rollback outcomes, e.g. { recovered: 2, halted_no_artifact: 1, escalated: 0 } */
  outcomes: Readonly<Record<string, number>>
}

/** How components' stats reach the metrics. Each register* returns a function that unregisters. */
export interface SelfMetricsRegistry {
  /** a second registration under the same name replaces the first */
  registerIngest(name: string, stats: () => IngestStats): () => void
  registerConsumer(name: string, stats: () => ConsumerStats): () => void
  registerSignalStore(stats: () => SignalStoreStats): () => void
  registerEngine(snapshot: () => EngineSnapshot): () => void
  registerActuator(stats: () => ActuatorStats): () => void
  /** cumulative counters of a component, exported as pullback.component.events{pullback.component, pullback.event} */
  registerEvents(component: string, events: () => ComponentEvents): () => void
  /** one engine evaluation tick took `ms` milliseconds; ignored before start() and while export is off */
  recordEvaluation(ms: number): void
}

// ---------------------------------------------------------------------------------------------
// The catalogue.

export type MetricKind = 'gauge' | 'counter' | 'histogram'

export interface MetricSpec {
  name: string
  unit: string
  kind: MetricKind
  attributes: readonly string[]
  description: string
}

const SERVICE_ATTRS = ['service.namespace', 'service.name', 'service.version'] as const
const SIGNAL_ATTRS = [...SERVICE_ATTRS, 'pullback.signal'] as const

/** Every metric pullback exports. Names follow OpenTelemetry conventions with the `pullback.` prefix. */
export const METRICS = [
  { name: 'pullback.signal.value', unit: '{value}', kind: 'gauge', attributes: SIGNAL_ATTRS, description: 'Current value of a deployment-health signal over its observation window (error_rate ratio, latency s, resource fraction of request per min, probe failures).' },
  { name: 'pullback.signal.baseline', unit: '{value}', kind: 'gauge', attributes: SIGNAL_ATTRS, description: 'Frozen pre-deploy (or live canary) baseline of the signal, same unit as pullback.signal.value.' },
  { name: 'pullback.signal.threshold', unit: '{value}', kind: 'gauge', attributes: SIGNAL_ATTRS, description: 'Value beyond which the signal breaches, same unit as pullback.signal.value.' },
  { name: 'pullback.signal.evidence', unit: '{evidence}', kind: 'gauge', attributes: SIGNAL_ATTRS, description: 'Anytime-valid evidence (e-value) that the error rate or latency is beyond its contract; a breach needs it at 1/alpha (1000 by default).' },
  { name: 'pullback.signal.state', unit: '{state}', kind: 'gauge', attributes: [...SIGNAL_ATTRS, 'pullback.signal.mode'], description: 'Signal state: 0 healthy, 1 insufficient, 2 breach, -1 off.' },
  { name: 'pullback.detection.duration', unit: 's', kind: 'gauge', attributes: SERVICE_ATTRS, description: 'Time from the deployment to the latest verdict about it.' },
  { name: 'pullback.engine.services', unit: '{service}', kind: 'gauge', attributes: [], description: 'Service versions currently watched by the engine.' },
  { name: 'pullback.decisions', unit: '{decision}', kind: 'counter', attributes: ['pullback.decision.kind', 'pullback.decision.outcome'], description: 'Verdicts by kind (rollback, incident, recovered, not-recovered) and outcome.' },
  { name: 'pullback.actuator.outcomes', unit: '{rollback}', kind: 'counter', attributes: ['pullback.actuator.outcome'], description: 'Rollback executions by final outcome.' },
  { name: 'pullback.receiver.accepted', unit: '{item}', kind: 'counter', attributes: ['pullback.receiver'], description: 'Spans or data points accepted by a receiver.' },
  { name: 'pullback.receiver.rejected', unit: '{refusal}', kind: 'counter', attributes: ['pullback.receiver', 'reason'], description: 'Refusals by a receiver, by reason: requests for request-level reasons (decode, too_large, overloaded), items for partial.' },
  { name: 'pullback.signals.series', unit: '{series}', kind: 'gauge', attributes: [], description: 'Series (service x version) held in the signal windows.' },
  { name: 'pullback.signals.overflow', unit: '{item}', kind: 'counter', attributes: [], description: 'Observations dropped because the series limit was reached.' },
  { name: 'pullback.kafka.consumer.lag', unit: '{message}', kind: 'gauge', attributes: ['pullback.consumer'], description: 'Consumer lag summed over assigned partitions.' },
  { name: 'pullback.kafka.consumer.messages', unit: '{message}', kind: 'counter', attributes: ['pullback.consumer'], description: 'Messages handled by a consumer.' },
  { name: 'pullback.kafka.consumer.failures', unit: '{batch}', kind: 'counter', attributes: ['pullback.consumer'], description: 'Batches whose handler failed (redelivered later).' },
  { name: 'pullback.kafka.consumer.poll.age', unit: 's', kind: 'gauge', attributes: ['pullback.consumer'], description: 'Time since the consumer last polled the broker; grows when it stalls.' },
  { name: 'pullback.component.events', unit: '{event}', kind: 'counter', attributes: ['pullback.component', 'pullback.event'], description: 'Counted events of components without a metric of their own (decider assignments and late partials, partials dropped, TLS reloads, refused authentications, ...).' },
  { name: 'pullback.engine.evaluation.duration', unit: 's', kind: 'histogram', attributes: [], description: 'Duration of one engine evaluation tick.' },
  { name: 'pullback.nodejs.eventloop.lag', unit: 's', kind: 'gauge', attributes: [], description: 'p99 event-loop delay since the previous collection.' },
] as const satisfies readonly MetricSpec[]

export type MetricName = (typeof METRICS)[number]['name']

export const SIGNAL_STATE_CODE: Readonly<Record<SignalState, number>> = { healthy: 0, insufficient: 1, breach: 2, off: -1 }

/** Histogram buckets for evaluation duration, seconds: 50 µs .. 1 s. */
export const EVALUATION_BUCKETS_S = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

// ---------------------------------------------------------------------------------------------
// OTLP -> Prometheus names. Assumed rules (Prometheus OTLP ingestion with the default
// UnderscoreEscapingWithSuffixes strategy, and the Collector's prometheus/prometheusremotewrite
// exporters with add_metric_suffixes, which share the translator):
//   1. every character outside [a-zA-Z0-9_:] becomes "_" (dots to underscores);
//   2. the unit becomes a suffix unless the name already ends with it: `{...}` annotations are
//      dropped, s -> seconds, ms -> milliseconds, By -> bytes, "1" -> ratio for gauges only,
//      "a/b" -> a_per_b;
//   3. monotonic sums (counters) get `_total`;
//   4. histograms are the series <name>_bucket, <name>_sum and <name>_count.

const UNIT_WORDS: Record<string, string> = { s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds', By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', min: 'minutes', h: 'hours', d: 'days', '%': 'percent' }

const PER_UNIT_WORDS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' }

function unitSuffix(unit: string, kind: MetricKind): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim()
  if (u === '') return ''
  if (u === '1') return kind === 'gauge' ? 'ratio' : ''
  const [num, per] = u.split('/', 2) as [string, string | undefined]
  const word = (x: string, table: Record<string, string>) => table[x] ?? x.replace(/[^a-zA-Z0-9_:]/g, '_')
  const n = num === '' ? '' : word(num, UNIT_WORDS)
  return per === undefined ? n : `${n}_per_${word(per, PER_UNIT_WORDS)}`.replace(/^_/, '')
}

/** The Prometheus metric family name of a catalogue entry (for histograms, without _bucket/_sum/_count). */
export function prometheusName(m: Pick<MetricSpec, 'name' | 'unit' | 'kind'>): string {
  let n = m.name.replace(/[^a-zA-Z0-9_:]/g, '_')
  const suffix = unitSuffix(m.unit, m.kind)
  if (suffix !== '' && !n.endsWith(`_${suffix}`)) n += `_${suffix}`
  if (m.kind === 'counter' && !n.endsWith('_total')) n += '_total'
  return n
}

/** Every Prometheus series name a catalogue entry produces. */
export function prometheusSeries(m: Pick<MetricSpec, 'name' | 'unit' | 'kind'>): string[] {
  const base = prometheusName(m)
  return m.kind === 'histogram' ? [`${base}_bucket`, `${base}_sum`, `${base}_count`] : [base]
}

/** Prometheus label name of an attribute. */
export function prometheusLabel(attribute: string): string {
  return attribute.replace(/[^a-zA-Z0-9_]/g, '_')
}

// ---------------------------------------------------------------------------------------------
// The implementation.

export interface SelfMetricsLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface SelfMetricsOptions {
  telemetry: ResolvedTelemetry
  /** resource attributes of pullback itself, merged over OTEL_RESOURCE_ATTRIBUTES; default service.name=pullback */
  resource?: Record<string, string>
  /** replaces the OTLP exporter (tests, or another transport); export runs even when telemetry is disabled */
  reader?: MetricReader
  clock?: Clock
  log?: SelfMetricsLog
  /** a stats() function threw; called once per registration name until it succeeds again */
  onError?: (source: string, err: unknown) => void
  /**
   * watched service versions exported per collection at most (default 2,000: ~16 series each); the
   * rest are left out of that export and counted in `droppedServices`, so a deploy storm cannot
   * explode the metrics backend's cardinality
   */
  maxServices?: number
}

type Instruments = Record<MetricName, Observable | Histogram>

/** How the export to the OTLP endpoint is going; failures are counted and logged on state changes only. */
export type ExportStatus =
  | { state: 'idle'; exports: number; failures: number }
  | { state: 'ok'; exports: number; failures: number }
  | { state: 'failing'; exports: number; failures: number; lastError: string }

type ExportCallback = Parameters<PushMetricExporter['export']>[1]

/** Wraps the OTLP exporter to see each export's result (the SDK reports failures only to its global diag logger). */
class ObservedExporter implements PushMetricExporter {
  // the reader asks the exporter for temporality (cumulative for OTLP by default) and aggregation
  readonly selectAggregationTemporality: ((t: InstrumentType) => AggregationTemporality) | undefined
  readonly selectAggregation: ((t: InstrumentType) => AggregationOption) | undefined

  constructor(
    private readonly inner: PushMetricExporter,
    private readonly onResult: (ok: boolean, err: unknown) => void,
  ) {
    this.selectAggregationTemporality = inner.selectAggregationTemporality?.bind(inner)
    this.selectAggregation = inner.selectAggregation?.bind(inner)
  }
  export(metrics: ResourceMetrics, cb: ExportCallback): void {
    this.inner.export(metrics, (r) => {
      this.onResult(r.code === 0, r.error)
      cb(r)
    })
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush()
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown()
  }
}

export class SelfMetrics implements SelfMetricsRegistry, Component {
  readonly name = 'self-metrics'
  private readonly ingest = new Map<string, () => IngestStats>()
  private readonly consumers = new Map<string, () => ConsumerStats>()
  private readonly events = new Map<string, () => ComponentEvents>()
  private signalStore: (() => SignalStoreStats) | undefined
  private engine: (() => EngineSnapshot) | undefined
  private actuator: (() => ActuatorStats) | undefined
  private provider: MeterProvider | undefined
  private evaluation: Histogram | undefined
  private loopDelay: IntervalHistogram | undefined
  private readonly failing = new Set<string>()
  private readonly clock: Clock
  private shutdownPromise: Promise<void> | undefined
  private exportState: ExportStatus = { state: 'idle', exports: 0, failures: 0 }
  /** service versions left out of collections because of maxServices (cumulative, per collection) */
  droppedServices = 0

  constructor(private readonly opts: SelfMetricsOptions) {
    this.clock = opts.clock ?? systemClock
  }

  /** the OTLP export's health, for /status (not for readiness: telemetry is not on the critical path) */
  exportStatus(): ExportStatus {
    return { ...this.exportState }
  }

  /** true when metrics are collected and exported (telemetry enabled or a reader injected) */
  get active(): boolean {
    return this.provider !== undefined
  }

  registerIngest(name: string, stats: () => IngestStats): () => void {
    return register(this.ingest, name, stats)
  }

  registerConsumer(name: string, stats: () => ConsumerStats): () => void {
    return register(this.consumers, name, stats)
  }

  registerEvents(component: string, events: () => ComponentEvents): () => void {
    return register(this.events, component, events)
  }

  registerSignalStore(stats: () => SignalStoreStats): () => void {
    this.signalStore = stats
    return () => {
      if (this.signalStore === stats) this.signalStore = undefined
    }
  }

  registerEngine(snapshot: () => EngineSnapshot): () => void {
    this.engine = snapshot
    return () => {
      if (this.engine === snapshot) this.engine = undefined
    }
  }

  registerActuator(stats: () => ActuatorStats): () => void {
    this.actuator = stats
    return () => {
      if (this.actuator === stats) this.actuator = undefined
    }
  }

  recordEvaluation(ms: number): void {
    if (this.evaluation !== undefined && Number.isFinite(ms) && ms >= 0) this.evaluation.record(ms / 1000)
  }

  async start(): Promise<void> {
    if (this.provider !== undefined || this.shutdownPromise !== undefined) return
    const t = this.opts.telemetry
    let reader = this.opts.reader
    if (reader === undefined) {
      if (t.state === 'disabled') {
        this.opts.log?.info({ reason: t.reason }, 'self-metrics export disabled')
        return
      }
      // loaded only when exporting: the OTLP exporter's module graph (transformer, protobufjs) is
      // memory that a sidecar with self-telemetry off should not carry
      const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-grpc')
      if (this.shutdownPromise !== undefined) return
      const metadata = new Metadata()
      for (const [k, v] of Object.entries(t.headers)) metadata.set(k, v)
      const otlp = new OTLPMetricExporter({ url: t.endpoint, metadata, timeoutMillis: t.timeoutMs })
      const exporter = new ObservedExporter(otlp, (ok, err) => this.onExport(ok, err, t.endpoint))
      reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: t.intervalMs, exportTimeoutMillis: t.timeoutMs })
    }
    const detected = detectResources({ detectors: [envDetector] })
    const resource = resourceFromAttributes({ 'service.name': 'pullback' }).merge(detected).merge(resourceFromAttributes(this.opts.resource ?? {}))
    this.provider = new MeterProvider({ resource, readers: [reader] })
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 })
    this.loopDelay.enable()
    this.createInstruments(this.provider.getMeter('pullback'))
    // its own counters: always present (at 0), so the events panel has a series on every install
    this.registerEvents('self-metrics', () => ({ export_failures: this.exportState.failures, services_left_out: this.droppedServices }))
    if (t.state === 'enabled') this.opts.log?.info({ endpoint: t.endpoint, intervalMs: t.intervalMs }, 'self-metrics export started')
    await Promise.resolve()
  }

  /** collects and exports now; resolves when the export finished (or failed, which is logged by the SDK) */
  async flush(): Promise<void> {
    await this.provider?.forceFlush()
  }

  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.doShutdown()
    return this.shutdownPromise
  }

  private async doShutdown(): Promise<void> {
    const provider = this.provider
    this.provider = undefined
    this.evaluation = undefined
    this.loopDelay?.disable()
    this.loopDelay = undefined
    if (provider === undefined) return
    // the final export must not hold the drain hostage when the endpoint is gone
    const budget = (this.opts.telemetry.state === 'enabled' ? this.opts.telemetry.timeoutMs : 5_000) + 1_000
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        provider.shutdown(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, budget)
          timer.unref()
        }),
      ])
    } catch (err) {
      this.opts.log?.warn({ err: errorMessage(err) }, 'self-metrics final export failed')
    } finally {
      clearTimeout(timer)
    }
  }

  private onExport(ok: boolean, err: unknown, endpoint: string): void {
    const prev = this.exportState
    const exports = prev.exports + 1
    if (ok) {
      if (prev.state === 'failing') this.opts.log?.info({ endpoint, failures: prev.failures }, 'self-metrics export recovered')
      this.exportState = { state: 'ok', exports, failures: prev.failures }
      return
    }
    const lastError = err === undefined ? 'export failed' : errorMessage(err)
    if (prev.state !== 'failing') this.opts.log?.warn({ endpoint, err: lastError }, 'self-metrics export failing')
    this.exportState = { state: 'failing', exports, failures: prev.failures + 1, lastError }
  }

  private createInstruments(meter: Meter): void {
    const inst = {} as Instruments
    for (const m of METRICS as readonly MetricSpec[]) {
      const opts = { unit: m.unit, description: m.description }
      const name = m.name as MetricName
      if (m.kind === 'histogram') {
        inst[name] = meter.createHistogram(m.name, { ...opts, advice: { explicitBucketBoundaries: EVALUATION_BUCKETS_S } })
      } else if (m.kind === 'counter') {
        inst[name] = meter.createObservableCounter(m.name, opts)
      } else {
        inst[name] = meter.createObservableGauge(m.name, opts)
      }
    }
    this.evaluation = inst['pullback.engine.evaluation.duration'] as Histogram
    const observables = Object.values(inst).filter((i): i is Observable => !('record' in i))
    const o = (n: MetricName) => inst[n] as Observable
    meter.addBatchObservableCallback((r) => this.collect(r, o), observables)
  }

  private collect(r: BatchObservableResult, o: (n: MetricName) => Observable): void {
    const obs = (n: MetricName, v: number, a?: Attributes) => {
      if (Number.isFinite(v)) r.observe(o(n), v, a)
    }
    for (const [name, fn] of this.ingest) {
      const s = this.read(`ingest:${name}`, fn)
      if (s === undefined) continue
      const a = { 'pullback.receiver': name }
      obs('pullback.receiver.accepted', s.accepted, a)
      for (const [reason, n] of Object.entries(s.rejected)) obs('pullback.receiver.rejected', n, { ...a, reason })
    }
    const now = this.clock.now()
    for (const [name, fn] of this.consumers) {
      const s = this.read(`consumer:${name}`, fn)
      if (s === undefined) continue
      const a = { 'pullback.consumer': name }
      if (s.lag !== undefined) obs('pullback.kafka.consumer.lag', s.lag, a)
      obs('pullback.kafka.consumer.messages', s.messages, a)
      obs('pullback.kafka.consumer.failures', s.handlerFailures, a)
      if (s.lastPollMs > 0) obs('pullback.kafka.consumer.poll.age', Math.max(0, now - s.lastPollMs) / 1000, a)
    }
    for (const [component, fn] of this.events) {
      const e = this.read(`events:${component}`, fn)
      if (e === undefined) continue
      for (const [event, n] of Object.entries(e)) obs('pullback.component.events', n, { 'pullback.component': component, 'pullback.event': event })
    }
    const store = this.signalStore && this.read('signal-store', this.signalStore)
    if (store !== undefined) {
      obs('pullback.signals.series', store.series)
      obs('pullback.signals.overflow', store.overflow)
    }
    const snap = this.engine && this.read('engine', this.engine)
    if (snap !== undefined) {
      obs('pullback.engine.services', snap.services.length)
      const max = this.opts.maxServices ?? 2_000
      if (snap.services.length > max) {
        if (this.droppedServices === 0) this.opts.log?.warn({ watched: snap.services.length, maxServices: max }, 'self-metrics: too many watched services, exporting the first maxServices')
        this.droppedServices += snap.services.length - max
      }
      for (const svc of snap.services.slice(0, max)) {
        const sa = { 'service.namespace': svc.namespace, 'service.name': svc.service, 'service.version': svc.version }
        if (svc.detectionSeconds !== undefined) obs('pullback.detection.duration', svc.detectionSeconds, sa)
        for (const sig of svc.signals) {
          const a = { ...sa, 'pullback.signal': sig.signal }
          const scale = sig.signal === 'latency' ? 1 / 1000 : 1
          obs('pullback.signal.value', sig.value * scale, a)
          obs('pullback.signal.baseline', sig.baseline * scale, a)
          obs('pullback.signal.threshold', sig.threshold * scale, a)
          obs('pullback.signal.state', SIGNAL_STATE_CODE[sig.state], { ...a, 'pullback.signal.mode': sig.mode })
          if (sig.evidence !== undefined) obs('pullback.signal.evidence', sig.evidence, a)
        }
      }
      for (const d of snap.decisions) {
        obs('pullback.decisions', d.count, { 'pullback.decision.kind': d.kind, 'pullback.decision.outcome': d.outcome })
      }
    }
    const act = this.actuator && this.read('actuator', this.actuator)
    if (act !== undefined) {
      for (const [outcome, n] of Object.entries(act.outcomes)) obs('pullback.actuator.outcomes', n, { 'pullback.actuator.outcome': outcome })
    }
    if (this.loopDelay !== undefined && this.loopDelay.count > 0) {
      obs('pullback.nodejs.eventloop.lag', this.loopDelay.percentile(99) / 1e9)
      this.loopDelay.reset()
    }
  }

  private read<T>(source: string, fn: () => T): T | undefined {
    try {
      const v = fn()
      this.failing.delete(source)
      return v
    } catch (err) {
      if (!this.failing.has(source)) {
        this.failing.add(source)
        if (this.opts.onError) this.opts.onError(source, err)
        else this.opts.log?.warn({ source, err: errorMessage(err) }, 'self-metrics stats() failed; series skipped')
      }
      return undefined
    }
  }
}

function register<T>(map: Map<string, T>, name: string, value: T): () => void {
  map.set(name, value)
  return () => {
    if (map.get(name) === value) map.delete(name)
  }
}
