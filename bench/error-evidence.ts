/**
 * The error-rate evidence of a service exporting metrics, report by report: how many export
 * intervals the sequential error test (src/engine/evidence.ts, judged against the level that
 * rules.ts errorLevel derives from the frozen baseline) needs before it reaches the second-witness
 * bound 1/sqrt(alpha) and the leader bound 1/alpha, for a step from a baseline error ratio to a
 * faulty one, at a given traffic and export interval. Expected counts, no noise: the typical run,
 * not an unlucky one (fewer errors than expected delay it; `quality.js --seeds N` has the noise).
 *
 * The engine's own functions with the default contract (config/pullback.yaml): the level, the
 * fixed-stake mixture, the adaptive stake fixed from the confirmation span (two reports, more when
 * they hold fewer than `minSamples`) and used one report interval later, as sequential.ts does for a
 * metric series. Beside it the same test if the baseline's rate were known exactly (the level at the
 * baseline plus half the contract's effect, no upper bound for the baseline's sample size): the
 * part of the wait that the size of a quiet service's baseline costs. The new version serves all
 * traffic from its first report on (a rolling update takes longer). Error evidence only: latency
 * (the usual leader) and the slices' "sustained" rule are not modelled. And the same test once the
 * old version's earlier history (`--history-s`, at the base rate) is pooled with the window, as the
 * engine does when the validation gate finds the window healthy (src/engine/history-pool.ts,
 * `baselineHistory`).
 *
 *   node dist/bench/error-evidence.js [--rps 0.5,1.5,5,20,100] [--interval 15,60] [--base-rate 0.005] [--rate 0.05] [--baseline-s 300] [--history-s 3600] [--base-errors N] [--max-reports 60] [--json]
 *
 * `--base-errors N`: the baseline holds N errors instead of its expected count (the base rate's
 * share of its requests): a quiet baseline's few errors are a matter of luck, and its upper bound,
 * hence the wait, moves a lot with them (Poisson: at 2.25 expected, 0 or 1 errors one time in three).
 * Prints one row per traffic and interval: the level, the reports (and seconds after the new
 * version's first export: a metric series is judged once the next report completes it) until each
 * bound, with the baseline estimated and known, and until the test against the baseline's counts
 * (src/engine/composite.ts, what a corroborating error witness may count) reaches the second-witness
 * bound. `--json` adds one JSON line.
 */
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config/load.js'
import { contractFor } from '../src/engine/config.js'
import type { Contract } from '../src/engine/config.js'
import { compositeEvidence, errorGrid, feedGrid, newGridEvidence } from '../src/engine/composite.js'
import { eValue, feed, newEvidence, rateUpperBound } from '../src/engine/evidence.js'
import { BASELINE_DELTA, corroborationBound, errorLevel, errorThreshold } from '../src/engine/rules.js'
import type { BaselineNumbers } from '../src/engine/rules.js'
import { exitOnHelp } from './args.js'

export interface Row {
  rps: number
  intervalS: number
  /** the level the test must show the version above, from the estimated baseline */
  level: number
  /** the same with the baseline's rate known */
  knownLevel: number
  /** the same with `historyS` of earlier history pooled with the window (rules.ts errorLevel) */
  pooledLevel: number
  /** reports until the evidence reaches 1/sqrt(alpha) and 1/alpha; undefined: not within maxReports */
  estimated: { witness?: number; leader?: number }
  known: { witness?: number; leader?: number }
  pooled: { witness?: number; leader?: number }
  /**
   * reports until the test against the baseline's counts (composite.ts: a corroborating witness
   * only) reaches 1/sqrt(alpha), window and with history; null where the engine builds no such test
   * (a baseline without requests; until session 37 also where the plug-in bound was tight),
   * undefined: not within maxReports
   */
  counts: { window?: number | null; pooled?: number | null }
}

/**
 * Reports until the error evidence reaches each bound, the new version sending `perReport`
 * requests with a share `rate` of errors per report, judged against `level`.
 */
export function reportsToBounds(c: Contract, level: number, perReport: number, rate: number, maxReports: number): { witness?: number; leader?: number } {
  const e = newEvidence()
  // sequential.ts: the confirmation span is at least two reports and holds minSamples; a stake fixed
  // from it at the end of report i is used from report i + 2 on (one report interval later)
  const spanReports = Math.max(2, Math.ceil(c.minSamples / perReport))
  const fixed: number[] = []
  const out: { witness?: number; leader?: number } = {}
  for (let i = 1; i <= maxReports; i++) {
    e.nextLambda = fixed[i - 3] ?? 0
    const span = Math.min(i, spanReports) * perReport
    feed(e, perReport, perReport * rate, level, span, span * rate)
    fixed.push(e.nextLambda)
    const v = eValue(e)
    if (out.witness === undefined && v >= corroborationBound(c)) out.witness = i
    if (v >= 1 / c.alpha) {
      out.leader = i
      break
    }
  }
  return out
}

/**
 * Reports until the test against the baseline's counts (src/engine/composite.ts) reaches the
 * corroboration bound, with the same stake schedule as reportsToBounds (span counts fixed at the
 * end of report i, used from report i + 2 on).
 */
export function reportsToCountsWitness(c: Contract, base: BaselineNumbers, perReport: number, rate: number, maxReports: number): number | null | undefined {
  const grid = errorGrid(base)
  if (grid === undefined) return null
  const g = newGridEvidence()
  const spanReports = Math.max(2, Math.ceil(c.minSamples / perReport))
  for (let i = 1; i <= maxReports; i++) {
    const stakeSpan = i >= 3 ? Math.min(i - 2, spanReports) * perReport : 0
    g.stakeN = stakeSpan
    g.stakeBad = stakeSpan * rate
    feedGrid(g, grid, perReport, perReport * rate)
    if (compositeEvidence(g, grid) >= corroborationBound(c)) return i
  }
  return undefined
}

export function rows(c: Contract, opts: { rps: number[]; intervals: number[]; baseRate: number; rate: number; baselineS: number; historyS: number; maxReports: number; baseErrors?: number }): Row[] {
  const out: Row[] = []
  for (const rps of opts.rps) {
    const requests = rps * opts.baselineS
    const base: BaselineNumbers = { requests, errors: opts.baseErrors ?? requests * opts.baseRate, latencyUs: NaN, latencyCount: 0, latencyAbove: 0, shift: [], resourceSlope: {} }
    const level = errorLevel(c, base)
    const older = rps * opts.historyS
    const withHistory: BaselineNumbers = older > 0 ? { ...base, pooled: { fromMs: 0, errors: { events: base.errors + older * opts.baseRate, samples: requests + older }, latency: undefined, shift: [] } } : base
    const pooledLevel = errorLevel(c, withHistory)
    const knownLevel = opts.baseRate + (errorThreshold(c, opts.baseRate) - opts.baseRate) / 2
    for (const intervalS of opts.intervals) {
      const perReport = rps * intervalS
      out.push({
        rps,
        intervalS,
        level,
        knownLevel,
        pooledLevel,
        estimated: reportsToBounds(c, level, perReport, opts.rate, opts.maxReports),
        known: reportsToBounds(c, knownLevel, perReport, opts.rate, opts.maxReports),
        pooled: reportsToBounds(c, pooledLevel, perReport, opts.rate, opts.maxReports),
        counts: { window: reportsToCountsWitness(c, base, perReport, opts.rate, opts.maxReports), pooled: reportsToCountsWitness(c, withHistory, perReport, opts.rate, opts.maxReports) },
      })
    }
  }
  return out
}

function main(): void {
  const { values } = parseArgs({
    options: {
      rps: { type: 'string', default: '0.5,1.5,5,20,100' },
      interval: { type: 'string', default: '15,60' },
      'base-rate': { type: 'string', default: '0.005' },
      rate: { type: 'string', default: '0.05' },
      'baseline-s': { type: 'string', default: '300' },
      'history-s': { type: 'string', default: '3600' },
      'max-reports': { type: 'string', default: '60' },
      'base-errors': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  const list = (name: string, v: string): number[] => {
    const xs = v.split(',').map(Number)
    if (xs.length === 0 || xs.some((x) => !(x > 0) || !Number.isFinite(x))) throw new Error(`--${name} must be a comma-separated list of positive numbers, got ${v}`)
    return xs
  }
  const one = (name: string, v: string, max = Infinity): number => {
    const x = Number(v)
    if (!(x > 0 && x < max)) throw new Error(`--${name} must be a number in (0, ${max}), got ${v}`)
    return x
  }
  const opts = {
    rps: list('rps', values.rps),
    intervals: list('interval', values.interval),
    baseRate: one('base-rate', values['base-rate'], 1),
    rate: one('rate', values.rate, 1),
    baselineS: one('baseline-s', values['baseline-s']),
    historyS: historyS(values['history-s']),
    maxReports: reports(values['max-reports']),
    ...(values['base-errors'] !== undefined ? { baseErrors: baseErrors(values['base-errors']) } : {}),
  }
  function reports(v: string): number {
    const x = Number(v)
    if (!Number.isInteger(x) || x < 1 || x > 10_000) throw new Error(`--max-reports must be an integer in 1..10000, got ${v}`)
    return x
  }
  function historyS(v: string): number {
    const x = Number(v)
    if (!(x >= 0) || !Number.isFinite(x)) throw new Error(`--history-s must be a number of seconds >= 0, got ${v}`)
    return x
  }
  function baseErrors(v: string): number {
    const x = Number(v)
    if (!(x >= 0) || !Number.isFinite(x)) throw new Error(`--base-errors must be a number >= 0, got ${v}`)
    return x
  }
  const c = contractFor(loadConfig(undefined).engine, 'bench/error-evidence')
  const rs = rows(c, opts)
  const at = (n: number | null | undefined, intervalS: number) => (n === null ? '- (not built)' : n === undefined ? `> ${opts.maxReports}` : `${n} (${n * intervalS} s)`)
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`
  console.log(
    `error evidence of a ${pct(opts.rate)} error ratio against a ${pct(opts.baseRate)} baseline of ${opts.baselineS} s (expected counts; default contract: alpha ${c.alpha}, ` +
      `second witness at ${corroborationBound(c).toFixed(0)}, leader at ${1 / c.alpha}); with history: ${opts.historyS} s before the window pooled with it; reports until each bound (seconds after the first export)`,
  )
  const head = ['req/s', 'interval', 'level (window / with history / known)', 'witness, window', 'leader, window', 'witness, with history', 'leader, with history', 'witness, known', 'leader, known', 'witness on counts, window', 'witness on counts, with history']
  const body = rs.map((r) => [
    String(r.rps),
    `${r.intervalS} s`,
    `${pct(r.level)} / ${pct(r.pooledLevel)} / ${pct(r.knownLevel)}`,
    at(r.estimated.witness, r.intervalS),
    at(r.estimated.leader, r.intervalS),
    at(r.pooled.witness, r.intervalS),
    at(r.pooled.leader, r.intervalS),
    at(r.known.witness, r.intervalS),
    at(r.known.leader, r.intervalS),
    at(r.counts.window, r.intervalS),
    at(r.counts.pooled, r.intervalS),
  ])
  const table = [head, ...body]
  const w = head.map((_, i) => Math.max(...table.map((row) => (row[i] as string).length)))
  for (const row of table) console.log(row.map((cell, i) => cell.padEnd(w[i] as number)).join('  ').trimEnd())
  for (const rps of opts.rps) {
    const n = rps * opts.baselineS
    const k = opts.baseErrors ?? n * opts.baseRate
    console.log(`baseline at ${rps} req/s: ${n.toFixed(0)} requests, ${k.toFixed(1)} errors, upper bound ${pct(rateUpperBound(k, n, BASELINE_DELTA))}`)
  }
  if (values.json) console.log(JSON.stringify({ bench: 'error-evidence', ...opts, rows: rs }))
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  exitOnHelp(import.meta.url)
  try {
    main()
  } catch (e) {
    process.stderr.write(`error-evidence: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exitCode = 2
  }
}
