/**
 * `pullback calibrate` and `pullback audit requests` (src/calibrate): per-service threshold
 * contracts from history in Prometheus, and resource requests against observed usage.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { createLogger } from '../../common/logger.js'
import { createTransport } from '../../kafka/index.js'
import type { PullbackConfig } from '../../config/schema.js'
import { KafkaHistorySource } from '../../calibrate/kafka.js'
import { calibrationReport, reportSeries, type ReportEntry } from '../../calibrate/report.js'
import { ladderEntry } from '../../calibrate/ladder.js'
import type { HistorySource } from '../../calibrate/history.js'
import { parse as parseYaml } from 'yaml'
import { numberFlag, parseFlags, UsageError, type Command, type Io } from '../args.js'
import { loadConfig, parseConfig } from '../../config/load.js'
import { parseDuration } from '../../config/duration.js'
import { errorMessage } from '../../common/errors.js'
import { PrometheusHistorySource, templatesFrom, type PromTemplates } from '../../calibrate/prometheus.js'
import { parseServiceRef, serviceKey, type HistoryRange, type ServiceRef } from '../../calibrate/history.js'
import { DEFAULT_CALIBRATE, type CalibrationResult } from '../../calibrate/search.js'
import { contractsYaml, resultTable } from '../../calibrate/contracts.js'
import { calibrateFleet } from '../../calibrate/fleet.js'
import { deployWindows } from '../../calibrate/backtest.js'
import { availableParallelism } from 'node:os'
import { auditFromHistory, auditRequests, auditTable } from '../../calibrate/audit.js'

const DAY = 86_400_000

const USAGE = `usage: pullback calibrate (--prometheus URL | --kafka HOST:PORT) --out FILE [--days 30] [--service NS/NAME ...]
                          [--target-false-rate 0.01] [--config FILE] [--step 60s] [--deploys 60]
                          [--queries FILE] [--end TIME] [--report FILE.html] [--max-mib 1024] [--workers N] [--json]

Backtests pseudo-deployments over each service's history with the real engine (the history shown as
a new version with nothing changed: every rollback is a false one), measures the current contract's
false-rollback rate, picks per-service values that hold it at or under the target, measures the
detection power they cost on held-out history, and writes engine.services overrides with their
evidence to FILE. A service with less history than --days is written with its signals in observe.

  --prometheus URL         Prometheus HTTP API base (e.g. http://prometheus:9090)
  --kafka HOST:PORT        instead: pullback's own hourly summaries on kafka.topics.history (src/history)
  --max-mib N              with --kafka: the summaries kept in memory at most (default 1024)
  --report FILE            also write an HTML report: each service's history with the chosen thresholds,
                           the evidence, and its readiness rung with the next step (with --prometheus, the
                           latency buckets are then read for every step, not only around the pseudo-deploys)
  --out FILE               the contracts file to write (a valid pullback config)
  --days N                 history to read and to require before enforcing (default 30)
  --service NS/NAME        calibrate only these (repeatable); default: every service found
  --target-false-rate R    allowed false rollbacks per deploy (default 0.01)
  --config FILE            the current pullback.yaml (its contracts are the starting point)
  --step D                 history resolution (default 60s)
  --deploys N              pseudo-deployments per service, a third of them held out (default 60)
  --queries FILE           PromQL templates overriding the defaults (YAML/JSON object; see src/calibrate/README.md)
  --end TIME               end of the history (ISO 8601 or unix ms; default now)
  --workers N              backtest threads, the next service read while they run (default: 2, or 1 on
                           one core; 0: one service after the other in this thread)
  --json                   print one JSON result per service instead of the table

Progress goes to stderr, the table to stdout. Exit 0 when FILE was written, 1 when no service could
be read, 2 on usage errors.
`

function rangeOf(values: { days?: string; step?: string; end?: string }): { range: HistoryRange; days: number } {
  const days = numberFlag('days', values.days, 30)
  if (!(days > 0)) throw new UsageError('--days must be > 0')
  const stepMs = parseDuration(values.step ?? '60s')
  if (!(stepMs >= 1000) || stepMs % 1000 !== 0) throw new UsageError(`--step must be a whole number of seconds, got ${JSON.stringify(values.step)}`)
  let end = Date.now()
  if (values.end !== undefined) {
    end = /^\d+$/.test(values.end) ? Number(values.end) : Date.parse(values.end)
    if (!Number.isFinite(end)) throw new UsageError(`--end expects ISO 8601 or unix ms, got ${JSON.stringify(values.end)}`)
  }
  const endMs = Math.floor(end / stepMs) * stepMs
  return { range: { startMs: endMs - Math.round(days * DAY), endMs, stepMs }, days }
}

function templates(file: string | undefined): PromTemplates {
  if (file === undefined) return templatesFrom(undefined)
  try {
    return templatesFrom(parseYaml(readFileSync(file, 'utf8')))
  } catch (err) {
    throw new UsageError(`--queries ${file}: ${errorMessage(err)}`)
  }
}

interface OpenedSource {
  source: HistorySource
  /** where the history came from, for the contracts' header and the calibration markers */
  label: string
  readStats: () => string
}

/** The history source of --prometheus or --kafka (the history topic of the config, on the given broker). */
async function openSource(values: { prometheus?: string; kafka?: string; queries?: string; 'max-mib'?: string; report?: string }, cfg: PullbackConfig, wanted: readonly ServiceRef[], deploys?: number): Promise<OpenedSource> {
  if (values.prometheus !== undefined) {
    // latency buckets only where the pseudo-deploys look (a few percent of the month), unless the report plots them all
    const bc = { engine: cfg.engine, signals: cfg.signals }
    const latencyWindows =
      deploys !== undefined && values.report === undefined ? (svc: ServiceRef, span: { firstMs: number; lastMs: number }, range: HistoryRange) => deployWindows(svc, span.firstMs, span.lastMs, range.startMs, range.stepMs, bc, deploys) : undefined
    const source = new PrometheusHistorySource({ url: values.prometheus, templates: templates(values.queries), latencyWindows })
    return { source, label: `prometheus ${values.prometheus}`, readStats: () => `${source.client.stats.queries} queries, ${(source.client.stats.bytes / 2 ** 20).toFixed(1)} MiB read` }
  }
  const broker = values.kafka as string
  if (!/^[^\s:]+:\d+$/.test(broker)) throw new UsageError(`--kafka expects HOST:PORT, got ${JSON.stringify(broker)}`)
  const maxMib = numberFlag('max-mib', values['max-mib'], 1024)
  if (!(maxMib > 0)) throw new UsageError('--max-mib must be > 0')
  const logger = createLogger('pullback-calibrate', process.env.PULLBACK_LOG_LEVEL ?? 'warn')
  const transport = await createTransport({ ...cfg.kafka, brokers: [broker] }, logger)
  const topic = cfg.kafka.topics.history
  const source = new KafkaHistorySource({ transport, topic, groupPrefix: `${cfg.kafka.groupPrefix}.cli`, logger, services: wanted, maxBytes: maxMib * 2 ** 20 })
  const st = source.stats
  return { source, label: `kafka ${broker} ${topic}`, readStats: () => `${st.records} summaries read, ${st.kept} kept (${(st.bytes / 2 ** 20).toFixed(1)} MiB)${st.invalid > 0 ? `, ${st.invalid} undecodable` : ''}${st.droppedBytes > 0 ? `, ${(st.droppedBytes / 2 ** 20).toFixed(1)} MiB over --max-mib` : ''}` }
}

function reportEntry(res: CalibrationResult, h: Parameters<typeof reportSeries>[0], cfg: PullbackConfig, source: string, generatedAt: number): ReportEntry {
  if (res.kind === 'too-little-data') return { result: res, series: reportSeries(h, cfg.engine.defaults.signals.latency.quantile), ladder: undefined }
  // the rung the service reaches once this contract and its marker are merged
  const merged: PullbackConfig = {
    ...cfg,
    engine: { ...cfg.engine, services: { ...cfg.engine.services, [res.service]: res.contract } },
    calibration: {
      services: {
        ...cfg.calibration.services,
        [res.service]: { at: new Date(generatedAt).toISOString(), source, days: res.historyDays, heldOut: `${res.heldOut.falseRollbacks}/${res.heldOut.deploys}`, recommended: res.enforce.kind },
      },
    },
  }
  return { result: res, series: reportSeries(h, res.contract.signals.latency.quantile), ladder: ladderEntry(merged, res.service, generatedAt) }
}

export const command: Command = {
  name: 'calibrate',
  summary: 'per-service threshold contracts from history (Prometheus or pullback.history), with their evidence',
  usage: USAGE,
  async run(argv, io, signal) {
    const { values } = parseFlags(argv, {
      prometheus: { type: 'string' },
      kafka: { type: 'string' },
      out: { type: 'string', short: 'o' },
      days: { type: 'string' },
      service: { type: 'string', multiple: true },
      'target-false-rate': { type: 'string' },
      config: { type: 'string', short: 'c' },
      step: { type: 'string' },
      deploys: { type: 'string' },
      queries: { type: 'string' },
      end: { type: 'string' },
      json: { type: 'boolean' },
      report: { type: 'string' },
      'max-mib': { type: 'string' },
      workers: { type: 'string' },
    })
    if ((values.prometheus === undefined) === (values.kafka === undefined)) throw new UsageError('exactly one of --prometheus URL and --kafka HOST:PORT is required')
    if (values.out === undefined) throw new UsageError('--out FILE is required')
    const target = numberFlag('target-false-rate', values['target-false-rate'], DEFAULT_CALIBRATE.targetFalseRate)
    if (!(target >= 0 && target < 1)) throw new UsageError('--target-false-rate must be in [0, 1)')
    const workers = numberFlag('workers', values.workers, Math.min(2, availableParallelism()))
    if (!(Number.isInteger(workers) && workers >= 0)) throw new UsageError('--workers must be an integer >= 0')
    const deploys = numberFlag('deploys', values.deploys, DEFAULT_CALIBRATE.deploys)
    if (!(Number.isInteger(deploys) && deploys >= 3)) throw new UsageError('--deploys must be an integer >= 3')
    const wanted: ServiceRef[] = []
    for (const s of values.service ?? []) {
      const ref = parseServiceRef(s)
      if (ref === undefined) throw new UsageError(`--service expects NAMESPACE/NAME, got ${JSON.stringify(s)}`)
      wanted.push(ref)
    }
    const { range, days } = rangeOf(values)
    const cfg = loadConfig(values.config)
    const opened = await openSource(values, cfg, wanted, deploys)
    const source = opened.source
    const began = performance.now()
    const report: ReportEntry[] = []
    let services = wanted
    if (services.length === 0) {
      try {
        services = await source.services(range, signal)
      } catch (err) {
        io.err(`pullback calibrate: ${errorMessage(err)}\n`)
        return 1
      }
    }
    const generatedAt = Date.now()
    io.err(`calibrate: ${services.length} services, ${days} days from ${new Date(range.startMs).toISOString()} at ${range.stepMs / 1000} s steps, target ${(target * 100).toFixed(2)} % false rollbacks\n`)
    // read ahead and backtest on worker threads (src/calibrate/fleet.ts); results kept in the services' order
    const byIndex: (CalibrationResult | undefined)[] = new Array(services.length)
    const reportByIndex: (ReportEntry | undefined)[] = new Array(services.length)
    const failed: string[] = []
    const tag = (i: number) => `calibrate: [${i + 1}/${services.length}]`
    const fleet = await calibrateFleet({
      source,
      services,
      range,
      cfg: { engine: cfg.engine, signals: cfg.signals },
      calibrate: { ...DEFAULT_CALIBRATE, targetFalseRate: target, days, deploys },
      workers,
      signal,
      onDetail: (i, line) => io.err(`${tag(i)} ${line}\n`),
      onLine: (line) => io.err(`calibrate: progress: ${line}\n`),
      onResult: (item) => {
        const key = serviceKey(item.service)
        if (item.kind === 'unread') {
          failed.push(`${key}: ${item.outcome.reason}`)
          io.err(`${tag(item.index)} ${key}: ${item.outcome.kind}: ${item.outcome.reason}\n`)
          return
        }
        const res = item.result
        byIndex[item.index] = res
        if (values.report !== undefined) reportByIndex[item.index] = reportEntry(res, item.history, cfg, opened.label, generatedAt)
        if (res.kind === 'too-little-data') io.err(`${tag(item.index)} ${key}: skipped: ${res.reason}\n`)
        else {
          if (res.enforce.kind === 'observe') io.err(`${tag(item.index)} ${key}: observe: ${res.enforce.reason}\n`)
          io.err(`${tag(item.index)} ${key}: done (read ${item.readMs.toFixed(0)} ms, backtests ${res.elapsedMs.toFixed(0)} ms)\n`)
        }
        if (values.json === true) io.out(`${JSON.stringify(res)}\n`)
      },
    })
    const results = byIndex.filter((r): r is CalibrationResult => r !== undefined)
    for (const e of reportByIndex) if (e !== undefined) report.push(e)
    io.err(`calibrate: ${fleet.calibrated} calibrated, ${fleet.unread} not read in ${(fleet.elapsedMs / 1000).toFixed(1)} s on ${fleet.workers === 0 ? 'this thread' : `${fleet.workers} worker threads`}: reads ${(fleet.readMs / 1000).toFixed(1)} s, backtests ${(fleet.backtestMs / 1000).toFixed(1)} s (summed), peak RSS ${fleet.peakRssMiB.toFixed(0)} MiB\n`)
    if (results.length === 0) {
      io.err(`pullback calibrate: no service could be calibrated${failed.length > 0 ? `:\n  ${failed.join('\n  ')}` : ''}\n`)
      return 1
    }
    let text = contractsYaml(results, { source: opened.label, days, targetFalseRate: target, generatedAt })
    if (failed.length > 0) text = `${failed.map((f) => `# not read: ${f}`).join('\n')}\n${text}`
    // what is written must load: a contract the engine would refuse is a bug here, not the user's problem
    parseConfig(parseYaml(text), values.out)
    writeFileSync(values.out, text)
    if (values.report !== undefined) writeFileSync(values.report, calibrationReport(report, { source: opened.label, days, targetFalseRate: target, generatedAt }))
    if (values.json !== true) io.out(resultTable(results))
    io.err(`calibrate: wrote ${values.out}${values.report !== undefined ? ` and ${values.report}` : ''}: ${results.length} services (${failed.length} not read), ${opened.readStats()}, ${((performance.now() - began) / 1000).toFixed(1)} s\n`)
    return 0
  },
}

const AUDIT_USAGE = `usage: pullback audit requests (--prometheus URL | --kafka HOST:PORT) [--days 30] [--step 60s] [--queries FILE]
                              [--end TIME] [--config FILE] [--max-mib 1024] [--json]

Per workload and container: the memory and CPU request against the p70 and p95 of observed usage
over the period (cAdvisor usage, kube-state-metrics requests; with --kafka, per service from pullback's
hourly summaries on kafka.topics.history: usage and the pods' requests as the receivers saw them). A request below the p70 makes the
resource-trajectory signal fire on routine deploys: such a service's resource signal belongs in
observe (pullback calibrate writes that) until the request is raised. Exit 0 when the audit ran
(findings are in the table, and counted on stderr), 1 when Prometheus cannot be read, 2 on usage errors.
`

/** `pullback audit requests ...` (dispatched from the audit command). */
export async function auditRequestsCommand(argv: string[], io: Io, signal: AbortSignal): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(AUDIT_USAGE)
    return 0
  }
  let values
  try {
    values = parseFlags(argv, {
      prometheus: { type: 'string' },
      kafka: { type: 'string' },
      config: { type: 'string', short: 'c' },
      'max-mib': { type: 'string' },
      days: { type: 'string' },
      step: { type: 'string' },
      queries: { type: 'string' },
      end: { type: 'string' },
      json: { type: 'boolean' },
    }).values
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${err.message}\n\n${AUDIT_USAGE}`)
    throw err
  }
  if ((values.prometheus === undefined) === (values.kafka === undefined)) throw new UsageError(`exactly one of --prometheus URL and --kafka HOST:PORT is required\n\n${AUDIT_USAGE}`)
  const { range, days } = rangeOf(values)
  io.err(`audit requests: ${days} days from ${new Date(range.startMs).toISOString()}\n`)
  let res: Awaited<ReturnType<typeof auditFromHistory>>
  if (values.prometheus !== undefined) {
    const source = new PrometheusHistorySource({ url: values.prometheus, templates: templates(values.queries) })
    res = await auditRequests(source.client, templates(values.queries), range, signal)
  } else {
    const opened = await openSource(values, loadConfig(values.config), [])
    res = await auditFromHistory(opened.source, range, signal)
    if (res.kind === 'ok') for (const f of res.failed ?? []) io.err(`audit requests: not read: ${f}\n`)
  }
  if (res.kind === 'failed') {
    io.err(`pullback audit requests: ${res.reason}\n`)
    return 1
  }
  if (values.json === true) for (const r of res.rows) io.out(`${JSON.stringify(r)}\n`)
  else io.out(auditTable(res.rows))
  const below = res.rows.filter((r) => r.below).length
  io.err(`audit requests: ${res.rows.length} workload containers x resources, ${below} below p70${res.keysDropped > 0 ? `, ${res.keysDropped} keys beyond the limit dropped` : ''}\n`)
  return 0
}
