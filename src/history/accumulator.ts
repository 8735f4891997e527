/**
 * The open hours of every service's summary, in memory until they are written. Pure: no I/O, no
 * timers; time comes in with each call (`drain(nowMs)`).
 *
 * Input is the narrow `HistoryFeed`: requests (count, errors, latencies with their counts) at a
 * telemetry time, and one pod's resource reading. Versions are summed: history is per service.
 * Latencies are counted into fixed buckets (the OpenTelemetry default boundaries of
 * http.server.request.duration), resource readings into a 2 % log-bucket sketch per pod and
 * resource (a mergeable quantile summary: 30 days of hours merge into one p70).
 *
 * Bounds (each counted in `stats()`):
 * - at most `maxServices` x 2 open (service, hour) summaries: a new one beyond is dropped (`servicesDropped`);
 * - at most `maxPods` (pod, resource) sketches per summary (`podsDropped`);
 * - an observation for an hour already written is `late`; one more than an hour beyond the newest
 *   `drain` time is `future` (a skewed clock must not open hours that are never closed).
 */
import type { Observation, ResourceKind, SeriesKey } from '../normalize/observations.js'
import { serviceId } from '../normalize/observations.js'
import { QuantileSketch } from '../calibrate/quantile.js'
import { HOUR_MS, type HourSummary, type PodUsage } from './codec.js'

/** OpenTelemetry's default explicit bucket boundaries for http.server.request.duration (s), in microseconds */
export const DEFAULT_BOUNDS_US = [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000].map((ms) => ms * 1000)

/** What a history accumulator is fed: the narrow interface the sampler and the partials feed use. */
export interface HistoryFeed {
  requests(key: SeriesKey, timeMs: number, count: number, errors: number, latenciesUs: ArrayLike<number>, latencyCounts: ArrayLike<number> | undefined): void
  resource(key: SeriesKey, pod: string, resource: ResourceKind, timeMs: number, value: number, request: number | undefined): void
}

export interface AccumulatorOptions {
  stepMs: number
  graceMs: number
  maxServices: number
  maxPods: number
  boundsUs?: number[]
}

export interface AccumulatorStats {
  open: number
  servicesDropped: number
  podsDropped: number
  late: number
  future: number
  invalid: number
}

interface Open {
  namespace: string
  service: string
  hourStartMs: number
  counts: Float64Array
  errors: Float64Array
  latency: Float64Array
  pods: Map<string, { pod: string; resource: ResourceKind; request: number; sketch: QuantileSketch }>
}

export class HistoryAccumulator implements HistoryFeed {
  readonly boundsUs: number[]
  private readonly steps: number
  private readonly open = new Map<string, Open>()
  /** hours ending at or before this are written: later observations for them are late */
  private closedBeforeMs = -Infinity
  private newestNowMs = -Infinity
  private readonly st = { servicesDropped: 0, podsDropped: 0, late: 0, future: 0, invalid: 0 }

  constructor(private readonly o: AccumulatorOptions) {
    if (!(o.stepMs > 0) || HOUR_MS % o.stepMs !== 0) throw new RangeError(`history step ${o.stepMs} ms does not divide an hour`)
    this.boundsUs = o.boundsUs ?? DEFAULT_BOUNDS_US
    this.steps = HOUR_MS / o.stepMs
  }

  stats(): AccumulatorStats {
    return { open: this.open.size, ...this.st }
  }

  /** Adapter for normalized observations (the decider's partials); probes are not history. */
  record(obs: Observation): void {
    if (obs.kind === 'request') this.requests(obs.key, obs.timeMs, obs.count, obs.errors, obs.latenciesUs, obs.latencyCounts)
    else if (obs.kind === 'resource') this.resource(obs.key, obs.pod, obs.resource, obs.timeMs, obs.value, obs.request)
  }

  private slot(key: SeriesKey, timeMs: number): Open | undefined {
    if (!Number.isFinite(timeMs) || timeMs < 0) {
      this.st.invalid++
      return undefined
    }
    const hour = Math.floor(timeMs / HOUR_MS) * HOUR_MS
    if (hour + HOUR_MS <= this.closedBeforeMs) {
      this.st.late++
      return undefined
    }
    if (timeMs > this.newestNowMs + HOUR_MS && this.newestNowMs !== -Infinity) {
      this.st.future++
      return undefined
    }
    const id = `${serviceId(key.namespace, key.service)}\u0000${hour}`
    let s = this.open.get(id)
    if (s === undefined) {
      if (this.open.size >= this.o.maxServices * 2) {
        this.st.servicesDropped++
        return undefined
      }
      const width = this.boundsUs.length + 1
      s = {
        namespace: key.namespace,
        service: key.service,
        hourStartMs: hour,
        counts: new Float64Array(this.steps).fill(Number.NaN),
        errors: new Float64Array(this.steps),
        latency: new Float64Array(this.steps * width),
        pods: new Map(),
      }
      this.open.set(id, s)
    }
    return s
  }

  requests(key: SeriesKey, timeMs: number, count: number, errors: number, latenciesUs: ArrayLike<number>, latencyCounts: ArrayLike<number> | undefined): void {
    if (!(count >= 0) || !(errors >= 0)) {
      this.st.invalid++
      return
    }
    const s = this.slot(key, timeMs)
    if (s === undefined) return
    const i = Math.floor((timeMs - s.hourStartMs) / this.o.stepMs)
    s.counts[i] = (Number.isNaN(s.counts[i] as number) ? 0 : (s.counts[i] as number)) + count
    s.errors[i] = (s.errors[i] as number) + errors
    const width = this.boundsUs.length + 1
    const b = this.boundsUs
    for (let x = 0; x < latenciesUs.length; x++) {
      const us = latenciesUs[x] as number
      const n = latencyCounts === undefined ? 1 : (latencyCounts[x] as number)
      if (!(n > 0) || !(us >= 0)) continue
      let j = 0
      while (j < b.length && us > (b[j] as number)) j++
      s.latency[i * width + j] = (s.latency[i * width + j] as number) + n
    }
  }

  resource(key: SeriesKey, pod: string, resource: ResourceKind, timeMs: number, value: number, request: number | undefined): void {
    if (!Number.isFinite(value) || value < 0) {
      this.st.invalid++
      return
    }
    const s = this.slot(key, timeMs)
    if (s === undefined) return
    const id = `${resource}\u0000${pod}`
    let p = s.pods.get(id)
    if (p === undefined) {
      if (s.pods.size >= this.o.maxPods) {
        this.st.podsDropped++
        return
      }
      p = { pod, resource, request: Number.NaN, sketch: new QuantileSketch() }
      s.pods.set(id, p)
    }
    p.sketch.add(value)
    if (request !== undefined && Number.isFinite(request)) p.request = request
  }

  /**
   * The summaries of hours that ended at least `graceMs` before `nowMs` (all open ones with `all`:
   * shutdown writes its partial hours; the reader sums summaries of the same service and hour).
   */
  drain(nowMs: number, all = false): HourSummary[] {
    if (nowMs > this.newestNowMs) this.newestNowMs = nowMs
    const out: HourSummary[] = []
    for (const [id, s] of this.open) {
      if (!all && s.hourStartMs + HOUR_MS + this.o.graceMs > nowMs) continue
      this.open.delete(id)
      const resources: PodUsage[] = []
      for (const p of s.pods.values()) resources.push({ pod: p.pod, resource: p.resource, request: p.request, zeros: p.sketch.zeroCount, buckets: p.sketch.entries() })
      out.push({ namespace: s.namespace, service: s.service, hourStartMs: s.hourStartMs, stepMs: this.o.stepMs, boundsUs: this.boundsUs, counts: s.counts, errors: s.errors, latency: s.latency, resources })
    }
    const closed = all ? nowMs : nowMs - this.o.graceMs
    const closedHour = Math.floor(closed / HOUR_MS) * HOUR_MS
    if (!all && closedHour > this.closedBeforeMs) this.closedBeforeMs = closedHour
    return out
  }
}
