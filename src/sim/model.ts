/**
 * What the workload simulator is told to play: a fleet of services, their deployments, faults and
 * traffic shape, all in scenario seconds from the start of the recording. Plain data: a scenario
 * is a function from a seed to one of these (src/sim/scenarios.ts).
 */

export interface RouteSpec {
  method: string
  route: string
  /** share of the service's traffic (relative weights) */
  weight: number
  /** median latency of this route in ms, unloaded */
  medianMs: number
}

export interface ServiceSpec {
  name: string
  namespace: string
  /** version running at the start */
  version: string
  pods: number
  /** mean requests per second over the scenario (the daily shape oscillates around it) */
  rps: number
  routes: RouteSpec[]
  /** log-normal shape of the latency body (0.2 tight .. 0.6 wide) */
  latencySigma: number
  /** long tail: probability that a request is slow, and the largest slow-down factor */
  tail: { p: number; maxFactor: number }
  /** baseline 5xx ratio */
  errorRate: number
  /** 4xx ratio (never an error by the semantic conventions for SERVER spans) */
  clientErrorRate: number
  memory: { requestMiB: number; baseMiB: number; noiseMiB: number }
  cpu: { requestCores: number; baseCores: number; perRps: number; noise: number }
}

export type Strategy =
  | { kind: 'rolling'; stepS: number }
  /** a canary: `pods` new pods get `weight` (0..1) of the traffic; old pods stay */
  | { kind: 'canary'; weight: number; pods: number }

export interface DeploymentSpec {
  service: string
  atS: number
  version: string
  strategy: Strategy
  /**
   * true for a scripted rollback (what pullback's actuator would do after its decision): recordings
   * have no feedback loop, so a scenario that exercises recovery plays the rollback itself.
   */
  rollback?: boolean
}

/** A misbehaviour of some pods of one service, active in [fromS, untilS). */
export interface FaultSpec {
  service: string
  /** versions that misbehave; 'all' for every version (a dependency outage, a bad input) */
  versions: string[] | 'all'
  fromS: number
  untilS?: number
  /** linear ramp from no effect to full effect over this many seconds */
  rampS?: number
  /** only in the first N seconds of each affected pod's life (cold start) */
  podAgeBelowS?: number
  /** on for flapOnS seconds every flapPeriodS seconds (flapping) */
  flap?: { periodS: number; onS: number }
  /** extra 5xx ratio */
  errorRate?: number
  /** median latency of the failing requests (timeouts), ms; else failures are fast */
  errorLatencyMs?: number
  /** latency multiplier (1 = none) */
  latencyFactor?: number
  /** memory growth per minute as a fraction of the pod's memory request */
  memoryLeakPerMin?: number
  /** fraction of the affected pods whose readiness probe fails */
  notReady?: number
  /** exactly these 5xx responses, at these scenario seconds (low-traffic cases) */
  errorsAtS?: number[]
}

export interface TrafficSpike {
  fromS: number
  untilS: number
  /** traffic multiplier at the plateau */
  factor: number
  rampS: number
  /** services affected; all when absent */
  services?: string[]
}

/** A telemetry gap: nothing from these services (all when absent) reaches the collector. */
export interface OutageSpec {
  fromS: number
  untilS: number
  services?: string[]
}

/** How the fleet's request durations are aggregated and named (FleetSpec.histogramAggregation). */
export type HistogramAggregation = 'explicit' | 'exponential' | 'micrometer' | 'spanmetrics'
export const HISTOGRAM_AGGREGATIONS: readonly HistogramAggregation[] = ['explicit', 'exponential', 'micrometer', 'spanmetrics']
export const isHistogramAggregation = (v: string): v is HistogramAggregation => (HISTOGRAM_AGGREGATIONS as readonly string[]).includes(v)

export interface FleetSpec {
  durationS: number
  services: ServiceSpec[]
  deployments: DeploymentSpec[]
  faults: FaultSpec[]
  traffic: {
    /** daily shape: relative amplitude of the sinusoid (0.3 = +-30 %), one "day" per `periodS` */
    dailyAmplitude: number
    periodS: number
    /** phase in [0, 1) of the day at the start of the scenario */
    phase: number
    spikes: TrafficSpike[]
  }
  outages: OutageSpec[]
  /** seconds between span exports (BatchSpanProcessor schedule delay) */
  spanExportS: number
  /** seconds between metric collections (PeriodicExportingMetricReader interval) */
  metricExportS: number
  /** seconds a new pod takes to pass its first readiness probe */
  podStartS: number
  /** also emit http.server.request.duration histograms (off by default: spans carry the same requests) */
  histograms: boolean
  /**
   * the aggregation of http.server.request.duration (default 'explicit': the SDK's default bounds,
   * 5 ms .. 10 s); 'exponential' is what an SDK with
   * OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram
   * exports (160 buckets, the scale the SDK picks for the recorded range); 'micrometer' is the
   * shape of Micrometer's server timer through its OTLP registry (Spring Boot, Quarkus, Micronaut
   * without a configured histogram): `http.server.requests` in milliseconds, one bucket (count and
   * sum only), Spring's tags (`status` as a string, `outcome`, `uri`, `method`, `exception`);
   * 'spanmetrics' is what the Collector's spanmetrics connector makes of the fleet's spans (its
   * defaults, as test/interop/spanmetrics.test.ts reads them from the real connector):
   * `traces.span.metrics.duration` in ms with the connector's bounds (2, 4, 6, 8, 10, 50, 100, 200,
   * 400, 800, 1000, 1400, 2000, 5000, 10000, 15000 ms), its dimensions (`service.name`,
   * `span.name`, `span.kind`, `status.code`), each request's SERVER point beside a CLIENT point of
   * its downstream call, cumulative from the connector's start (an hour before the recording),
   * replicas without pod identity summed into one stream (src/sim/spanmetrics.ts). Flushed on the
   * fleet's metrics schedule (`metricSchedule`: each pod's own phase in the metrics-only scenarios),
   * where one connector flushes every pod at once: its reports then complete together, sooner
   */
  histogramAggregation?: HistogramAggregation
  /**
   * the temporality of http.server.request.duration as pullback receives it (default 'cumulative',
   * the SDK's default):
   * - 'delta': the SDK's own (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta): each point
   *   from the pod's previous collection, the first from the pod's start;
   * - 'cumulativetodelta': cumulative from the SDK, converted on the way by a Collector's
   *   `cumulativetodelta` processor (src/sim/cumulative-to-delta.ts): a stream's first point whole
   *   from the stream's start when it started after the processor, else dropped.
   * Recordings only (`sim record`, the benches).
   */
  metricTemporality?: 'cumulative' | 'delta' | 'cumulativetodelta'
  /** emit SERVER spans (default true); false with `histograms` true is a metrics-only app */
  spans?: boolean
  /**
   * the SERVER spans a sampler leaves (default: every span); the request metrics are never sampled:
   * - 'head': a trace kept with probability `ratio` by its trace id (a `traceidratio` sampler: the
   *   rates stay unbiased, the samples are `ratio` of the requests);
   * - 'tail-errors': every failed request's span kept, and `ratio` of the others by trace id (a
   *   Collector's tail_sampling with a status_code policy and a probabilistic one: error rates biased up).
   */
  spanSampling?: { mode: 'head' | 'tail-errors'; ratio: number }
  /**
   * when metric collections happen (default 'aligned'):
   * - 'aligned': every pod at each multiple of `metricExportS` (one export line per collection);
   * - 'per-pod': as a PeriodicExportingMetricReader does it, each pod on its own schedule from its
   *   start (pods running at scenario start get a seeded phase), plus a final export when it stops.
   */
  metricSchedule?: 'aligned' | 'per-pod'
  /**
   * when span exports happen (default 'aligned'):
   * - 'aligned': every pod's spans ended by each multiple of `spanExportS`, one export line for the
   *   fleet (a bucket edge never splits a batch: the library's own phase);
   * - 'per-pod': as BatchSpanProcessors do it, each pod every `spanExportS` on its own seeded
   *   millisecond phase, one line per pod, plus its shutdown export when it stops.
   * Recordings only (`sim record`, the benches); `sim live` sends the aligned batches.
   */
  spanSchedule?: 'aligned' | 'per-pod'
  /**
   * resource attributes that tell replicas apart (default true). false: no `k8s.pod.name`, no
   * `service.instance.id`, so every pod of a service-version exports under identical resource
   * attributes (an SDK without the k8s resource detector, metrics with cumulative temporality).
   */
  podIdentity?: boolean
}

/** What a scenario's telemetry looks like, for the benchmark's per-cadence targets. */
export interface TelemetryShape {
  spans: boolean
  /** http.server.request.duration histograms */
  metrics: boolean
  metricExportS: number
  podIdentity: boolean
  /** the spans are sampled (FleetSpec.spanSampling): the request metrics, not the spans, are the source that counts */
  sampledSpans: boolean
}

export type ExpectedVerdict = 'rollback' | 'none' | 'incident' | 'rollback+not-recovered' | 'rollback+recovered'
export type FaultClass = 'error' | 'latency' | 'resource' | 'probe' | 'none'

export interface Scenario {
  name: string
  description: string
  expected: ExpectedVerdict
  faultClass: FaultClass
  /** scenario second at which the fault begins (undefined for benign scenarios) */
  faultOnsetS: number | undefined
  /**
   * true when the fault grows slowly (creep, leak): detection time then measures how long the
   * fault took to become decisive, so it is excluded from the step-fault detection-time target
   */
  gradual: boolean
  /** the service whose deployment is under test */
  service: string
  namespace: string
  /** scenario second of the deployment under test */
  deployAtS: number
  durationS: number
  /**
   * false for the variants added after the engine's thresholds were set (issue 10): the telemetry
   * people really send (coarse metric intervals, metrics-only apps, fast failures, mild and long
   * pre-existing breaches, replicas without identity). The engine was never tuned on them.
   */
  tuned: boolean
  telemetry: TelemetryShape
  build(seed: number): FleetSpec
}

/** Default start of a recording in telemetry time: fixed, so recordings are byte-identical. */
export const DEFAULT_START_MS = Date.UTC(2026, 0, 15, 9, 0, 0)
