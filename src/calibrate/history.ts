/**
 * The history a calibration reads, per service, as a backend hands it over: time-bucketed request
 * counts, error counts, latency histogram bucket counts, and per-pod resource usage with the pod's
 * request. A HistorySource yields one service at a time (bounded memory: a caller holds one
 * service's history, never the fleet's).
 */
import type { QuantileSketch } from './quantile.js'

export interface ServiceRef {
  namespace: string
  name: string
}

export function serviceKey(s: ServiceRef): string {
  return s.namespace === '' ? s.name : `${s.namespace}/${s.name}`
}

/** Parses "ns/name" (or "name"); undefined for anything else. */
export function parseServiceRef(s: string): ServiceRef | undefined {
  const m = /^(?:([^\s/]+)\/)?([^\s/]+)$/.exec(s)
  if (m === null) return undefined
  return { namespace: m[1] ?? '', name: m[2] as string }
}

/**
 * Requests of one service on a regular grid: step i covers (startMs + (i-1) stepMs, startMs + i stepMs].
 * NaN in `counts` marks a step without data (a gap: the backend had no sample there).
 * `latency[i]` holds the non-cumulative counts of step i per bucket; bucket j is (bounds[j-1], bounds[j]]
 * in seconds, the last one (bounds[last], +Inf).
 */
export interface RequestHistory {
  startMs: number
  stepMs: number
  counts: Float64Array
  errors: Float64Array
  /** upper bounds in seconds, ascending, without +Inf */
  boundsS: number[]
  /** steps x (boundsS.length + 1), row-major */
  latency: Float64Array
  /**
   * when present, 1 for the steps whose latency was read, 0 elsewhere (their rows are zeros, not
   * data): a source may read latency only where the pseudo-deploys look (backtest.ts deployWindows)
   */
  latencyKnown?: Uint8Array
}

export type Resource = 'memory' | 'cpu'

/** One pod's readings of one resource (memory bytes, cpu cores), and its request when known. */
export interface PodResourceSeries {
  pod: string
  container: string
  resource: Resource
  timesMs: Float64Array
  values: Float64Array
  /** the pod's request in the same unit (sum over its containers matched), NaN when unknown */
  request: number
}

export interface ServiceHistory {
  service: ServiceRef
  requests: RequestHistory
  resources: PodResourceSeries[]
  /** time of the oldest and newest step holding data (NaN without data) */
  firstDataMs: number
  lastDataMs: number
  /**
   * the service's usage over the range when the source keeps it as sketches (the history topic's
   * hourly summaries); the request audit then uses these, not the per-pod series
   */
  usage?: { memory: QuantileSketch; cpu: QuantileSketch }
}

/** Why a service's history could not be read: classified once, reported per service, never thrown out of the loop. */
export type HistoryOutcome =
  | { kind: 'ok'; history: ServiceHistory }
  | { kind: 'empty'; service: ServiceRef; reason: string }
  | { kind: 'failed'; service: ServiceRef; reason: string }

export interface HistoryRange {
  startMs: number
  endMs: number
  stepMs: number
}

export interface HistorySource {
  /** the services holding request history in the range (bounded by the source's own limit) */
  services(range: HistoryRange, signal?: AbortSignal): Promise<ServiceRef[]>
  /** one service's history; failures are an outcome, not an exception */
  history(service: ServiceRef, range: HistoryRange, signal?: AbortSignal): Promise<HistoryOutcome>
}

/** Builds an empty request grid for a range: every step a gap until filled. */
export function emptyRequests(range: HistoryRange, boundsS: number[]): RequestHistory {
  const steps = Math.max(0, Math.floor((range.endMs - range.startMs) / range.stepMs) + 1)
  const counts = new Float64Array(steps).fill(Number.NaN)
  return { startMs: range.startMs, stepMs: range.stepMs, counts, errors: new Float64Array(steps), boundsS, latency: new Float64Array(steps * (boundsS.length + 1)) }
}

/** First and last step with data. */
export function dataSpan(r: RequestHistory): { firstMs: number; lastMs: number } {
  let first = -1
  let last = -1
  for (let i = 0; i < r.counts.length; i++) {
    if (!Number.isNaN(r.counts[i] as number)) {
      if (first < 0) first = i
      last = i
    }
  }
  if (first < 0) return { firstMs: Number.NaN, lastMs: Number.NaN }
  return { firstMs: r.startMs + first * r.stepMs, lastMs: r.startMs + last * r.stepMs }
}
