/**
 * Synthetic service history for the calibration tests: a diurnal request rate with Poisson-like
 * noise, a small error ratio with occasional noisy hours, log-normal latencies over the OpenTelemetry
 * default buckets of http.server.request.duration, and a few pods' memory with a request. The same
 * generator writes the in-memory ServiceHistory (unit tests) and OpenMetrics text for promtool
 * (the Prometheus test), so both see the same numbers.
 */
import { emptyRequests, dataSpan, type ServiceHistory, type PodResourceSeries } from '../../src/calibrate/history.js'

export const BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

export interface SynthService {
  namespace: string
  name: string
  /** mean requests per second (the diurnal cycle swings +-50 % around it) */
  rps: number
  errorRatio: number
  /** median latency, seconds */
  medianS: number
  /** log-normal sigma */
  sigma: number
  /** chance per hour that a noisy stretch starts (errors x noisyErrors, median latency x noisyLatency) */
  noisyHours: number
  /** length of a noisy stretch, minutes (default 60) */
  noisyMinutes?: number
  noisyErrors?: number
  noisyLatency?: number
  pods: number
  memoryBytes: number
  memoryRequestBytes: number
}

export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** the generator rng(seed) after `skip` draws (its state advances by a constant per draw), for writers that start mid-series */
export function rngAt(seed: number, skip: number): () => number {
  // mod 2^32, as the generator's own state (skip beyond 2^32 wraps, as the state does)
  return rng(((seed >>> 0) + Math.imul(skip >>> 0, 0x6d2b79f5)) >>> 0)
}

export function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(1e-12, r()))) * Math.cos(2 * Math.PI * r())
}

/** Poisson by normal approximation above 30, exact below */
export function poisson(r: () => number, mean: number): number {
  if (mean <= 0) return 0
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(r)))
  const l = Math.exp(-mean)
  let k = 0
  let p = 1
  do {
    k++
    p *= r()
  } while (p > l)
  return k - 1
}

export function binomial(r: () => number, n: number, p: number): number {
  if (n * p > 30) return Math.min(n, Math.max(0, Math.round(n * p + Math.sqrt(n * p * (1 - p)) * normal(r))))
  return Math.min(n, poisson(r, n * p))
}

export function lognormalCdf(x: number, median: number, sigma: number): number {
  const z = Math.log(x / median) / sigma
  // Abramowitz-Stegun erf approximation
  const t = 1 / (1 + 0.3275911 * Math.abs(z / Math.SQRT2))
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-((z / Math.SQRT2) ** 2))
  return 0.5 * (1 + (z >= 0 ? y : -y))
}

export interface Step {
  timeMs: number
  count: number
  errors: number
  /** per bucket (BOUNDS_S.length + 1), non-cumulative */
  buckets: number[]
}

/** The steps of one service, generated one by one (the OpenMetrics writer streams them). */
export function* steps(s: SynthService, startMs: number, endMs: number, stepMs: number, seed: number): Generator<Step> {
  const r = rng(seed)
  let noisyUntil = -Infinity
  for (let t = startMs; t <= endMs; t += stepMs) {
    if ((t - startMs) % 3_600_000 < stepMs && r() < s.noisyHours) noisyUntil = t + (s.noisyMinutes ?? 60) * 60_000
    const noisy = t < noisyUntil
    // phase from the start: the same seed gives the same history whatever the start time
    const diurnal = 1 + 0.5 * Math.sin((2 * Math.PI * ((t - startMs) % 86_400_000)) / 86_400_000)
    const count = poisson(r, s.rps * diurnal * (stepMs / 1000))
    const errors = binomial(r, count, Math.min(1, s.errorRatio * (noisy ? (s.noisyErrors ?? 4) : 1)))
    const median = s.medianS * (noisy ? (s.noisyLatency ?? 1.6) : 1)
    const buckets: number[] = []
    let left = count
    let prevCdf = 0
    for (let j = 0; j < BOUNDS_S.length; j++) {
      const cdf = lognormalCdf(BOUNDS_S[j] as number, median, s.sigma)
      const pj = (cdf - prevCdf) / Math.max(1e-12, 1 - prevCdf)
      const n = binomial(r, left, Math.min(1, Math.max(0, pj)))
      buckets.push(n)
      left -= n
      prevCdf = cdf
    }
    buckets.push(left)
    yield { timeMs: t, count, errors, buckets }
  }
}

export function memoryAt(s: SynthService, pod: number, t: number, r: () => number): number {
  return s.memoryBytes * (1 + 0.05 * Math.sin(t / 3_600_000 + pod) + 0.01 * normal(r))
}

/** In-memory history, as a HistorySource would return it. */
export function history(s: SynthService, startMs: number, endMs: number, stepMs: number, seed: number): ServiceHistory {
  const req = emptyRequests({ startMs, endMs, stepMs }, BOUNDS_S)
  const w = BOUNDS_S.length + 1
  let i = 0
  for (const st of steps(s, startMs, endMs, stepMs, seed)) {
    // step i of the grid covers (t - step, t]: the generator's step at t
    req.counts[i] = st.count
    req.errors[i] = st.errors
    for (let j = 0; j < w; j++) req.latency[i * w + j] = st.buckets[j] as number
    i++
  }
  const r = rng(seed ^ 0x5eed)
  const resources: PodResourceSeries[] = []
  for (let p = 0; p < s.pods; p++) {
    const t: number[] = []
    const v: number[] = []
    for (let x = startMs; x <= endMs; x += stepMs) {
      t.push(x)
      v.push(memoryAt(s, p, x, r))
    }
    resources.push({ pod: `${s.name}-${p}`, container: s.name, resource: 'memory', timesMs: Float64Array.from(t), values: Float64Array.from(v), request: s.memoryRequestBytes })
  }
  const span = dataSpan(req)
  return { service: { namespace: s.namespace, name: s.name }, requests: req, resources, firstDataMs: span.firstMs, lastDataMs: span.lastMs }
}
