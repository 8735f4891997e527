/**
 * Calibration benchmark. Build with `npm run build`, run with
 * `node dist/bench/calibrate.js [--services N] [--days D] [--deploys K] [--runs R] [--json]`.
 *
 * Each run is a child process (fresh heap, its own peak RSS) that calibrates N services (default 20)
 * x D days (default 30) of synthetic 60 s history (test/calibrate/synthetic.ts: diurnal traffic of
 * 1-40 req/s, noisy stretches on every third service) from an in-memory history source, service by
 * service as `pullback calibrate` does (`calibrateService` with K pseudo-deployments, default 60).
 * Generating the history is timed apart from calibrating it. Prints min / median / max over the runs
 * (default 3) of: calibration time per service, the whole run, and the peak RSS and heap; and the
 * time 1,000 services would take at the median per-service time on one core (issue 14's target:
 * 1,000 services x 30 days in under 10 minutes on this 2-core machine; the Prometheus read is not in
 * this figure).
 *
 * `--history`: instead, the compact history of src/history: the bench's service mix is fed step by
 * step into the accumulator, each hour encoded as written to pullback.history; prints the bytes per
 * service-day (min / median / max over the services, and the mix's total for 1,000 services x 30
 * days), and the time to encode a service-day and to rebuild 30 days of one service's history from
 * its summaries (decode + historyFromSummaries), min / median / max over --runs.
 *
 * `--prometheus [--services 8] [--days 30] [--workers 2] [--runs 1] [--full-latency]`: the whole path
 * from a REAL Prometheus (backfilled by promtool; see promBench below). `--data-dir DIR`: the
 * backfill is kept in DIR (test/calibrate/backfill.ts: 54 h blocks, DIR/manifest.json fixing its
 * services, days, seed and end) and reused by the next run with the same spec; it is written by
 * bench/tsdb-ingest (Go, Prometheus 2.42's block writer; `--ingest promtool` for promtool on text);
 * `--backfill-only` stops after it. 1,000 services: see README.md (bench table).
 * `--synthetic-prometheus [--services 1000] [--days 30] [--workers 2]`: the same path end to end from
 * a synthetic Prometheus-compatible server (bench/promsim.ts, its own process), for fleets that do
 * not fit a backfill (see synthBench below).
 * `--held-out [--days 21] [--cal-days 14] [--held-deploys 100] [--noisy-hours 0.04]`: issue 14's
 * held-out target on the scenario library's traffic models, PASS/FAIL (see heldOutBench below).
 */
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { benchService } from './promsim.js'
import { fileURLToPath } from 'node:url'
import { history, type SynthService } from '../test/calibrate/synthetic.js'
import { calibrateService, DEFAULT_CALIBRATE } from '../src/calibrate/search.js'
import { parseConfig } from '../src/config/load.js'
import { HistoryAccumulator } from '../src/history/accumulator.js'
import { decodeSummary, encodeSummary, type HourSummary } from '../src/history/codec.js'
import { historyFromSummaries } from '../src/calibrate/kafka.js'
import { feedSynthetic } from '../test/history/feed-synthetic.js'
import { findBinary, servePrometheus, startPrometheus } from '../test/calibrate/prometheus-fixture.js'
import { BLOCK_54H_MS, duBytes, ensureBackfill, readManifest } from '../test/calibrate/backfill.js'
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PrometheusHistorySource } from '../src/calibrate/prometheus.js'
import { calibrateFleet } from '../src/calibrate/fleet.js'
import { deployTimes, deployWindows, pseudoDeploy } from '../src/calibrate/backtest.js'
import type { CalibrationResult } from '../src/calibrate/search.js'
import { replayLines } from '../src/cli/commands/replay.js'
import { DEFAULT_SEED, DEFAULT_START_MS as DEFAULT_START, recordScenario, SCENARIOS, type Scenario } from '../src/sim/index.js'
import type { PullbackConfig } from '../src/config/schema.js'
import type { FleetSpec, ServiceSpec } from '../src/sim/model.js'
import { DEFAULT_SIM_NOISE, simHistory, sliceHistory } from '../test/calibrate/sim-history.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return dflt
  const v = Number(process.argv[i + 1])
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} expects a positive number`)
  return v
}

interface ChildResult {
  services: number
  generateMs: number
  calibrateMs: number
  perServiceMs: number[]
  peakRssMiB: number
  peakHeapMiB: number
  falseRollbacksBefore: number
  falseRollbacksAfter: number
  deploys: number
}

function historyBench(): void {
  const n = arg('services', 20)
  const runs = arg('runs', 3)
  const end = Date.UTC(2026, 10, 1)
  const perDay: number[] = []
  const encodeMs: number[] = []
  const rebuildMs: number[] = []
  for (let k = 0; k < n; k++) {
    const acc = new HistoryAccumulator({ stepMs: 60_000, graceMs: 120_000, maxServices: 10, maxPods: 64 })
    feedSynthetic(acc, benchService(k), end - 86_400_000 + 60_000, end, 60_000, k + 1)
    const sums = acc.drain(end + 3_600_000, true)
    let bytes = 0
    for (const x of sums) bytes += encodeSummary(x).length
    perDay.push(bytes)
  }
  const acc = new HistoryAccumulator({ stepMs: 60_000, graceMs: 120_000, maxServices: 10, maxPods: 64 })
  feedSynthetic(acc, benchService(1), end - 30 * 86_400_000 + 60_000, end, 60_000, 2)
  const month: HourSummary[] = acc.drain(end + 3_600_000, true)
  for (let r = 0; r < runs; r++) {
    let t0 = performance.now()
    const bufs = month.map((x) => encodeSummary(x))
    encodeMs.push((performance.now() - t0) / 30)
    t0 = performance.now()
    const decoded = bufs.map((b) => {
      const d = decodeSummary(b)
      if (d.kind !== 'ok') throw new Error(d.reason)
      return d.summary
    })
    historyFromSummaries({ namespace: 'bench', name: 'svc-1' }, decoded, { startMs: end - 30 * 86_400_000, endMs: end, stepMs: 60_000 })
    rebuildMs.push(performance.now() - t0)
  }
  const sorted = [...perDay].sort((a, b) => a - b)
  const total = perDay.reduce((a, b) => a + b, 0)
  process.stdout.write(`history (src/history): ${n} services (1-40 req/s, 3 pods, 60 s steps), one day each; encode/rebuild over ${runs} runs\n`)
  process.stdout.write(`  bytes per service-day, min / median / max  ${stats(sorted)}  (mean ${(total / n).toFixed(0)})\n`)
  process.stdout.write(`  1,000 services x 30 days at the mean       ${((total / n) * 30_000 / 2 ** 20).toFixed(0)} MiB on the topic\n`)
  const ms = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b)
    return `${(v[0] as number).toFixed(2)} / ${(v[Math.floor(v.length / 2)] as number).toFixed(2)} / ${(v[v.length - 1] as number).toFixed(2)}`
  }
  process.stdout.write(`  encode one service-day, ms                 ${ms(encodeMs)}\n`)
  process.stdout.write(`  rebuild 30 days of one service, ms         ${ms(rebuildMs)}\n`)
}

function child(): void {
  const n = arg('services', 20)
  const days = arg('days', 30)
  const deploys = arg('deploys', DEFAULT_CALIBRATE.deploys)
  const cfg = parseConfig({})
  const bc = { engine: cfg.engine, signals: cfg.signals }
  const end = Date.UTC(2026, 10, 1)
  const res: ChildResult = { services: n, generateMs: 0, calibrateMs: 0, perServiceMs: [], peakRssMiB: 0, peakHeapMiB: 0, falseRollbacksBefore: 0, falseRollbacksAfter: 0, deploys: 0 }
  for (let k = 0; k < n; k++) {
    const s: SynthService = benchService(k)
    let t0 = performance.now()
    const h = history(s, end - days * 86_400_000, end, 60_000, k + 1)
    res.generateMs += performance.now() - t0
    t0 = performance.now()
    const r = calibrateService(h, bc, { ...DEFAULT_CALIBRATE, days, deploys })
    const ms = performance.now() - t0
    res.calibrateMs += ms
    res.perServiceMs.push(ms)
    if (r.kind !== 'too-little-data') {
      res.falseRollbacksBefore += r.current.falseRollbacks
      res.falseRollbacksAfter += r.heldOut.falseRollbacks
      res.deploys += r.current.deploys
    }
    res.peakHeapMiB = Math.max(res.peakHeapMiB, process.memoryUsage().heapUsed / 2 ** 20)
  }
  res.peakRssMiB = process.resourceUsage().maxRSS / 1024
  process.stdout.write(`${JSON.stringify(res)}\n`)
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b)
  const med = s[Math.floor(s.length / 2)] as number
  return `${(s[0] as number).toFixed(0)} / ${med.toFixed(0)} / ${(s[s.length - 1] as number).toFixed(0)}`
}

function parent(): void {
  const runs = arg('runs', 3)
  const passOn = process.argv.slice(2).filter((a) => a !== '--json')
  const results: ChildResult[] = []
  for (let r = 0; r < runs; r++) {
    const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', ...passOn], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    if (out.status !== 0) throw new Error(`run ${r} failed: ${out.stderr}`)
    results.push(JSON.parse(out.stdout.trim().split('\n').pop() as string) as ChildResult)
    process.stderr.write(`calibrate bench: run ${r + 1}/${runs} done\n`)
  }
  const per = results.map((x) => x.calibrateMs / x.services)
  const medPer = [...per].sort((a, b) => a - b)[Math.floor(per.length / 2)] as number
  const r0 = results[0] as ChildResult
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ runs: results, perServiceMs: per, thousandServicesMin: (medPer * 1000) / 60_000 })}\n`)
    return
  }
  const rows = [
    ['figure', 'min / median / max'],
    ['calibration per service, ms', stats(per)],
    ['slowest service, ms', stats(results.map((x) => Math.max(...x.perServiceMs)))],
    ['whole run (calibration), s', stats(results.map((x) => x.calibrateMs / 1000))],
    ['history generation per service, ms (not calibration)', stats(results.map((x) => x.generateMs / x.services))],
    ['peak RSS, MiB', stats(results.map((x) => x.peakRssMiB))],
    ['peak heap, MiB', stats(results.map((x) => x.peakHeapMiB))],
  ]
  const w = Math.max(...rows.map((r) => (r[0] as string).length))
  process.stdout.write(`calibration: ${r0.services} services x ${arg('days', 30)} days at 60 s, ${arg('deploys', DEFAULT_CALIBRATE.deploys)} pseudo-deploys each, ${runs} runs\n`)
  for (const r of rows) process.stdout.write(`  ${(r[0] as string).padEnd(w)}  ${r[1]}\n`)
  process.stdout.write(`  false rollbacks (run 1): current contract ${r0.falseRollbacksBefore} in ${r0.deploys} calibration deploys; chosen, held out: ${r0.falseRollbacksAfter}\n`)
  // the backtests alone; pullback calibrate runs them on 2 worker threads (src/calibrate/fleet.ts) while reading
  const minutes = (medPer * 1000) / 60_000
  process.stdout.write(`  1,000 services at the median per-service time, backtests only: ${minutes.toFixed(1)} min on one core, ${(minutes / 2).toFixed(1)} min on two (the Prometheus read: --prometheus)\n`)
}

/**
 * `--held-out`: issue 14's held-out target. Every service of the scenario library's benign
 * scenarios (expected verdict none), and the service under test of every bad one, gets `--days`
 * (default 21) of history from its traffic model (test/calibrate/sim-history.ts: the sim's own
 * traffic, latency and error model with its scenario's spikes, plus routine noisy stretches). It is
 * calibrated on the first `--cal-days` (default 14) and the calibrated contract is then backtested on
 * `--held-deploys` (default 100) pseudo-deploys per service in the remaining days (`--noisy-hours P`:
 * the chance per hour of a noisy stretch, default 0.04), which calibration
 * never saw: every rollback there is a false one. Target: at most 1 % of them. Then every bad scenario
 * (expected verdict rollback...) is recorded and replayed (`replayLines`, as `pullback replay`) with
 * its service's calibrated contract in engine.services: each must still be rolled back.
 */
async function heldOutBench(): Promise<void> {
  const days = arg('days', 21)
  const calDays = arg('cal-days', 14)
  const heldDeploys = arg('held-deploys', 100)
  const seed = arg('seed', DEFAULT_SEED)
  if (!(calDays < days)) throw new Error('--cal-days must be below --days')
  // routine noise of the history (test/calibrate/sim-history.ts); --noisy-hours 0.3 for a harsher month
  const noise = { noisyHours: process.argv.includes('--noisy-hours') ? Number(process.argv[process.argv.indexOf('--noisy-hours') + 1]) : DEFAULT_SIM_NOISE.noisyHours, spikesPerDay: DEFAULT_SIM_NOISE.spikesPerDay }
  const base = parseConfig({})
  const bc = { engine: base.engine, signals: base.signals }
  const end = Date.UTC(2026, 10, 1)
  const start = end - days * 86_400_000
  const calEnd = start + calDays * 86_400_000
  const isBad = (s: Scenario) => s.expected.startsWith('rollback')
  // one calibration per distinct traffic model (spec without its version, and the scenario's traffic)
  const models = new Map<string, { svc: ServiceSpec; traffic: FleetSpec['traffic']; key: string; benign: boolean; from: string }>()
  for (const sc of SCENARIOS) {
    const spec = sc.build(seed)
    const wanted = sc.expected === 'none' ? spec.services : isBad(sc) ? spec.services.filter((x) => x.name === sc.service) : []
    for (const svc of wanted) {
      const id = JSON.stringify([{ ...svc, version: '' }, spec.traffic.dailyAmplitude, spec.traffic.spikes.map((x) => [x.factor, x.untilS - x.fromS, x.rampS, x.services])])
      const m = models.get(id)
      if (m === undefined) models.set(id, { svc, traffic: spec.traffic, key: `${svc.namespace}/${svc.name}`, benign: sc.expected === 'none', from: sc.name })
      else if (sc.expected === 'none') m.benign = true
    }
  }
  process.stderr.write(`calibrate bench: held out: ${models.size} traffic models, ${days} days each (calibration ${calDays}, held out ${days - calDays})\n`)
  const contracts = new Map<string, CalibrationResult>()
  let deploys = 0
  let falseRollbacks = 0
  let unjudged = 0
  const rows: string[] = []
  let k = 0
  const t0 = performance.now()
  for (const [id, m] of models) {
    k += 1
    const h = simHistory(m.svc, m.traffic, start, end, 60_000, seed * 1000 + k, noise)
    const cal = sliceHistory(h, start, calEnd)
    const res = calibrateService(cal, bc, { ...DEFAULT_CALIBRATE, days: calDays })
    contracts.set(id, res)
    if (res.kind === 'too-little-data') throw new Error(`${m.key}: ${res.reason}`)
    const held = sliceHistory(h, calEnd - bc.signals.retention, end)
    const cfg = { engine: { ...bc.engine, services: { ...bc.engine.services, [res.service]: res.contract } }, signals: bc.signals }
    let fr = 0
    let n = 0
    // a benign model is judged on its held-out days; a bad scenario's service only gets its contract
    if (m.benign) {
      for (const at of deployTimes(held, cfg, heldDeploys)) {
        if (at < calEnd) continue
        const o = pseudoDeploy(held, at, cfg)
        n += 1
        if (o.kind === 'rollback') fr += 1
        else if (o.kind === 'none' && o.judgedTicks === 0) unjudged += 1
      }
      deploys += n
      falseRollbacks += fr
    }
    const ov = res.contract.signals
    rows.push(`  ${m.key.padEnd(20)} ${m.from.padEnd(34)} ${String(m.svc.rps).padStart(4)} req/s  ${res.enforce.kind.padEnd(7)} err ${ov.errorRate.minDelta}/${ov.errorRate.relativeFactor} lat ${ov.latency.multiplier}/${ov.latency.minIncreaseMs} win ${res.contract.window / 1000}s min ${res.contract.minSamples}  cal ${res.chosen.falseRollbacks}/${res.chosen.deploys}  held ${m.benign ? `${fr}/${n}` : '(bad only)'}`)
    process.stderr.write(`calibrate bench: [${k}/${models.size}] ${m.key} (${m.from}) calibrated; held out ${fr}/${n} false rollbacks\n`)
  }
  const calS = (performance.now() - t0) / 1000
  // every bad scenario replayed with its service's calibrated contract
  const bad: string[] = []
  let badCaught = 0
  let badTotal = 0
  for (const sc of SCENARIOS.filter(isBad)) {
    const spec = sc.build(seed)
    const svc = spec.services.find((x) => x.name === sc.service) as ServiceSpec
    const id = JSON.stringify([{ ...svc, version: '' }, spec.traffic.dailyAmplitude, spec.traffic.spikes.map((x) => [x.factor, x.untilS - x.fromS, x.rampS, x.services])])
    const res = contracts.get(id)
    if (res === undefined || res.kind === 'too-little-data') throw new Error(`${sc.name}: no calibrated contract`)
    const cfg: PullbackConfig = { ...base, engine: { ...base.engine, services: { ...base.engine.services, [res.service]: res.contract } } }
    const lines: string[] = []
    await recordScenario(sc, { seed, onLine: (l) => lines.push(l) })
    const sink = { out: () => undefined, err: () => undefined }
    const out = await replayLines(lines, cfg, sink, { actuator: sc.expected.includes('+') }, sc.name)
    const rb = out.verdicts.find((v) => v.service === sc.service && v.namespace === sc.namespace && v.kind === 'rollback' && !v.dryRun)
    const dflt = await replayLines(lines, base, sink, { actuator: sc.expected.includes('+') }, sc.name)
    const rbDefault = dflt.verdicts.some((v) => v.service === sc.service && v.namespace === sc.namespace && v.kind === 'rollback' && !v.dryRun)
    badTotal += 1
    if (rb !== undefined) badCaught += 1
    bad.push(`  ${sc.name.padEnd(34)} ${res.service.padEnd(16)} calibrated: ${rb !== undefined ? `rollback after ${((rb.decidedAt - (DEFAULT_START + sc.deployAtS * 1000)) / 1000).toFixed(0)} s` : 'NOT rolled back'}   defaults: ${rbDefault ? 'rollback' : 'none'}`)
  }
  const rate = deploys > 0 ? falseRollbacks / deploys : Number.NaN
  const passFalse = rate <= 0.01
  const passBad = badCaught === badTotal
  process.stdout.write(`held-out calibration (issue 14): ${models.size} traffic models of the scenario library, ${days} days at 60 s, calibrated on the first ${calDays}, ${heldDeploys} pseudo-deploys per benign model in the last ${days - calDays}; noisy stretches start in ${(noise.noisyHours * 100).toFixed(0)} % of hours, ${noise.spikesPerDay} traffic spikes a day (seed ${seed}; ${calS.toFixed(0)} s)\n`)
  for (const r of rows) process.stdout.write(`${r}\n`)
  process.stdout.write(`  false rollbacks on held-out days: ${falseRollbacks} / ${deploys} pseudo-deploys = ${(rate * 100).toFixed(2)} % (${unjudged} never judged)  target <= 1 %: ${passFalse ? 'PASS' : 'FAIL'}\n`)
  process.stdout.write(`bad scenarios replayed under the calibrated contracts:\n`)
  for (const b of bad) process.stdout.write(`${b}\n`)
  process.stdout.write(`  bad scenarios rolled back: ${badCaught} / ${badTotal}  target all: ${passBad ? 'PASS' : 'FAIL'}\n`)
  process.stdout.write(`held-out target: ${passFalse && passBad ? 'PASS' : 'FAIL'}\n`)
}

/** CPU seconds (user + system) of a process so far, from /proc (Linux); NaN elsewhere */
function procCpuS(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(rest[11]) + Number(rest[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** the block directories (ULIDs) of a TSDB dir, joined: equal before and after means nothing was compacted */
function blockDirs(data: string): string {
  return readdirSync(data)
    .filter((d) => /^[0-9A-Z]{26}$/.test(d))
    .sort()
    .join(',')
}

/** peak resident set of a process (VmHWM), MiB; NaN when unreadable */
function procPeakRssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? Number.NaN : Number(m[1]) / 1024
  } catch {
    return Number.NaN
  }
}

/** prometheus_tsdb_compactions_total from the server's own /metrics; NaN when unreadable */
async function promCompactions(url: string): Promise<number> {
  // twice: a kept-alive connection may have been closed by the server during a long run
  for (let i = 0; i < 2; i++) {
    try {
      const t = await (await fetch(`${url}/metrics`)).text()
      const m = /^prometheus_tsdb_compactions_total (\S+)$/m.exec(t)
      return m === null ? Number.NaN : Number(m[1])
    } catch {
      // retried once
    }
  }
  return Number.NaN
}

interface PromRunResult {
  services: number
  elapsedMs: number
  readMs: number
  backtestMs: number
  nodeCpuS: number
  peakRssMiB: number
  workers: number
  calibrated: number
}

/** one calibration run of the whole backfilled fleet, as `pullback calibrate --prometheus` runs it (a child: its own peak RSS) */
async function promChild(): Promise<void> {
  const i = process.argv.indexOf('--prom-child')
  const url = process.argv[i + 1] as string
  const n = arg('services', 8)
  const days = arg('days', 30)
  const end = arg('end', 1)
  const workers = process.argv.includes('--workers') ? Number(process.argv[process.argv.indexOf('--workers') + 1]) : 2
  const cfg = parseConfig({})
  const bc = { engine: cfg.engine, signals: cfg.signals }
  // as the CLI without --report: latency buckets only around the pseudo-deploys (--full-latency: every step)
  const full = process.argv.includes('--full-latency')
  const source = new PrometheusHistorySource({ url, latencyWindows: full ? undefined : (svc, span, range) => deployWindows(svc, span.firstMs, span.lastMs, range.startMs, range.stepMs, bc, DEFAULT_CALIBRATE.deploys) })
  const services = Array.from({ length: n }, (_, k) => ({ namespace: 'bench', name: `svc-${k}` }))
  const c0 = process.cpuUsage()
  const st = await calibrateFleet({
    source,
    services,
    range: { startMs: end - days * 86_400_000, endMs: end, stepMs: 60_000 },
    cfg: { engine: cfg.engine, signals: cfg.signals },
    calibrate: { ...DEFAULT_CALIBRATE, days },
    workers,
    onLine: (l) => process.stderr.write(`calibrate bench: ${l}\n`),
    progressEveryMs: 15_000,
    onResult: () => undefined,
  })
  const c = process.cpuUsage(c0)
  const res: PromRunResult = { services: n, elapsedMs: st.elapsedMs, readMs: st.readMs, backtestMs: st.backtestMs, nodeCpuS: (c.user + c.system) / 1e6, peakRssMiB: process.resourceUsage().maxRSS / 1024, workers: st.workers, calibrated: st.calibrated }
  process.stdout.write(`${JSON.stringify(res)}\n`)
}

/**
 * The block writer for `--data-dir` backfills: bench/tsdb-ingest (Go, Prometheus 2.42's tsdb block
 * writer fed float64s; promtool's text parse costs ~2.8 CPU-us per sample, 76 CPU-min for 1,000
 * services x 30 days) built with `go build` from the repository (run from its root) into DIR/bin;
 * `--ingest promtool` (or no Go toolchain) uses promtool on OpenMetrics text instead.
 */
function tsdbIngest(dataDir: string): string | undefined {
  if (process.argv.includes('--ingest') && process.argv[process.argv.indexOf('--ingest') + 1] === 'promtool') return undefined
  const go = findBinary('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined)
  const src = join(process.cwd(), 'bench', 'tsdb-ingest')
  if (go === undefined || !existsSync(join(src, 'main.go'))) {
    process.stderr.write(`calibrate bench: no Go toolchain or no ${src}: backfilling with promtool (slow: ~2.8 CPU-us per sample)\n`)
    return undefined
  }
  const bin = join(dataDir, 'bin', 'tsdb-ingest')
  mkdirSync(join(dataDir, 'bin'), { recursive: true })
  const b = spawnSync(go, ['build', '-o', bin, '.'], { cwd: src, encoding: 'utf8' })
  if (b.status !== 0) throw new Error(`go build bench/tsdb-ingest failed: ${b.stderr}`)
  return bin
}

/**
 * `--prometheus`: N services x D days backfilled into a real Prometheus (test/calibrate/prometheus-fixture.ts,
 * promtool), then calibrated from it `--runs` times (each a child process: calibrateFleet with `--workers`
 * backtest threads reading ahead, as the CLI). Prints the wall time per service, the CPU seconds of
 * the calibrating process and of Prometheus per service, the peak RSS, and the 1,000-service projections.
 */
async function promBench(): Promise<void> {
  const n = arg('services', 8)
  const days = arg('days', 30)
  const runs = arg('runs', 1)
  const workers = process.argv.includes('--workers') ? Number(process.argv[process.argv.indexOf('--workers') + 1]) : 2
  const DAY = 86_400_000
  const dataDir = process.argv.includes('--data-dir') ? (process.argv[process.argv.indexOf('--data-dir') + 1] as string) : undefined
  // a persistent backfill fixes `end` (its manifest); a new one ends a little before now
  const prior = dataDir !== undefined ? readManifest(dataDir) : undefined
  const end = process.argv.includes('--end') ? arg('end', 1) : (prior?.endMs ?? Math.floor((Date.now() - 30 * 60_000) / 3_600_000) * 3_600_000)
  const svcs = Array.from({ length: n }, (_, k) => ({ ...benchService(k), fromMs: end - days * DAY }))
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  let prom: { url: string; pid: number | undefined; backfillMs: number; stop(): Promise<void> }
  let backfillNote = ''
  if (dataDir !== undefined) {
    const promtool = findBinary('promtool')
    if (promtool === undefined) throw new Error('promtool not found: install the Debian package `prometheus`')
    const b0 = performance.now()
    const ingestBin = prior?.complete === true ? undefined : tsdbIngest(dataDir)
    const bf = await ensureBackfill(dataDir, { generator: 'bench/promsim.ts benchService, test/calibrate/synthetic.ts', services: svcs, days, seed: 1, endMs: end, stepMs: 60_000, blockMs: BLOCK_54H_MS }, promtool, (l) => process.stderr.write(`calibrate bench: ${l}\n`), ingestBin)
    const tsdb = duBytes(bf.data)
    const m = bf.manifest
    backfillNote = `${bf.reused ? 'reused' : 'built'} backfill ${dataDir} (end ${m.end}, ${m.blocks} blocks of ${m.blockHours} h, TSDB ${(tsdb / 2 ** 30).toFixed(2)} GiB; backfill took ${((m.backfillS ?? 0) / 60).toFixed(1)} min${m.ingest === 'tsdb-ingest' ? `, streamed to bench/tsdb-ingest: ${((m.textBytes ?? 0) / 2 ** 30).toFixed(1)} GiB of float64 series through a pipe, no text on disk` : m.peakTextBytes !== undefined ? `, by promtool: peak OpenMetrics text on disk ${(m.peakTextBytes / 2 ** 30).toFixed(1)} GiB of ${((m.textBytes ?? 0) / 2 ** 30).toFixed(0)} GiB written` : ''})`
    process.stderr.write(`calibrate bench: ${backfillNote}; load ${load()}\n`)
    if (process.argv.includes('--backfill-only')) {
      process.stdout.write(`${backfillNote}\n`)
      return
    }
    prom = { ...(await servePrometheus(bf.data)), backfillMs: bf.reused ? 0 : performance.now() - b0 }
  } else {
    process.stderr.write(`calibrate bench: backfilling ${n} services x ${days} days into a real Prometheus (promtool)...\n`)
    prom = await startPrometheus(svcs, end, 60_000, 1)
    backfillNote = `backfilled in ${(prom.backfillMs / 1000).toFixed(0)} s`
  }
  try {
    // let the server compact the backfilled blocks before timing reads (as a long-running server has)
    await new Promise((r) => setTimeout(r, arg('settle-s', 20) * 1000))
    // what the server burns on its own (compacting the backfilled blocks), to tell it from the queries
    const b0 = procCpuS(prom.pid)
    await new Promise((r) => setTimeout(r, 10_000))
    const idleCpuPerS = (procCpuS(prom.pid) - b0) / 10
    const out: (PromRunResult & { promCpuS: number; loadStart: string; loadEnd: string })[] = []
    const c0 = await promCompactions(prom.url)
    const blocksBefore = dataDir !== undefined ? blockDirs(join(dataDir, 'data')) : ''
    for (let r = 0; r < runs; r++) {
      const loadStart = load()
      const p0 = procCpuS(prom.pid)
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--prom-child', prom.url, '--services', String(n), '--days', String(days), '--end', String(end), '--workers', String(workers), ...(process.argv.includes('--full-latency') ? ['--full-latency'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024 })
      if (child.status !== 0) throw new Error(`run ${r} failed (${child.status})`)
      const res = JSON.parse(child.stdout.trim().split('\n').pop() as string) as PromRunResult
      out.push({ ...res, promCpuS: Math.max(0, procCpuS(prom.pid) - p0 - idleCpuPerS * (res.elapsedMs / 1000)), loadStart, loadEnd: load() })
      process.stderr.write(`calibrate bench: run ${r + 1}/${runs} done\n`)
    }
    const c1 = await promCompactions(prom.url)
    const blocksAfter = dataDir !== undefined ? blockDirs(join(dataDir, 'data')) : ''
    const promPeakMiB = procPeakRssMiB(prom.pid)
    const ms = (xs: number[], d = 0) => {
      const v = [...xs].sort((a, b) => a - b)
      return `${(v[0] as number).toFixed(d)} / ${(v[Math.floor(v.length / 2)] as number).toFixed(d)} / ${(v[v.length - 1] as number).toFixed(d)}`
    }
    const per = (f: (x: (typeof out)[number]) => number) => out.map((x) => f(x) / x.services)
    const wallPer = per((x) => x.elapsedMs / 1000)
    const cpuPer = per((x) => x.nodeCpuS + x.promCpuS)
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
    const proj = (med(wallPer) * 1000) / 60
    const cpuProj = (med(cpuPer) * 1000) / 2 / 60
    process.stdout.write(`calibration from a real Prometheus 2.42: ${n} services x ${days} days at 60 s (${backfillNote}), ${workers} backtest workers, latency read ${process.argv.includes('--full-latency') ? 'at every step' : 'around the pseudo-deploys'}, ${runs} runs, min / median / max\n`)
    process.stdout.write(`  wall per service, s                         ${ms(wallPer, 2)}\n`)
    process.stdout.write(`  read wait per service, s (summed reads)     ${ms(per((x) => x.readMs / 1000), 2)}\n`)
    process.stdout.write(`  backtests per service, s (summed, in workers) ${ms(per((x) => x.backtestMs / 1000), 2)}\n`)
    process.stdout.write(`  CPU per service, s: calibrate process       ${ms(per((x) => x.nodeCpuS), 2)}\n`)
    process.stdout.write(`  CPU per service, s: prometheus              ${ms(per((x) => x.promCpuS), 2)}  (its idle rate before the run, ${idleCpuPerS.toFixed(2)} CPU-s/s of compaction, subtracted)\n`)
    process.stdout.write(`  peak RSS of the calibrate process, MiB      ${ms(out.map((x) => x.peakRssMiB))}  (worker threads included)\n`)
    process.stdout.write(`  peak RSS of prometheus, MiB                 ${promPeakMiB.toFixed(0)}  (VmHWM since its start)\n`)
    process.stdout.write(`  prometheus compactions during the runs      ${Number.isNaN(c0) || Number.isNaN(c1) ? '?' : c1 - c0} (prometheus_tsdb_compactions_total ${c0} -> ${c1})${dataDir !== undefined ? `; the data dir's blocks ${blocksBefore === blocksAfter ? 'unchanged' : 'CHANGED'}` : ''}\n`)
    for (const [r, x] of out.entries()) {
      process.stdout.write(`  run ${r + 1}: wall ${(x.elapsedMs / 1000).toFixed(0)} s (${(x.elapsedMs / 60_000).toFixed(1)} min), calibrated ${x.calibrated}/${x.services}, CPU calibrate ${x.nodeCpuS.toFixed(0)} s, prometheus ${x.promCpuS.toFixed(0)} s, load average ${x.loadStart} at the start, ${x.loadEnd} at the end\n`)
    }
    process.stdout.write(`  1,000 services at the median wall per service: ${proj.toFixed(1)} min (target < 10 min: ${proj < 10 ? 'met' : 'NOT met'}; at this load)\n`)
    process.stdout.write(`  1,000 services CPU-bound on 2 idle cores (calibrate + prometheus CPU / 2): ${cpuProj.toFixed(1)} min (target < 10 min: ${cpuProj < 10 ? 'met' : 'NOT met'})\n`)
  } finally {
    await prom.stop()
  }
}

/**
 * `--synthetic-prometheus [--services 1000] [--days 30] [--workers 2]`: the whole CLI path over a
 * fleet too big to backfill here: bench/promsim.ts (its own process) answers the query templates
 * with the bench's service mix generated on the fly, and one child process calibrates all N services
 * from it end to end (calibrateFleet: reads, `--workers` backtest threads). Prints the measured wall
 * time, the CPU seconds of the calibrating process (main thread and workers) and of the synthetic
 * server apart, per service and in all, and the peak RSS of the calibrating process (its worker
 * threads included: they share the process).
 */
async function synthBench(): Promise<void> {
  const n = arg('services', 1000)
  const days = arg('days', 30)
  const workers = process.argv.includes('--workers') ? Number(process.argv[process.argv.indexOf('--workers') + 1]) : 2
  const end = Math.floor((Date.now() - 30 * 60_000) / 3_600_000) * 3_600_000
  const script = fileURLToPath(new URL('./promsim.js', import.meta.url))
  const server = spawn(process.execPath, [script, '--serve', '--services', String(n), '--days', String(days), '--end', String(end)], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: server.stdout as NonNullable<typeof server.stdout> })
      rl.once('line', (l) => resolve((JSON.parse(l) as { url: string }).url))
      server.once('exit', (c) => reject(new Error(`synthetic server exited ${c}`)))
    })
    const s0 = procCpuS(server.pid)
    const t0 = performance.now()
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--prom-child', url, '--services', String(n), '--days', String(days), '--end', String(end), '--workers', String(workers)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * 1024 * 1024 })
    const wallS = (performance.now() - t0) / 1000
    if (child.status !== 0) throw new Error(`calibration failed (${child.status})`)
    const serverCpuS = procCpuS(server.pid) - s0
    const res = JSON.parse(child.stdout.trim().split('\n').pop() as string) as PromRunResult & { mainCpuS?: number }
    const ld = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
    process.stdout.write(`calibration end to end from a synthetic Prometheus-compatible server (bench/promsim.ts): ${res.services} services x ${days} days at 60 s, ${res.workers} backtest workers, latency read around the pseudo-deploys; load average at the end ${ld}\n`)
    process.stdout.write(`  calibrated                                   ${res.calibrated} / ${res.services}\n`)
    process.stdout.write(`  wall, whole fleet                            ${(res.elapsedMs / 1000).toFixed(0)} s (${(res.elapsedMs / 60_000).toFixed(1)} min; child process incl. start ${wallS.toFixed(0)} s)${res.services >= 1000 ? `  target (1,000 services) < 10 min: ${res.elapsedMs < 600_000 ? 'met' : 'NOT met'} (at this load)` : ''}\n`)
    process.stdout.write(`  wall per service                             ${(res.elapsedMs / 1000 / res.services).toFixed(3)} s\n`)
    process.stdout.write(`  CPU, calibrate process (main + workers)      ${res.nodeCpuS.toFixed(0)} s = ${(res.nodeCpuS / res.services).toFixed(3)} s per service\n`)
    process.stdout.write(`  CPU, synthetic server (apart, not pullback)  ${serverCpuS.toFixed(0)} s = ${(serverCpuS / res.services).toFixed(3)} s per service\n`)
    process.stdout.write(`  backtests (summed over services, in workers) ${(res.backtestMs / 1000).toFixed(0)} s; read wait (summed) ${(res.readMs / 1000).toFixed(0)} s\n`)
    process.stdout.write(`  peak RSS of the calibrate process (incl. its ${res.workers} worker threads)  ${res.peakRssMiB.toFixed(0)} MiB\n`)
    process.stdout.write(`  calibrate CPU alone on 2 idle cores: ${(res.nodeCpuS / 2 / 60).toFixed(1)} min for the fleet\n`)
  } finally {
    server.kill('SIGTERM')
  }
}

if (process.argv.includes('--history')) historyBench()
else if (process.argv.includes('--synthetic-prometheus')) await synthBench()
else if (process.argv.includes('--prom-child')) await promChild()
else if (process.argv.includes('--prometheus')) await promBench()
else if (process.argv.includes('--held-out')) await heldOutBench()
else if (process.argv.includes('--child')) child()
else parent()
