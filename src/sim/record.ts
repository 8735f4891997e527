/**
 * `record`: plays a scenario on virtual time as fast as the CPU allows and writes OTLP/JSON lines
 * (one export request per line, in telemetry-time order), the format `pullback replay` reads.
 */
import { DEFAULT_START_MS, type HistogramAggregation, type Scenario } from './model.js'
import { CumulativeToDelta } from './cumulative-to-delta.js'
import { CONNECTOR_AGE_MS, SpanMetricsStart } from './spanmetrics.js'
import { metricsLine, traceLine } from './otlp-json.js'
import { hash32 } from './random.js'
import { Simulation } from './telemetry.js'
import type { SimRequest } from './world.js'

/** One export line as written: its kind, scenario second (fractional for per-pod span exports) and the `service/version` keys it carries. */
export interface ExportInfo {
  kind: 'spans' | 'metrics'
  atS: number
  serviceVersions: ReadonlySet<string>
}

export interface RecordOptions {
  seed?: number
  /** telemetry time of the scenario start, unix ms (default: a fixed date, for identical bytes) */
  startMs?: number
  onLine: (line: string) => void
  /** called about once per simulated minute with the fraction done */
  onProgress?: (fraction: number) => void
  /** every simulated request, in simulation order (scenario seconds) */
  onRequest?: (r: SimRequest) => void
  /** every line written, described (first export of a version, for the quality bench) */
  onExport?: (e: ExportInfo) => void
  /** overrides the scenario's span export schedule (FleetSpec.spanSchedule) */
  spanSchedule?: 'aligned' | 'per-pod'
  /** overrides the aggregation of the request duration histograms (FleetSpec.histogramAggregation) */
  histogramAggregation?: HistogramAggregation
  /** overrides the temporality pullback receives them in (FleetSpec.metricTemporality) */
  metricTemporality?: 'cumulative' | 'delta' | 'cumulativetodelta'
}

export interface RecordSummary {
  lines: number
  spans: number
  metricBatches: number
  startMs: number
  endMs: number
}

export const DEFAULT_SEED = 1

export async function recordScenario(scenario: Scenario, opts: RecordOptions): Promise<RecordSummary> {
  const seed = opts.seed ?? DEFAULT_SEED
  const built = scenario.build(seed)
  const spec = {
    ...built,
    ...(opts.spanSchedule !== undefined ? { spanSchedule: opts.spanSchedule } : {}),
    ...(opts.histogramAggregation !== undefined ? { histogramAggregation: opts.histogramAggregation } : {}),
    ...(opts.metricTemporality !== undefined ? { metricTemporality: opts.metricTemporality } : {}),
  }
  // the spanmetrics connector's streams: cumulative from its own start, replicas without identity as one
  const connector = spec.histogramAggregation === 'spanmetrics' ? new SpanMetricsStart((opts.startMs ?? DEFAULT_START_MS) - CONNECTOR_AGE_MS) : undefined
  const toDelta = spec.metricTemporality === 'cumulativetodelta' ? new CumulativeToDelta() : undefined
  const perPod = (spec.spanSchedule ?? 'aligned') === 'per-pod'
  const startMs = opts.startMs ?? DEFAULT_START_MS
  const sim = new Simulation(spec, { seed: hash32(`${scenario.name}:${seed}`), startMs, speed: 1 })
  const summary: RecordSummary = { lines: 0, spans: 0, metricBatches: 0, startMs, endMs: startMs + spec.durationS * 1000 }
  const emitMetrics = async (s: number) => {
    const due = sim.metricsDue(s)
    if (due.length === 0) return
    const batch = await sim.collect(s, due)
    if (batch.length === 0) return
    if (opts.onExport !== undefined) {
      const keys = new Set<string>()
      for (const rm of batch) keys.add(`${String(rm.resource.attributes['service.name'])}/${String(rm.resource.attributes['service.version'])}`)
      opts.onExport({ kind: 'metrics', atS: s, serviceVersions: keys })
    }
    const line = connector === undefined ? metricsLine(batch) : connector.line(metricsLine(batch))
    opts.onLine(toDelta === undefined ? line : toDelta.line(line))
    summary.lines++
    summary.metricBatches++
  }
  const emitSpans = (spans: ReturnType<Simulation['takeSpans']>, atS: number) => {
    if (spans.length === 0) return
    if (opts.onExport !== undefined) {
      const keys = new Set<string>()
      for (const sp of spans) keys.add(`${String(sp.resource.attributes['service.name'])}/${String(sp.resource.attributes['service.version'])}`)
      opts.onExport({ kind: 'spans', atS, serviceVersions: keys })
    }
    opts.onLine(traceLine(spans))
    summary.lines++
    summary.spans += spans.length
  }
  try {
    await emitMetrics(0)
    for (let s = 0; s < spec.durationS; s++) {
      sim.step(s, opts.onRequest)
      const now = s + 1
      if (perPod) {
        for (const e of sim.takePodSpans(s, now === spec.durationS)) emitSpans(e.spans, e.atS)
      } else if (now % spec.spanExportS === 0 || now === spec.durationS) {
        emitSpans(sim.takeSpans(now), now)
      }
      await emitMetrics(now)
      if (opts.onProgress !== undefined && now % 60 === 0) opts.onProgress(now / spec.durationS)
    }
  } finally {
    await sim.shutdown()
  }
  return summary
}

/** The whole recording in memory (tests, the quality benchmark). */
export async function recordToLines(scenario: Scenario, opts: Omit<RecordOptions, 'onLine'> = {}): Promise<string[]> {
  const lines: string[] = []
  await recordScenario(scenario, { ...opts, onLine: (l) => lines.push(l) })
  return lines
}
