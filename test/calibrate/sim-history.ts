/**
 * Days of history from the scenario library's traffic models (src/sim): a service's ServiceSpec
 * (request rate, routes' median latencies, log-normal sigma, long tail, baseline 5xx ratio, pods'
 * memory) under its scenario's traffic (the daily sinusoid with a real 24 h period, and the
 * scenario's traffic spikes recurring at random times), binned at `stepMs` as a metrics backend
 * holds it: request and 5xx counts, latency bucket counts over the OpenTelemetry default bounds,
 * per-pod memory with its request.
 *
 * Routine noise on top of the model (what a month of a real service holds and a ten-minute scenario
 * does not): each hour, with chance `noisyHours`, a 10-30 min stretch with the 5xx ratio x3-6 and
 * latencies x1.2-1.6; traffic spikes of the scenario's shape `spikesPerDay` times a day (default 4).
 * Used by bench/calibrate.ts --held-out.
 */
import type { FleetSpec, ServiceSpec } from '../../src/sim/model.js'
import { dataSpan, emptyRequests, type PodResourceSeries, type ServiceHistory } from '../../src/calibrate/history.js'
import { BOUNDS_S, binomial, lognormalCdf, normal, poisson, rng } from './synthetic.js'

export interface SimNoise {
  noisyHours: number
  spikesPerDay: number
}

export const DEFAULT_SIM_NOISE: SimNoise = { noisyHours: 0.04, spikesPerDay: 4 }

const DAY = 86_400_000
/** representative slow-down factors of the sim's tail (1.5 + (max - 1.5) u^3, at u's quartile midpoints) */
function tailFactors(maxFactor: number): number[] {
  return [0.125, 0.375, 0.625, 0.875].map((u) => 1.5 + (maxFactor - 1.5) * u ** 3)
}

/** bucket probabilities of one request of the service at a latency factor */
function bucketProbs(svc: ServiceSpec, factor: number): number[] {
  const w = svc.routes.reduce((a, r) => a + r.weight, 0)
  const cdf = new Array<number>(BOUNDS_S.length).fill(0)
  const tails = tailFactors(svc.tail.maxFactor)
  for (const r of svc.routes) {
    const share = r.weight / w
    for (let j = 0; j < BOUNDS_S.length; j++) {
      const x = (BOUNDS_S[j] as number) * 1000
      let c = (1 - svc.tail.p) * lognormalCdf(x, r.medianMs * factor, svc.latencySigma)
      for (const tf of tails) c += (svc.tail.p / tails.length) * lognormalCdf(x, r.medianMs * factor * tf, svc.latencySigma)
      cdf[j] = (cdf[j] as number) + share * c
    }
  }
  const p: number[] = []
  let prev = 0
  for (const c of cdf) {
    p.push(Math.max(0, c - prev))
    prev = Math.max(prev, c)
  }
  p.push(Math.max(0, 1 - prev))
  return p
}

export function simHistory(svc: ServiceSpec, traffic: FleetSpec['traffic'], startMs: number, endMs: number, stepMs: number, seed: number, noise: SimNoise = DEFAULT_SIM_NOISE): ServiceHistory {
  const r = rng(seed)
  const req = emptyRequests({ startMs, endMs, stepMs }, BOUNDS_S)
  const width = BOUNDS_S.length + 1
  const calm = bucketProbs(svc, 1)
  const noisyProbs = new Map<number, number[]>()
  // the scenario's spikes, as a shape: factor, plateau and ramp
  const shapes = traffic.spikes.filter((s) => s.services === undefined || s.services.includes(svc.name)).map((s) => ({ factor: s.factor, plateauMs: (s.untilS - s.fromS) * 1000, rampMs: s.rampS * 1000 }))
  let noisyUntil = -Infinity
  let noisyErr = 1
  let noisyLat = 1
  let spike: { at: number; factor: number; plateauMs: number; rampMs: number } | undefined
  const spikeChancePerStep = (noise.spikesPerDay * stepMs) / DAY
  for (let i = 0, t = startMs; t <= endMs; i++, t += stepMs) {
    if ((t - startMs) % 3_600_000 < stepMs && r() < noise.noisyHours) {
      noisyUntil = t + (10 + 20 * r()) * 60_000
      noisyErr = 3 + 3 * r()
      noisyLat = Math.round((1.2 + 0.4 * r()) * 10) / 10
    }
    if (shapes.length > 0 && spike === undefined && r() < spikeChancePerStep) spike = { at: t, ...(shapes[Math.floor(r() * shapes.length)] as (typeof shapes)[number]) }
    let f = 1 + traffic.dailyAmplitude * Math.sin(2 * Math.PI * ((t % DAY) / DAY + traffic.phase))
    if (spike !== undefined) {
      const d = t - spike.at
      const total = 2 * spike.rampMs + spike.plateauMs
      if (d >= total) spike = undefined
      else {
        const w = d < spike.rampMs ? d / Math.max(1, spike.rampMs) : d < spike.rampMs + spike.plateauMs ? 1 : 1 - (d - spike.rampMs - spike.plateauMs) / Math.max(1, spike.rampMs)
        f *= 1 + (spike.factor - 1) * w
      }
    }
    const noisy = t < noisyUntil
    const count = poisson(r, svc.rps * f * (stepMs / 1000))
    req.counts[i] = count
    req.errors[i] = binomial(r, count, Math.min(1, svc.errorRate * (noisy ? noisyErr : 1)))
    let probs = calm
    if (noisy) {
      probs = noisyProbs.get(noisyLat) ?? bucketProbs(svc, noisyLat)
      noisyProbs.set(noisyLat, probs)
    }
    let left = count
    let rest = 1
    for (let j = 0; j < width; j++) {
      const pj = probs[j] as number
      const n = j === width - 1 ? left : binomial(r, left, Math.min(1, Math.max(0, pj / Math.max(1e-12, rest))))
      req.latency[i * width + j] = n
      left -= n
      rest -= pj
    }
  }
  const resources: PodResourceSeries[] = []
  const mib = 2 ** 20
  for (let p = 0; p < svc.pods; p++) {
    const offset = (r() - 0.5) * svc.memory.noiseMiB * 4
    const times: number[] = []
    const values: number[] = []
    for (let t = startMs; t <= endMs; t += stepMs) {
      const gcSaw = (((t / 1000) % 47) / 47) * svc.memory.noiseMiB
      times.push(t)
      values.push((svc.memory.baseMiB + offset + gcSaw + normal(r) * svc.memory.noiseMiB * 0.3) * mib)
    }
    resources.push({ pod: `${svc.name}-${p}`, container: svc.name, resource: 'memory', timesMs: Float64Array.from(times), values: Float64Array.from(values), request: svc.memory.requestMiB * mib })
  }
  const span = dataSpan(req)
  return { service: { namespace: svc.namespace, name: svc.name }, requests: req, resources, firstDataMs: span.firstMs, lastDataMs: span.lastMs }
}

/** The part of a history in [fromMs, toMs] (views on the same arrays; resource series copied). */
export function sliceHistory(h: ServiceHistory, fromMs: number, toMs: number): ServiceHistory {
  const r = h.requests
  const w = r.boundsS.length + 1
  const i0 = Math.max(0, Math.ceil((fromMs - r.startMs) / r.stepMs))
  const i1 = Math.min(r.counts.length - 1, Math.floor((toMs - r.startMs) / r.stepMs))
  const requests = { ...r, startMs: r.startMs + i0 * r.stepMs, counts: r.counts.slice(i0, i1 + 1), errors: r.errors.slice(i0, i1 + 1), latency: r.latency.slice(i0 * w, (i1 + 1) * w) }
  const resources = h.resources.map((s) => {
    const keep: number[] = []
    for (let k = 0; k < s.timesMs.length; k++) if ((s.timesMs[k] as number) >= fromMs && (s.timesMs[k] as number) <= toMs) keep.push(k)
    return { ...s, timesMs: Float64Array.from(keep, (k) => s.timesMs[k] as number), values: Float64Array.from(keep, (k) => s.values[k] as number) }
  })
  const span = dataSpan(requests)
  return { service: h.service, requests, resources, firstDataMs: span.firstMs, lastDataMs: span.lastMs }
}
