/**
 * A metric's p99, as pullback reads it, lies in the bucket in which a real Prometheus' classic
 * `histogram_quantile` places it, and nearer the true quantile inside it: the quantiles of
 * request-duration histograms go through the real normalizer and signal store, and the same
 * cumulative bucket counts through Prometheus' own `histogram_quantile` (promtool, Debian's
 * `prometheus` package, or PROMETHEUS_BIN's directory). Prometheus reads linearly inside a bucket;
 * pullback by the density the neighbouring buckets show (src/normalize/buckets.ts
 * interpolatedQuantileUs), so an SRE comparing a verdict's "p99 223 ms vs baseline 125 ms" with the
 * Grafana panel over the same histogram sees the same buckets, the panel's numbers higher where the
 * bucket's requests crowd its lower end (a latency tail across the SDK's (100, 250] ms).
 *
 * promtool's rule tests evaluate PromQL over given series; an expectation left empty fails and prints
 * what the expression returned, which is read back here.
 *
 * Equal (1e-9) where the rank lies in the first bucket (read linearly by both); in the last finite
 * bucket and the overflow bucket the store reads a representative through its histograms
 * (interpolatedQuantileUs: the overflow's is the last bound, as Prometheus answers; the last finite
 * bucket's when the overflow's representative is closer than 1.2x), so there: within that bucket.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { expectPrometheusReading, expectSameBucket, histogramQuantileAt, storeQuantile } from '../support/histogram-quantile.js'
import { prng } from '../support/otlp-fixtures.js'
import { describePeers } from './peers.js'

/** the OpenTelemetry SDKs' default bounds for http.server.request.duration, seconds */
const SDK_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const QUANTILES = [0.5, 0.9, 0.99]

interface Case {
  bounds: number[]
  counts: number[]
  /** the true quantile at each of QUANTILES for a log-normal case */
  truth?: Map<number, number>
}

const Z = new Map([[0.5, 0], [0.9, 1.2815516], [0.99, 2.3263479]])

function promtoolBin(): string | undefined {
  if (process.env.PROMETHEUS_BIN) return path.join(path.dirname(process.env.PROMETHEUS_BIN), 'promtool')
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** `n` requests of a log-normal latency (median `medianS`, log sigma `sigma`) counted into `bounds` */
function lognormalCounts(r: () => number, bounds: number[], n: number, medianS: number, sigma: number): number[] {
  const counts = new Array<number>(bounds.length + 1).fill(0)
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
    const x = medianS * Math.exp(sigma * z)
    let k = bounds.findIndex((b) => x <= b)
    if (k < 0) k = bounds.length
    counts[k]!++
  }
  return counts
}

function cases(): Case[] {
  // seeded, so that every run checks the same histograms
  const r = prng(36)
  const out: Case[] = []
  // the SDK's default bounds, services from 5 ms to 400 ms median, each also 2x slower
  for (const medianS of [0.005, 0.02, 0.06, 0.15, 0.4]) {
    for (const factor of [1, 2]) {
      const m = medianS * factor
      out.push({ bounds: SDK_BOUNDS_S, counts: lognormalCounts(r, SDK_BOUNDS_S, 2_000, m, 0.6), truth: new Map(QUANTILES.map((q) => [q, m * Math.exp(0.6 * (Z.get(q) as number))])) })
    }
  }
  // other layouts: 4-12 bounds at least 1.3x apart, under 30 s, uniform counts
  for (let k = 0; k < 20; k++) {
    const bounds = [0.001 + r() * 0.05]
    const nb = 4 + Math.floor(r() * 9)
    while (bounds.length < nb && (bounds.at(-1) as number) < 8) bounds.push((bounds.at(-1) as number) * (1.3 + r() * 2))
    const counts = Array.from({ length: bounds.length + 1 }, () => Math.floor(r() * 40))
    if (!counts.some((c) => c > 0)) counts[0] = 1
    out.push({ bounds, counts })
  }
  return out
}

/** Prometheus' histogram_quantile of every case at each q: promtool's answer, by case index */
function prometheusQuantiles(promtool: string, dir: string, all: Case[]): Map<number, Map<number, number>> {
  const series: string[] = []
  all.forEach((c, i) => {
    let cum = 0
    c.bounds.forEach((b, k) => {
      cum += c.counts[k] as number
      series.push(`      - series: 'h_bucket{case="${i}",le="${b}"}'`, `        values: '${cum}'`)
    })
    cum += c.counts[c.bounds.length] as number
    series.push(`      - series: 'h_bucket{case="${i}",le="+Inf"}'`, `        values: '${cum}'`)
  })
  const exprs = QUANTILES.flatMap((q) => [`      - expr: histogram_quantile(${q}, h_bucket)`, '        eval_time: 0m', '        exp_samples: []'])
  const file = path.join(dir, 'quantiles.yml')
  writeFileSync(file, ['rule_files: []', 'evaluation_interval: 1m', 'tests:', '  - interval: 1m', '    input_series:', ...series, '    promql_expr_test:', ...exprs, ''].join('\n'))
  const r = spawnSync(promtool, ['test', 'rules', file], { encoding: 'utf8', timeout: 60_000 })
  const text = `${r.stdout}\n${r.stderr}`
  const got = new Map<number, Map<number, number>>()
  // each expectation fails: `expr: "histogram_quantile(Q, h_bucket)", ...` then `got: {case="i"} V, {case="j"} W`
  for (const m of text.matchAll(/expr: "histogram_quantile\(([0-9.]+), h_bucket\)"[\s\S]*?got: ([^\n]*)/g)) {
    const byCase = new Map<number, number>()
    for (const s of (m[2] as string).matchAll(/\{case="(\d+)"\} ([^,\s]+)/g)) byCase.set(Number(s[1]), Number(s[2]))
    got.set(Number(m[1]), byCase)
  }
  if (got.size !== QUANTILES.length) throw new Error(`promtool did not answer every quantile (exit ${String(r.status)}):\n${text.slice(0, 4000)}`)
  return got
}

const promtool = promtoolBin()

describePeers(
  "interop: a metric's quantiles read as a real Prometheus' histogram_quantile reads them",
  [],
  () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-quantile-'))
    afterAll(() => rmSync(dir, { recursive: true, force: true }))

    it('SDK default bounds and 20 other layouts, p50 / p90 / p99: the same bucket; log-normal latencies read nearer their true quantile', () => {
      const all = cases()
      const prom = prometheusQuantiles(promtool as string, dir, all)
      let exact = 0
      let judged = 0
      let nearer = 0
      for (const q of QUANTILES) {
        all.forEach((c, i) => {
          const want = prom.get(q)?.get(i)
          expect(want, `case ${i} q ${q}: no answer from promtool`).toBeTypeOf('number')
          const { value, bucket } = histogramQuantileAt(q, c.bounds, c.counts)
          // the documented algorithm this test reads Prometheus by, and the real one, agree
          expect(Math.abs(value - (want as number)) / (want as number), `case ${i} q ${q}`).toBeLessThan(1e-9)
          const got = storeQuantile(c.bounds, c.counts, q)
          // the upper reading (where one signal decides alone) is never under Prometheus' answer
          if (bucket < c.bounds.length - 1) expect(Math.abs(storeQuantile(c.bounds, c.counts, q, 'upper') - Math.max(got, want as number)) / (want as number), `case ${i} q ${q}: upper`).toBeLessThan(1e-9)
          if (bucket === 0 && expectPrometheusReading(got, want as number, bucket, c.bounds, `case ${i} q ${q}:`)) exact++
          else expectSameBucket(got, bucket, c.bounds, `case ${i} q ${q}:`)
          const truth = c.truth?.get(q)
          if (truth !== undefined && bucket > 0 && bucket < c.bounds.length - 1) {
            judged++
            if (Math.abs(Math.log(got / truth)) <= Math.abs(Math.log((want as number) / truth)) + 1e-9) nearer++
          }
        })
      }
      expect(exact).toBeGreaterThan(0)
      expect(judged).toBeGreaterThan(15)
      // 25 of 29 log-normal readings inside a bucket nearer the truth than Prometheus' (2,000 requests each)
      expect(nearer / judged).toBeGreaterThan(0.75)
    })
  },
  promtool === undefined ? ["no promtool: set PROMETHEUS_BIN or install Debian's `prometheus` package"] : [],
)
