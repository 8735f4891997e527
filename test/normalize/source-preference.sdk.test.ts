/**
 * Spans AND `http.server.request.duration` for the same requests, built by the real OpenTelemetry JS
 * SDK (tracer, meter, reader) and serialized by its own OTLP transformer, as the HTTP server
 * instrumentations export them: the signal store must see every request once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type HrTime } from '@opentelemetry/api'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { AlwaysOnSampler, BasicTracerProvider, TraceIdRatioBasedSampler, type ReadableSpan, type Sampler, type SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { latencyFloorUs } from '../../src/normalize/buckets.js'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { RequestObservation } from '../../src/normalize/observations.js'
import { SignalStore } from '../../src/signals/store.js'
import { decodeMetricsProto, decodeTracesProto } from '../../src/receivers/otlp/proto.js'

class Collected implements SpanProcessor {
  spans: ReadableSpan[] = []
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.spans.push(span)
  }
  forceFlush(): Promise<void> {
    return Promise.resolve()
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

class PullReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve()
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
}

function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1000)
  return [s, Math.round((ms - s * 1000) * 1e6)]
}

/** One instrumented process: a SERVER span and a duration measurement per request, as instrumentation-http does. */
class App {
  readonly spans = new Collected()
  readonly reader = new PullReader()
  private readonly tp: BasicTracerProvider
  private readonly mp: MeterProvider
  private readonly tracer
  private readonly duration
  constructor(
    service: string,
    readonly version: string,
    private readonly tracing: boolean,
    opts: { sampler?: Sampler; pod?: string } = {},
  ) {
    // no pod identity by default on purpose: the span/metric choice must not depend on it
    const resource = resourceFromAttributes({ 'service.name': service, 'service.version': version, ...(opts.pod !== undefined ? { 'k8s.pod.name': opts.pod } : {}) })
    this.tp = new BasicTracerProvider({ resource, spanProcessors: [this.spans], sampler: opts.sampler ?? new AlwaysOnSampler() })
    this.mp = new MeterProvider({ resource, readers: [this.reader] })
    this.tracer = this.tp.getTracer('@opentelemetry/instrumentation-http')
    this.duration = this.mp.getMeter('@opentelemetry/instrumentation-http').createHistogram('http.server.request.duration', {
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
    })
  }

  serve(endMs: number, latencyMs: number, status: number): void {
    const attributes = { 'http.request.method': 'GET', 'http.route': '/items/:id', 'http.response.status_code': status }
    if (this.tracing) {
      const span = this.tracer.startSpan('GET /items/:id', { kind: SpanKind.SERVER, startTime: hr(endMs - latencyMs), attributes }, ROOT_CONTEXT)
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
      span.end(hr(endMs))
    }
    this.duration.record(latencyMs / 1000, attributes)
  }

  exportSpans(): Uint8Array | undefined {
    const out = this.spans.spans.length === 0 ? undefined : ProtobufTraceSerializer.serializeRequest(this.spans.spans)
    this.spans.spans = []
    return out
  }

  async exportMetrics(): Promise<Uint8Array> {
    const { resourceMetrics, errors } = await this.reader.collect()
    expect(errors).toEqual([])
    const bytes = ProtobufMetricsSerializer.serializeRequest(resourceMetrics)
    if (bytes === undefined) throw new Error('the SDK serialized no metrics')
    return bytes
  }

  async shutdown(): Promise<void> {
    await this.tp.shutdown()
    await this.mp.shutdown()
  }
}

const apps: App[] = []
const stores: SignalStore[] = []
afterEach(async () => {
  for (const a of apps.splice(0)) await a.shutdown()
  for (const s of stores.splice(0)) s.shutdown()
})

describe('spans and http.server.request.duration from the same OTel SDK', () => {
  it('the store counts every request once: spans when present, metrics otherwise', async () => {
    const store = new SignalStore({ maxFutureSkew: '1h' })
    stores.push(store)
    const n = new Normalizer({}, store)
    const traced = new App('checkout', '2.0.0', true)
    const untraced = new App('search', '1.0.0', false)
    apps.push(traced, untraced)

    const t0 = Date.now()
    let served = 0
    const round = async (requests: number, offsetMs: number): Promise<void> => {
      for (let i = 0; i < requests; i++) {
        const end = t0 + offsetMs + i * 10
        for (const app of [traced, untraced]) app.serve(end, 5 + (i % 40), i % 10 === 0 ? 503 : 200)
      }
      served += requests
      // spans are batched every few seconds, metrics once per export interval: spans first
      for (const app of [traced, untraced]) {
        const spans = app.exportSpans()
        if (spans !== undefined) expect(n.traces(decodeTracesProto(spans)).rejected).toBe(0)
      }
      for (const app of [traced, untraced]) expect(n.metrics(decodeMetricsProto(await app.exportMetrics())).rejected).toBe(0)
    }
    await round(120, -5_000) // first export: the cumulative points of freshly started processes are emitted whole
    await round(80, -2_000) // second export: cumulative deltas

    const from = t0 - 120_000
    const to = Date.now() + 120_000
    const checkout = store.window({ namespace: '', service: 'checkout', version: '2.0.0' }, from, to)
    const search = store.window({ namespace: '', service: 'search', version: '1.0.0' }, from, to)
    expect(checkout.requests).toBe(served)
    expect(checkout.errors).toBe(served / 10)
    expect(search.requests).toBe(served)
    expect(search.errors).toBe(served / 10)
    // the traced app's metric points were accepted but not counted
    expect(n.stats().deduplicatedPoints).toBeGreaterThan(0)
    expect(n.stats().rejected).toBe(0)
    // the series read from the SDK's histogram knows its bucket layout (in microseconds): a p99 read
    // back from the store maps to its bucket's lower bound; the span series has none
    const searchKey = { namespace: '', service: 'search', version: '1.0.0' }
    const layout = store.coverage(searchKey)?.latencyBuckets
    expect(layout).toEqual({ kind: 'explicit', boundsUs: [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10_000].map((x) => x * 1000) })
    expect(store.coverage({ namespace: '', service: 'checkout', version: '2.0.0' })?.latencyBuckets).toBeUndefined()
    // latencies 5-44 ms: the p99 is in (25, 50] ms, interpolated inside it as histogram_quantile does
    const p99 = search.latency.valueAtQuantile(0.99)
    expect(p99).toBeGreaterThan(25_000)
    expect(p99).toBeLessThanOrEqual(50_000)
    expect(latencyFloorUs(layout, p99)).toBe(25_000)
  })
})

/** The SDK stamps metric points with its own clock: pinned here to the test's clock (the points' streams, buckets and attributes are the SDK's). */
function pinTimes(req: ReturnType<typeof decodeMetricsProto>, startMs: number, timeMs: number): ReturnType<typeof decodeMetricsProto> {
  for (const rm of req.resourceMetrics) for (const m of rm.metrics) for (const p of m.points) Object.assign(p, { startTimeMs: startMs, timeMs })
  return req
}

describe('sampled spans and unsampled http.server.request.duration from the same OTel SDK', () => {
  it('a traceidratio sampler at 10 %: once the spans are found to hold a tenth of the requests, the metrics count every request', async () => {
    const seen: RequestObservation[] = []
    const changes: unknown[] = []
    const n = new Normalizer({}, { record: (o) => (o.kind === 'request' ? seen.push(o) : undefined) }, { spanCoverage: (c) => changes.push(c) })
    const sampled = new App('checkout', '2.0.0', true, { sampler: new TraceIdRatioBasedSampler(0.1), pod: 'checkout-7d9f-a' })
    const complete = new App('search', '1.0.0', true, { pod: 'search-5c8b-a' })
    apps.push(sampled, complete)

    const t0 = Date.UTC(2026, 11, 5, 12)
    const PER_BATCH = 33
    const ends: number[] = []
    for (let k = 0; k < 8; k++) {
      const from = t0 + k * 60_000
      // 396 requests over the minute, spans exported in 5 s batches, then the minute's metric collection
      for (let b = 0; b < 12; b++) {
        for (let i = 0; i < PER_BATCH; i++) {
          const end = from + b * 5_000 + 1 + i * (5_000 / PER_BATCH)
          for (const app of [sampled, complete]) app.serve(end, 5 + (i % 40), i % 10 === 0 ? 503 : 200)
        }
        for (const app of [sampled, complete]) {
          const spans = app.exportSpans()
          if (spans !== undefined) expect(n.traces(decodeTracesProto(spans)).rejected).toBe(0)
        }
      }
      ends.push(from + 60_000)
      for (const app of [sampled, complete]) expect(n.metrics(pinTimes(decodeMetricsProto(await app.exportMetrics()), t0 - 1_000, from + 60_000)).rejected).toBe(0)
    }
    const perRound = 12 * PER_BATCH
    const isSpan = (o: RequestObservation) => o.latencyCounts === undefined
    const of = (service: string) => seen.filter((o) => o.key.service === service)
    const sum = (os: RequestObservation[], f: (o: RequestObservation) => number) => os.reduce((a, o) => a + f(o), 0)
    expect(n.stats().sampledServices).toBe(1)
    expect(changes).toEqual([expect.objectContaining({ service: 'checkout', state: 'sampled' })])
    // judged during the sixth minute: from then on its spans are left out and its metrics count every request
    const switchedAt = Math.max(...of('checkout').filter(isSpan).map((o) => o.timeMs))
    expect(switchedAt).toBeGreaterThan(ends[3]!)
    expect(switchedAt).toBeLessThan(ends[5]!)
    expect(n.stats().sampledSpans).toBeGreaterThan(0)
    const metricRounds = of('checkout').filter((o) => !isSpan(o) && o.timeMs > ends[5]!)
    expect(new Set(metricRounds.map((o) => o.timeMs))).toEqual(new Set([ends[6], ends[7]]))
    expect(sum(metricRounds, (o) => o.count)).toBe(2 * perRound)
    expect(sum(metricRounds, (o) => o.errors)).toBe(2 * 12 * 4) // i = 0, 10, 20, 30 of each batch fail
    // before the judgement: the sampled spans, about a tenth of the requests
    const spanCount = sum(of('checkout').filter((o) => isSpan(o) && o.timeMs <= ends[3]!), (o) => o.count)
    expect(spanCount).toBeGreaterThan(0.05 * 4 * perRound)
    expect(spanCount).toBeLessThan(0.2 * 4 * perRound)
    // the fully traced service: its spans stay the source, every request once, no metric counted
    expect(of('search').every(isSpan)).toBe(true)
    expect(sum(of('search'), (o) => o.count)).toBe(8 * perRound)
  })
})
