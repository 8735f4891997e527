/**
 * The read side of the signal windows: what the pure engine may look at. The engine never mutates
 * windows and never sees a histogram object; it receives numbers through this interface, so the
 * same engine runs against the live store, in replay, and against plain fakes in unit tests.
 *
 * Time ranges are half-open [fromMs, toMs) and are answered at bucket granularity: a bucket is in
 * the range when its start is >= fromMs and its end is <= toMs (fromMs/toMs are normally bucket
 * aligned; callers align with `alignDown`). Ranges older than the fine ring are answered from the
 * coarse ring when the store keeps one (then `buckets` holds the coarse buckets).
 */
import type { LatencyBuckets, ResourceKind, SeriesKey } from '../normalize/observations.js'

export interface VersionInfo {
  namespace: string
  service: string
  version: string
  /** unix ms of the first observation of this version (telemetry time) */
  firstSeenMs: number
  /** unix ms of the latest observation of this version */
  lastSeenMs: number
}

export interface LatencyView {
  /** number of latency samples */
  count: number
  /** latency at quantile q in (0, 1], microseconds; NaN when count is 0 */
  valueAtQuantile(q: number): number
  /**
   * The same quantile, read no lower than Prometheus' `histogram_quantile` reads a metric's buckets
   * (linearly inside the bucket holding it): the higher of that and valueAtQuantile. Where one signal
   * decides alone, the engine takes its baseline from this (src/engine/rules.ts BaselineNumbers
   * latencyUpperUs). Spans: valueAtQuantile.
   */
  upperAtQuantile(q: number): number
  /**
   * Samples in histogram buckets that lie wholly above `us` (the bucket's lowest equivalent value >
   * us). Counts, not interpolated values: applied to two windows with the same histogram layout it
   * compares the same set of buckets on both sides (the sequential latency test relies on that).
   */
  countAbove(us: number): number
}

/** How the data of one series arrives: what the engine needs to judge any export interval. */
export interface SeriesCoverage {
  /** newest telemetry time recorded for the series (end of its newest observation), unix ms */
  newestMs: number
  /**
   * the interval one report of the series typically covers, ms: for metric points the covered span
   * (time - start of their delta), for spans 0. A recent maximum, so the slowest exporter counts.
   */
  reportIntervalMs: number
  /**
   * time up to which the series' data is believed complete, rounded to the millisecond (nanosecond
   * float noise): the oldest head of the report chains still reporting (src/signals/report-chains.ts:
   * each exporter's newest report), never earlier than newestMs - reportIntervalMs; newestMs for spans
   */
  completeUntilMs: number
  /**
   * where the series' fine buckets begin: a range that starts at or after it (on the bucket grid) is
   * answered in `bucketMs` buckets, an older one only from a coarse bucket's start. Absent when the
   * view does not say (every range then starts on the coarse grid where it reaches coarse buckets).
   */
  fineFromMs?: number
  /**
   * when the series' latencies are a metric's bucket representatives: the bucket layout of the
   * newest ones, so that a reading can be traced back to its bucket's lower bound
   * (src/normalize/buckets.ts latencyFloorUs). Absent for spans and for points without bounds.
   */
  latencyBuckets?: LatencyBuckets
}

export interface BucketStats {
  startMs: number
  endMs: number
  requests: number
  errors: number
  /** latency samples in this bucket */
  latencyCount: number
  /**
   * microseconds, the histogram's own reading (a metric's bucket representative, not placed inside
   * its bucket: a window's LatencyView is); NaN when the bucket has no latency samples
   */
  latencyAtQuantile(q: number): number
  /** latency samples of this bucket in histogram buckets wholly above `us` (see LatencyView.countAbove) */
  latencyCountAbove(us: number): number
}

export interface PodSlope {
  pod: string
  resource: ResourceKind
  /** readings inside the range */
  samples: number
  /** robust (Theil-Sen) slope of the readings, in resource units per minute */
  slopePerMin: number
  /** the pod's resource request (same unit) when known */
  request: number | undefined
  /** slopePerMin / request: fraction of the request per minute; NaN when request is unknown or 0 */
  fractionPerMin: number
  /** latest reading in the range */
  last: number
}

export interface ProbeStats {
  readings: number
  failures: number
  /** unix ms of the first / last failing reading in the range */
  firstFailureMs: number | undefined
  lastFailureMs: number | undefined
  /** "pod/container" of containers that failed at least once in the range */
  failing: string[]
}

export interface WindowStats {
  fromMs: number
  toMs: number
  requests: number
  errors: number
  latency: LatencyView
  /** one entry per bucket in the range, in time order, including empty buckets */
  buckets: BucketStats[]
  resources: PodSlope[]
  probes: ProbeStats
}

/** A merged summary of minutes of a series' long history (src/signals/history.ts). */
export interface HistorySummary {
  /** the minutes merged: [fromMs, toMs) */
  fromMs: number
  toMs: number
  requests: number
  errors: number
  latencyCount: number
  /** latency at quantile q, microseconds (+-12 %: the middle of a 2^(1/3) bucket); NaN without samples */
  valueAtQuantile(q: number): number
  /** samples in latency buckets wholly above `us` */
  countAbove(us: number): number
  /** samples in latency buckets that reach above `us` (the one holding it included): at least those above it */
  countReaching(us: number): number
}

/**
 * The long history of a series: one summary per coarse bucket (1 min) for the minutes BEFORE its
 * retained range (`retainedFromMs`), so it never overlaps `window()`.
 */
export interface SeriesHistory {
  /** width of one summary (the coarse bucket), ms */
  widthMs: number
  /** start (unix ms) of each summary held, newest first */
  starts: number[]
  /** the summaries wholly inside [fromMs, toMs), merged */
  summary(fromMs: number, toMs: number): HistorySummary
}

export interface SignalView {
  /** width of a fine bucket, ms */
  readonly bucketMs: number
  /** width of a coarse bucket (ranges older than the fine ring are answered in these), ms */
  readonly coarseBucketMs: number
  /** how far back from a series' newest bucket fine buckets answer, ms */
  readonly fineRetentionMs: number
  /** versions seen for a service, oldest first */
  versions(namespace: string, service: string): VersionInfo[]
  /** aggregate of the series over [fromMs, toMs) */
  window(key: SeriesKey, fromMs: number, toMs: number): WindowStats
  /** oldest time (ms) the series can still answer for, or undefined when the series is unknown */
  retainedFromMs(key: SeriesKey): number | undefined
  /** how the series' data arrives, or undefined when the series is unknown */
  coverage(key: SeriesKey): SeriesCoverage | undefined
  /**
   * the series' long history beyond its retention, or undefined when it has none (unknown series,
   * younger than its retention, or a view without one: optional, so plain fakes need not provide it)
   */
  history?(key: SeriesKey): SeriesHistory | undefined
}

export function alignDown(t: number, bucketMs: number): number {
  return Math.floor(t / bucketMs) * bucketMs
}
