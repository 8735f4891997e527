/**
 * How near a metric's quantile, read inside its histogram bucket, lies to the true quantile: the
 * reading of pullback's normalizer and signal store (src/normalize/buckets.ts interpolatedQuantileUs,
 * by the density the neighbouring buckets show) beside Prometheus' classic `histogram_quantile`
 * (linear inside the bucket), over log-normal request latencies of 5-400 ms median and log sigma
 * 0.3-0.6 (the drawn services of bench/false-rollbacks.ts) counted into the OpenTelemetry SDKs'
 * default bounds, 100,000 requests each (expected counts, no noise). Readings whose rank lies in the
 * first bucket (both linear) or the last two (a representative) are left out. Also the ratio each
 * reads for a version 2x and 1.3x slower than drawn run #2's service (39 ms median, sigma 0.45).
 *
 *   npm run build && node dist/bench/quantile-reading.js [--json]
 *
 * test/normalize/buckets.property.test.ts holds the same figures as its assertions.
 */
import { pathToFileURL } from 'node:url'
import { Normalizer } from '../src/normalize/normalizer.js'
import type { Observation, RequestObservation } from '../src/normalize/observations.js'
import type { DecodedMetric, HistogramPoint } from '../src/receivers/otlp/model.js'
import { SignalStore } from '../src/signals/store.js'
import { exitOnHelp } from './args.js'

/** the OpenTelemetry SDKs' default bounds for http.server.request.duration, seconds */
export const SDK_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

export const T = 1_700_000_000_000
const RES = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'cart-abc' }

/** The normalizer's request observation for one delta `http.server.request.duration` point ending at T. */
export function normalizedPoint(bounds: number[], bucketCounts: number[], unit = 's'): RequestObservation {
  const out: Observation[] = []
  const n = new Normalizer({}, { record: (o: Observation) => out.push(o) })
  const p: HistogramPoint = { startTimeMs: T - 60_000, timeMs: T, count: bucketCounts.reduce((a, b) => a + b, 0), sum: undefined, bounds, bucketCounts, attributes: {} }
  const m: DecodedMetric = { name: 'http.server.request.duration', unit, type: 'histogram', temporality: 1, points: [p] }
  n.metrics({ resourceMetrics: [{ resource: RES, metrics: [m] }] })
  return out[0] as RequestObservation
}

/**
 * pullback's reading at q of one delta point through the normalizer and the signal store, in the
 * point's unit (seconds); 'upper': LatencyView.upperAtQuantile
 */
export function storeQuantile(bounds: number[], counts: number[], q: number, reading: 'estimate' | 'upper' = 'estimate'): number {
  const o = normalizedPoint(bounds, counts)
  const store = new SignalStore({})
  store.record(o)
  const l = store.window(o.key, T - 120_000, T + 10_000).latency
  return (reading === 'upper' ? l.upperAtQuantile(q) : l.valueAtQuantile(q)) / 1e6
}

/**
 * Prometheus' classic `histogram_quantile` over one histogram (bounds ascending, counts per bucket,
 * the last one above the last bound), as its documentation states it: the rank q x count, the first
 * bucket whose cumulative count reaches it, linear interpolation from the bucket's lower bound (0 for
 * the first bucket) to its upper; a rank in the +Inf bucket answers the last finite bound. Also the
 * index of the bucket holding the rank (bounds.length: the +Inf bucket).
 */
export function histogramQuantileAt(q: number, bounds: number[], counts: number[]): { value: number; bucket: number } {
  const total = counts.reduce((a, b) => a + b, 0)
  const rank = q * total
  let cum = 0
  for (let i = 0; i < counts.length; i++) {
    const below = cum
    cum += counts[i] as number
    if (cum >= rank && (counts[i] as number) > 0) {
      if (i === bounds.length) return { value: bounds[bounds.length - 1] as number, bucket: i }
      const lo = i === 0 ? 0 : (bounds[i - 1] as number)
      return { value: lo + ((bounds[i] as number) - lo) * ((rank - below) / (counts[i] as number)), bucket: i }
    }
  }
  return { value: Number.NaN, bucket: -1 }
}

/** standard normal CDF (Abramowitz-Stegun 7.1.26 erf, |error| < 1.5e-7) */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * x)
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x)
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf)
}
export const Z = new Map([[0.5, 0], [0.9, 1.2815516], [0.99, 2.3263479]])

/** the expected counts of `n` log-normal latencies (median `m` s, log sigma `sigma`) in the SDK's default buckets */
export function lognormalCounts(m: number, sigma: number, n: number): number[] {
  const cdf = (x: number) => phi(Math.log(x / m) / sigma)
  return [...SDK_BOUNDS_S, Infinity].map((b, i) => Math.round(n * (cdf(b) - (i === 0 ? 0 : cdf(SDK_BOUNDS_S[i - 1] as number)))))
}

export interface Accuracy {
  /** readings compared (rank inside a bucket pullback interpolates) */
  readings: number
  /** of them, pullback's at least as near the true quantile as histogram_quantile's */
  nearer: number
  /** the largest ratio between a reading and the true quantile (>= 1), pullback's and Prometheus' */
  worst: number
  worstLinear: number
}

/** pullback's and Prometheus' readings of p50 / p90 / p99 against the truth over the log-normal services above */
export function readingAccuracy(): Accuracy {
  const acc: Accuracy = { readings: 0, nearer: 0, worst: 1, worstLinear: 1 }
  for (const m of [0.005, 0.008, 0.012, 0.02, 0.03, 0.045, 0.07, 0.1, 0.15, 0.22, 0.3, 0.4]) {
    for (const sigma of [0.3, 0.45, 0.6]) {
      const counts = lognormalCounts(m, sigma, 100_000)
      for (const [q, z] of Z) {
        const truth = m * Math.exp(sigma * z)
        const { value: linear, bucket } = histogramQuantileAt(q, SDK_BOUNDS_S, counts)
        if (bucket === 0 || bucket >= SDK_BOUNDS_S.length - 1) continue
        const got = storeQuantile(SDK_BOUNDS_S, counts, q)
        const off = (x: number) => Math.exp(Math.abs(Math.log(x / truth)))
        acc.readings++
        if (off(got) <= off(linear) + 1e-9) acc.nearer++
        acc.worst = Math.max(acc.worst, off(got))
        acc.worstLinear = Math.max(acc.worstLinear, off(linear))
      }
    }
  }
  return acc
}

/** the p99 ratio of a version `factor` times slower to drawn run #2's service (median 39 ms, sigma 0.45), read by pullback and by Prometheus */
export function slowerRatio(factor: number): { pullback: number; prometheus: number } {
  const base = lognormalCounts(0.039, 0.45, 100_000)
  const slow = lognormalCounts(0.039 * factor, 0.45, 100_000)
  return {
    pullback: storeQuantile(SDK_BOUNDS_S, slow, 0.99) / storeQuantile(SDK_BOUNDS_S, base, 0.99),
    prometheus: histogramQuantileAt(0.99, SDK_BOUNDS_S, slow).value / histogramQuantileAt(0.99, SDK_BOUNDS_S, base).value,
  }
}

function main(): void {
  exitOnHelp(import.meta.url)
  const a = readingAccuracy()
  const r2 = slowerRatio(2)
  const r13 = slowerRatio(1.3)
  const row = (label: string, a: string, b: string) => `${label.padEnd(44)}${a.padEnd(20)}${b}`
  const lines = [
    `metric quantiles read inside the SDK's default buckets: ${a.readings} log-normal p50 / p90 / p99 readings (5-400 ms median, log sigma 0.3-0.6)`,
    '',
    row('', 'pullback (density)', 'histogram_quantile (linear)'),
    row('worst ratio to the true quantile', a.worst.toFixed(2), a.worstLinear.toFixed(2)),
    row('readings nearer the truth (ties: pullback)', String(a.nearer), String(a.readings - a.nearer)),
    row('p99 ratio, a 2x slower version (39 ms)', r2.pullback.toFixed(2), r2.prometheus.toFixed(2)),
    row('p99 ratio, a 1.3x slower version', r13.pullback.toFixed(2), r13.prometheus.toFixed(2)),
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ ...a, slower2: r2, slower13: r13 })}\n`)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main()
