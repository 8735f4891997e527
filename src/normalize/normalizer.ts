/**
 * OTLP (decoded) -> observations, by OpenTelemetry semantic conventions. The mapping is documented
 * in src/normalize/README.md; keep both in step.
 *
 * The normalizer has no clock: every time comes from the data. Its only state is bounded: the
 * cumulative->delta stream map, the per-pod resource requests and the last SERVER span time per
 * service-version (source preference).
 */
import type { ConsumeResult } from '../receivers/consumer.js'
import type {
  Attributes,
  DecodedMetric,
  ExpHistogramPoint,
  HistogramPoint,
  MetricsRequest,
  NumberPoint,
  TracesRequest,
} from '../receivers/otlp/model.js'
import { SpanKind, StatusCode, Temporality } from '../receivers/otlp/model.js'
import type { LatencyBuckets, Observation, ObservationSink, RequestObservation, ResourceKind, SeriesKey } from './observations.js'
import type { NormalizeConfig, NormalizeConfigInput } from './config.js'
import { normalizeSchema } from './config.js'
import { PodWarmup } from '../warmup/pod-warmup.js'
import { customRequestMetric, REQUEST_METRICS, STABLE_HTTP_METRIC, unitToUs, type RequestMetricSpec } from './request-metrics.js'
import { ExportGroups } from './export-groups.js'
import { SpanCoverage, type CoverageShare, type SpanCoverageChange } from './span-coverage.js'

/** Optional fast path a sink may offer (the signal store does): one lookup per resource, not per span. */
export interface FastRequestSink {
  series(key: SeriesKey): { recordRequest(timeMs: number, latencyUs: number, error: boolean): void }
}

export interface NormalizerStats {
  accepted: number
  rejected: number
  /** items that are valid but carry no signal (non-SERVER spans, unrelated metrics) */
  ignored: number
  missingService: number
  invalidValues: number
  unsupportedUnit: number
  unsupportedTemporality: number
  /** cumulative points that only primed a stream (a first point, or a reset, of a process not freshly started) */
  primed: number
  /** cumulative resets detected (start time changed or a count decreased) */
  resets: number
  /** cumulative points not newer than the stream's last point (duplicates, disorder): dropped */
  outOfOrder: number
  /**
   * request metric points (with requests) not counted because SERVER spans of the same
   * service-version were seen within `sourcePreference.spanRecency`: accepted, the spans count them
   */
  deduplicatedPoints: number
  /**
   * legacy `http.server.duration` points (with requests) not counted because the same service-version
   * exports `http.server.request.duration` (semconv opt-in `http/dup`): accepted, the stable one counts them
   */
  legacyDuplicates: number
  /**
   * points of a request metric derived from spans (the spanmetrics connector) with requests, not
   * counted because the same service-version's own request metric counts them: accepted
   */
  derivedDuplicates: number
  /** points of a metric computed from spans of every kind (spanmetrics) whose `span.kind` is not SERVER: accepted, not requests */
  nonServerPoints: number
  /** service-versions forgotten from a recency map (spans, stable HTTP, own request metrics) because `maxServiceVersions` was reached */
  spanSourcesEvicted: number
  /** cumulative points refused because `maxStreams` streams are tracked */
  streamOverflow: number
  /** cumulative streams forgotten after `idleTtl` */
  streamsExpired: number
  /**
   * first points of cumulative streams counted whole because their siblings (same resource, metric
   * and start time) were exported before without them: their count accrued since (export-groups.ts)
   */
  newSinceSiblings: number
  /** sibling groups forgotten because `maxStreams` groups were tracked (their next new stream falls back to `freshStart`) */
  exportGroupsEvicted: number
  /** pods forgotten from the request map because `maxPods` was reached */
  podsEvicted: number
  /** requests left out because their process was in its warm-up (`warmup.duration`, src/warmup) */
  warmupExcluded: number
  /** processes forgotten by the warm-up at `warmup.maxPods`: their next requests start a warm-up again */
  warmupPodsEvicted: number
  /**
   * SERVER spans not counted because their service's spans are judged sampled (span-coverage.ts):
   * accepted, the service's request metrics count these requests
   */
  sampledSpans: number
  /** metric export intervals compared with the SERVER spans of the same interval and process */
  spanCoverageCompared: number
  /** metric export intervals that could not be compared (no spans tallied yet, too old, the pending limit) */
  spanCoverageUnmatched: number
  /** processes or services forgotten by the span-coverage check at its bound */
  spanCoverageEvicted: number
  /** services whose SERVER spans are now judged sampled (a gauge, not a counter) */
  sampledServices: number
}

/** What the runtime lends the normalizer: lifecycle events (logged, never per item) and the fleet's shared judgements. */
export interface NormalizerHooks {
  /** a service's SERVER spans were judged sampled (its metrics count now) or complete again */
  spanCoverage?: (change: SpanCoverageChange) => void
  /** span-coverage judgements shared with the fleet's other normalizers (span-coverage.ts) */
  coverageShare?: CoverageShare
}

/** the stable HTTP request-duration metric; every request metric pullback reads is in request-metrics.ts */
export const DURATION_METRIC = STABLE_HTTP_METRIC
export const PROBE_METRIC = 'pullback.probe.status'
const MEMORY_METRICS = new Set(['k8s.pod.memory.working_set', 'container.memory.working_set', 'process.memory.usage'])
const CPU_METRICS = new Set(['k8s.pod.cpu.usage', 'container.cpu.usage'])
const CPU_UTILIZATION = 'process.cpu.utilization'
const MEM_REQUEST = 'k8s.container.memory_request'
const CPU_REQUEST = 'k8s.container.cpu_request'
const READY_METRIC = 'k8s.container.ready'
const PROBE_TYPES = new Set(['readiness', 'liveness', 'startup'])
/**
 * Resource attributes that tell two processes of one service-version apart. A resource with none of
 * them (replicas started from the same config with no pod, instance, host or container identity)
 * cannot be told from its siblings by attributes: its cumulative streams are also keyed by start time.
 */
const IDENTITY_ATTRS = ['k8s.pod.name', 'k8s.pod.uid', 'service.instance.id', 'host.name', 'host.id', 'container.id'] as const

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}

/** Tag of an image reference "registry:5000/name:tag" or "name:tag@sha256:..."; undefined when untagged. */
export function imageTag(image: string): string | undefined {
  const at = image.indexOf('@')
  const ref = at >= 0 ? image.slice(0, at) : image
  const slash = ref.lastIndexOf('/')
  const colon = ref.lastIndexOf(':')
  return colon > slash && colon < ref.length - 1 ? ref.slice(colon + 1) : undefined
}

export function seriesKeyOf(r: Attributes): SeriesKey | undefined {
  const service = str(r['service.name'])
  if (service === undefined) return undefined
  const namespace = str(r['k8s.namespace.name']) ?? str(r['service.namespace']) ?? ''
  const image = str(r['container.image.name'])
  const version = str(r['service.version']) ?? str(r['container.image.tag']) ?? (image !== undefined ? imageTag(image) : undefined) ?? 'unknown'
  return { namespace, service, version }
}

export function podOf(r: Attributes): string {
  return str(r['k8s.pod.name']) ?? str(r['k8s.pod.uid']) ?? str(r['service.instance.id']) ?? str(r['host.name']) ?? 'unknown'
}

function hasIdentity(r: Attributes): boolean {
  for (const k of IDENTITY_ATTRS) if (str(r[k]) !== undefined) return true
  return false
}

/** Map key of a service-version. */
function versionId(k: SeriesKey): string {
  return `${k.namespace}\u0000${k.service}\u0000${k.version}`
}

/** A service, as logs and the span-coverage check name it: `namespace/name`, or `name` without a namespace. */
function serviceName(k: SeriesKey): string {
  return k.namespace === '' ? k.service : `${k.namespace}/${k.service}`
}

function attrKey(a: Attributes): string {
  const keys = Object.keys(a).sort()
  let s = ''
  for (const k of keys) s += `${k}=${String(a[k])}\u0002`
  return s
}


function validCount(n: number): boolean {
  return Number.isFinite(n) && n >= 0
}

function validValue(n: number): boolean {
  return Number.isFinite(n) && n >= 0
}


/** Sparse exponential-histogram state: positive bucket index -> count at `scale`, plus zeros. */
interface ExpCounts {
  scale: number
  zero: number
  /** absolute bucket indexes and counts (includes negative buckets mapped to the zero bucket) */
  idx: number[]
  cnt: number[]
}

interface CumState {
  startMs: number
  timeMs: number
  count: number
  /** explicit: bounds and counts; exponential: ExpCounts */
  bounds: number[] | undefined
  counts: number[] | undefined
  exp: ExpCounts | undefined
  /** explicit: the point's sum of values, for a single-bucket histogram's mean over an interval */
  sum?: number | undefined
}

interface Requests {
  cpu: number | undefined
  mem: number | undefined
}

/** What the request-metric path needs of one resource, computed once per resource. */
interface ResourceCtx {
  key: SeriesKey
  /** resource attributes, canonical: the stream id prefix */
  resKey: string
  /** no identity attribute: streams are also keyed by their start time */
  anonymous: boolean
  /** last SERVER span end time of the service-version, -Infinity when none is remembered */
  lastSpanMs: number
  /** newest time of a stable HTTP request-metric point of the service-version, -Infinity when none is remembered */
  lastStableHttpMs: number
  /** newest time of a point of any request metric of the service-version's own (not derived from spans), -Infinity when none */
  lastOwnMetricMs: number
  /** `namespace/name` */
  service: string
  /** the service's spans are judged sampled: its metrics count, not its spans */
  spansSampled: boolean
  /** the span-coverage check compares this resource's metric intervals with its spans */
  coverage: boolean
}

/** A request delta ready to emit: its count and the interval it covers (start undefined: at `timeMs`). */
/** `streamStart`: startMs is the stream's own start (a first point emitted whole), not the previous report */
/** `sum`: the interval's sum of values when the point was diffed against its stream; absent: the point's own sum is the interval's */
type Delta<B> = { kind: 'emit'; count: number; buckets: B; startMs: number | undefined; streamStart: boolean; sum?: number | undefined } | { kind: 'skip' }
type Emit<B> = Extract<Delta<B>, { kind: 'emit' }>
const SKIP: { kind: 'skip' } = { kind: 'skip' }
const NO_BOUNDS: number[] = []
/** histogram-like metric names remembered as not read (Normalizer.unreadHistograms) */
const UNREAD_NAMES = 32

/** a metric name that may well be a server's request durations under a name pullback does not read */
const serverLike = (name: string): boolean => /server|request|http|rpc|grpc/i.test(name) && !/client/i.test(name)

export interface UnreadHistogram {
  name: string
  type: 'histogram' | 'exponential_histogram' | 'summary'
  unit: string
  points: number
}

class Result {
  accepted = 0
  rejected = 0
  reason: string | undefined
  reject(n: number, reason: string): void {
    this.rejected += n
    if (this.reason === undefined && n > 0) this.reason = reason
  }
  out(): ConsumeResult {
    return this.reason === undefined
      ? { accepted: this.accepted, rejected: this.rejected }
      : { accepted: this.accepted, rejected: this.rejected, rejectReason: this.reason }
  }
}

export class Normalizer {
  readonly config: NormalizeConfig
  private readonly fast: FastRequestSink | undefined
  private readonly streams = new Map<string, CumState>()
  private layoutMemo: { source: number[]; factor: number; layout: LatencyBuckets } | undefined
  private readonly groups: ExportGroups
  private readonly podRequests = new Map<string, Map<string, Requests>>()
  /** service-version -> newest SERVER span end time; in update order (delete + set), bounded */
  private readonly spanSeen = new Map<string, number>()
  /** service-version -> newest time of a stable HTTP request-metric point (the legacy name is then a duplicate) */
  private readonly stableHttpSeen = new Map<string, number>()
  /** service-version -> newest time of a point of its own request metric (any but a derived one: spanmetrics is then a duplicate) */
  private readonly ownMetricSeen = new Map<string, number>()
  private newestMs = -Infinity
  private readonly st: NormalizerStats = {
    accepted: 0,
    rejected: 0,
    ignored: 0,
    missingService: 0,
    invalidValues: 0,
    unsupportedUnit: 0,
    unsupportedTemporality: 0,
    primed: 0,
    resets: 0,
    outOfOrder: 0,
    deduplicatedPoints: 0,
    legacyDuplicates: 0,
    derivedDuplicates: 0,
    nonServerPoints: 0,
    spanSourcesEvicted: 0,
    streamOverflow: 0,
    streamsExpired: 0,
    newSinceSiblings: 0,
    exportGroupsEvicted: 0,
    podsEvicted: 0,
    warmupExcluded: 0,
    warmupPodsEvicted: 0,
    sampledSpans: 0,
    spanCoverageCompared: 0,
    spanCoverageUnmatched: 0,
    spanCoverageEvicted: 0,
    sampledServices: 0,
  }
  private readonly coverage: SpanCoverage
  /** each process's first requests left out (src/warmup); undefined when `warmup.duration` is 0 */
  private readonly warmup: PodWarmup | undefined
  /** reused buffer of one resource's SERVER span end times for the span-coverage check */
  private readonly ends: number[] = []
  /** the request-duration metrics read: the conventions' (request-metrics.ts) and `normalize.requestMetrics` */
  private readonly requestMetrics: ReadonlyMap<string, RequestMetricSpec>
  /**
   * Histogram-like metrics not read (by name), so that a user whose request histogram has a name
   * pullback does not know can be told (`pullback replay`): at most UNREAD_NAMES; the points of
   * names not kept (or no longer kept) are only counted (`unreadDroppedPoints`). Names not kept are
   * not remembered, so they cannot be counted as names: every export would count them again.
   */
  private readonly unread = new Map<string, UnreadHistogram>()
  private unreadDroppedPoints = 0

  constructor(
    config: NormalizeConfigInput,
    private readonly sink: ObservationSink,
    hooks: NormalizerHooks = {},
  ) {
    this.config = normalizeSchema.parse(config)
    this.coverage = new SpanCoverage(this.config.sourcePreference.coverage, hooks.spanCoverage, hooks.coverageShare)
    this.groups = new ExportGroups(this.config.cumulative.maxStreams, this.config.cumulative.idleTtl)
    this.warmup = PodWarmup.of(this.config.warmup)
    this.requestMetrics = new Map([...REQUEST_METRICS, ...this.config.requestMetrics.map((m): [string, RequestMetricSpec] => [m.name, customRequestMetric(m)])])
    const maybe = sink as Partial<FastRequestSink>
    this.fast = typeof maybe.series === 'function' ? (sink as unknown as FastRequestSink) : undefined
  }

  /**
   * Histogram-like metrics seen and not read as request durations (see `unread`): those whose name
   * looks like a server's requests first (`serverLike`), then most points first.
   */
  unreadHistograms(): { names: UnreadHistogram[]; droppedPoints: number } {
    const rank = (u: UnreadHistogram) => (serverLike(u.name) ? 0 : 1)
    return { names: [...this.unread.values()].sort((a, b) => rank(a) - rank(b) || b.points - a.points), droppedPoints: this.unreadDroppedPoints }
  }

  /**
   * At the limit, a server-like name takes the place of the other name with the fewest points (a
   * JVM exports dozens of histograms, and the one a user needs to hear of may come last).
   */
  private noteUnread(fullName: string, type: UnreadHistogram['type'], unit: string, points: number): void {
    // names come from the senders: kept to a readable length (the map holds at most UNREAD_NAMES)
    const name = fullName.length > 200 ? `${fullName.slice(0, 200)}...` : fullName
    const u = this.unread.get(name)
    if (u !== undefined) {
      u.points += points
      return
    }
    if (this.unread.size >= UNREAD_NAMES) {
      let victim: UnreadHistogram | undefined
      if (serverLike(name)) for (const x of this.unread.values()) if (!serverLike(x.name) && (victim === undefined || x.points < victim.points)) victim = x
      if (victim === undefined) {
        this.unreadDroppedPoints += points
        return
      }
      this.unreadDroppedPoints += victim.points
      this.unread.delete(victim.name)
    }
    this.unread.set(name, { name, type, unit: unit.slice(0, 32), points })
  }

  stats(): NormalizerStats {
    const c = this.coverage.stats()
    const w = this.warmup?.stats()
    return { ...this.st, warmupExcluded: w?.warmupExcluded ?? 0, warmupPodsEvicted: w?.warmupPodsEvicted ?? 0, spanCoverageCompared: c.compared, spanCoverageUnmatched: c.unmatched, spanCoverageEvicted: c.evicted, sampledServices: c.sampledServices }
  }

  private emit(obs: Observation): void {
    this.sink.record(obs)
  }

  traces(req: TracesRequest): ConsumeResult {
    const r = new Result()
    for (const rs of req.resourceSpans) {
      const key = seriesKeyOf(rs.resource)
      if (key === undefined) {
        this.st.missingService += rs.spans.length
        r.reject(rs.spans.length, 'resource without service.name')
        continue
      }
      // sampled spans of a service whose metrics count instead: tallied for the coverage check only
      const anySampled = this.coverage.anySampled()
      const tally = this.coverage.tracksAny() && this.coverage.tracks(versionId(key))
      const service = anySampled || tally ? serviceName(key) : ''
      const sampled = anySampled && this.coverage.sampled(service)
      const rec = sampled ? undefined : this.fast?.series(key)
      const ends = this.ends
      ends.length = 0
      let newestServer = -Infinity
      // the resource's canonical key, once: the process the warm-up and the coverage tally know
      const resKey = tally || (this.warmup !== undefined && !sampled) ? attrKey(rs.resource) : ''
      const warmUntil = sampled ? -Infinity : this.warmUntil(rs, resKey)
      let warming = 0
      for (const span of rs.spans) {
        if (span.kind !== SpanKind.SERVER) {
          this.st.ignored++
          r.accepted++
          continue
        }
        const t = span.endTimeMs
        const d = span.durationUs
        if (!validValue(t) || !validValue(d)) {
          this.st.invalidValues++
          r.reject(1, 'span with invalid end time or duration')
          continue
        }
        if (tally) ends.push(t)
        r.accepted++
        if (t > newestServer) newestServer = t
        if (sampled) {
          this.st.sampledSpans++
          continue
        }
        if (t - d / 1000 < warmUntil) {
          warming++
          continue
        }
        const error = span.httpStatus >= 500 || span.statusCode === StatusCode.ERROR
        if (rec !== undefined) rec.recordRequest(t, d, error)
        else this.emit({ kind: 'request', key, timeMs: t, count: 1, errors: error ? 1 : 0, latenciesUs: [d], latencyCounts: undefined })
      }
      if (warming > 0) this.warmup?.excluded(warming)
      if (tally) this.coverage.spans(resKey, service, ends)
      if (newestServer !== -Infinity) this.sawSpans(key, newestServer)
    }
    this.st.accepted += r.accepted
    this.st.rejected += r.rejected
    return r.out()
  }

  metrics(req: MetricsRequest): ConsumeResult {
    const r = new Result()
    // requests first, so that usage points of the same request see them whatever the order
    for (const rm of req.resourceMetrics) {
      for (const m of rm.metrics) if (m.name === MEM_REQUEST || m.name === CPU_REQUEST) this.requestMetric(rm.resource, m, r)
    }
    for (const rm of req.resourceMetrics) {
      let key: SeriesKey | undefined | null = null
      let ctx: ResourceCtx | undefined
      for (const m of rm.metrics) {
        if (m.name === MEM_REQUEST || m.name === CPU_REQUEST) continue
        const spec = this.requestMetrics.get(m.name)
        const relevant =
          spec !== undefined || MEMORY_METRICS.has(m.name) || CPU_METRICS.has(m.name) || m.name === CPU_UTILIZATION || m.name === READY_METRIC || m.name === PROBE_METRIC
        const n = m.points.length
        if (!relevant) {
          this.st.ignored += n
          r.accepted += n
          if (m.type === 'histogram' || m.type === 'exponential_histogram' || m.type === 'summary') this.noteUnread(m.name, m.type, m.unit, n)
          continue
        }
        if (key === null) key = seriesKeyOf(rm.resource)
        if (key === undefined) {
          this.st.missingService += n
          r.reject(n, 'resource without service.name')
          continue
        }
        if (spec !== undefined) {
          ctx ??= this.requestCtx(key, rm.resource, rm.metrics)
          this.durationMetric(ctx, m, spec, r)
        } else if (m.name === READY_METRIC || m.name === PROBE_METRIC) this.probeMetric(key, rm.resource, m, r)
        else this.resourceMetric(key, rm.resource, m, r)
      }
    }
    this.st.accepted += r.accepted
    this.st.rejected += r.rejected
    return r.out()
  }

  // ---- requests: source preference -------------------------------------------------------------

  /**
   * The end of the warm-up of the process that sent these spans (its SERVER spans starting before
   * it are left out), -Infinity when no warm-up applies: the stage is off, or the resource cannot
   * tell its replicas apart (no pod, instance, host or container identity).
   */
  private warmUntil(rs: TracesRequest['resourceSpans'][number], resKey: string): number {
    if (this.warmup === undefined || !hasIdentity(rs.resource)) return -Infinity
    let earliest = Infinity
    for (const span of rs.spans) {
      if (span.kind !== SpanKind.SERVER) continue
      const start = span.endTimeMs - span.durationUs / 1000
      if (start < earliest && validValue(start)) earliest = start
    }
    return earliest === Infinity ? -Infinity : this.warmup.until(resKey, earliest)
  }

  /** A request-metric delta that counts: not from a process in its warm-up (src/warmup). */
  private warmed(ctx: ResourceCtx, timeMs: number, d: { startMs: number | undefined; streamStart: boolean; count: number }): boolean {
    return this.warmup === undefined || ctx.anonymous || this.warmup.admitInterval(ctx.resKey, d.startMs, timeMs, d.streamStart, d.count)
  }

  /** Remembers that `key` sent SERVER spans up to `t` (bounded: the least recently updated is forgotten). */
  private sawSpans(key: SeriesKey, t: number): void {
    this.remember(this.spanSeen, versionId(key), t)
  }

  /** Bounded recency map update (`maxServiceVersions`; the least recently updated is forgotten, counted). */
  private remember(map: Map<string, number>, id: string, t: number): void {
    const prev = map.get(id)
    if (prev !== undefined) {
      if (t <= prev) return
      map.delete(id)
    } else if (map.size >= this.config.sourcePreference.maxServiceVersions) {
      const oldest = map.keys().next().value as string
      map.delete(oldest)
      this.st.spanSourcesEvicted++
    }
    map.set(id, t)
  }

  /**
   * The request-metric context of one resource. A stable HTTP metric anywhere in the resource's
   * metrics is remembered first, so a legacy duplicate of the same export is recognised whatever the
   * order of the two metrics.
   */
  private requestCtx(key: SeriesKey, resource: Attributes, metrics: DecodedMetric[]): ResourceCtx {
    const id = versionId(key)
    for (const m of metrics) {
      const spec = this.requestMetrics.get(m.name)
      if (spec === undefined || spec.derived === true) continue
      let newest = -Infinity
      for (const p of m.points) if (p.timeMs > newest && Number.isFinite(p.timeMs)) newest = p.timeMs
      if (newest === -Infinity) continue
      this.remember(this.ownMetricSeen, id, newest)
      if (m.name === STABLE_HTTP_METRIC) this.remember(this.stableHttpSeen, id, newest)
    }
    const lastSpanMs = this.spanSeen.get(id) ?? -Infinity
    const anonymous = !hasIdentity(resource)
    // a version that sends both spans and request metrics: its processes' intervals are compared
    // (not without identity: one resource would then be every replica's spans against one's metrics)
    const coverage = this.coverage.enabled && lastSpanMs !== -Infinity && !anonymous
    if (coverage) this.coverage.trackVersion(id)
    const service = serviceName(key)
    return {
      key,
      resKey: attrKey(resource),
      anonymous,
      lastSpanMs,
      lastStableHttpMs: this.stableHttpSeen.get(id) ?? -Infinity,
      lastOwnMetricMs: this.ownMetricSeen.get(id) ?? -Infinity,
      service,
      spansSampled: this.coverage.sampled(service),
      coverage,
    }
  }

  /**
   * A point whose requests another request metric of the same service-version already counts: a
   * legacy name beside the stable one, or a metric derived from spans beside the service's own.
   * Counted as `legacyDuplicates` or `derivedDuplicates`.
   */
  private duplicateMetric(ctx: ResourceCtx, spec: RequestMetricSpec, timeMs: number): boolean {
    const recency = this.config.sourcePreference.spanRecency
    if (spec.legacy && timeMs <= ctx.lastStableHttpMs + recency) {
      this.st.legacyDuplicates++
      return true
    }
    if (spec.derived === true && timeMs <= ctx.lastOwnMetricMs + recency) {
      this.st.derivedDuplicates++
      return true
    }
    return false
  }

  /**
   * True when SERVER spans of the resource's service-version were seen within `spanRecency` of
   * `timeMs`: the spans already count these requests, the metric point must not count them again.
   */
  private spansCover(ctx: ResourceCtx, timeMs: number): boolean {
    return !ctx.spansSampled && timeMs <= ctx.lastSpanMs + this.config.sourcePreference.spanRecency
  }

  /** One counted (not legacy-duplicate) metric delta of a process, for the span-coverage check. */
  private coverageInterval(ctx: ResourceCtx, p: { timeMs: number }, d: { count: number; startMs: number | undefined; streamStart: boolean }): void {
    if (ctx.coverage && d.startMs !== undefined && !d.streamStart) this.coverage.metricInterval(ctx.resKey, ctx.service, d.startMs, p.timeMs, d.count)
  }

  // ---- requests (histograms) -------------------------------------------------------------------

  /**
   * Cumulative stream id: resource + metric + point attributes; plus the start time when the
   * resource cannot tell replicas apart, so that two processes never share (and corrupt) one stream.
   */
  private streamId(ctx: ResourceCtx, name: string, p: { startTimeMs: number; attributes: Attributes }): string {
    const id = `${ctx.resKey}\u0001${name}\u0001${attrKey(p.attributes)}`
    return ctx.anonymous ? `${id}\u0001${p.startTimeMs}` : id
  }

  /** The point's sibling group (export-groups.ts): one process's streams of one metric. */
  private groupId(ctx: ResourceCtx, name: string, p: { startTimeMs: number }): string {
    return `${ctx.resKey}\u0001${name}\u0001${p.startTimeMs}`
  }

  private durationMetric(ctx: ResourceCtx, m: DecodedMetric, spec: RequestMetricSpec, r: Result, contiguous = false): void {
    if (m.type === 'summary') {
      // OTLP defines a summary's count and sum as cumulative: read as a one-bucket cumulative
      // histogram (its mean per interval). Micrometer's delta registry sends each step's own, its
      // start at the previous point: such a point is counted whole (`contiguous`, explicitDelta).
      const points = m.points.map((p): HistogramPoint => ({ startTimeMs: p.startTimeMs, timeMs: p.timeMs, count: p.count, sum: p.sum, bounds: NO_BOUNDS, bucketCounts: [p.count], attributes: p.attributes }))
      this.durationMetric(ctx, { name: m.name, unit: m.unit, type: 'histogram', temporality: Temporality.CUMULATIVE, points }, spec, r, true)
      return
    }
    if (m.type !== 'histogram' && m.type !== 'exponential_histogram') {
      this.st.ignored += m.points.length
      r.accepted += m.points.length
      return
    }
    const factor = unitToUs(m.unit, spec)
    if (factor === undefined) {
      this.st.unsupportedUnit += m.points.length
      r.reject(m.points.length, `unsupported unit ${JSON.stringify(m.unit)} for ${m.name}`)
      return
    }
    if (m.temporality !== Temporality.DELTA && m.temporality !== Temporality.CUMULATIVE) {
      this.st.unsupportedTemporality += m.points.length
      r.reject(m.points.length, `unsupported temporality for ${m.name}`)
      return
    }
    const cumulative = m.temporality === Temporality.CUMULATIVE
    if (m.type === 'histogram') {
      for (const p of m.points) {
        if (!this.validHistogram(p)) {
          this.st.invalidValues++
          r.reject(1, `invalid ${m.name} point`)
          continue
        }
        if (spec.server !== undefined && !spec.server(p.attributes)) {
          this.st.nonServerPoints++
          r.accepted++
          continue
        }
        const d: Delta<number[]> = cumulative
          ? this.explicitDelta(this.streamId(ctx, m.name, p), this.groupId(ctx, m.name, p), p, r, contiguous)
          : this.deltaPoint(ctx, m.name, p, p.bucketCounts)
        if (d.kind === 'skip') continue
        r.accepted++
        if (d.count <= 0) continue
        if (this.duplicateMetric(ctx, spec, p.timeMs)) continue
        this.coverageInterval(ctx, p, d)
        if (this.spansCover(ctx, p.timeMs)) this.st.deduplicatedPoints++
        else if (this.warmed(ctx, p.timeMs, d)) this.emitExplicit(ctx.key, p, d, factor, spec)
      }
    } else {
      for (const p of m.points) {
        if (!this.validExp(p)) {
          this.st.invalidValues++
          r.reject(1, `invalid ${m.name} point`)
          continue
        }
        if (spec.server !== undefined && !spec.server(p.attributes)) {
          this.st.nonServerPoints++
          r.accepted++
          continue
        }
        const e = expCountsOf(p)
        const d: Delta<ExpCounts> = cumulative
          ? this.expDelta(this.streamId(ctx, m.name, p), this.groupId(ctx, m.name, p), p, e, r)
          : this.deltaPoint(ctx, m.name, p, e)
        if (d.kind === 'skip') continue
        r.accepted++
        if (d.count <= 0) continue
        if (this.duplicateMetric(ctx, spec, p.timeMs)) continue
        this.coverageInterval(ctx, p, d)
        if (this.spansCover(ctx, p.timeMs)) this.st.deduplicatedPoints++
        else if (this.warmed(ctx, p.timeMs, d)) this.emitExp(ctx.key, p, d.count, d.buckets, d.startMs, d.streamStart, factor, spec)
      }
    }
  }

  private validHistogram(p: HistogramPoint): boolean {
    if (!validCount(p.count) || !validValue(p.timeMs)) return false
    if (p.bucketCounts.length !== p.bounds.length + 1 && !(p.bounds.length === 0 && p.bucketCounts.length <= 1)) return false
    for (const c of p.bucketCounts) if (!validCount(c)) return false
    for (const b of p.bounds) if (!Number.isFinite(b)) return false
    return true
  }

  private validExp(p: ExpHistogramPoint): boolean {
    if (!validCount(p.count) || !validValue(p.timeMs) || !validCount(p.zeroCount) || !Number.isInteger(p.scale)) return false
    if (p.scale < -10 || p.scale > 20) return false
    for (const c of p.positive.bucketCounts) if (!validCount(c)) return false
    for (const c of p.negative.bucketCounts) if (!validCount(c)) return false
    return true
  }

  private request(key: SeriesKey, p: { timeMs: number; attributes: Attributes }, count: number, startMs: number | undefined, streamStart: boolean, lats: number[], ns: number[], spec: RequestMetricSpec, buckets: LatencyBuckets | undefined): Observation {
    const errors = spec.isError(p.attributes) ? count : 0
    const o: RequestObservation =
      startMs === undefined
        ? { kind: 'request', key, timeMs: p.timeMs, count, errors, latenciesUs: lats, latencyCounts: ns }
        : streamStart
          ? { kind: 'request', key, timeMs: p.timeMs, startMs, streamStart: true, count, errors, latenciesUs: lats, latencyCounts: ns }
          : { kind: 'request', key, timeMs: p.timeMs, startMs, count, errors, latenciesUs: lats, latencyCounts: ns }
    if (buckets !== undefined) o.latencyBuckets = buckets
    return o
  }

  /**
   * The explicit layout in microseconds; the previous one again when bounds and unit are unchanged
   * (an SDK exports one layout per instrument: one array, not one per point). A one-entry memo.
   */
  private explicitLayout(bounds: readonly number[], factor: number): LatencyBuckets {
    const m = this.layoutMemo
    if (m !== undefined && m.factor === factor && m.source.length === bounds.length && m.source.every((x, i) => x === bounds[i])) return m.layout
    const layout: LatencyBuckets = { kind: 'explicit', boundsUs: bounds.map((x) => x * factor) }
    this.layoutMemo = { source: [...bounds], factor, layout }
    return layout
  }

  private emitExplicit(key: SeriesKey, p: HistogramPoint, d: Emit<number[]>, factor: number, spec: RequestMetricSpec): void {
    const { count, buckets: counts, startMs, streamStart } = d
    const lats: number[] = []
    const ns: number[] = []
    const b = p.bounds
    const layout = b.length === 0 ? undefined : this.explicitLayout(b, factor)
    if (b.length === 0) {
      // a single bucket (Micrometer's timers unless a histogram is configured): the interval's mean
      // is the only representative there is, never the stream's lifetime mean. It stands for all
      // `count` requests (the quantiles weigh it so), but they are not `count` independent readings:
      // the series' latency is then unbounded (no latencyBuckets), and the engine neither lets it
      // decide alone nor counts its requests above a cut as trials (rules.ts boundedLatency).
      const sum = 'sum' in d ? d.sum : p.sum
      if (sum !== undefined && Number.isFinite(sum) && sum >= 0 && count > 0) {
        lats.push((sum / count) * factor)
        ns.push(count)
      }
    } else {
      for (let i = 0; i < counts.length; i++) {
        const n = counts[i] as number
        if (n <= 0) continue
        let rep: number
        if (i === 0) rep = Math.max(0, b[0] as number) / 2
        else if (i === b.length) rep = b[b.length - 1] as number
        else rep = ((b[i - 1] as number) + (b[i] as number)) / 2
        lats.push(Math.max(0, rep) * factor)
        ns.push(n)
      }
    }
    this.emit(this.request(key, p, count, startMs, streamStart, lats, ns, spec, layout))
  }

  private emitExp(key: SeriesKey, p: ExpHistogramPoint, count: number, e: ExpCounts, startMs: number | undefined, streamStart: boolean, factor: number, spec: RequestMetricSpec): void {
    const lats: number[] = []
    const ns: number[] = []
    if (e.zero > 0) {
      lats.push(0)
      ns.push(e.zero)
    }
    const step = Math.pow(2, -e.scale)
    for (let i = 0; i < e.idx.length; i++) {
      const n = e.cnt[i] as number
      if (n <= 0) continue
      // bucket idx covers (base^idx, base^(idx+1)], base = 2^(2^-scale): geometric midpoint
      lats.push(Math.pow(2, ((e.idx[i] as number) + 0.5) * step) * factor)
      ns.push(n)
    }
    this.emit(this.request(key, p, count, startMs, streamStart, lats, ns, spec, { kind: 'exponential', scale: e.scale, factor }))
  }

  // ---- delta points ----------------------------------------------------------------------------

  /**
   * The interval a DELTA point covers. An SDK with delta temporality starts each point at its
   * previous collection, but a Collector's `cumulativetodelta` processor (its default
   * `initial_value: auto`) emits a stream's first point whole, from the stream's own start time: a
   * 5xx stream that first appears minutes after its process started would cover all those minutes,
   * and read as a report interval it held the series' completeness horizon back for as long (a
   * 15 s metrics-only bad deploy converted so was never decided). So, per delta stream (resource,
   * metric, attributes; without a start time even for a resource without identity, since a delta's
   * start moves every point):
   * - a known stream's point covers its own (start, time]; when that start is before the stream's
   *   previous point (replicas without pod identity share a stream here, each process's points
   *   starting at its own previous one; or a value passed whole from its stream's start) it is a
   *   provisional interval (`streamStart`), not a report interval;
   * - a stream's first point whose start is before the previous export of its resource's metric
   *   (export-groups.ts, keyed without start times) accrued after that export, as a cumulative
   *   sibling does (`newSinceSiblings`);
   * - the first export of a resource's metric covers its own (start, time] as a provisional interval
   *   (`streamStart`), like a fresh cumulative stream: it may be a process's age.
   * Delta streams share the cumulative streams' map, bound and expiry; at the bound a delta point is
   * counted as it is (nothing to diff, so nothing is refused), only not remembered.
   */
  private deltaPoint<B>(ctx: ResourceCtx, name: string, p: { startTimeMs: number; timeMs: number; count: number; attributes: Attributes }, buckets: B): Delta<B> {
    const start = deltaStart(p)
    const exportedAt = this.groups.seen(`${ctx.resKey}\u0001${name}\u0002delta`, p.timeMs)
    this.st.exportGroupsEvicted = this.groups.evicted
    const id = `${ctx.resKey}\u0001${name}\u0001${attrKey(p.attributes)}\u0002delta`
    if (p.timeMs > this.newestMs) this.newestMs = p.timeMs
    const known = this.streams.get(id)
    const state: CumState = { startMs: p.startTimeMs, timeMs: Math.max(p.timeMs, known?.timeMs ?? -Infinity), count: 0, bounds: undefined, counts: undefined, exp: undefined }
    if (known !== undefined) {
      this.save(id, state)
      // a start before the stream's previous point: two processes under one identity (replicas
      // without pod identity), or a value from its stream's start: provisional, never an interval
      return { kind: 'emit', count: p.count, buckets, startMs: start, streamStart: start !== undefined && start < known.timeMs }
    }
    this.expireStreams()
    if (this.streams.size < this.config.cumulative.maxStreams) this.save(id, state)
    if (start === undefined) return { kind: 'emit', count: p.count, buckets, startMs: undefined, streamStart: false }
    if (exportedAt !== undefined && start < exportedAt && exportedAt < p.timeMs) {
      this.st.newSinceSiblings++
      return { kind: 'emit', count: p.count, buckets, startMs: exportedAt, streamStart: false }
    }
    return { kind: 'emit', count: p.count, buckets, startMs: start, streamStart: exportedAt === undefined }
  }

  // ---- cumulative -> delta ---------------------------------------------------------------------

  /**
   * Looks up a stream for a cumulative point. Returns the previous state, 'new' when the stream is
   * unknown (and there is room), or 'full' when the point is refused (rejected and counted).
   */
  private stream(id: string, t: number, r: Result): CumState | 'new' | 'full' {
    if (t > this.newestMs) this.newestMs = t
    const prev = this.streams.get(id)
    if (prev !== undefined) return prev
    this.expireStreams()
    if (this.streams.size >= this.config.cumulative.maxStreams) {
      this.st.streamOverflow++
      r.reject(1, 'cumulative stream limit reached')
      return 'full'
    }
    return 'new'
  }

  private expireStreams(): void {
    const limit = this.newestMs - this.config.cumulative.idleTtl
    // the map is in update order (delete + set on every update): expired entries are at the front
    for (const [id, s] of this.streams) {
      if (s.timeMs >= limit) break
      this.streams.delete(id)
      this.st.streamsExpired++
    }
  }

  private save(id: string, s: CumState): void {
    this.streams.delete(id)
    this.streams.set(id, s)
  }

  /**
   * A point with no usable previous state (a stream's first point, or the point after a reset): its
   * whole count is recent when the process exported the same metric before without this stream
   * (`siblingsAt`, export-groups.ts: it accrued since), or when the process started at most
   * `freshStart` before it (a new pod of the new version, whose first export would otherwise be
   * lost). Otherwise it may hold days of history: it only primes the state. Accepted either way.
   */
  private fromZero<B>(p: { startTimeMs: number; timeMs: number; count: number }, buckets: B, r: Result, siblingsAt: number | undefined): Delta<B> {
    const s = p.startTimeMs
    if (siblingsAt !== undefined && s > 0 && siblingsAt >= s && siblingsAt < p.timeMs) {
      // the process exported this metric at siblingsAt without this stream: all of it is newer
      this.st.newSinceSiblings++
      return { kind: 'emit', count: p.count, buckets, startMs: siblingsAt, streamStart: false }
    }
    if (s > 0 && p.timeMs >= s && p.timeMs - s <= this.config.cumulative.freshStart) return { kind: 'emit', count: p.count, buckets, startMs: s, streamStart: true }
    this.st.primed++
    r.accepted++
    return SKIP
  }

  /**
   * The shared start of a cumulative point: stores `next` as the stream's state and returns the
   * previous state to diff against, or the outcome when there is none to diff against: the stream
   * limit was reached (rejected), the point is not newer than the stream's last one (dropped as
   * `outOfOrder`, accepted: whatever its start time, so nothing is ever counted twice), or it is
   * the stream's first point (see `fromZero`).
   */
  private advance<B>(id: string, group: string, p: { startTimeMs: number; timeMs: number; count: number }, next: CumState, buckets: B, r: Result): CumState | Delta<B> {
    const siblingsAt = this.groups.seen(group, p.timeMs)
    this.st.exportGroupsEvicted = this.groups.evicted
    const prev = this.stream(id, p.timeMs, r)
    if (prev === 'full') return SKIP
    if (prev === 'new') {
      this.save(id, next)
      return this.fromZero(p, buckets, r, siblingsAt)
    }
    if (p.timeMs <= prev.timeMs) {
      this.st.outOfOrder++
      r.accepted++
      return SKIP
    }
    this.save(id, next)
    return prev
  }

  /**
   * `contiguous` (summaries, which carry no temporality): a point that starts at or after the
   * stream's previous point holds only requests after it, so it is counted whole over (start, time]
   * instead of as a reset (what Micrometer's delta registry sends).
   */
  private explicitDelta(id: string, group: string, p: HistogramPoint, r: Result, contiguous = false): Delta<number[]> {
    const next: CumState = { startMs: p.startTimeMs, timeMs: p.timeMs, count: p.count, bounds: p.bounds, counts: p.bucketCounts, exp: undefined, sum: p.sum }
    const prev = this.advance(id, group, p, next, p.bucketCounts, r)
    if (!isState(prev)) return prev
    const sameShape = prev.bounds !== undefined && prev.counts !== undefined && sameNumbers(prev.bounds, p.bounds)
    let reset = p.startTimeMs !== prev.startMs || p.count < prev.count || !sameShape
    const counts: number[] = []
    if (!reset) {
      const pc = prev.counts as number[]
      for (let i = 0; i < p.bucketCounts.length; i++) {
        const d = (p.bucketCounts[i] as number) - (pc[i] as number)
        if (d < 0) {
          reset = true
          break
        }
        counts.push(d)
      }
    }
    if (reset) {
      if (contiguous && p.startTimeMs >= prev.timeMs && p.startTimeMs < p.timeMs) return { kind: 'emit', count: p.count, buckets: p.bucketCounts, startMs: p.startTimeMs, streamStart: false, sum: p.sum }
      this.st.resets++
      return this.fromZero(p, p.bucketCounts, r, undefined)
    }
    // the sum of an interval is known only when both points carry one and it did not decrease
    const sum = p.sum !== undefined && prev.sum !== undefined && p.sum >= prev.sum ? p.sum - prev.sum : undefined
    return { kind: 'emit', count: p.count - prev.count, buckets: counts, startMs: prev.timeMs, streamStart: false, sum }
  }

  private expDelta(id: string, group: string, p: ExpHistogramPoint, e: ExpCounts, r: Result): Delta<ExpCounts> {
    const next: CumState = { startMs: p.startTimeMs, timeMs: p.timeMs, count: p.count, bounds: undefined, counts: undefined, exp: e }
    const prev = this.advance(id, group, p, next, e, r)
    if (!isState(prev)) return prev
    const pe = prev.exp
    let reset = p.startTimeMs !== prev.startMs || p.count < prev.count || pe === undefined || pe.scale < e.scale
    let out: ExpCounts | undefined
    if (!reset && pe !== undefined) {
      // an SDK may lower the scale of a cumulative stream: bring the previous point to the new scale
      const old = downscale(pe, e.scale)
      const cur = downscale(e, e.scale)
      const prevMap = new Map<number, number>()
      for (let i = 0; i < old.idx.length; i++) prevMap.set(old.idx[i] as number, old.cnt[i] as number)
      out = { scale: e.scale, zero: cur.zero - old.zero, idx: [], cnt: [] }
      if (out.zero < 0) reset = true
      for (let i = 0; i < cur.idx.length && !reset; i++) {
        const k = cur.idx[i] as number
        const d = (cur.cnt[i] as number) - (prevMap.get(k) ?? 0)
        prevMap.delete(k)
        if (d < 0) reset = true
        else if (d > 0) {
          out.idx.push(k)
          out.cnt.push(d)
        }
      }
      for (const v of prevMap.values()) if (v > 0) reset = true
    }
    if (reset || out === undefined) {
      this.st.resets++
      return this.fromZero(p, e, r, undefined)
    }
    return { kind: 'emit', count: p.count - prev.count, buckets: out, startMs: prev.timeMs, streamStart: false }
  }

  // ---- resources -------------------------------------------------------------------------------

  private numberPoints(m: DecodedMetric): NumberPoint[] | undefined {
    return m.type === 'gauge' || m.type === 'sum' ? m.points : undefined
  }

  private requestMetric(res: Attributes, m: DecodedMetric, r: Result): void {
    const pts = this.numberPoints(m)
    if (pts === undefined) {
      this.st.ignored += m.points.length
      r.accepted += m.points.length
      return
    }
    const pk = podKey(res)
    for (const p of pts) {
      if (!validValue(p.value)) {
        this.st.invalidValues++
        r.reject(1, `invalid ${m.name} value`)
        continue
      }
      const container = str(p.attributes['k8s.container.name']) ?? str(res['k8s.container.name']) ?? ''
      let pod = this.podRequests.get(pk)
      if (pod === undefined) {
        if (this.podRequests.size >= this.config.maxPods) {
          const oldest = this.podRequests.keys().next().value as string
          this.podRequests.delete(oldest)
          this.st.podsEvicted++
        }
        pod = new Map()
      } else this.podRequests.delete(pk)
      this.podRequests.set(pk, pod)
      const c = pod.get(container) ?? { cpu: undefined, mem: undefined }
      if (m.name === MEM_REQUEST) c.mem = p.value
      else c.cpu = p.value
      pod.set(container, c)
      r.accepted++
    }
  }

  /** The pod's request (sum over containers), or one container's request when `container` is given. */
  private requestOf(res: Attributes, kind: ResourceKind, container: string | undefined): number | undefined {
    const pod = this.podRequests.get(podKey(res))
    if (pod === undefined) return undefined
    if (container !== undefined) {
      const c = pod.get(container)
      return c === undefined ? undefined : kind === 'memory' ? c.mem : c.cpu
    }
    let sum: number | undefined
    for (const c of pod.values()) {
      const v = kind === 'memory' ? c.mem : c.cpu
      if (v !== undefined) sum = (sum ?? 0) + v
    }
    return sum
  }

  private resourceMetric(key: SeriesKey, res: Attributes, m: DecodedMetric, r: Result): void {
    const pts = this.numberPoints(m)
    const isCpu = CPU_METRICS.has(m.name)
    // a monotonic sum under a usage name is accumulated CPU time, not a rate: not a reading
    if (pts === undefined || (isCpu && m.type === 'sum' && m.monotonic)) {
      this.st.ignored += m.points.length
      r.accepted += m.points.length
      return
    }
    const resource: ResourceKind = MEMORY_METRICS.has(m.name) ? 'memory' : 'cpu'
    const perContainer = m.name.startsWith('container.')
    const basePod = podOf(res)
    for (const p of pts) {
      if (!validValue(p.value) || !validValue(p.timeMs)) {
        this.st.invalidValues++
        r.reject(1, `invalid ${m.name} value`)
        continue
      }
      const container = perContainer ? (str(p.attributes['k8s.container.name']) ?? str(res['k8s.container.name'])) : undefined
      const pod = container !== undefined ? `${basePod}/${container}` : basePod
      const request = this.requestOf(res, resource, container)
      let value = p.value
      if (m.name === CPU_UTILIZATION && request !== undefined) value = p.value * request
      this.emit({ kind: 'resource', key, pod, resource, timeMs: p.timeMs, value, request })
      r.accepted++
    }
  }

  // ---- probes ----------------------------------------------------------------------------------

  private probeMetric(key: SeriesKey, res: Attributes, m: DecodedMetric, r: Result): void {
    const pts = this.numberPoints(m)
    if (pts === undefined) {
      this.st.ignored += m.points.length
      r.accepted += m.points.length
      return
    }
    const pod = podOf(res)
    for (const p of pts) {
      if (!validValue(p.timeMs) || (p.value !== 0 && p.value !== 1)) {
        this.st.invalidValues++
        r.reject(1, `${m.name} must be 0 or 1`)
        continue
      }
      let container: string
      if (m.name === READY_METRIC) container = str(p.attributes['k8s.container.name']) ?? str(res['k8s.container.name']) ?? 'unknown'
      else {
        const type = str(p.attributes['probe.type'])
        if (type === undefined || !PROBE_TYPES.has(type)) {
          this.st.invalidValues++
          r.reject(1, `${m.name} needs probe.type readiness|liveness|startup`)
          continue
        }
        container = `${type}:${str(p.attributes['probe.name']) ?? 'default'}`
      }
      this.emit({ kind: 'probe', key, pod, container, timeMs: p.timeMs, ready: p.value === 1 })
      r.accepted++
    }
  }
}

function podKey(res: Attributes): string {
  const ns = str(res['k8s.namespace.name']) ?? str(res['service.namespace']) ?? ''
  return `${ns}\u0000${podOf(res)}`
}

function sameNumbers(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Sparse copy of an exponential point; negative buckets (negative durations) count as zeros. */
function expCountsOf(p: ExpHistogramPoint): ExpCounts {
  let zero = p.zeroCount
  for (const c of p.negative.bucketCounts) zero += c
  const idx: number[] = []
  const cnt: number[] = []
  const b = p.positive.bucketCounts
  for (let i = 0; i < b.length; i++) {
    const c = b[i] as number
    if (c > 0) {
      idx.push(p.positive.offset + i)
      cnt.push(c)
    }
  }
  return { scale: p.scale, zero, idx, cnt }
}

/** Merges buckets down to a lower scale: index i at scale s is index i >> (s - t) at scale t. */
function downscale(e: ExpCounts, scale: number): ExpCounts {
  if (e.scale === scale) return e
  const shift = e.scale - scale
  const m = new Map<number, number>()
  for (let i = 0; i < e.idx.length; i++) {
    const k = Math.floor((e.idx[i] as number) / Math.pow(2, shift))
    m.set(k, (m.get(k) ?? 0) + (e.cnt[i] as number))
  }
  const idx = [...m.keys()].sort((a, b) => a - b)
  return { scale, zero: e.zero, idx, cnt: idx.map((k) => m.get(k) as number) }
}

function isState<B>(x: CumState | Delta<B>): x is CumState {
  return !('kind' in x)
}

/** The interval a DELTA point covers, when its start time is usable; undefined: all at its time. */
function deltaStart(p: { startTimeMs: number; timeMs: number }): number | undefined {
  const s = p.startTimeMs
  return Number.isFinite(s) && s > 0 && s < p.timeMs ? s : undefined
}
