import { afterEach, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import protobuf from 'protobufjs'
import {
  METRICS,
  SelfMetrics,
  prometheusName,
  prometheusSeries,
  type EngineSnapshot,
  type MetricSpec,
} from '../../src/publish/self-metrics.js'
import { parseOtlpHeaders, resolveTelemetry, runtimeSchema } from '../../src/runtime/config.js'
import type { ConsumerStats } from '../../src/kafka/types.js'
import { ManualClock } from '../../src/common/clock.js'
import { EngineTracker } from '../../src/publish/self-metrics/engine-tracker.js'
import type { WatchStatus } from '../../src/engine/evaluate.js'
import type { SignalReading, Verdict } from '../../src/engine/verdict.js'

// The few OTLP messages the test needs, written from the opentelemetry-proto field numbers.
const PROTO = `
syntax = "proto3";
package otlptest;
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
message ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeMetrics { Scope scope = 1; repeated Metric metrics = 2; }
message Scope { string name = 1; string version = 2; }
message Metric {
  string name = 1; string description = 2; string unit = 3;
  oneof data { Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9; }
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum { repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3; }
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message NumberDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  oneof value { double as_double = 4; sfixed64 as_int = 6; }
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  fixed64 count = 4; optional double sum = 5; repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
`
const root = protobuf.parse(PROTO, { keepCase: false }).root
const RequestType = root.lookupType('otlptest.ExportMetricsServiceRequest')

interface KV { key: string; value: { stringValue?: string; intValue?: number; doubleValue?: number } }
interface NumberPoint { attributes?: KV[]; asDouble?: number; asInt?: number }
interface HistPoint { attributes?: KV[]; count: number; sum?: number; bucketCounts?: number[]; explicitBounds?: number[] }
interface DecodedMetric {
  name: string
  unit?: string
  gauge?: { dataPoints?: NumberPoint[] }
  sum?: { dataPoints?: NumberPoint[]; aggregationTemporality?: number; isMonotonic?: boolean }
  histogram?: { dataPoints?: HistPoint[] }
}
interface DecodedRequest {
  resourceMetrics?: { resource?: { attributes?: KV[] }; scopeMetrics?: { metrics?: DecodedMetric[] }[] }[]
}

interface Received { req: DecodedRequest; metadata: grpc.Metadata }

/** A real OTLP/gRPC metrics endpoint: raw bytes in, protobufjs decoding, empty success response. */
async function startReceiver(): Promise<{ port: number; received: Received[]; close: () => Promise<void> }> {
  const server = new grpc.Server()
  const received: Received[] = []
  const id = (b: Buffer) => b
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      },
    },
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const msg = RequestType.decode(call.request)
        const req = RequestType.toObject(msg, { longs: Number, defaults: false, oneofs: false }) as DecodedRequest
        received.push({ req, metadata: call.metadata })
        cb(null, Buffer.alloc(0))
      },
    },
  )
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  )
  return { port, received, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) }
}

function attrs(kvs: KV[] | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {}
  for (const kv of kvs ?? []) out[kv.key] = kv.value.stringValue ?? kv.value.intValue ?? kv.value.doubleValue ?? NaN
  return out
}

function allMetrics(received: Received[]): Map<string, DecodedMetric> {
  // the last export wins: cumulative values only grow
  const out = new Map<string, DecodedMetric>()
  for (const r of received) for (const rm of r.req.resourceMetrics ?? []) for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) out.set(m.name, m)
  return out
}

function points(m: DecodedMetric | undefined): { attrs: Record<string, string | number>; value: number }[] {
  const dps = m?.gauge?.dataPoints ?? m?.sum?.dataPoints ?? []
  return dps.map((p) => ({ attrs: attrs(p.attributes), value: p.asDouble ?? p.asInt ?? NaN }))
}

const consumerStats: ConsumerStats = { lastPollMs: 1_000_000, lastBatchMs: 1_000_000, batches: 7, messages: 1234, handlerFailures: 2, lag: 42, connected: true }

const engineSnapshot: EngineSnapshot = {
  services: [
    {
      namespace: 'shop',
      service: 'cart',
      version: 'v2',
      detectionSeconds: 47.5,
      signals: [
        { signal: 'error_rate', state: 'breach', mode: 'enforce', value: 0.12, baseline: 0.01, threshold: 0.05, evidence: 4200 },
        { signal: 'latency', state: 'healthy', mode: 'enforce', value: 250, baseline: 200, threshold: 400, evidence: 0.5 },
        { signal: 'resource', state: 'insufficient', mode: 'observe', value: 0.001, baseline: 0, threshold: 0.02 },
        { signal: 'probe', state: 'off', mode: 'off', value: 0, baseline: 0, threshold: 0 },
      ],
    },
  ],
  decisions: [
    { kind: 'rollback', outcome: 'published', count: 3 },
    { kind: 'incident', outcome: 'published', count: 1 },
  ],
}

describe('SelfMetrics over a real OTLP/gRPC receiver', () => {
  let cleanup: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c()
    cleanup = []
  })

  it('exports every catalogue metric with the right names, units, kinds and values', async () => {
    const rx = await startReceiver()
    cleanup.push(rx.close)
    const clock = new ManualClock(1_003_500)
    const sm = new SelfMetrics({
      telemetry: { state: 'enabled', endpoint: `http://127.0.0.1:${rx.port}`, intervalMs: 60_000, timeoutMs: 5_000, headers: { 'x-tenant': 'acme' } },
      resource: { 'service.instance.id': 'node-a' },
      clock,
    })
    cleanup.push(() => sm.shutdown())
    sm.registerIngest('otlp_grpc', () => ({ accepted: 1000, rejected: { decode: 3, oversize: 1 } }))
    sm.registerIngest('kafka_spans', () => ({ accepted: 5000, rejected: {} }))
    sm.registerConsumer('spans', () => consumerStats)
    sm.registerSignalStore(() => ({ series: 12, overflow: 9 }))
    sm.registerEngine(() => engineSnapshot)
    sm.registerActuator(() => ({ outcomes: { recovered: 2, halted_no_artifact: 1 } }))
    sm.registerEvents('decider', () => ({ late_partials: 4, assignments: 2 }))
    await sm.start()
    expect(sm.active).toBe(true)
    expect(sm.exportStatus().state).toBe('idle')
    sm.recordEvaluation(2) // 0.002 s
    sm.recordEvaluation(40) // 0.04 s
    await new Promise((r) => setTimeout(r, 60)) // let the event-loop delay monitor take samples
    await sm.flush()

    expect(rx.received.length).toBeGreaterThanOrEqual(1)
    expect(sm.exportStatus()).toMatchObject({ state: 'ok', failures: 0 })
    expect(rx.received[0]!.metadata.get('x-tenant')).toEqual(['acme'])
    const res = attrs(rx.received[0]!.req.resourceMetrics?.[0]?.resource?.attributes)
    expect(res['service.name']).toBe('pullback')
    expect(res['service.instance.id']).toBe('node-a')

    const got = allMetrics(rx.received)
    for (const spec of METRICS as readonly MetricSpec[]) {
      const m = got.get(spec.name)
      expect(m, spec.name).toBeDefined()
      expect(m!.unit, spec.name).toBe(spec.unit)
      if (spec.kind === 'gauge') expect(m!.gauge, spec.name).toBeDefined()
      if (spec.kind === 'counter') {
        expect(m!.sum?.isMonotonic, spec.name).toBe(true)
        expect(m!.sum?.aggregationTemporality, `${spec.name} cumulative`).toBe(2)
      }
      if (spec.kind === 'histogram') expect(m!.histogram, spec.name).toBeDefined()
      // every data point carries exactly the catalogue's attribute keys
      for (const p of points(m)) expect(Object.keys(p.attrs).sort(), spec.name).toEqual([...spec.attributes].sort())
    }

    const svc = { 'service.namespace': 'shop', 'service.name': 'cart', 'service.version': 'v2' }
    const value = (name: string, a: Record<string, string>) => points(got.get(name)).find((p) => Object.entries(a).every(([k, v]) => p.attrs[k] === v))?.value
    expect(value('pullback.signal.value', { ...svc, 'pullback.signal': 'error_rate' })).toBeCloseTo(0.12)
    expect(value('pullback.signal.value', { ...svc, 'pullback.signal': 'latency' })).toBeCloseTo(0.25) // ms -> s
    expect(value('pullback.signal.threshold', { ...svc, 'pullback.signal': 'latency' })).toBeCloseTo(0.4)
    expect(value('pullback.signal.baseline', { ...svc, 'pullback.signal': 'error_rate' })).toBeCloseTo(0.01)
    expect(value('pullback.signal.state', { 'pullback.signal': 'error_rate' })).toBe(2)
    expect(value('pullback.signal.state', { 'pullback.signal': 'latency' })).toBe(0)
    expect(value('pullback.signal.state', { 'pullback.signal': 'resource', 'pullback.signal.mode': 'observe' })).toBe(1)
    expect(value('pullback.signal.state', { 'pullback.signal': 'probe' })).toBe(-1)
    expect(value('pullback.detection.duration', svc)).toBeCloseTo(47.5)
    expect(value('pullback.engine.services', {})).toBe(1)
    expect(value('pullback.decisions', { 'pullback.decision.kind': 'rollback', 'pullback.decision.outcome': 'published' })).toBe(3)
    expect(value('pullback.actuator.outcomes', { 'pullback.actuator.outcome': 'halted_no_artifact' })).toBe(1)
    expect(value('pullback.component.events', { 'pullback.component': 'decider', 'pullback.event': 'late_partials' })).toBe(4)
    expect(value('pullback.component.events', { 'pullback.component': 'self-metrics', 'pullback.event': 'export_failures' })).toBe(0)
    expect(value('pullback.receiver.accepted', { 'pullback.receiver': 'kafka_spans' })).toBe(5000)
    expect(value('pullback.receiver.rejected', { 'pullback.receiver': 'otlp_grpc', reason: 'decode' })).toBe(3)
    expect(value('pullback.receiver.rejected', { 'pullback.receiver': 'otlp_grpc', reason: 'oversize' })).toBe(1)
    expect(value('pullback.signals.overflow', {})).toBe(9)
    expect(value('pullback.signals.series', {})).toBe(12)
    expect(value('pullback.kafka.consumer.lag', { 'pullback.consumer': 'spans' })).toBe(42)
    expect(value('pullback.kafka.consumer.messages', { 'pullback.consumer': 'spans' })).toBe(1234)
    expect(value('pullback.kafka.consumer.failures', { 'pullback.consumer': 'spans' })).toBe(2)
    expect(value('pullback.kafka.consumer.poll.age', { 'pullback.consumer': 'spans' })).toBeCloseTo(3.5)
    const lag = value('pullback.nodejs.eventloop.lag', {})
    expect(lag).toBeGreaterThan(0)
    expect(lag).toBeLessThan(5)

    const hist = got.get('pullback.engine.evaluation.duration')!.histogram!.dataPoints![0]!
    expect(hist.count).toBe(2)
    expect(hist.sum).toBeCloseTo(0.042)
    expect(hist.explicitBounds?.[0]).toBeCloseTo(0.00005)
  })

  it('keeps exporting the other series when one stats() function throws, and reports it once', async () => {
    const rx = await startReceiver()
    cleanup.push(rx.close)
    const errors: string[] = []
    const sm = new SelfMetrics({
      telemetry: { state: 'enabled', endpoint: `http://127.0.0.1:${rx.port}`, intervalMs: 60_000, timeoutMs: 5_000, headers: {} },
      onError: (source) => errors.push(source),
    })
    cleanup.push(() => sm.shutdown())
    sm.registerIngest('bad', () => {
      throw new Error('boom')
    })
    sm.registerIngest('good', () => ({ accepted: 7, rejected: {} }))
    await sm.start()
    await sm.flush()
    await sm.flush()
    const acc = points(allMetrics(rx.received).get('pullback.receiver.accepted'))
    expect(acc).toEqual([{ attrs: { 'pullback.receiver': 'good' }, value: 7 }])
    expect(errors).toEqual(['ingest:bad'])
  })

  it('exports on its interval without being asked, and once more on shutdown', async () => {
    const rx = await startReceiver()
    cleanup.push(rx.close)
    let accepted = 0
    const sm = new SelfMetrics({ telemetry: { state: 'enabled', endpoint: `http://127.0.0.1:${rx.port}`, intervalMs: 100, timeoutMs: 100, headers: {} } })
    sm.registerIngest('otlp_http', () => ({ accepted, rejected: {} }))
    await sm.start()
    const deadline = Date.now() + 5_000
    while (rx.received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(rx.received.length).toBeGreaterThanOrEqual(2)
    accepted = 99
    const before = rx.received.length
    await sm.shutdown()
    expect(rx.received.length).toBeGreaterThan(before)
    expect(points(allMetrics(rx.received).get('pullback.receiver.accepted'))[0]?.value).toBe(99)
    const after = rx.received.length
    await new Promise((r) => setTimeout(r, 250))
    expect(rx.received.length).toBe(after) // nothing after shutdown
  })

  it('counts failed exports, logs only the change of state, and does not hang shutdown when the endpoint is gone', async () => {
    const rx = await startReceiver()
    const port = rx.port
    await rx.close()
    const logs: string[] = []
    const log = { info: (_o: object, m: string) => logs.push(m), warn: (_o: object, m: string) => logs.push(m) }
    const sm = new SelfMetrics({ telemetry: { state: 'enabled', endpoint: `http://127.0.0.1:${port}`, intervalMs: 60_000, timeoutMs: 1_000, headers: {} }, log })
    sm.registerIngest('x', () => ({ accepted: 1, rejected: {} }))
    expect(sm.exportStatus()).toEqual({ state: 'idle', exports: 0, failures: 0 })
    await sm.start()
    await sm.flush()
    await sm.flush()
    const st = sm.exportStatus()
    expect(st.state).toBe('failing')
    expect(st.failures).toBe(2)
    expect(logs.filter((m) => m === 'self-metrics export failing')).toHaveLength(1)
    const t0 = Date.now()
    await sm.shutdown()
    expect(Date.now() - t0).toBeLessThan(3_000)
  })

  it('caps the exported service versions at maxServices and counts the rest', async () => {
    const rx = await startReceiver()
    cleanup.push(rx.close)
    const sm = new SelfMetrics({ telemetry: { state: 'enabled', endpoint: `http://127.0.0.1:${rx.port}`, intervalMs: 60_000, timeoutMs: 5_000, headers: {} }, maxServices: 2 })
    cleanup.push(() => sm.shutdown())
    const svc = engineSnapshot.services[0]!
    sm.registerEngine(() => ({ services: ['a', 'b', 'c', 'd', 'e'].map((version) => ({ ...svc, version })), decisions: [] }))
    await sm.start()
    await sm.flush()
    const got = allMetrics(rx.received)
    expect(new Set(points(got.get('pullback.signal.value')).map((p) => p.attrs['service.version']))).toEqual(new Set(['a', 'b']))
    expect(points(got.get('pullback.engine.services'))[0]?.value).toBe(5)
    expect(sm.droppedServices).toBe(3)
  })

  it('unregistering stops reading the stats; disabled telemetry exports nothing and shutdown is idempotent', async () => {
    const off = new SelfMetrics({ telemetry: { state: 'disabled', reason: 'test' } })
    await off.shutdown() // before start
    await off.start()
    expect(off.active).toBe(false)
    off.recordEvaluation(1)
    await off.flush()
    await off.shutdown()
    await off.shutdown()

    const rx = await startReceiver()
    cleanup.push(rx.close)
    const sm = new SelfMetrics({ telemetry: { state: 'enabled', endpoint: `http://127.0.0.1:${rx.port}`, intervalMs: 60_000, timeoutMs: 5_000, headers: {} } })
    cleanup.push(() => sm.shutdown())
    let reads = 0
    const un = sm.registerConsumer('deployments', () => {
      reads += 1
      return consumerStats
    })
    await sm.start()
    await sm.flush()
    expect(points(allMetrics(rx.received).get('pullback.kafka.consumer.messages'))).toHaveLength(1)
    expect(reads).toBe(1)
    un()
    await sm.flush()
    // the SDK keeps the last cumulative point of a series; what matters is that the component is no longer called
    expect(reads).toBe(1)
  })
})

describe('telemetry config and the OTEL_* environment', () => {
  const cfg = (raw: unknown) => runtimeSchema.parse({ telemetry: raw }).telemetry

  it('is off without any endpoint, on when the environment names one', () => {
    expect(resolveTelemetry(cfg({}), {}).state).toBe('disabled')
    const r = resolveTelemetry(cfg({}), {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
      OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20abc,x-b=2',
      OTEL_METRIC_EXPORT_INTERVAL: '5000',
    })
    expect(r).toEqual({ state: 'enabled', endpoint: 'http://collector:4317', intervalMs: 5000, timeoutMs: 5000, headers: { authorization: 'Bearer abc', 'x-b': '2' } })
  })

  it('prefers the metrics-specific variable, and the config file over both', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4317', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://b:4317', OTEL_EXPORTER_OTLP_HEADERS: 'x=1,y=1', OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'y=2' }
    const fromEnv = resolveTelemetry(cfg({}), env)
    expect(fromEnv.state === 'enabled' && fromEnv.endpoint).toBe('http://b:4317')
    expect(fromEnv.state === 'enabled' && fromEnv.headers).toEqual({ x: '1', y: '2' })
    const fromCfg = resolveTelemetry(cfg({ endpoint: 'https://c:4317', interval: '30s', headers: { y: '3' } }), env)
    expect(fromCfg).toEqual({ state: 'enabled', endpoint: 'https://c:4317', intervalMs: 30_000, timeoutMs: 10_000, headers: { x: '1', y: '3' } })
  })

  it('honours OTEL_SDK_DISABLED and explicit enabled flags; ignores garbage intervals', () => {
    expect(resolveTelemetry(cfg({ endpoint: 'http://a:4317' }), { OTEL_SDK_DISABLED: 'true' }).state).toBe('disabled')
    expect(resolveTelemetry(cfg({ endpoint: 'http://a:4317', enabled: false }), {}).state).toBe('disabled')
    const on = resolveTelemetry(cfg({ enabled: true }), { OTEL_METRIC_EXPORT_INTERVAL: 'soon' })
    expect(on).toMatchObject({ state: 'enabled', endpoint: 'http://localhost:4317', intervalMs: 15_000 })
  })

  it('rejects unknown keys and non-http endpoints', () => {
    expect(() => cfg({ endpoint: 'grpc://a:4317' })).toThrow()
    expect(() => cfg({ interval: '5 parsecs' })).toThrow()
    expect(() => runtimeSchema.parse({ admin: { port: 1 } })).toThrow()
  })

  it('parses OTLP header strings leniently', () => {
    expect(parseOtlpHeaders('a=1, b = x%3Dy ,bad,=v,c=%zz')).toEqual({ a: '1', b: 'x=y', c: '%zz' })
  })
})

describe('Prometheus names of the catalogue', () => {
  it('follows the OTLP -> Prometheus translation', () => {
    const byName = new Map((METRICS as readonly MetricSpec[]).map((m) => [m.name, m]))
    const p = (n: string) => prometheusName(byName.get(n)!)
    expect(p('pullback.signal.value')).toBe('pullback_signal_value')
    expect(p('pullback.signal.state')).toBe('pullback_signal_state')
    expect(p('pullback.decisions')).toBe('pullback_decisions_total')
    expect(p('pullback.receiver.rejected')).toBe('pullback_receiver_rejected_total')
    expect(p('pullback.detection.duration')).toBe('pullback_detection_duration_seconds')
    expect(p('pullback.nodejs.eventloop.lag')).toBe('pullback_nodejs_eventloop_lag_seconds')
    expect(prometheusSeries(byName.get('pullback.engine.evaluation.duration')!)).toEqual([
      'pullback_engine_evaluation_duration_seconds_bucket',
      'pullback_engine_evaluation_duration_seconds_sum',
      'pullback_engine_evaluation_duration_seconds_count',
    ])
    expect(prometheusName({ name: 'x.cpu.utilization', unit: '1', kind: 'gauge' })).toBe('x_cpu_utilization_ratio')
    expect(prometheusName({ name: 'x.hits', unit: '1', kind: 'counter' })).toBe('x_hits_total')
    expect(prometheusName({ name: 'x.rate', unit: 'By/s', kind: 'gauge' })).toBe('x_rate_bytes_per_second')
    expect(prometheusName({ name: 'x.wait_seconds', unit: 's', kind: 'gauge' })).toBe('x_wait_seconds')
  })

  it('has unique names and Prometheus families', () => {
    const names = METRICS.map((m) => m.name)
    expect(new Set(names).size).toBe(names.length)
    const prom = (METRICS as readonly MetricSpec[]).flatMap(prometheusSeries)
    expect(new Set(prom).size).toBe(prom.length)
    for (const n of names) expect(n).toMatch(/^pullback\.[a-z0-9_.]+$/)
  })
})

describe('EngineTracker', () => {
  const reading = (signal: SignalReading['signal'], state: SignalReading['state'], value: number): SignalReading => ({
    signal,
    state,
    mode: 'enforce',
    value,
    baseline: value / 2,
    threshold: value * 2,
    samples: 100,
    critical: false,
  })
  const status = (id: string, version: string, signals: SignalReading[]): WatchStatus => ({
    deploymentId: id,
    kind: 'deploy',
    namespace: 'shop',
    service: 'cart',
    version,
    baselineVersion: 'v1',
    deployedAt: 1_000_000,
    t: 1_030_000,
    baselineHealth: 'healthy',
    status: 'breach',
    signals,
  })
  const verdict = (id: string, deploymentId: string, dryRun = false): Verdict => ({
    kind: 'rollback',
    dryRun,
    id,
    deploymentId,
    namespace: 'shop',
    service: 'cart',
    version: 'v2',
    baselineVersion: 'v1',
    baselineSource: 'snapshot',
    deployedAt: 1_000_000,
    decidedAt: 1_042_000,
    reason: 'error_rate and latency breached',
    signals: [reading('error_rate', 'breach', 0.2), reading('latency', 'breach', 900), reading('probe', 'healthy', 0)],
  })

  it('builds the snapshot and /status document from statuses and verdicts', () => {
    const clock = new ManualClock(2_000_000)
    const t = new EngineTracker({ clock })
    t.observe([status('d1', 'v2', [reading('error_rate', 'breach', 0.2), reading('latency', 'healthy', 300)])], [])
    t.observe([], [verdict('r1', 'd1'), verdict('r0', 'd1', true)])
    t.recordDecision('rollback', 'published')
    const snap = t.snapshot()
    expect(snap.services).toEqual([
      {
        namespace: 'shop',
        service: 'cart',
        version: 'v2',
        detectionSeconds: 42,
        signals: [
          { signal: 'error_rate', state: 'breach', mode: 'enforce', value: 0.2, baseline: 0.1, threshold: 0.4 },
          { signal: 'latency', state: 'healthy', mode: 'enforce', value: 300, baseline: 150, threshold: 600 },
        ],
      },
    ])
    // every kind x {decided, dry_run} exists from the start at 0 (a counter's first sample must be 0)
    expect(snap.decisions.filter((d) => d.count > 0)).toEqual([
      { kind: 'rollback', outcome: 'decided', count: 1 },
      { kind: 'rollback', outcome: 'dry_run', count: 1 },
      { kind: 'rollback', outcome: 'published', count: 1 },
    ])
    expect(snap.decisions.filter((d) => d.count === 0).map((d) => `${d.kind}/${d.outcome}`).sort()).toEqual(
      ['incident/decided', 'incident/dry_run', 'not-recovered/decided', 'not-recovered/dry_run', 'recovered/decided', 'recovered/dry_run'],
    )
    const doc = t.status()
    expect(doc.watched[0]).toMatchObject({ deploymentId: 'd1', status: 'breach', deployedAt: new Date(1_000_000).toISOString() })
    expect(doc.lastVerdicts.map((v) => [v.id, v.breaches])).toEqual([
      ['r0', ['error_rate', 'latency']],
      ['r1', ['error_rate', 'latency']],
    ])
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc)
  })

  it('replaces a /status entry that cannot be built with its error, keeping the others', () => {
    const t = new EngineTracker({ clock: new ManualClock(2_000_000) })
    const broken = { ...status('bad', 'v9', []), signals: undefined } as unknown as WatchStatus
    t.observe([status('d1', 'v2', [reading('error_rate', 'healthy', 0.01)]), broken], [])
    const doc = t.status()
    expect(doc.watched).toHaveLength(2)
    expect(doc.watched[0]).toMatchObject({ deploymentId: 'd1', status: 'breach' })
    expect(doc.watched[1]).toMatchObject({ deploymentId: 'bad', error: expect.stringContaining('could not be built') })
  })

  it('forgets watches after the TTL, evicts beyond maxWatched (counted), and keeps the last N verdicts', () => {
    const clock = new ManualClock(0)
    const t = new EngineTracker({ clock, ttlMs: 1_000, maxWatched: 2, maxVerdicts: 3 })
    t.observe([status('a', 'v2', []), status('b', 'v3', [])], [])
    clock.advance(500)
    t.observe([status('a', 'v2', []), status('c', 'v4', [])], [])
    // b was least recently updated
    expect(t.snapshot().services.map((s) => s.version).sort()).toEqual(['v2', 'v4'])
    expect(t.evicted).toBe(1)
    clock.advance(1_001)
    expect(t.snapshot().services).toEqual([])
    t.observe([], [1, 2, 3, 4, 5].map((i) => verdict(`r${i}`, 'x')))
    expect(t.status().lastVerdicts.map((v) => v.id)).toEqual(['r5', 'r4', 'r3'])
  })
})
