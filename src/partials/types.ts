/**
 * Partials: what an ingest node (one sidecar of the DaemonSet) ships to the decider instead of raw
 * telemetry. One `SeriesPartial` holds everything the node's normalizer observed for one
 * (namespace, service, version, pod) in one bucket of the signal store's width; a `PartialBatch` is
 * one publication of a node, with the node's watermark announcement. The decider re-records a
 * partial as observations (`partialObservations`) into its own signal store, which then holds what a
 * single process fed all the telemetry would hold (README "Equivalence").
 */
import type { LatencyBuckets, Observation, ResourceKind, SeriesKey } from '../normalize/observations.js'

/** Version of the wire encoding (codec.ts) and of these shapes; a decoder refuses other versions. */
export const PARTIAL_VERSION = 2
/** Versions a decoder reads: version 1 is version 2 without interval layouts (`latencyBuckets`). */
export const PARTIAL_VERSIONS_READ: readonly number[] = [1, 2]

/**
 * Requests that ended at a point in time (SERVER spans; metric deltas without an interval), merged
 * over the bucket: counts add, latency values (integer microseconds, as the store records them) with
 * their counts, equal values merged, ascending.
 */
export interface PointRequests {
  count: number
  errors: number
  /** earliest and newest end time of the merged requests (the store's first-seen / last-seen times) */
  firstMs: number
  lastMs: number
  latenciesUs: number[]
  latencyCounts: number[]
}

/** A metric delta over (startMs, timeMs], kept as the normalizer gave it: the decider's store spreads it. */
export interface IntervalRequests {
  timeMs: number
  startMs: number
  streamStart: boolean
  count: number
  errors: number
  latenciesUs: number[]
  /** undefined: one request per value */
  latencyCounts: number[] | undefined
  /** the metric's bucket layout the latencies stand for (src/normalize/observations.ts); undefined: none */
  latencyBuckets: LatencyBuckets | undefined
}

export interface ResourceReading {
  resource: ResourceKind
  timeMs: number
  value: number
  request: number | undefined
}

export interface ProbeReading {
  container: string
  timeMs: number
  ready: boolean
}

export interface SeriesPartial {
  key: SeriesKey
  /**
   * the observation's pod: resource and probe readings carry it; request observations carry none
   * (src/normalize/observations.ts), so a node's requests of a service-version are one partial with pod ""
   */
  pod: string
  /** start of the bucket (unix ms, a multiple of the bucket width); the bucket of each item's `timeMs` */
  bucketStartMs: number
  requests: PointRequests | undefined
  intervals: IntervalRequests[]
  resources: ResourceReading[]
  probes: ProbeReading[]
}

/**
 * One publication of an ingest node. `watermarkMs` is the node's promise: it will send nothing more
 * for buckets that end at or before it, except observations that arrive late at the node itself
 * (those are sent anyway, and the decider counts them). `final`: the node's stream ended (replay's
 * end of file); its watermark is then its `nowMs`.
 */
export interface PartialBatch {
  node: string
  /** the node's clock: the newest telemetry time it has seen, or its wall clock live */
  nowMs: number
  watermarkMs: number
  final: boolean
  /**
   * the live node is stopping (SIGTERM: a drain, a scale-down, a rolling update of the DaemonSet)
   * and may come back under the same name: deciders stop waiting for it after `decider.leaveGrace`
   * instead of `decider.nodeTimeout` (src/decider/README.md "Nodes leaving"). Never with `final`
   * (final wins when both are set). Absent: false.
   */
  leaving?: boolean
  partials: SeriesPartial[]
}

/**
 * The observations a partial stands for, in the order the decider records them. Point requests are
 * recorded once at `firstMs` with all their counts, then (when later) as an empty request at
 * `lastMs`: the store's buckets, first-seen and last-seen times are then those of the original
 * requests. The other items are the original observations.
 */
export function partialObservations(p: SeriesPartial): Observation[] {
  const out: Observation[] = []
  const key = p.key
  const r = p.requests
  if (r !== undefined) {
    out.push({ kind: 'request', key, timeMs: r.firstMs, count: r.count, errors: r.errors, latenciesUs: r.latenciesUs, latencyCounts: r.latencyCounts })
    if (r.lastMs > r.firstMs) out.push({ kind: 'request', key, timeMs: r.lastMs, count: 0, errors: 0, latenciesUs: [], latencyCounts: undefined })
  }
  for (const i of p.intervals) {
    out.push({
      kind: 'request',
      key,
      timeMs: i.timeMs,
      startMs: i.startMs,
      ...(i.streamStart ? { streamStart: true as const } : {}),
      count: i.count,
      errors: i.errors,
      latenciesUs: i.latenciesUs,
      latencyCounts: i.latencyCounts,
      ...(i.latencyBuckets !== undefined ? { latencyBuckets: i.latencyBuckets } : {}),
    })
  }
  for (const x of p.resources) out.push({ kind: 'resource', key, pod: p.pod, resource: x.resource, timeMs: x.timeMs, value: x.value, request: x.request })
  for (const x of p.probes) out.push({ kind: 'probe', key, pod: p.pod, container: x.container, timeMs: x.timeMs, ready: x.ready })
  return out
}
