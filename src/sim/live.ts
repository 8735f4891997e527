/**
 * `live`: plays a scenario in real time against a running sidecar through the SDK's own OTLP
 * exporters (gRPC or HTTP/protobuf), so the sidecar sees exactly what an instrumented app sends.
 * `speed` compresses the scenario's timeline (a 12-minute scenario at speed 4 takes 3 minutes):
 * scenario second s is sent at wall time start + s/speed, request latencies are not scaled, and
 * request rates per wall second are multiplied by speed.
 */
import { OTLPMetricExporter as GrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc'
import { OTLPMetricExporter as HttpMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http'
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc'
import { OTLPTraceExporter as HttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import type { Scenario } from './model.js'
import { hash32 } from './random.js'
import { DEFAULT_SEED } from './record.js'
import { Simulation } from './telemetry.js'
import { sleep } from '../common/sleep.js'

export interface LiveOptions {
  /** OTLP endpoint: gRPC `http://127.0.0.1:4317`, HTTP `http://127.0.0.1:4318` (paths /v1/traces and /v1/metrics are added) */
  endpoint: string
  protocol: 'grpc' | 'http'
  /** scenario seconds per wall second (default 1) */
  speed?: number
  seed?: number
  /** play only scenario seconds [fromS, untilS) (default: the whole scenario) */
  fromS?: number
  untilS?: number
  signal?: AbortSignal
  onProgress?: (p: LiveProgress) => void
  /** receives a handle to change the running workload (the demo's simulated cutover driver uses it) */
  control?: (c: LiveControl) => void
}

/** What a live run lets its caller change while it plays. */
export interface LiveControl {
  /** rolls `service` back to `version` from the next scenario second, pod by pod (every `stepS`) */
  rollback(service: string, version: string, stepS?: number): void
}

export interface LiveProgress {
  /** scenario seconds played */
  scenarioS: number
  durationS: number
  /** telemetry (wall) time of the scenario second just played */
  timeMs: number
  spans: number
  exportFailures: number
}

export type LiveOutcome =
  | { kind: 'completed'; spans: number; exportFailures: number; startMs: number; endMs: number }
  | { kind: 'aborted'; spans: number; exportFailures: number; startMs: number; atS: number }

interface Exporter<T> {
  export(items: T, cb: (r: { code: number; error?: Error }) => void): void
  shutdown(): Promise<void>
}

function send<T>(exp: Exporter<T>, items: T): Promise<boolean> {
  return new Promise((resolve) => exp.export(items, (r) => resolve(r.code === 0)))
}

export async function runLive(scenario: Scenario, opts: LiveOptions): Promise<LiveOutcome> {
  const speed = opts.speed ?? 1
  if (!(speed > 0)) throw new RangeError(`speed must be positive, got ${speed}`)
  const seed = opts.seed ?? DEFAULT_SEED
  const spec = scenario.build(seed)
  const base = opts.endpoint.replace(/\/+$/, '')
  const traces: Exporter<ReadableSpan[]> =
    opts.protocol === 'grpc' ? new GrpcTraceExporter({ url: base }) : new HttpTraceExporter({ url: `${base}/v1/traces` })
  const metrics: Exporter<ResourceMetrics> =
    opts.protocol === 'grpc' ? new GrpcMetricExporter({ url: base }) : new HttpMetricExporter({ url: `${base}/v1/metrics` })
  const fromS = Math.max(0, Math.floor(opts.fromS ?? 0))
  const untilS = Math.min(spec.durationS, Math.ceil(opts.untilS ?? spec.durationS))
  const startMs = Date.now()
  // scenario second fromS is now
  const sim = new Simulation(spec, { seed: hash32(`${scenario.name}:${seed}`), startMs: startMs - (fromS * 1000) / speed, speed })
  // about one span export per wall second, like a BatchSpanProcessor under load
  const spanEvery = Math.max(1, Math.round(speed))
  let spans = 0
  let exportFailures = 0
  let current = fromS
  opts.control?.({
    rollback: (service, version, stepS = 2) =>
      sim.world.deploy({ service, version, atS: current + 1, strategy: { kind: 'rolling', stepS }, rollback: true }),
  })
  const exportMetrics = async (s: number) => {
    const due = sim.metricsDue(s)
    if (due.length === 0) return
    for (const rm of await sim.collect(s, due)) if (!(await send(metrics, rm))) exportFailures++
  }
  try {
    // the workload model is stepped from 0 (pod lifecycles, noise), but only [fromS, untilS) is sent
    for (let s = 0; s < fromS; s++) sim.step(s)
    sim.takeSpans(fromS)
    for (const rm of await sim.collect(fromS)) if (!(await send(metrics, rm))) exportFailures++
    for (let s = fromS; s < untilS; s++) {
      if (opts.signal?.aborted === true) return { kind: 'aborted', spans, exportFailures, startMs, atS: s }
      current = s
      sim.step(s)
      const now = s + 1
      await sleep(sim.timeMs(now) - Date.now(), opts.signal)
      if (now % spanEvery === 0 || now === untilS) {
        const batch = sim.takeSpans(now)
        if (batch.length > 0) {
          spans += batch.length
          if (!(await send(traces, batch))) exportFailures++
        }
      }
      await exportMetrics(now)
      opts.onProgress?.({ scenarioS: now, durationS: spec.durationS, timeMs: sim.timeMs(now), spans, exportFailures })
    }
    return { kind: 'completed', spans, exportFailures, startMs, endMs: sim.timeMs(untilS) }
  } finally {
    await sim.shutdown()
    await Promise.allSettled([traces.shutdown(), metrics.shutdown()])
  }
}
