/**
 * The contract between `normalize` and `signals`: OTLP, by OpenTelemetry semantic conventions,
 * reduced to four observation kinds keyed by service and version.
 *
 * A service is identified by namespace (`k8s.namespace.name`, else `service.namespace`, else "")
 * and `service.name`. Its version is `service.version`, else the image tag of `container.image.tag`
 * (or the tag part of `container.image.name`), else "unknown".
 */
export interface SeriesKey {
  namespace: string
  service: string
  version: string
}

/** Canonical string id of a service (without version): "namespace/service", or "service" when namespace is empty. */
export function serviceId(namespace: string, service: string): string {
  return namespace === '' ? service : `${namespace}/${service}`
}

/**
 * Requests: one or more requests that ended at `timeMs`.
 * - From a SERVER span: count 1, errors 0|1, latencies = [durationUs] (latencyCounts undefined).
 * - From an `http.server.request.duration` histogram delta: count = delta count, errors = delta count
 *   of points whose `http.response.status_code` >= 500; latencies are bucket representative values
 *   (microseconds) with `latencyCounts[i]` requests each.
 */
export interface RequestObservation {
  kind: 'request'
  key: SeriesKey
  /** end of the interval the requests ended in (a span's end; a metric point's time) */
  timeMs: number
  /**
   * Start of the interval these requests are spread over, when they are an aggregate (the delta of a
   * metric point covers (startMs, timeMs]: the previous point's time, or the stream's start time for
   * a fresh stream's first point). Absent for spans: all at `timeMs`. The store spreads the counts
   * over the buckets of the interval in proportion to their overlap, so a 60 s export is not one
   * 5 s burst.
   */
  startMs?: number
  /**
   * true when `startMs` is the start of the stream itself (the first point of a fresh process,
   * emitted whole), so timeMs - startMs is its age and not the interval between two reports
   */
  streamStart?: true
  count: number
  errors: number
  latenciesUs: number[]
  latencyCounts: number[] | undefined
  /**
   * The histogram buckets the latencies were read from, when they are bucket representatives:
   * each latency stands for every request of its bucket, anywhere between the bucket's bounds.
   * Absent for spans (exact durations) and for a point without bounds (its mean).
   */
  latencyBuckets?: LatencyBuckets
}

/**
 * The bucket layout of a metric's latencies (microseconds), so that a reading can be traced back to
 * the bucket it stands for (src/normalize/buckets.ts latencyFloorUs): explicit bounds, or an
 * exponential histogram's scale and the unit factor its bucket bounds are multiplied by.
 */
export type LatencyBuckets = { kind: 'explicit'; boundsUs: readonly number[] } | { kind: 'exponential'; scale: number; factor: number }

export type ResourceKind = 'memory' | 'cpu'

/**
 * A resource reading of one pod (or process) at `timeMs`.
 * - memory: bytes in use (working set / usage).
 * - cpu: cores in use (usage in cores, or utilization x request when only utilization is known).
 * `request` is the pod's resource request in the same unit when known (sum over containers), else undefined.
 */
export interface ResourceObservation {
  kind: 'resource'
  key: SeriesKey
  pod: string
  resource: ResourceKind
  timeMs: number
  value: number
  request: number | undefined
}

/** A readiness/liveness reading of one container at `timeMs`: ready=false is a failure. */
export interface ProbeObservation {
  kind: 'probe'
  key: SeriesKey
  pod: string
  container: string
  timeMs: number
  ready: boolean
}

export type Observation = RequestObservation | ResourceObservation | ProbeObservation

/** Where normalize delivers. `signals` implements it; tests may collect into an array. */
export interface ObservationSink {
  record(obs: Observation): void
}
