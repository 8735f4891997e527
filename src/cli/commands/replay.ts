/**
 * `pullback replay FILE [--config FILE] [--report FILE.html] [--no-actuator]`
 *
 * Feeds recorded OTLP/JSON lines (the OpenTelemetry Collector file exporter's format: one
 * ExportTraceServiceRequest or ExportMetricsServiceRequest per line) through the real pipeline
 * (normalize -> signals -> engine) on a virtual clock taken from the telemetry, and prints every
 * verdict as one JSON line on stdout.
 *
 * Clock: now = the newest telemetry time read so far; watermark = now - engine.lateness, so lines
 * may be up to `lateness` out of order. The engine is ticked whenever the watermark crosses a bucket
 * boundary, and once more at the end of the file with the watermark at `now` (no more data can come).
 * Watches still running at the end of the file produce no verdict (replay never invents time).
 *
 * Actuator stand-in (unless --no-actuator): after a non-dry `rollback` verdict, replay announces a
 * deployment event of kind `rollback` restoring `baselineVersion` at `decidedAt` (as the actuator
 * would after its cutover), so `recovered` / `not-recovered` verdicts appear when the recording
 * shows the restored version serving.
 *
 * Exit: 0 when the file was read (malformed lines are reported on stderr and skipped), 2 on usage
 * errors (incl. an invalid --config), 1 when the file cannot be read.
 */
import { createReadStream } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { parseFlags, UsageError, type Command, type Io } from '../args.js'
import { ConfigError, loadConfig } from '../../config/load.js'
import type { PullbackConfig } from '../../config/schema.js'
import { errorMessage } from '../../common/errors.js'
import { decodeOtlpJsonLine } from '../../receivers/otlp/json.js'
import type { MetricsRequest, TracesRequest } from '../../receivers/otlp/model.js'
import { Pipeline } from '../../runtime/pipeline.js'
import type { Verdict } from '../../engine/verdict.js'
import type { ReportInput } from '../../report/model.js'
import { alignDown } from '../../signals/view.js'

const USAGE = `usage: pullback replay FILE [--config FILE] [--report FILE.html] [--no-actuator]

Runs recorded OTLP/JSON lines (OpenTelemetry Collector file exporter format) through normalize,
signals and the engine on telemetry time, and prints one JSON line per verdict on stdout.

  FILE             the recording; "-" reads stdin
  --config FILE    pullback.yaml with the threshold contracts (default: built-in defaults)
  --report FILE    also write an HTML report of every watched deployment
  --no-actuator    do not simulate the actuator's rollback event after a rollback verdict
                   (then no recovered/not-recovered verdicts)

A malformed line is reported on stderr with its line number and skipped. A summary line goes to
stderr at the end. Exit 0 when the file was read, 2 on usage errors, 1 when it cannot be read.
`

export interface ReplayOptions {
  /** simulate the actuator's rollback announcement (default true) */
  actuator?: boolean
  /** record timelines for a report */
  recordTimeline?: boolean
  /** elapsed-time source for the summary line; injected so tests stay deterministic */
  elapsedMs?: () => number
}

export interface ReplaySummary {
  lines: number
  spans: number
  points: number
  malformed: number
  verdicts: Verdict[]
  elapsedMs: number
  report: ReportInput | undefined
}

function requestTimes(req: TracesRequest): { spans: number; maxMs: number } {
  let spans = 0
  let maxMs = -Infinity
  for (const rs of req.resourceSpans) {
    spans += rs.spans.length
    for (const s of rs.spans) if (s.endTimeMs > maxMs) maxMs = s.endTimeMs
  }
  return { spans, maxMs }
}

function metricTimes(req: MetricsRequest): { points: number; maxMs: number } {
  let points = 0
  let maxMs = -Infinity
  for (const rm of req.resourceMetrics) {
    for (const m of rm.metrics) {
      points += m.points.length
      for (const p of m.points) if (p.timeMs > maxMs) maxMs = p.timeMs
    }
  }
  return { points, maxMs }
}

/**
 * The replay loop, independent of files and processes (tests call it with arrays of lines).
 * Verdict lines go to `io.out`; malformed-line reports and the summary to `io.err`.
 */
export async function replayLines(
  lines: AsyncIterable<string> | Iterable<string>,
  cfg: PullbackConfig,
  io: Io,
  opts: ReplayOptions = {},
  source = 'replay',
): Promise<ReplaySummary> {
  const started = opts.elapsedMs?.() ?? 0
  const pipeline = new Pipeline({
    engine: cfg.engine,
    signals: cfg.signals,
    normalize: (cfg as { normalize?: object }).normalize ?? {},
    recordTimeline: opts.recordTimeline === true,
  })
  const lateness = cfg.engine.lateness
  const bucketMs = pipeline.store.bucketMs
  const actuator = opts.actuator !== false
  const verdicts: Verdict[] = []
  let now = -Infinity
  let lastTickBucket = -Infinity
  let n = 0
  let spans = 0
  let points = 0
  let malformed = 0

  const runTick = (watermark: number) => {
    const res = pipeline.tick(Math.floor(now), watermark)
    for (const v of res.verdicts) {
      verdicts.push(v)
      io.out(`${JSON.stringify(v)}\n`)
      if (actuator && v.kind === 'rollback' && !v.dryRun && v.baselineVersion !== '') {
        pipeline.deployment({
          namespace: v.namespace,
          service: v.service,
          version: v.baselineVersion,
          time: v.decidedAt,
          kind: 'rollback',
          previousVersion: v.version,
          source: 'pullback-replay',
          decisionId: v.id,
          ...(v.artifact !== undefined ? { artifact: v.artifact } : {}),
        })
      }
    }
  }

  try {
    for await (const raw of lines) {
      n += 1
      const line = raw.trim()
      if (line === '') continue
      let maxMs = -Infinity
      try {
        const d = decodeOtlpJsonLine(line)
        if (d.type === 'traces') {
          const t = requestTimes(d.request)
          spans += t.spans
          maxMs = t.maxMs
          pipeline.consumeTraces(d.request)
        } else if (d.type === 'metrics') {
          const t = metricTimes(d.request)
          points += t.points
          maxMs = t.maxMs
          pipeline.consumeMetrics(d.request)
        }
      } catch (err) {
        malformed += 1
        io.err(`line ${n}: ${errorMessage(err).slice(0, 500)}\n`)
        continue
      }
      if (maxMs > now) now = maxMs
      const wb = alignDown(now - lateness, bucketMs)
      if (wb > lastTickBucket) {
        lastTickBucket = wb
        runTick(now - lateness)
      }
    }
    // end of the recording: everything that will ever arrive has arrived
    if (Number.isFinite(now)) {
      runTick(now)
      // the actuator stand-in may just have announced a rollback: let the engine register it
      runTick(now)
    }
    const report = opts.recordTimeline === true
      ? pipeline.report({ title: `pullback replay of ${source}`, source, generatedAt: Number.isFinite(now) ? now : 0, input: { lines: n, spans, points, malformed, verdicts: verdicts.length } })
      : undefined
    const elapsedMs = (opts.elapsedMs?.() ?? 0) - started
    io.err(`replay: lines=${n} spans=${spans} points=${points} malformed=${malformed} verdicts=${verdicts.length} elapsed=${elapsedMs.toFixed(0)}ms\n`)
    return { lines: n, spans, points, malformed, verdicts, elapsedMs, report }
  } finally {
    pipeline.shutdown()
  }
}

/** File read failures, told apart from everything else so the command can exit 1. */
class ReadError extends Error {}

async function* fileLines(file: string): AsyncGenerator<string> {
  const stream = file === '-' ? process.stdin : createReadStream(file, { encoding: 'utf8' })
  const rl = createInterface({ input: stream, crlfDelay: Infinity })
  // surface open/read errors (ENOENT, EISDIR, EACCES) through the iterator
  const failed = new Promise<never>((_, reject) => stream.once('error', (err: unknown) => reject(new ReadError(errorMessage(err)))))
  failed.catch(() => undefined)
  const it = rl[Symbol.asyncIterator]()
  try {
    for (;;) {
      let next: IteratorResult<string>
      try {
        next = await Promise.race([it.next(), failed])
      } catch (err) {
        // only reading can fail here (the consumer's own errors never enter this generator)
        throw err instanceof ReadError ? err : new ReadError(errorMessage(err))
      }
      if (next.done === true) return
      yield next.value
    }
  } finally {
    rl.close()
    if (stream !== process.stdin) (stream as ReturnType<typeof createReadStream>).destroy()
  }
}

type RenderReport = (input: ReportInput) => string

async function loadRenderer(): Promise<RenderReport> {
  // resolved at run time: the report renderer is an optional part of the build
  const spec = '../../report/html.js'
  const mod = (await import(spec)) as { renderReport?: RenderReport }
  if (typeof mod.renderReport !== 'function') throw new Error('src/report/html.js does not export renderReport')
  return mod.renderReport
}

export const command: Command = {
  name: 'replay',
  summary: 'run recorded OTLP/JSON lines through the engine on telemetry time; one verdict per line',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      { config: { type: 'string' }, report: { type: 'string' }, 'no-actuator': { type: 'boolean' } },
      true,
    )
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing FILE' : `expected one FILE, got ${positionals.length}`)
    const file = positionals[0] as string
    let cfg: PullbackConfig
    try {
      cfg = loadConfig(values.config)
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    let render: RenderReport | undefined
    if (values.report !== undefined) {
      try {
        render = await loadRenderer()
      } catch (err) {
        io.err(`pullback replay: --report is not available in this build (${errorMessage(err)})\n`)
        return 1
      }
    }
    let summary: ReplaySummary
    try {
      summary = await replayLines(fileLines(file), cfg, io, { actuator: values['no-actuator'] !== true, recordTimeline: render !== undefined, elapsedMs: () => performance.now() }, file)
    } catch (err) {
      if (err instanceof ReadError) {
        io.err(`pullback replay: cannot read ${file}: ${err.message}\n`)
        return 1
      }
      // cross-section checks (engine windows vs signal buckets) surface when the pipeline is built
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    if (render !== undefined && values.report !== undefined && summary.report !== undefined) {
      try {
        await writeFile(values.report, render(summary.report))
      } catch (err) {
        io.err(`pullback replay: cannot write report ${values.report}: ${errorMessage(err)}\n`)
        return 1
      }
    }
    return 0
  },
}
