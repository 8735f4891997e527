import { closeSync, openSync, writeSync } from 'node:fs'
import { numberFlag, parseFlags, UsageError, type Command, type Io } from '../args.js'
import { DEFAULT_SEED, findScenario, HISTOGRAM_AGGREGATIONS, isHistogramAggregation, recordScenario, runLive, SCENARIOS } from '../../sim/index.js'
import { errorMessage } from '../../common/errors.js'

const USAGE = `usage: pullback sim list
       pullback sim record SCENARIO [--seed N] [--out FILE] [--span-export aligned|per-pod] [--histograms explicit|exponential|micrometer|spanmetrics] [--temporality cumulative|delta|cumulativetodelta]
       pullback sim live SCENARIO [--endpoint URL] [--protocol grpc|http] [--speed X] [--seed N] [--from S] [--until S]

list     the scenario library: name, expected verdict, fault class and onset, description
record   play SCENARIO on telemetry time through the OpenTelemetry SDK and write OTLP/JSON lines
         (one ExportTraceServiceRequest or ExportMetricsServiceRequest per line, as the Collector's
         file exporter writes them) to FILE or stdout, for \`pullback replay\`. Same seed, same bytes.
live     play SCENARIO in real time to an OTLP endpoint with the SDK's exporters
         (default grpc http://127.0.0.1:4317; --speed 4 plays a 12-minute scenario in 3 minutes)

flags:
  --seed N        PRNG seed (default ${DEFAULT_SEED})
  --out FILE      write to FILE instead of stdout (record)
  --span-export S aligned: one span line per 5 s for the fleet, on bucket edges (default);
                  per-pod: each pod's batches on its own millisecond phase, as real SDKs export (record)
  --histograms A  explicit: duration histograms with the SDK's default bounds (default);
                  exponential: base-2 exponential, as OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=
                  base2_exponential_bucket_histogram makes the SDK export them; micrometer: Micrometer's
                  server timer (Spring Boot): http.server.requests in milliseconds, count and sum only;
                  spanmetrics: the Collector's spanmetrics connector's traces.span.metrics.duration
                  (ms, its bounds and dimensions, CLIENT points too, cumulative from the connector's
                  start) (record; scenarios with metrics)
  --temporality T cumulative: the SDK's default (default); delta: the SDK's delta preference
                  (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta); cumulativetodelta: cumulative,
                  converted on the way by a Collector's cumulativetodelta processor (record; scenarios with metrics)
  --endpoint URL  OTLP endpoint (live; default http://127.0.0.1:4317 for grpc, :4318 for http)
  --protocol P    grpc | http (live; default grpc)
  --speed X       scenario seconds per wall second (live; default 1)
  --from S        start at scenario second S (live; default 0)
  --until S       stop at scenario second S (live; default: the end)`

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length)
}

function list(io: Io): number {
  const rows = SCENARIOS.map((s) => [
    s.name,
    s.expected,
    s.faultClass,
    s.faultOnsetS === undefined ? '-' : `${s.faultOnsetS}s`,
    `${Math.round(s.durationS / 60)}m`,
    s.description,
  ])
  const head = ['SCENARIO', 'EXPECTED', 'FAULT', 'ONSET', 'LEN', 'DESCRIPTION']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : pad(c, widths[i]!))).join('  ')
  io.out(`${fmt(head)}\n${rows.map(fmt).join('\n')}\n`)
  return 0
}

function scenarioArg(positionals: string[]) {
  const name = positionals[1]
  if (name === undefined) throw new UsageError('missing SCENARIO (see `pullback sim list`)')
  if (positionals.length > 2) throw new UsageError(`unexpected argument ${positionals[2]}`)
  const scenario = findScenario(name)
  if (scenario === undefined) throw new UsageError(`unknown scenario ${JSON.stringify(name)} (see \`pullback sim list\`)`)
  return scenario
}

export const command: Command = {
  name: 'sim',
  summary: 'list scenarios, or record one as OTLP/JSON lines (`sim record SCENARIO`)',
  usage: USAGE,
  async run(argv, io, signal) {
    const { values, positionals } = parseFlags(
      argv,
      {
        seed: { type: 'string' },
        out: { type: 'string', short: 'o' },
        endpoint: { type: 'string' },
        protocol: { type: 'string' },
        speed: { type: 'string' },
        from: { type: 'string' },
        until: { type: 'string' },
        'span-export': { type: 'string' },
        histograms: { type: 'string' },
        temporality: { type: 'string' },
      },
      true,
    )
    const sub = positionals[0]
    if (sub === 'list') {
      if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`)
      return list(io)
    }
    const seed = numberFlag('seed', values.seed, DEFAULT_SEED)
    if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed expects a non-negative integer, got ${values.seed}`)
    if (sub === 'record') {
      const scenario = scenarioArg(positionals)
      const spanSchedule = values['span-export'] ?? 'aligned'
      if (spanSchedule !== 'aligned' && spanSchedule !== 'per-pod') throw new UsageError(`--span-export expects aligned or per-pod, got ${spanSchedule}`)
      const histogramAggregation = values.histograms ?? 'explicit'
      if (!isHistogramAggregation(histogramAggregation)) throw new UsageError(`--histograms expects ${HISTOGRAM_AGGREGATIONS.join(', ')}, got ${histogramAggregation}`)
      const metricTemporality = values.temporality ?? 'cumulative'
      if (metricTemporality !== 'cumulative' && metricTemporality !== 'delta' && metricTemporality !== 'cumulativetodelta') throw new UsageError(`--temporality expects cumulative, delta or cumulativetodelta, got ${metricTemporality}`)
      let fd: number | undefined
      if (values.out !== undefined) {
        try {
          fd = openSync(values.out, 'w')
        } catch (err) {
          io.err(`pullback sim: cannot write ${values.out}: ${errorMessage(err)}\n`)
          return 1
        }
      }
      const write = fd === undefined ? (l: string) => io.out(`${l}\n`) : (l: string) => void writeSync(fd, `${l}\n`)
      const began = Date.now()
      let lastNote = began
      try {
        const sum = await recordScenario(scenario, {
          seed,
          spanSchedule,
          histogramAggregation,
          metricTemporality,
          onLine: write,
          onProgress: (f) => {
            if (Date.now() - lastNote < 1000) return
            lastNote = Date.now()
            io.err(`pullback sim: recording ${scenario.name}: ${Math.round(f * 100)} %\n`)
          },
        })
        io.err(
          `pullback sim: ${scenario.name} (seed ${seed}): ${sum.lines} lines, ${sum.spans} spans, ${sum.metricBatches} metric batches, ` +
            `${(sum.endMs - sum.startMs) / 1000} s of telemetry in ${((Date.now() - began) / 1000).toFixed(1)} s; expected verdict: ${scenario.expected}\n`,
        )
      } finally {
        if (fd !== undefined) closeSync(fd)
      }
      return 0
    }
    if (sub === 'live') {
      const scenario = scenarioArg(positionals)
      const protocol = values.protocol ?? 'grpc'
      if (protocol !== 'grpc' && protocol !== 'http') throw new UsageError(`--protocol expects grpc or http, got ${protocol}`)
      const speed = numberFlag('speed', values.speed, 1)
      if (!(speed > 0)) throw new UsageError(`--speed expects a positive number, got ${values.speed}`)
      const endpoint = values.endpoint ?? (protocol === 'grpc' ? 'http://127.0.0.1:4317' : 'http://127.0.0.1:4318')
      const fromS = numberFlag('from', values.from, 0)
      const untilS = numberFlag('until', values.until, scenario.durationS)
      if (fromS < 0 || untilS <= fromS) throw new UsageError(`--from/--until: need 0 <= from < until, got ${fromS}..${untilS}`)
      let lastMinute = -1
      const out = await runLive(scenario, {
        endpoint,
        protocol,
        speed,
        seed,
        fromS,
        untilS,
        signal,
        onProgress: (p) => {
          const m = Math.floor(p.scenarioS / 60)
          if (m === lastMinute) return
          lastMinute = m
          io.err(`pullback sim: ${scenario.name} ${p.scenarioS}/${p.durationS} s, ${p.spans} spans, ${p.exportFailures} failed exports\n`)
        },
      })
      io.err(`pullback sim: ${out.kind}: ${out.spans} spans sent, ${out.exportFailures} failed exports\n`)
      return out.kind === 'completed' && out.exportFailures === 0 ? 0 : 1
    }
    throw new UsageError(sub === undefined ? 'missing subcommand: list, record or live' : `unknown subcommand ${JSON.stringify(sub)}`)
  },
}
