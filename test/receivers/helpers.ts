/** Test parts shared by the receiver tests: a counting consumer and OTel SDK clients. */
import { SpanKind as ApiSpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics'
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { resourceFromAttributes } from '@opentelemetry/resources'
import type { SpanExporter } from '@opentelemetry/sdk-trace-base'
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { RetryableError } from '../../src/common/errors.js'
import type { ConsumeResult, TelemetryConsumer } from '../../src/receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'

export class CountingConsumer implements TelemetryConsumer {
  spans = 0
  serverSpans = 0
  errorSpans = 0
  points = 0
  requests = 0
  services = new Set<string>()
  /** when set, every consumeMetrics call rejects this many points (partial success) */
  rejectPoints = 0
  /** when set, consume* throws a RetryableError (pipeline overloaded) */
  overloaded = false

  consumeTraces(req: TracesRequest): ConsumeResult {
    if (this.overloaded) throw new RetryableError('overloaded', 'pipeline over high-water', { retryAfterMs: 1000 })
    this.requests++
    let n = 0
    for (const rs of req.resourceSpans) {
      this.services.add(String(rs.resource['service.name']))
      for (const s of rs.spans) {
        n++
        if (s.kind === 2) this.serverSpans++
        if (s.statusCode === 2) this.errorSpans++
      }
    }
    this.spans += n
    return { accepted: n, rejected: 0 }
  }

  consumeMetrics(req: MetricsRequest): ConsumeResult {
    if (this.overloaded) throw new RetryableError('overloaded', 'pipeline over high-water', { retryAfterMs: 1000 })
    this.requests++
    let n = 0
    for (const rm of req.resourceMetrics) {
      this.services.add(String(rm.resource['service.name']))
      for (const m of rm.metrics) n += m.points.length
    }
    const rejected = Math.min(n, this.rejectPoints)
    this.points += n - rejected
    return rejected > 0 ? { accepted: n - rejected, rejected, rejectReason: 'test rejects points' } : { accepted: n, rejected: 0 }
  }
}

/** Ends `count` spans (every 4th an ERROR, all SERVER) through the SDK and flushes them to `exporter`. */
export async function sendSpans(exporter: SpanExporter, service: string, count: number): Promise<void> {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'service.version': '1.0.0' }),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: count + 10, maxExportBatchSize: 256, scheduledDelayMillis: 60_000 })],
  })
  const tracer = provider.getTracer('test')
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan('GET /items', { kind: ApiSpanKind.SERVER, attributes: { 'http.response.status_code': i % 4 === 0 ? 500 : 200 } })
    if (i % 4 === 0) span.setStatus({ code: SpanStatusCode.ERROR })
    span.end()
  }
  await provider.forceFlush()
  await provider.shutdown()
}

/** Records `series` counter series and `series` histogram series, exports once: 2 * series data points. */
export async function sendMetrics(exporter: PushMetricExporter, service: string, series: number): Promise<void> {
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': service }), readers: [reader] })
  const meter = provider.getMeter('test')
  const counter = meter.createCounter('http.server.requests')
  const hist = meter.createHistogram('http.server.request.duration', { unit: 's' })
  for (let i = 0; i < series; i++) {
    counter.add(i + 1, { route: `/r${i}` })
    hist.record(0.001 * (i + 1), { route: `/r${i}` })
  }
  // shutdown collects and exports once (a forceFlush before it would export the cumulative points twice)
  await provider.shutdown()
}

export async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now()
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}
