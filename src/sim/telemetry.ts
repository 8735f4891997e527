/**
 * Turns the workload model into telemetry through the real OpenTelemetry JS SDK: one
 * TracerProvider and one MeterProvider per pod (each pod is its own resource), SERVER spans with
 * explicit start and end times, and observable gauges read at collection time. Time is virtual:
 * scenario second s maps to `startMs + s * 1000 / speed`; request latencies are never scaled.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, ValueType, type Attributes, type Histogram, type HrTime, type Tracer } from '@opentelemetry/api'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { AggregationTemporality, AggregationType, InstrumentType, MeterProvider, MetricReader, type ResourceMetrics, type ViewOptions } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, type IdGenerator, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { FleetSpec } from './model.js'
import { hash32, Rng } from './random.js'
import { World, type Pod, type PodReading, type SimRequest } from './world.js'
import { SIM_POD } from './spanmetrics.js'

/** Spring's `outcome` tag of a response status (Micrometer's `http.server.requests`) */
export const springOutcome = (status: number): string => (status >= 500 ? 'SERVER_ERROR' : status >= 400 ? 'CLIENT_ERROR' : 'SUCCESS')

const DURATION = 'http.server.request.duration'
/** Micrometer's server timer (Spring Boot, Quarkus, Micronaut), in its OTLP registry's default unit */
const MICROMETER_DURATION = 'http.server.requests'
/** the spanmetrics connector's duration histogram (its default namespace) and default bounds, ms */
const SPANMETRICS_DURATION = 'traces.span.metrics.duration'
const SPANMETRICS_BOUNDS_MS = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000]

export const SIM_SCOPE = 'pullback-sim'
export const SIM_SCOPE_VERSION = '0.1.0'

/** seconds after its stop a pod's in-flight requests may still end (and its shutdown export them) */
const STRAGGLER_S = 60

/**
 * A pod's BatchSpanProcessor timer on scenario time: the first export time (ms) after second `s`
 * on the schedule phase + k * everyMs. The phase is seeded by the pod's name at millisecond
 * resolution (the SDK's timer starts with the pod); pods running at scenario start get any phase.
 */
export function nextSpanExportMs(podName: string, startS: number, everyMs: number, s: number): number {
  const jitter = hash32(`span-phase:${podName}`) % everyMs
  const phase = startS < 0 ? jitter : startS * 1000 + (jitter % 1000)
  return phase + (Math.floor((s * 1000 - phase) / everyMs) + 1) * everyMs
}

/** ms since the epoch to OTel HrTime, exact to the microsecond */
export function msToHr(ms: number): HrTime {
  const sec = Math.floor(ms / 1000)
  const ns = Math.round((ms - sec * 1000) * 1e3) * 1e3
  return ns >= 1e9 ? [sec + 1, ns - 1e9] : [sec, ns]
}

function hrToMs(t: HrTime): number {
  return t[0] * 1000 + t[1] / 1e6
}

class SeededIds implements IdGenerator {
  constructor(private readonly rng: Rng) {}
  generateTraceId(): string {
    return this.rng.hex(32)
  }
  generateSpanId(): string {
    return this.rng.hex(16)
  }
}

/**
 * Ended spans of every pod until their export time (the BatchSpanProcessors on a virtual clock),
 * in the order they ended, each with the pod that ended it.
 */
class PendingSpans {
  spans: ReadableSpan[] = []
  pods: Pod[] = []
  /** moves out the spans that `take` accepts, in their order; the rest stay */
  drain(take: (span: ReadableSpan, pod: Pod) => boolean): ReadableSpan[] {
    const ready: ReadableSpan[] = []
    let w = 0
    for (let i = 0; i < this.spans.length; i++) {
      const span = this.spans[i] as ReadableSpan
      const pod = this.pods[i] as Pod
      if (take(span, pod)) ready.push(span)
      else {
        this.spans[w] = span
        this.pods[w++] = pod
      }
    }
    this.spans.length = w
    this.pods.length = w
    return ready
  }
}

/** One pod's span processor: hands its ended spans to the shared queue, tagged with the pod. */
class PodSpanProcessor implements SpanProcessor {
  constructor(
    private readonly pending: PendingSpans,
    private readonly pod: Pod,
  ) {}
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.pending.spans.push(span)
    this.pending.pods.push(this.pod)
  }
  forceFlush(): Promise<void> {
    return Promise.resolve()
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

/** A pull reader: the simulator collects when virtual time says so. */
class ManualReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve()
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
}

interface PodSdk {
  pod: Pod
  tracer: Tracer
  tracerProvider: BasicTracerProvider
  meterProvider: MeterProvider
  reader: ManualReader
  duration: Histogram | undefined
  current: PodReading | undefined
  /** the pod's previous collection: where its delta points start */
  collectedAt: HrTime | undefined
}

export interface SimulationOptions {
  seed: number
  /** telemetry time of scenario second 0, unix ms */
  startMs: number
  /** scenario seconds per wall second in live runs; 1 for recordings */
  speed: number
}

export class Simulation {
  readonly world: World
  private readonly sdks = new Map<Pod, PodSdk>()
  private readonly pending = new PendingSpans()
  private readonly ids: SeededIds

  constructor(
    readonly spec: FleetSpec,
    readonly opts: SimulationOptions,
  ) {
    this.world = new World(spec, opts.seed)
    this.ids = new SeededIds(new Rng(hash32(`ids:${opts.seed}`)))
  }

  timeMs(s: number): number {
    return this.opts.startMs + (s * 1000) / this.opts.speed
  }

  private sdk(pod: Pod): PodSdk {
    let sdk = this.sdks.get(pod)
    if (sdk !== undefined) return sdk
    const svc = pod.service
    const identity = this.spec.podIdentity ?? true
    const resource = resourceFromAttributes({
      'service.name': svc.name,
      'service.namespace': svc.namespace,
      'service.version': pod.version,
      ...(identity ? { 'service.instance.id': pod.name } : {}),
      'k8s.namespace.name': svc.namespace,
      'k8s.deployment.name': svc.name,
      ...(identity ? { 'k8s.pod.name': pod.name } : {}),
      'k8s.container.name': svc.name,
      'container.image.name': `registry.example.com/${svc.namespace}/${svc.name}`,
      'container.image.tag': pod.version,
    })
    const tracerProvider = new BasicTracerProvider({ resource, idGenerator: this.ids, spanProcessors: [new PodSpanProcessor(this.pending, pod)] })
    // the SDK's delta preference applies to histograms here: the request durations are what pullback reads
    const reader = new ManualReader(
      this.spec.metricTemporality === 'delta' ? { aggregationTemporalitySelector: (t) => (t === InstrumentType.HISTOGRAM ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE) } : undefined,
    )
    const aggregation = this.spec.histogramAggregation ?? 'explicit'
    const views: ViewOptions[] =
      aggregation === 'exponential'
        ? [{ instrumentName: DURATION, aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } as const }]
        : aggregation === 'micrometer'
          ? // Micrometer's timer without a configured histogram: one bucket, its count and sum
            [{ instrumentName: MICROMETER_DURATION, aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [], recordMinMax: false } } }]
          : []
    const meterProvider = new MeterProvider({ resource, readers: [reader], views })
    const created: PodSdk = {
      pod,
      tracer: tracerProvider.getTracer(SIM_SCOPE, SIM_SCOPE_VERSION),
      tracerProvider,
      meterProvider,
      reader,
      duration: undefined,
      current: undefined,
      collectedAt: undefined,
    }
    const meter = meterProvider.getMeter(`${SIM_SCOPE}/k8s`, SIM_SCOPE_VERSION)
    const gauge = (name: string, unit: string, valueType: ValueType, read: (r: PodReading) => number) => {
      meter.createObservableGauge(name, { unit, valueType }).addCallback((res) => {
        if (created.current !== undefined) res.observe(read(created.current))
      })
    }
    gauge('k8s.pod.memory.working_set', 'By', ValueType.INT, (r) => r.memoryBytes)
    gauge('k8s.pod.cpu.usage', '{cpu}', ValueType.DOUBLE, (r) => r.cpuCores)
    gauge('k8s.container.memory_request', 'By', ValueType.INT, (r) => r.memoryRequestBytes)
    gauge('k8s.container.cpu_request', '{cpu}', ValueType.DOUBLE, (r) => r.cpuRequestCores)
    gauge('k8s.container.ready', '1', ValueType.INT, (r) => (r.ready ? 1 : 0))
    if (this.spec.histograms) {
      const m = meterProvider.getMeter(SIM_SCOPE, SIM_SCOPE_VERSION)
      created.duration =
        aggregation === 'micrometer'
          ? m.createHistogram(MICROMETER_DURATION, { unit: 'milliseconds' })
          : aggregation === 'spanmetrics'
            ? m.createHistogram(SPANMETRICS_DURATION, { unit: 'ms', advice: { explicitBucketBoundaries: SPANMETRICS_BOUNDS_MS } })
            : m.createHistogram(DURATION, { unit: 's', advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] } })
    }
    sdk = created
    this.sdks.set(pod, sdk)
    return sdk
  }

  /**
   * Plays scenario second [s, s+1): one SERVER span per request (unless the fleet exports no
   * spans), ended at its own end time, and one histogram record when the fleet exports metrics.
   * `onRequest` sees every simulated request (the quality bench finds the first faulty one).
   */
  step(s: number, onRequest?: (r: SimRequest) => void): number {
    let n = 0
    const spans = this.spec.spans ?? true
    this.world.step(s, (r: SimRequest) => {
      n++
      onRequest?.(r)
      const sdk = this.sdk(r.pod)
      if (!spans) {
        this.recordDuration(sdk, r)
        return
      }
      const startMs = this.timeMs(r.startS)
      const attributes: Attributes = {
        'http.request.method': r.method,
        'http.route': r.route,
        'http.response.status_code': r.status,
        'url.scheme': 'http',
      }
      const span = sdk.tracer.startSpan(`${r.method} ${r.route}`, { kind: SpanKind.SERVER, startTime: msToHr(startMs), attributes }, ROOT_CONTEXT)
      if (r.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
      span.end(msToHr(startMs + r.latencyMs))
      this.recordDuration(sdk, r)
    })
    return n
  }

  /** One request in the pod's duration histogram, named and tagged as its FleetSpec.histogramAggregation's exporter does. */
  private recordDuration(sdk: PodSdk, r: SimRequest): void {
    if (sdk.duration === undefined) return
    if (this.spec.histogramAggregation === 'micrometer') {
      // Spring's server observation tags: the status as a string, its class as the outcome
      sdk.duration.record(r.latencyMs, { method: r.method, uri: r.route, status: String(r.status), outcome: springOutcome(r.status), exception: 'none' })
    } else if (this.spec.histogramAggregation === 'spanmetrics') {
      // the connector's dimensions; the server span's status is ERROR for a 5xx. Each request also
      // makes a CLIENT span (its downstream call, taking half its time, failing with it): the
      // connector aggregates every span kind, and only the SERVER points are the service's requests
      // (`sim.pod` names the pod for src/sim/spanmetrics.ts, which sums pods the connector cannot tell apart, and drops it)
      const service = r.pod.service.name
      const status = r.status >= 500 ? 'STATUS_CODE_ERROR' : 'STATUS_CODE_UNSET'
      sdk.duration.record(r.latencyMs, { 'service.name': service, 'span.name': `${r.method} ${r.route}`, 'span.kind': 'SPAN_KIND_SERVER', 'status.code': status, [SIM_POD]: r.pod.name })
      sdk.duration.record(r.latencyMs / 2, { 'service.name': service, 'span.name': 'GET downstream', 'span.kind': 'SPAN_KIND_CLIENT', 'status.code': status, [SIM_POD]: r.pod.name })
    } else sdk.duration.record(r.latencyMs / 1000, { 'http.request.method': r.method, 'http.route': r.route, 'http.response.status_code': r.status })
  }

  /** FleetSpec.spanSampling: does the sampler keep this span? Deterministic by trace id. */
  private sampled(span: ReadableSpan): boolean {
    const sampling = this.spec.spanSampling
    if (sampling === undefined) return true
    if (sampling.mode === 'tail-errors' && span.status.code === SpanStatusCode.ERROR) return true
    return hash32(`sample:${span.spanContext().traceId}`) / 0x1_0000_0000 < sampling.ratio
  }

  private inOutage(service: string, s: number): boolean {
    return this.spec.outages.some((o) => s >= o.fromS && s < o.untilS && (o.services === undefined || o.services.includes(service)))
  }

  /**
   * Spans ended by scenario second s, as one export would carry them. Spans of a service in a
   * telemetry outage are lost, as when the collector is unreachable.
   */
  takeSpans(s: number): ReadableSpan[] {
    const cutoff = this.timeMs(s)
    const ready = this.pending.drain((span) => hrToMs(span.endTime) <= cutoff).filter((span) => !this.inOutage(String(span.resource.attributes['service.name']), s) && this.sampled(span))
    ready.sort((a, b) => hrToMs(a.endTime) - hrToMs(b.endTime))
    return ready
  }

  /**
   * 'per-pod' span exports (FleetSpec.spanSchedule) due in scenario time (s, s+1]: each pod's
   * BatchSpanProcessor exports every `spanExportS` on its own phase (the SDK's timer starts with
   * the pod, at millisecond resolution); a stopping pod exports at its stop and then, each second,
   * what its in-flight requests still end (its shutdown drains them). One export per pod, in time
   * order, `atS` fractional, each holding the pod's spans ended by then; a pod in a telemetry outage
   * loses the export. Call after `step(s)`: every span ending by s+1 has ended by then. `last`: the
   * recording ends at s+1 and every pod exports what it holds then (its SDK's shutdown).
   */
  takePodSpans(s: number, last = false): { atS: number; pod: Pod; spans: ReadableSpan[] }[] {
    const every = this.spec.spanExportS * 1000
    const due: { atMs: number; pod: Pod }[] = []
    for (const pod of this.world.pods) {
      if (pod.startS > s || pod.stopS + STRAGGLER_S <= s) continue
      if (pod.stopS <= s + 1 || last) {
        due.push({ atMs: (s + 1) * 1000, pod })
        continue
      }
      const at = nextSpanExportMs(pod.name, pod.startS, every, s)
      if (at <= (s + 1) * 1000) due.push({ atMs: at, pod })
    }
    due.sort((a, b) => a.atMs - b.atMs)
    const out: { atS: number; pod: Pod; spans: ReadableSpan[] }[] = []
    for (const d of due) {
      const cutoff = this.timeMs(d.atMs / 1000)
      const spans = this.pending.drain((span, pod) => pod === d.pod && hrToMs(span.endTime) <= cutoff).filter((span) => this.sampled(span))
      if (spans.length === 0 || this.inOutage(d.pod.service.name, s)) continue
      spans.sort((a, b) => hrToMs(a.endTime) - hrToMs(b.endTime))
      out.push({ atS: d.atMs / 1000, pod: d.pod, spans })
    }
    return out
  }

  /**
   * Pods whose metric export is due at scenario second s (integer). 'aligned': every live pod at
   * multiples of the interval. 'per-pod': each pod one interval after its start and every interval
   * after (pods running at the start have a phase seeded by their name), and once more at the
   * second it stops (the reader's shutdown flush).
   */
  metricsDue(s: number): Pod[] {
    const every = this.spec.metricExportS
    if ((this.spec.metricSchedule ?? 'aligned') === 'aligned') return s % every === 0 ? this.world.alive(s) : []
    const due: Pod[] = []
    for (const pod of this.world.pods) {
      if (pod.stopS === s) {
        due.push(pod)
        continue
      }
      if (!(pod.startS < s && s < pod.stopS)) continue
      const phase = pod.startS < 0 ? hash32(pod.name) % every : pod.startS % every
      if ((((s - phase) % every) + every) % every === 0) due.push(pod)
    }
    return due
  }

  /**
   * One collection at scenario second s (telemetry timestamps rewritten to virtual time) of the
   * given pods, every live pod by default.
   */
  async collect(s: number, pods: readonly Pod[] = this.world.alive(s)): Promise<ResourceMetrics[]> {
    const out: ResourceMetrics[] = []
    const now = msToHr(this.timeMs(s))
    for (const pod of pods) {
      if (this.inOutage(pod.service.name, s)) continue
      const sdk = this.sdk(pod)
      sdk.current = this.world.reading(pod, s)
      const { resourceMetrics } = await sdk.reader.collect()
      const podStart = msToHr(this.timeMs(Math.max(pod.startS, 0)))
      const deltaStart = sdk.collectedAt ?? podStart
      for (const sm of resourceMetrics.scopeMetrics) {
        for (const m of sm.metrics) {
          const start = m.aggregationTemporality === AggregationTemporality.DELTA ? deltaStart : podStart
          for (const dp of m.dataPoints) {
            ;(dp as { startTime: HrTime }).startTime = start
            ;(dp as { endTime: HrTime }).endTime = now
          }
        }
      }
      sdk.collectedAt = now
      out.push(resourceMetrics)
    }
    return out
  }

  async shutdown(): Promise<void> {
    for (const sdk of this.sdks.values()) {
      await sdk.tracerProvider.shutdown()
      await sdk.meterProvider.shutdown()
    }
    this.sdks.clear()
  }
}
