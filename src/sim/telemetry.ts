/**
 * Turns the workload model into telemetry through the real OpenTelemetry JS SDK: one
 * TracerProvider and one MeterProvider per pod (each pod is its own resource), SERVER spans with
 * explicit start and end times, and observable gauges read at collection time. Time is virtual:
 * scenario second s maps to `startMs + s * 1000 / speed`; request latencies are never scaled.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, ValueType, type Attributes, type Histogram, type HrTime, type Tracer } from '@opentelemetry/api'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, type IdGenerator, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { FleetSpec } from './model.js'
import { hash32, Rng } from './random.js'
import { World, type Pod, type PodReading, type SimRequest } from './world.js'

export const SIM_SCOPE = 'pullback-sim'
export const SIM_SCOPE_VERSION = '0.1.0'

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

/** Holds ended spans until their export time (a BatchSpanProcessor on a virtual clock). */
class PendingSpans implements SpanProcessor {
  spans: ReadableSpan[] = []
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.spans.push(span)
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
    const tracerProvider = new BasicTracerProvider({ resource, idGenerator: this.ids, spanProcessors: [this.pending] })
    const reader = new ManualReader()
    const meterProvider = new MeterProvider({ resource, readers: [reader] })
    const created: PodSdk = {
      pod,
      tracer: tracerProvider.getTracer(SIM_SCOPE, SIM_SCOPE_VERSION),
      tracerProvider,
      meterProvider,
      reader,
      duration: undefined,
      current: undefined,
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
      created.duration = meterProvider.getMeter(SIM_SCOPE, SIM_SCOPE_VERSION).createHistogram('http.server.request.duration', {
        unit: 's',
        advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
      })
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
        sdk.duration?.record(r.latencyMs / 1000, { 'http.request.method': r.method, 'http.route': r.route, 'http.response.status_code': r.status })
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
      sdk.duration?.record(r.latencyMs / 1000, { 'http.request.method': r.method, 'http.route': r.route, 'http.response.status_code': r.status })
    })
    return n
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
    const ready: ReadableSpan[] = []
    const keep: ReadableSpan[] = []
    for (const span of this.pending.spans) {
      if (hrToMs(span.endTime) <= cutoff) {
        if (!this.inOutage(String(span.resource.attributes['service.name']), s)) ready.push(span)
      } else keep.push(span)
    }
    this.pending.spans = keep
    ready.sort((a, b) => hrToMs(a.endTime) - hrToMs(b.endTime))
    return ready
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
      for (const sm of resourceMetrics.scopeMetrics) {
        for (const m of sm.metrics) {
          for (const dp of m.dataPoints) {
            ;(dp as { startTime: HrTime }).startTime = podStart
            ;(dp as { endTime: HrTime }).endTime = now
          }
        }
      }
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
