/**
 * Detection quality: every scenario of the library, recorded (src/sim) and replayed in-process
 * through the real pipeline (`replayLines`, as `pullback replay` runs it), against the scenario's
 * label; and the same recordings judged by a baseline policy that mimics what most teams run today
 * (see baselinePolicy below). Prints one table and the totals for both.
 *
 *   npm run build && node dist/bench/quality.js [--seed N | --seeds N] [--only NAME,NAME] [--tuned | --untuned] [--config FILE] [--clock telemetry|export] [--skew-ms=N] [--span-export aligned|per-pod] [--histograms explicit|exponential|micrometer|spanmetrics] [--temporality cumulative|delta|cumulativetodelta] [--json]
 *
 * Clock: `telemetry` (the default, the figure of record) replays as `pullback replay` does: now is
 * the newest telemetry time read, so with 5 s span batches it lags the wall clock by up to one batch
 * (a batch exported at 265 s ends at 264.99 s). `export` ticks the same pipeline every second of
 * scenario time and hands each line over at the second it was exported, as the sidecar (1 s
 * `runtime.tickInterval`, wall clock) would see it with no network delay: what a user would see.
 * `--skew-ms=N` puts that clock N ms ahead of the applications' (negative: behind); delays are then
 * still measured on the applications' clock (bench/export-clock.ts).
 *
 * Span exports: `aligned` (the default, the figure of record) is the library's own phase: one line
 * per 5 s for the whole fleet, each holding the spans ended by a bucket edge, so a bucket is judged
 * with the batch after the one that completed it. `per-pod` exports each pod's spans on its own
 * seeded millisecond phase, as BatchSpanProcessors do in a real fleet (FleetSpec.spanSchedule).
 *
 * Duration histograms (the scenarios that export metrics): `explicit` (the default) with the SDK's
 * default bounds; `exponential` as an SDK set to base2_exponential_bucket_histogram exports them
 * (FleetSpec.histogramAggregation): the SDK picks each stream's scale from its range, 4-7 in the
 * library's recordings, so buckets 0.5-4.4 % wide instead of 1.3-2.5x; `micrometer` as Micrometer's
 * OTLP registry exports a Spring Boot server timer without a configured histogram
 * (`http.server.requests` in milliseconds, count and sum only: each interval's mean is its only
 * latency); `spanmetrics` as the Collector's spanmetrics connector makes them of the same spans
 * (`traces.span.metrics.duration` in ms with its bounds, 10-50 ms one bucket; CLIENT points beside
 * the SERVER ones; cumulative from the connector's start, so a new pod's first flush only primes
 * its streams; replicas without pod identity one stream; each pod's report on its own phase as the
 * scenario's metrics are, where one connector would flush every pod at once). `--temporality` (FleetSpec.
 * metricTemporality): `cumulative` (the SDK's default), `delta` (the SDK's delta preference) or
 * `cumulativetodelta` (cumulative converted on the way by a Collector's cumulativetodelta processor:
 * a stream's first point whole from the stream's start, or dropped when it started before the
 * processor).
 *
 * Decision delay is printed three ways where they apply: from the fault start (the scenario's
 * label), from the new version's first faulty request (simulated), and from the new version's
 * first export (the first OTLP line that carries it: what a metrics-only app lets anyone see).
 *
 * Targets (printed beside the figures; issue 10):
 * - every scenario judged right, the tuned library and the untuned variants;
 * - tuned library: worst step-fault detection <= 35 s from the fault start (issue 10);
 * - step faults on spans: median <= 20 s, worst <= 35 s after the first faulty request;
 * - step faults on 60 s metrics: <= 3 x 60 s + lateness after the first export; on 15 s metrics <= 90 s.
 * Exit code 0 when all are met, else 1.
 */
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config/load.js'
import type { PullbackConfig } from '../src/config/schema.js'
import { replayLines } from '../src/cli/commands/replay.js'
import type { Verdict } from '../src/engine/verdict.js'
import type { DeploymentEvent } from '../src/engine/events.js'
import { replayAtExportTimes } from './export-clock.js'
import { cadenceLimits } from './targets.js'
import { DEFAULT_START_MS, HISTOGRAM_AGGREGATIONS, isHistogramAggregation, recordScenario, SCENARIOS, type HistogramAggregation, type Scenario } from '../src/sim/index.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

// ---------------------------------------------------------------------------------------------
// The baseline policy: a single error-rate threshold (5 %) on the new version, checked every 60 s
// over the last 60 s of data that a 60 s scrape has made visible (Prometheus default scrape and a
// `rate(...[1m])` query, Flagger's `interval: 1m` with the code-default `threshold: 1`, see
// ../shared/notes/field.md section 2). The first check runs one interval after the new version
// appears (Flagger's iteration 0 only shifts traffic). A check with no requests counts as failed,
// as Flagger treats "no values found". It has no latency, resource or probe signal, no baseline
// and no deployment-time gate. A comparison, not a product feature.
// ---------------------------------------------------------------------------------------------

const BASELINE = { threshold: 0.05, intervalS: 60, windowS: 60, scrapeLagS: 60 }

interface Counts {
  requests: Map<number, number>
  errors: Map<number, number>
  firstSeenS: number
}

type BaselineOutcome = { kind: 'none' } | { kind: 'rollback'; atS: number; errorRate: number; noData: boolean }

interface KV {
  key: string
  value: Record<string, unknown>
}

/** Reads the recording the way a Prometheus scrape of span-derived request counters would see it. */
export function baselinePolicy(lines: string[], service: string, oldVersion: string, startMs: number, durationS: number): BaselineOutcome {
  const perVersion = new Map<string, Counts>()
  for (const line of lines) {
    if (!line.startsWith('{"resourceSpans"')) continue
    const req = JSON.parse(line) as { resourceSpans: { resource: { attributes: KV[] }; scopeSpans: { spans: { endTimeUnixNano: string; startTimeUnixNano: string; attributes: KV[] }[] }[] }[] }
    for (const rs of req.resourceSpans) {
      const attr = (k: string) => rs.resource.attributes.find((a) => a.key === k)?.value.stringValue
      if (attr('service.name') !== service) continue
      const version = String(attr('service.version'))
      let c = perVersion.get(version)
      if (c === undefined) perVersion.set(version, (c = { requests: new Map(), errors: new Map(), firstSeenS: Infinity }))
      for (const ss of rs.scopeSpans) {
        for (const sp of ss.spans) {
          const startS = (Number(BigInt(sp.startTimeUnixNano) / 1_000_000n) - startMs) / 1000
          const s = Math.floor((Number(BigInt(sp.endTimeUnixNano) / 1_000_000n) - startMs) / 1000)
          if (startS < c.firstSeenS) c.firstSeenS = startS
          c.requests.set(s, (c.requests.get(s) ?? 0) + 1)
          const code = Number(sp.attributes.find((a) => a.key === 'http.response.status_code')?.value.intValue)
          if (code >= 500) c.errors.set(s, (c.errors.get(s) ?? 0) + 1)
        }
      }
    }
  }
  // the first version other than the one running at the start is the release under analysis
  const candidates = [...perVersion.entries()].filter(([v]) => v !== oldVersion).sort((a, b) => a[1].firstSeenS - b[1].firstSeenS)
  const first = candidates[0]
  if (first === undefined) return { kind: 'none' }
  const c = first[1]
  const deployS = Math.floor(c.firstSeenS)
  for (let check = deployS + BASELINE.intervalS; check <= durationS; check += BASELINE.intervalS) {
    const to = check - BASELINE.scrapeLagS
    const from = to - BASELINE.windowS
    let req = 0
    let err = 0
    for (let s = Math.max(from, deployS); s < to; s++) {
      req += c.requests.get(s) ?? 0
      err += c.errors.get(s) ?? 0
    }
    if (to <= deployS) continue // the scrape has not seen the new version yet: the query returns nothing to judge
    if (req === 0) return { kind: 'rollback', atS: check, errorRate: Number.NaN, noData: true }
    if (err / req > BASELINE.threshold) return { kind: 'rollback', atS: check, errorRate: err / req, noData: false }
  }
  return { kind: 'none' }
}

// ---------------------------------------------------------------------------------------------

interface Row {
  scenario: Scenario
  actual: string
  /** decision delay from the fault start */
  detectS: number | undefined
  /** from the new version's first faulty request (faults of the new version only) */
  fromFaultyS: number | undefined
  /** from the new version's first export line (any deployment under test) */
  fromExportS: number | undefined
  /** the fault is the new version's own (error/latency): the first-faulty-request origin applies */
  own: boolean
  baseline: string
  baselineDetectS: number | undefined
  ok: boolean
  baselineOk: boolean
  verdicts: Verdict[]
}

function actualOf(verdicts: Verdict[], s: Scenario): { actual: string; decidedAt: number | undefined } {
  const mine = verdicts.filter((v) => v.service === s.service && v.namespace === s.namespace && !v.dryRun)
  const decision = mine.find((v) => v.kind === 'rollback' || v.kind === 'incident')
  const recovery = mine.find((v) => v.kind === 'recovered' || v.kind === 'not-recovered')
  const others = verdicts.filter((v) => v.service !== s.service && (v.kind === 'rollback' || v.kind === 'incident'))
  let actual = decision === undefined ? 'none' : decision.kind
  if (decision?.kind === 'rollback' && recovery !== undefined) actual += `+${recovery.kind}`
  if (others.length > 0) actual += ` (+${others.length} on ${[...new Set(others.map((v) => v.service))].join(',')})`
  return { actual, decidedAt: decision?.decidedAt }
}

function isBad(s: Scenario): boolean {
  return s.expected.startsWith('rollback')
}

/** step faults of class error or latency: the ones the detection-time target applies to */
function isStepErrorOrLatency(s: Scenario): boolean {
  return isBad(s) && !s.gradual && (s.faultClass === 'error' || s.faultClass === 'latency')
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN
  const a = [...xs].sort((x, y) => x - y)
  const m = Math.floor(a.length / 2)
  return a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2
}

function pct(n: number, d: number): string {
  return d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(0)} % (${n}/${d})`
}

function fmtS(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(1)} s`
}

/** Where a decision-delay origin does not apply: the fault is not the new version's own. */
function faultOfNewVersion(s: Scenario, seed: number): { newVersion: string | undefined; own: boolean } {
  const spec = s.build(seed)
  const dep = spec.deployments.find((d) => d.service === s.service && d.atS === s.deployAtS && d.rollback !== true)
  const newVersion = dep?.version
  const own = isBad(s) && (s.faultClass === 'error' || s.faultClass === 'latency') && spec.faults.some((f) => f.service === s.service && f.versions !== 'all' && newVersion !== undefined && f.versions.includes(newVersion))
  return { newVersion, own }
}

/** The actuator stand-in of `pullback replay`: a non-dry rollback is followed by the restored version's event. */
function restoredEvent(v: Verdict): DeploymentEvent | undefined {
  if (v.kind !== 'rollback' || v.dryRun || v.baselineVersion === '') return undefined
  return { namespace: v.namespace, service: v.service, version: v.baselineVersion, time: v.decidedAt, kind: 'rollback', previousVersion: v.version, source: 'pullback-replay', decisionId: v.id }
}

/** How a run is recorded and replayed (the command line's --clock, --skew-ms, --span-export, --histograms, --temporality). */
interface RunOptions {
  clock: 'telemetry' | 'export'
  skewMs: number
  spanSchedule: 'aligned' | 'per-pod'
  histograms: HistogramAggregation
  temporality: 'cumulative' | 'delta' | 'cumulativetodelta'
}

async function runScenario(s: Scenario, cfg: PullbackConfig, seed: number, o: RunOptions): Promise<Row> {
  const { clock, skewMs } = o
  const lines: string[] = []
  const exportS: number[] = []
  const { newVersion, own } = faultOfNewVersion(s, seed)
  const key = `${s.service}/${newVersion ?? ''}`
  let firstFaultyS = Number.POSITIVE_INFINITY
  let firstExportS = Number.POSITIVE_INFINITY
  const onsetS = s.faultOnsetS ?? Number.POSITIVE_INFINITY
  await recordScenario(s, {
    seed,
    spanSchedule: o.spanSchedule,
    histogramAggregation: o.histograms,
    metricTemporality: o.temporality,
    onLine: (l) => lines.push(l),
    onRequest: (r) => {
      if (own && r.startS >= onsetS && r.startS < firstFaultyS && r.pod.service.name === s.service && r.pod.version === newVersion) firstFaultyS = r.startS
    },
    onExport: (e) => {
      exportS.push(e.atS)
      // sampled spans: the metrics are the source that counts (src/normalize/span-coverage.ts), their first export is the reference
      if (e.atS < firstExportS && e.serviceVersions.has(key) && (!s.telemetry.sampledSpans || e.kind === 'metrics')) firstExportS = e.atS
    },
  })
  // a recording has no feedback loop: the actuator stand-in only makes sense where the scenario plays the rollback itself
  const withRecovery = s.expected.includes('+')
  const sink = { out: () => undefined, err: () => undefined }
  const verdicts =
    clock === 'export'
      ? replayAtExportTimes(
          lines,
          exportS.map((x) => DEFAULT_START_MS + x * 1000),
          cfg,
          { skewMs, ...(withRecovery ? { onVerdict: restoredEvent } : {}) },
        ).verdicts.map((v) => (skewMs === 0 ? v : { ...v, decidedAt: v.decidedAt - skewMs }))
      : (await replayLines(lines, cfg, sink, { actuator: withRecovery }, s.name)).verdicts
  const { actual, decidedAt } = actualOf(verdicts, s)
  const onsetMs = s.faultOnsetS === undefined ? undefined : DEFAULT_START_MS + s.faultOnsetS * 1000
  const detectS = decidedAt !== undefined && onsetMs !== undefined ? (decidedAt - onsetMs) / 1000 : undefined
  const since = (atS: number) => (decidedAt !== undefined && Number.isFinite(atS) ? (decidedAt - DEFAULT_START_MS) / 1000 - atS : undefined)
  const fromFaultyS = since(firstFaultyS)
  const fromExportS = newVersion !== undefined && isBad(s) ? since(firstExportS) : undefined
  const oldVersion = s.build(seed).services.find((x) => x.name === s.service)?.version ?? ''
  const b = baselinePolicy(lines, s.service, oldVersion, DEFAULT_START_MS, s.durationS)
  const baseline = b.kind === 'none' ? 'none' : b.noData ? 'rollback (no data)' : 'rollback'
  const baselineDetectS = b.kind === 'rollback' && s.faultOnsetS !== undefined ? b.atS - s.faultOnsetS : undefined
  const expectedCore = s.expected
  const ok = actual === expectedCore || (expectedCore === 'rollback' && actual === 'rollback')
  const baselineOk = isBad(s) ? baseline.startsWith('rollback') : s.expected === 'none' ? baseline === 'none' : false
  return { scenario: s, actual, detectS, fromFaultyS, fromExportS, own, baseline, baselineDetectS, ok, baselineOk, verdicts }
}

interface Totals {
  badRolledBack: string
  benignLeftAlone: string
  singleSignalLeftAlone: string
  incident: string
  medianDetectS: number
  worstDetectS: number
  /** step faults never detected */
  missed: number
}

function totals(rows: Row[], pick: (r: Row) => { rolledBack: boolean; incident: boolean; detectS: number | undefined }): Totals {
  const bad = rows.filter((r) => isBad(r.scenario))
  const benign = rows.filter((r) => r.scenario.expected === 'none' && r.scenario.faultClass === 'none')
  const single = rows.filter((r) => r.scenario.expected === 'none' && r.scenario.faultClass !== 'none')
  const inc = rows.filter((r) => r.scenario.expected === 'incident')
  const step = rows.filter((r) => isStepErrorOrLatency(r.scenario)).map((r) => pick(r).detectS)
  const detected = step.filter((x): x is number => x !== undefined)
  return {
    badRolledBack: pct(bad.filter((r) => pick(r).rolledBack).length, bad.length),
    benignLeftAlone: pct(benign.filter((r) => !pick(r).rolledBack && !pick(r).incident).length, benign.length),
    singleSignalLeftAlone: pct(single.filter((r) => !pick(r).rolledBack).length, single.length),
    incident: pct(inc.filter((r) => pick(r).incident && !pick(r).rolledBack).length, inc.length),
    medianDetectS: median(detected),
    worstDetectS: detected.length < step.length ? Number.POSITIVE_INFINITY : Math.max(...detected),
    missed: step.length - detected.length,
  }
}

function worst(t: Totals): string {
  return t.missed > 0 ? `never (${t.missed} missed)` : fmtS(t.worstDetectS)
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

function telemetryOf(s: Scenario): string {
  const t = s.telemetry
  const spans = t.sampledSpans ? 'sampled spans' : 'spans'
  const what = t.spans ? (t.metrics ? `${spans}+metrics ${t.metricExportS}s` : spans) : `metrics ${t.metricExportS}s`
  return t.podIdentity ? what : `${what} no-id`
}

interface TargetLine {
  label: string
  value: string
  met: boolean
}

/** The per-cadence targets of issue 10 over the step faults of one kind of telemetry. */
function cadenceTargets(rows: Row[], latenessS: number): TargetLine[] {
  const step = rows.filter((r) => isStepErrorOrLatency(r.scenario))
  const out: TargetLine[] = []
  // sampled spans are not the source that counts: those scenarios are judged by their metrics' cadence
  const spans = step.filter((r) => r.scenario.telemetry.spans && !r.scenario.telemetry.sampledSpans && r.own)
  if (spans.length > 0) {
    const got = spans.map((r) => r.fromFaultyS).filter((x): x is number => x !== undefined)
    const missed = spans.length - got.length
    const med = median(got)
    const worstS = missed > 0 ? Number.POSITIVE_INFINITY : Math.max(...got)
    out.push({ label: `spans, from first faulty request: median <= 20 s (${spans.length} runs)`, value: fmtS(med), met: med <= 20 && missed === 0 })
    out.push({ label: `spans, from first faulty request: worst <= 35 s`, value: missed > 0 ? `never (${missed} missed)` : fmtS(worstS), met: worstS <= 35 })
  }
  for (const { intervalS: interval, limitS: limit, derived } of cadenceLimits(latenessS, [60, 30, 15])) {
    const m = step.filter((r) => (!r.scenario.telemetry.spans || r.scenario.telemetry.sampledSpans) && r.scenario.telemetry.metrics && r.scenario.telemetry.metricExportS === interval)
    if (m.length === 0) continue
    const got = m.map((r) => r.fromExportS).filter((x): x is number => x !== undefined)
    const missed = m.length - got.length
    const worstS = missed > 0 ? Number.POSITIVE_INFINITY : Math.max(...got)
    out.push({
      label: `${interval} s metrics, from first export: worst <= ${limit} s${derived ? ' (derived)' : ''} (${m.length} runs)`,
      value: missed > 0 ? `never (${missed} missed)` : fmtS(worstS),
      met: worstS <= limit,
    })
  }
  return out
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      seeds: { type: 'string' },
      only: { type: 'string' },
      json: { type: 'boolean' },
      config: { type: 'string' },
      tuned: { type: 'boolean' },
      untuned: { type: 'boolean' },
      clock: { type: 'string' },
      'span-export': { type: 'string' },
      'skew-ms': { type: 'string' },
      histograms: { type: 'string' },
      temporality: { type: 'string' },
    },
  })
  const spanSchedule = values['span-export'] ?? 'aligned'
  if (spanSchedule !== 'aligned' && spanSchedule !== 'per-pod') throw new Error('--span-export expects aligned or per-pod')
  const clock = values.clock ?? 'telemetry'
  if (clock !== 'telemetry' && clock !== 'export') throw new Error('--clock expects telemetry or export')
  const histograms = values.histograms ?? 'explicit'
  if (!isHistogramAggregation(histograms)) throw new Error(`--histograms expects ${HISTOGRAM_AGGREGATIONS.join(', ')}`)
  const temporality = values.temporality ?? 'cumulative'
  if (temporality !== 'cumulative' && temporality !== 'delta' && temporality !== 'cumulativetodelta') throw new Error('--temporality expects cumulative, delta or cumulativetodelta')
  const skewMs = Number(values['skew-ms'] ?? 0)
  if (!Number.isFinite(skewMs) || (skewMs !== 0 && clock !== 'export')) throw new Error('--skew-ms expects milliseconds, with --clock export')
  // --seeds N runs seeds 1..N and prints per-scenario hit counts; --seed N runs one seed with the full table
  const seeds = values.seeds !== undefined ? Array.from({ length: Number(values.seeds) }, (_, i) => i + 1) : [values.seed === undefined ? 1 : Number(values.seed)]
  if (seeds.length === 0 || seeds.some((x) => !Number.isInteger(x) || x < 0)) throw new Error('--seed/--seeds expect non-negative integers')
  const only = values.only?.split(',')
  const cfg = loadConfig(values.config)
  const windowS = cfg.engine.defaults.window / 1000
  const latenessS = cfg.engine.lateness / 1000
  const scenarios = SCENARIOS.filter(
    (s) => (only === undefined || only.includes(s.name)) && (values.tuned !== true || s.tuned) && (values.untuned !== true || !s.tuned),
  )
  const rows: Row[] = []
  const began = performance.now()
  const total = seeds.length * scenarios.length
  for (const seed of seeds) {
    for (const s of scenarios) {
      const t = performance.now()
      const row = await runScenario(s, cfg, seed, { clock, skewMs, spanSchedule, histograms, temporality })
      rows.push(row)
      process.stderr.write(`quality: [${rows.length}/${total}] ${s.name} seed ${seed}: ${row.actual} in ${((performance.now() - t) / 1000).toFixed(1)} s\n`)
    }
  }
  const out: string[][] = []
  if (seeds.length === 1) {
    out.push(['scenario', 'telemetry', 'fault', 'expected', 'pullback', 'from fault', 'from 1st faulty', 'from 1st export', 'baseline policy', 'detect', ''])
    for (const r of rows) {
      out.push([
        r.scenario.name + (r.scenario.tuned ? '' : ' *'),
        telemetryOf(r.scenario),
        r.scenario.faultClass + (r.scenario.gradual ? ' (gradual)' : ''),
        r.scenario.expected,
        r.actual,
        fmtS(r.detectS),
        fmtS(r.fromFaultyS),
        fmtS(r.fromExportS),
        r.baseline,
        fmtS(r.baselineDetectS),
        r.ok ? 'ok' : 'MISS',
      ])
    }
  } else {
    out.push(['scenario', 'expected', 'pullback right', 'median from fault', 'median from 1st faulty', 'median from 1st export', 'baseline right', 'median detect', 'pullback misses'])
    for (const s of scenarios) {
      const mine = rows.filter((r) => r.scenario === s)
      const det = (xs: (number | undefined)[]) => fmtS(median(xs.filter((x): x is number => x !== undefined)))
      out.push([
        s.name + (s.tuned ? '' : ' *'),
        s.expected,
        `${mine.filter((r) => r.ok).length}/${mine.length}`,
        det(mine.map((r) => r.detectS)),
        det(mine.map((r) => r.fromFaultyS)),
        det(mine.map((r) => r.fromExportS)),
        `${mine.filter((r) => r.baselineOk).length}/${mine.length}`,
        det(mine.map((r) => r.baselineDetectS)),
        mine
          .filter((r) => !r.ok)
          .map((r) => `${r.actual} (seed ${seeds[(rows.indexOf(r) / scenarios.length) | 0]})`)
          .join(', '),
      ])
    }
  }
  const pickP = (r: Row) => ({ rolledBack: r.actual.startsWith('rollback'), incident: r.actual.startsWith('incident'), detectS: r.detectS })
  const pickB = (r: Row) => ({ rolledBack: r.baseline.startsWith('rollback'), incident: false, detectS: r.baselineDetectS })
  const sections: { name: string; rows: Row[] }[] = [
    { name: 'tuned library', rows: rows.filter((r) => r.scenario.tuned) },
    { name: 'untuned variants (*)', rows: rows.filter((r) => !r.scenario.tuned) },
  ].filter((x) => x.rows.length > 0)
  // issue 10: a step fault on spans decided within 35 s at worst (measured here from the fault start, which is not later than the first faulty request)
  const target = 35
  const summaries: string[] = []
  let targetsMet = true
  for (const sec of sections) {
    const p = totals(sec.rows, pickP)
    const b = totals(sec.rows, pickB)
    const lines: string[][] = [
      [sec.name, 'pullback', 'baseline policy (5 % errors, 60 s checks, 60 s scrape)'],
      ['bad deployments rolled back', p.badRolledBack, b.badRolledBack],
      ['benign deployments left alone', p.benignLeftAlone, b.benignLeftAlone],
      ['single-signal faults left alone', p.singleSignalLeftAlone, b.singleSignalLeftAlone],
      ['pre-existing breach -> incident', p.incident, b.incident],
      ['median detection from fault (error/latency step faults)', fmtS(p.medianDetectS), fmtS(b.medianDetectS)],
      ['worst detection from fault (error/latency step faults)', worst(p), worst(b)],
    ]
    if (sec.rows[0]?.scenario.tuned === true) {
      lines.push([`target: worst <= ${target} s from the fault`, p.worstDetectS <= target ? 'met' : 'NOT met', b.worstDetectS <= target ? 'met' : 'not met'])
      targetsMet &&= p.worstDetectS <= target
    }
    summaries.push(table(lines))
  }
  const cadence = cadenceTargets(rows, latenessS)
  if (cadence.length > 0) {
    summaries.push(table([['target (issue 10, all scenarios)', 'pullback', ''], ...cadence.map((c) => [c.label, c.value, c.met ? 'met' : 'NOT met'])]))
    targetsMet &&= cadence.every((c) => c.met)
  }
  if (values.json === true) {
    const json = rows.map((r, i) => ({
      seed: seeds[(i / scenarios.length) | 0],
      scenario: r.scenario.name,
      tuned: r.scenario.tuned,
      telemetry: telemetryOf(r.scenario),
      expected: r.scenario.expected,
      actual: r.actual,
      detectS: r.detectS,
      fromFirstFaultyS: r.fromFaultyS,
      fromFirstExportS: r.fromExportS,
      baseline: r.baseline,
      baselineDetectS: r.baselineDetectS,
    }))
    process.stdout.write(`${JSON.stringify({ seeds, windowS, clock, skewMs, spanExport: spanSchedule, histograms, temporality, rows: json, pullback: totals(rows, pickP), baseline: totals(rows, pickB), targets: cadence })}\n`)
  } else {
    const what = seeds.length === 1 ? `seed ${seeds[0]}` : `seeds ${seeds[0]}..${seeds[seeds.length - 1]}`
    process.stdout.write(`detection quality, ${what}, window ${windowS} s, ${clock === 'export' ? `clock: export times (as the sidecar${skewMs !== 0 ? `, ${skewMs > 0 ? '+' : ''}${skewMs} ms from the applications'` : ''}), ` : ''}${spanSchedule === 'per-pod' ? 'span exports per pod, ' : ''}${histograms !== 'explicit' ? `${histograms} duration histograms, ` : ''}${temporality !== 'cumulative' ? `${temporality === 'delta' ? 'delta temporality (the SDK\'s)' : 'delta temporality (a Collector\'s cumulativetodelta)'}, ` : ''}${rows.length} runs in ${((performance.now() - began) / 1000).toFixed(1)} s (* = variant the engine was not tuned on)\n\n`)
    process.stdout.write(`${table(out)}\n\n${summaries.join('\n\n')}\n`)
  }
  const allOk = rows.every((r) => r.ok) && targetsMet
  return allOk ? 0 : 1
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`quality: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
