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
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { history, type SynthService } from '../test/calibrate/synthetic.js'
import { calibrateService, DEFAULT_CALIBRATE } from '../src/calibrate/search.js'
import { parseConfig } from '../src/config/load.js'
import { HistoryAccumulator } from '../src/history/accumulator.js'
import { decodeSummary, encodeSummary, type HourSummary } from '../src/history/codec.js'
import { historyFromSummaries } from '../src/calibrate/kafka.js'
import { feedSynthetic } from '../test/history/feed-synthetic.js'

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

function benchService(k: number): SynthService {
  return {
    namespace: 'bench',
    name: `svc-${k}`,
    rps: 1 + ((k * 7) % 40),
    errorRatio: 0.002 + (k % 5) * 0.002,
    medianS: 0.02 + (k % 7) * 0.02,
    sigma: 0.5,
    noisyHours: k % 3 === 0 ? 0.5 : 0.05,
    noisyMinutes: 20,
    noisyErrors: 6,
    noisyLatency: 1.8,
    pods: 3,
    memoryBytes: 200e6,
    memoryRequestBytes: 256e6,
  }
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
    const s: SynthService = {
      namespace: 'bench',
      name: `svc-${k}`,
      rps: 1 + ((k * 7) % 40),
      errorRatio: 0.002 + (k % 5) * 0.002,
      medianS: 0.02 + (k % 7) * 0.02,
      sigma: 0.5,
      noisyHours: k % 3 === 0 ? 0.5 : 0.05,
      noisyMinutes: 20,
      noisyErrors: 6,
      noisyLatency: 1.8,
      pods: 3,
      memoryBytes: 200e6,
      memoryRequestBytes: 256e6,
    }
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
  // pullback calibrate runs the services one after the other on one core
  const minutes = (medPer * 1000) / 60_000
  process.stdout.write(`  1,000 services at the median per-service time (one core, as pullback calibrate runs): ${minutes.toFixed(1)} min (target < 10 min: ${minutes < 10 ? 'met' : 'NOT met'})\n`)
}

if (process.argv.includes('--history')) historyBench()
else if (process.argv.includes('--child')) child()
else parent()
