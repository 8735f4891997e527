/**
 * The scenario library: named, labelled workloads, each replayable through `pullback replay` with a
 * known expected verdict. Times are scenario seconds. The deployment under test is always at 240 s
 * (four minutes of clean pre-deploy history for the frozen baseline) unless stated otherwise.
 */
import type { DeploymentSpec, ExpectedVerdict, FaultClass, FaultSpec, FleetSpec, OutageSpec, Scenario, ServiceSpec, TelemetryShape, TrafficSpike } from './model.js'

export const NAMESPACE = 'shop'
const OLD = 'v1.4.0'
const NEW = 'v1.5.0'
const DEPLOY_AT = 240
/** first new pod passes readiness 5 s after the deployment starts */
const SERVING_AT = DEPLOY_AT + 5

function checkout(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name: 'checkout',
    namespace: NAMESPACE,
    version: OLD,
    pods: 4,
    rps: 40,
    routes: [
      { method: 'POST', route: '/api/checkout', weight: 3, medianMs: 85 },
      { method: 'GET', route: '/api/orders/{id}', weight: 5, medianMs: 35 },
      { method: 'GET', route: '/api/cart', weight: 8, medianMs: 20 },
    ],
    latencySigma: 0.35,
    tail: { p: 0.01, maxFactor: 12 },
    errorRate: 0.002,
    clientErrorRate: 0.01,
    memory: { requestMiB: 512, baseMiB: 260, noiseMiB: 6 },
    cpu: { requestCores: 0.5, baseCores: 0.05, perRps: 0.004, noise: 0.01 },
    ...over,
  }
}

function bystanders(): ServiceSpec[] {
  return [
    {
      name: 'cart',
      namespace: NAMESPACE,
      version: 'v3.2.1',
      pods: 3,
      rps: 20,
      routes: [
        { method: 'GET', route: '/cart/{id}', weight: 6, medianMs: 12 },
        { method: 'PUT', route: '/cart/{id}/items', weight: 2, medianMs: 25 },
      ],
      latencySigma: 0.3,
      tail: { p: 0.008, maxFactor: 10 },
      errorRate: 0.001,
      clientErrorRate: 0.02,
      memory: { requestMiB: 256, baseMiB: 140, noiseMiB: 4 },
      cpu: { requestCores: 0.25, baseCores: 0.03, perRps: 0.003, noise: 0.006 },
    },
    {
      name: 'catalog',
      namespace: NAMESPACE,
      version: 'v2.0.7',
      pods: 3,
      rps: 20,
      routes: [
        { method: 'GET', route: '/products', weight: 3, medianMs: 45 },
        { method: 'GET', route: '/products/{sku}', weight: 7, medianMs: 18 },
      ],
      latencySigma: 0.4,
      tail: { p: 0.012, maxFactor: 15 },
      errorRate: 0.001,
      clientErrorRate: 0.015,
      memory: { requestMiB: 384, baseMiB: 210, noiseMiB: 5 },
      cpu: { requestCores: 0.3, baseCores: 0.04, perRps: 0.004, noise: 0.008 },
    },
  ]
}

/** How the fleet's SDKs export (FleetSpec fields of the same names). Default: spans every 5 s, gauges every 10 s, aligned. */
interface Exporting {
  spans?: boolean
  histograms?: boolean
  metricExportS?: number
  metricSchedule?: 'aligned' | 'per-pod'
  podIdentity?: boolean
  spanSampling?: FleetSpec['spanSampling']
}

interface Shape {
  durationS?: number
  /** overrides of the service under test (checkout) */
  checkout?: Partial<ServiceSpec>
  exporting?: Exporting
  extraServices?: ServiceSpec[]
  deployments?: DeploymentSpec[]
  faults?: FaultSpec[]
  spikes?: TrafficSpike[]
  outages?: OutageSpec[]
  dailyAmplitude?: number
}

const rolling = (service = 'checkout', atS = DEPLOY_AT, version = NEW, stepS = 20): DeploymentSpec => ({
  service,
  atS,
  version,
  strategy: { kind: 'rolling', stepS },
})

function fleet(shape: Shape): FleetSpec {
  const durationS = shape.durationS ?? 720
  return {
    durationS,
    services: [checkout(shape.checkout), ...bystanders(), ...(shape.extraServices ?? [])],
    deployments: shape.deployments ?? [rolling()],
    faults: shape.faults ?? [],
    // one compressed "day" over the recording: traffic rises through the morning peak
    traffic: { dailyAmplitude: shape.dailyAmplitude ?? 0.25, periodS: durationS * 2, phase: 0.9, spikes: shape.spikes ?? [] },
    outages: shape.outages ?? [],
    spanExportS: 5,
    metricExportS: shape.exporting?.metricExportS ?? 10,
    podStartS: 5,
    histograms: shape.exporting?.histograms ?? false,
    spans: shape.exporting?.spans ?? true,
    metricSchedule: shape.exporting?.metricSchedule ?? 'aligned',
    podIdentity: shape.exporting?.podIdentity ?? true,
    ...(shape.exporting?.spanSampling !== undefined ? { spanSampling: shape.exporting.spanSampling } : {}),
  }
}

function telemetryOf(spec: FleetSpec): TelemetryShape {
  return { spans: spec.spans ?? true, metrics: spec.histograms, metricExportS: spec.metricExportS, podIdentity: spec.podIdentity ?? true, sampledSpans: spec.spanSampling !== undefined }
}

interface Def {
  name: string
  description: string
  expected: ExpectedVerdict
  faultClass: FaultClass
  faultOnsetS?: number
  gradual?: boolean
  service?: string
  deployAtS?: number
  /** false for the issue-10 variants (see Scenario.tuned) */
  tuned?: boolean
  shape: Shape
}

function scenario(d: Def): Scenario {
  const spec = fleet(d.shape)
  return {
    name: d.name,
    description: d.description,
    expected: d.expected,
    faultClass: d.faultClass,
    faultOnsetS: d.faultOnsetS,
    gradual: d.gradual ?? false,
    service: d.service ?? 'checkout',
    namespace: NAMESPACE,
    deployAtS: d.deployAtS ?? DEPLOY_AT,
    durationS: spec.durationS,
    tuned: d.tuned ?? true,
    telemetry: telemetryOf(spec),
    build: () => fleet(d.shape),
  }
}

const newVersion = [NEW]

const DEFS: Def[] = [
  {
    name: 'error-spike',
    description: 'v1.5.0 times out on a dependency: 20 % of its requests fail with 5xx after ~1.5 s',
    expected: 'rollback',
    faultClass: 'error',
    faultOnsetS: SERVING_AT,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, errorRate: 0.2, errorLatencyMs: 1500 }] },
  },
  {
    name: 'error-spike-rolled-back',
    description: 'error-spike, then the rollback to v1.4.0 (played by the scenario at 290 s, just after the decision) restores health',
    expected: 'rollback+recovered',
    faultClass: 'error',
    faultOnsetS: SERVING_AT,
    shape: {
      deployments: [rolling(), { ...rolling('checkout', 290, OLD, 5), rollback: true }],
      faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, errorRate: 0.2, errorLatencyMs: 1500 }],
    },
  },
  {
    name: 'latency-regression',
    description: 'v1.5.0 adds an N+1 query: every request 4x slower, no errors',
    expected: 'rollback',
    faultClass: 'latency',
    faultOnsetS: SERVING_AT,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, latencyFactor: 4 }] },
  },
  {
    name: 'memory-leak-leads-errors',
    description: 'v1.5.0 leaks 6 % of its memory request per minute; 5 min later GC pressure brings slow requests and 15 % errors',
    expected: 'rollback',
    faultClass: 'resource',
    faultOnsetS: SERVING_AT,
    gradual: true,
    shape: {
      durationS: 840,
      faults: [
        { service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, memoryLeakPerMin: 0.06 },
        { service: 'checkout', versions: newVersion, fromS: DEPLOY_AT + 300, rampS: 60, errorRate: 0.15, errorLatencyMs: 800, latencyFactor: 1.8 },
      ],
    },
  },
  {
    name: 'gradual-memory-leak',
    description: 'v1.5.0 leaks 3 % of its memory request per minute and never errors: one signal only, reported, not a rollback',
    expected: 'none',
    faultClass: 'resource',
    faultOnsetS: SERVING_AT,
    gradual: true,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, memoryLeakPerMin: 0.03 }] },
  },
  {
    name: 'probe-failure',
    description: 'half of the v1.5.0 pods fail readiness from 35 s after the deployment (connection pool exhausted)',
    expected: 'rollback',
    faultClass: 'probe',
    faultOnsetS: DEPLOY_AT + 35,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT + 35, notReady: 0.5 }] },
  },
  {
    name: 'benign-deploy',
    description: 'a clean rolling deployment with ordinary noise and the long latency tail',
    expected: 'none',
    faultClass: 'none',
    shape: {},
  },
  {
    name: 'traffic-spike',
    description: 'a clean deployment, then traffic triples for three minutes (a marketing email); load adds ~30 % latency to every version',
    expected: 'none',
    faultClass: 'none',
    shape: { spikes: [{ fromS: 420, untilS: 600, factor: 3, rampS: 30 }] },
  },
  {
    name: 'deploy-during-traffic-spike',
    description: 'a clean deployment in the middle of a 2.5x traffic spike that started a minute before it',
    expected: 'none',
    faultClass: 'none',
    shape: { spikes: [{ fromS: 180, untilS: 480, factor: 2.5, rampS: 30 }] },
  },
  {
    name: 'cold-start-spike',
    description: 'each new pod is 6x slower with 3 % errors during its first 5 s of serving (JIT, cold caches), then normal',
    expected: 'none',
    faultClass: 'none',
    shape: {
      deployments: [rolling('checkout', DEPLOY_AT, NEW, 30)],
      faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, podAgeBelowS: 10, latencyFactor: 6, errorRate: 0.03 }],
    },
  },
  {
    name: 'low-traffic-two-errors',
    description: 'notifications serves 0.4 req/s; after its deployment two requests fail: 2 of ~20 is 10 %, and still no evidence',
    expected: 'none',
    faultClass: 'none',
    service: 'notifications',
    shape: {
      extraServices: [
        {
          name: 'notifications',
          namespace: NAMESPACE,
          version: 'v0.9.3',
          pods: 2,
          rps: 0.4,
          routes: [{ method: 'POST', route: '/notify', weight: 1, medianMs: 60 }],
          latencySigma: 0.4,
          tail: { p: 0.01, maxFactor: 8 },
          errorRate: 0,
          clientErrorRate: 0,
          memory: { requestMiB: 128, baseMiB: 70, noiseMiB: 2 },
          cpu: { requestCores: 0.1, baseCores: 0.01, perRps: 0.005, noise: 0.002 },
        },
      ],
      deployments: [rolling('notifications', DEPLOY_AT, 'v0.10.0', 20)],
      faults: [{ service: 'notifications', versions: ['v0.10.0'], fromS: DEPLOY_AT, errorsAtS: [300.4, 351.7] }],
    },
  },
  {
    name: 'pre-existing-breach',
    description: 'the payment provider goes down at 180 s (40 % slow 5xx on v1.4.0); v1.5.0 ships at 240 s into the same outage',
    expected: 'incident',
    faultClass: 'error',
    faultOnsetS: 180,
    shape: { faults: [{ service: 'checkout', versions: 'all', fromS: 180, errorRate: 0.4, errorLatencyMs: 2000 }] },
  },
  {
    name: 'slow-latency-creep',
    description: 'v1.5.0 gets slower by the minute (unbounded cache scan): 1x to 4x over 6 min; a rolling baseline would absorb it',
    expected: 'rollback',
    faultClass: 'latency',
    faultOnsetS: SERVING_AT,
    gradual: true,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, rampS: 360, latencyFactor: 4 }] },
  },
  {
    name: 'canary-bad-10pct',
    description: 'one v1.5.0 canary pod takes 10 % of traffic; 25 % of its requests fail after ~1.2 s; the old pods are its live baseline',
    expected: 'rollback',
    faultClass: 'error',
    faultOnsetS: SERVING_AT,
    shape: {
      deployments: [{ service: 'checkout', atS: DEPLOY_AT, version: NEW, strategy: { kind: 'canary', weight: 0.1, pods: 1 } }],
      faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, errorRate: 0.25, errorLatencyMs: 1200 }],
    },
  },
  {
    name: 'canary-good',
    description: 'one healthy v1.5.0 canary pod at 10 % of traffic beside the old version',
    expected: 'none',
    faultClass: 'none',
    shape: { deployments: [{ service: 'checkout', atS: DEPLOY_AT, version: NEW, strategy: { kind: 'canary', weight: 0.1, pods: 1 } }] },
  },
  {
    name: 'latent-defect-prior-version',
    description:
      'at 330 s a new kind of order triggers a defect that v1.4.0 already had: v1.5.0 is rolled back (played at 370 s), and v1.4.0 fails the same way',
    expected: 'rollback+not-recovered',
    faultClass: 'error',
    faultOnsetS: 330,
    shape: {
      deployments: [rolling(), { ...rolling('checkout', 370, OLD, 5), rollback: true }],
      faults: [{ service: 'checkout', versions: 'all', fromS: 330, errorRate: 0.25, errorLatencyMs: 1500 }],
    },
  },
  {
    name: 'flapping-single-signal',
    description: 'v1.5.0 p99 jumps 2.5x for 15 s out of every 40 s (a batch job on the node); errors and resources stay clean',
    expected: 'none',
    faultClass: 'latency',
    faultOnsetS: SERVING_AT,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, flap: { periodS: 40, onS: 15 }, latencyFactor: 2.5 }] },
  },
  {
    name: 'telemetry-outage',
    description: 'a clean deployment, then the collector is unreachable for 90 s (300-390 s): the gap is insufficient data, never a rollback',
    expected: 'none',
    faultClass: 'none',
    shape: { outages: [{ fromS: 300, untilS: 390 }] },
  },
]

// ---------------------------------------------------------------------------------------------
// Variants the engine was not tuned on (issue 10): the telemetry people really send. A "plain bad
// deploy" is 5 % fast 5xx and 2x latency on the new version, held for ten minutes. Metrics-only
// apps export `http.server.request.duration` (cumulative, the SDK's default bucket bounds) on each
// pod's own PeriodicExportingMetricReader schedule; no spans.
// ---------------------------------------------------------------------------------------------

/** deploy second of the coarse-metric variants: six 60 s exports of history before it */
const LATE_DEPLOY = 360
/**
 * deploy second of the variants whose old version has run for an hour first (a service is rarely
 * six minutes old when it is deployed): the store's retention and its long history hold all of it
 */
const HOUR_DEPLOY = 3_660

const metricsOnly = (metricExportS: number): Exporting => ({ spans: false, histograms: true, metricExportS, metricSchedule: 'per-pod' })

const plainBad = (atS: number, versions: string[] | 'all' = newVersion): FaultSpec => ({
  service: 'checkout',
  versions,
  fromS: atS,
  untilS: atS + 600,
  errorRate: 0.05,
  latencyFactor: 2,
})

/** the plain bad deploy and its benign twin under one telemetry shape */
function pair(prefix: string, what: string, shape: Omit<Shape, 'deployments' | 'faults'>, deployAtS: number): Def[] {
  return [
    {
      name: `${prefix}-bad-deploy`,
      description: `${what}: v1.5.0 fails 5 % of requests fast and is 2x slower, held for ten minutes`,
      expected: 'rollback',
      faultClass: 'error',
      faultOnsetS: deployAtS + 5,
      deployAtS,
      tuned: false,
      shape: { durationS: deployAtS + 720, ...shape, deployments: [rolling('checkout', deployAtS)], faults: [plainBad(deployAtS)] },
    },
    {
      name: `${prefix}-benign-deploy`,
      description: `${what}: a clean rolling deployment`,
      expected: 'none',
      faultClass: 'none',
      deployAtS,
      tuned: false,
      shape: { durationS: deployAtS + 720, ...shape, deployments: [rolling('checkout', deployAtS)] },
    },
  ]
}

const LOW_TRAFFIC: Partial<ServiceSpec> = { rps: 1.5, pods: 2 }

const VARIANTS: Def[] = [
  ...pair('metrics-60s', 'metrics only, 60 s export interval (the SDK default)', { exporting: metricsOnly(60) }, LATE_DEPLOY),
  ...pair('metrics-15s', 'metrics only, 15 s export interval (scrape-like)', { exporting: metricsOnly(15) }, LATE_DEPLOY),
  ...pair('metrics-30s', 'metrics only, 30 s export interval (a common scrape interval; judged on coarse minutes, src/engine/cadence.ts endGranularity)', { exporting: metricsOnly(30) }, LATE_DEPLOY),
  ...pair(
    'spans-and-metrics',
    'SERVER spans (5 s batches) and http.server.request.duration (60 s) from the same SDK, for the same requests',
    { exporting: { spans: true, histograms: true, metricExportS: 60, metricSchedule: 'per-pod' } },
    DEPLOY_AT,
  ),
  ...pair(
    'spans-and-metrics-head-sampled',
    'as spans-and-metrics, the spans from a 1 % traceidratio sampler (the metrics unsampled)',
    { exporting: { spans: true, histograms: true, metricExportS: 60, metricSchedule: 'per-pod', spanSampling: { mode: 'head', ratio: 0.01 } } },
    DEPLOY_AT,
  ),
  ...pair(
    'spans-and-metrics-tail-sampled',
    'as spans-and-metrics, the spans tail-sampled upstream (every failed request and 10 % of the rest; the metrics unsampled)',
    { exporting: { spans: true, histograms: true, metricExportS: 60, metricSchedule: 'per-pod', spanSampling: { mode: 'tail-errors', ratio: 0.1 } } },
    DEPLOY_AT,
  ),
  ...pair('low-traffic-60s', 'checkout at 1.5 req/s on two pods, metrics only every 60 s', { checkout: LOW_TRAFFIC, exporting: metricsOnly(60) }, LATE_DEPLOY),
  ...pair(
    'low-traffic-60s-hour',
    'checkout at 1.5 req/s on two pods, metrics only every 60 s, deployed after an hour of the old version',
    { checkout: LOW_TRAFFIC, exporting: metricsOnly(60) },
    HOUR_DEPLOY,
  ),
  ...pair(
    'replicas-no-identity',
    'two pods export cumulative metrics every 10 s under identical resource attributes (no pod name, no instance id), no spans',
    { checkout: { pods: 2 }, exporting: { ...metricsOnly(10), podIdentity: false } },
    DEPLOY_AT,
  ),
  {
    name: 'fast-failures-no-latency',
    description: 'v1.5.0 fails 20 % of requests fast (40x the baseline error rate) and is otherwise as fast as v1.4.0: one signal, large',
    expected: 'rollback',
    faultClass: 'error',
    faultOnsetS: SERVING_AT,
    tuned: false,
    shape: { faults: [{ service: 'checkout', versions: newVersion, fromS: DEPLOY_AT, errorRate: 0.2 }] },
  },
  {
    name: 'traffic-spike-60s',
    description: 'metrics only every 60 s: a clean deployment, then traffic quadruples for three minutes from 2 min after it',
    expected: 'none',
    faultClass: 'none',
    deployAtS: LATE_DEPLOY,
    tuned: false,
    shape: {
      durationS: LATE_DEPLOY + 600,
      exporting: metricsOnly(60),
      deployments: [rolling('checkout', LATE_DEPLOY)],
      spikes: [{ fromS: LATE_DEPLOY + 120, untilS: LATE_DEPLOY + 300, factor: 4, rampS: 30 }],
    },
  },
  {
    name: 'mild-pre-existing-breach',
    description: 'from 240 s every version fails 7.5 % of requests and is 1.8x slower; v1.5.0 ships at 540 s into it: an incident, not a rollback',
    expected: 'incident',
    faultClass: 'error',
    faultOnsetS: 240,
    deployAtS: 540,
    tuned: false,
    shape: {
      durationS: 960,
      deployments: [rolling('checkout', 540)],
      faults: [{ service: 'checkout', versions: 'all', fromS: 240, errorRate: 0.075, latencyFactor: 1.8 }],
    },
  },
  {
    name: 'long-pre-existing-breach',
    description: 'from 60 s every version fails 8 % of requests and is 1.8x slower; v1.5.0 ships 12 min later (beyond the 10 min store retention)',
    expected: 'incident',
    faultClass: 'error',
    faultOnsetS: 60,
    deployAtS: 780,
    tuned: false,
    shape: {
      durationS: 1080,
      deployments: [rolling('checkout', 780)],
      faults: [{ service: 'checkout', versions: 'all', fromS: 60, errorRate: 0.08, latencyFactor: 1.8 }],
    },
  },
]

export const SCENARIOS: readonly Scenario[] = [...DEFS, ...VARIANTS].map(scenario)

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name)
}
