import http2 from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc'
import type { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryGuard } from '../../src/receivers/memory.js'
import { OtlpGrpcReceiver, TRACE_EXPORT_PATH, metricsServiceDefinition, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { GrpcCode } from '../../src/receivers/status.js'
import { CountingConsumer, sendMetrics, sendSpans } from './helpers.js'
import { GRPC_SERVERS } from './grpc-servers.js'
import { MetricsResp, RetryInfo, RpcStatus, encodeMetrics, encodeTraces } from './oracle.js'

type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')
const MetricsClient = grpc.makeGenericClientConstructor(metricsServiceDefinition, 'MetricsService')

function call(client: Raw, body: Buffer): Promise<{ err: grpc.ServiceError | null; res?: Buffer }> {
  return new Promise((resolve) => client.Export(body, new grpc.Metadata(), (err, res) => resolve({ err, res })))
}

const LIMIT = 1024 * 1024
/** the guard's mark; the tests' heap figure is 0 unless a test pushes it over */
const HIGH_WATER = 512 * 1024 * 1024
const spanReq = (n: number, service = 'raw') =>
  encodeTraces({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [{ spans: Array.from({ length: n }, () => ({ kind: 2, startTimeUnixNano: '1000', endTimeUnixNano: '2000' })) }],
      },
    ],
  })

// both transports (receivers.otlp.grpc.server) must pass every test here: the SDK exporters are the compatibility proof
for (const server of GRPC_SERVERS)
describe(`OTLP/gRPC receiver (${server})`, () => {
  const consumer = new CountingConsumer()
  let memory = 0
  const receiver = new OtlpGrpcReceiver({
    server,
    consumer,
    endpoint: '127.0.0.1:0',
    maxRequestBytes: LIMIT,
    memoryGuard: new MemoryGuard({ highWaterBytes: HIGH_WATER, retryAfterMs: 2500, source: () => ({ heapUsed: memory }), sampleIntervalMs: 0 }),
  })
  let traces: Raw
  let gzTraces: Raw
  let metrics: Raw

  beforeAll(async () => {
    await receiver.start()
    const addr = `127.0.0.1:${receiver.port}`
    traces = new TraceClient(addr, grpc.credentials.createInsecure()) as unknown as Raw
    gzTraces = new TraceClient(addr, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 }) as unknown as Raw
    metrics = new MetricsClient(addr, grpc.credentials.createInsecure()) as unknown as Raw
  })
  afterAll(async () => {
    traces?.close()
    gzTraces?.close()
    metrics?.close()
    await receiver.shutdown()
  })

  for (const compression of ['none', 'gzip'] as const) {
    it(`receives exact counts from the OTel SDK's gRPC exporters (compression ${compression})`, async () => {
      const before = { spans: consumer.spans, points: consumer.points }
      const url = `http://127.0.0.1:${receiver.port}`
      await sendSpans(new OTLPTraceExporter({ url, compression: compression as CompressionAlgorithm }), `svc-grpc-${compression}`, 700)
      await sendMetrics(new OTLPMetricExporter({ url, compression: compression as CompressionAlgorithm }), `svc-grpc-${compression}`, 40)
      expect(consumer.spans - before.spans).toBe(700)
      expect(consumer.points - before.points).toBe(80)
      expect(consumer.services.has(`svc-grpc-${compression}`)).toBe(true)
    })
  }

  // The OTel JS gRPC exporter 0.223 does not retry any gRPC error (its transport maps every error to
  // 'failure'), so the compliant client here is our own: it waits for the RetryInfo delay and resends.
  it('batches refused with UNAVAILABLE (memory high-water) and retried per RetryInfo are counted exactly once', async () => {
    const before = consumer.spans
    const refusedBefore = receiver.stats().rejected.overloaded
    const send = async (body: Buffer): Promise<void> => {
      for (;;) {
        const { err } = await call(traces, body)
        if (err === null) return
        expect(err.code).toBe(grpc.status.UNAVAILABLE)
        const [details] = err.metadata.get('grpc-status-details-bin') as Buffer[]
        const status = RpcStatus.toObject(RpcStatus.decode(details!), { longs: Number }) as { details: Array<{ value: Uint8Array }> }
        const delay = RetryInfo.toObject(RetryInfo.decode(status.details[0]!.value), { longs: Number }) as { retryDelay: { seconds: number; nanos: number } }
        await new Promise((r) => setTimeout(r, delay.retryDelay.seconds * 1000 + delay.retryDelay.nanos / 1e6))
      }
    }
    memory = 2 * HIGH_WATER
    const release = setTimeout(() => (memory = 0), 1000)
    try {
      await Promise.all(Array.from({ length: 20 }, () => send(spanReq(15, 'svc-retry'))))
    } finally {
      clearTimeout(release)
      memory = 0
    }
    expect(receiver.stats().rejected.overloaded - refusedBefore).toBe(20)
    expect(consumer.spans - before).toBe(300)
  })

  it('answers INVALID_ARGUMENT to undecodable bytes and keeps serving', async () => {
    const before = receiver.stats().rejected.decode
    const { err } = await call(traces, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(err?.details).toMatch(/invalid protobuf/)
    expect(receiver.stats().rejected.decode).toBe(before + 1)
    const ok = await call(traces, spanReq(3))
    expect(ok.err).toBeNull()
    expect(ok.res?.length).toBe(0)
  })

  it('answers RESOURCE_EXHAUSTED (no RetryInfo) to oversize requests and to gzip bombs', async () => {
    const before = receiver.stats().rejected.too_large
    const big = await call(traces, Buffer.alloc(LIMIT + 10))
    expect(big.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    // 64 MiB of zeros gzip to ~64 KiB on the wire; inflation stops at the limit
    const rss0 = process.memoryUsage.rss()
    const bomb = await call(gzTraces, Buffer.alloc(64 * 1024 * 1024))
    expect(bomb.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    expect(bomb.err?.metadata.get('grpc-status-details-bin')).toEqual([])
    expect(receiver.stats().rejected.too_large).toBe(before + 2)
    expect(process.memoryUsage.rss() - rss0).toBeLessThan(256 * 1024 * 1024)
  })

  it('answers UNAVAILABLE with google.rpc.RetryInfo above the memory high-water mark', async () => {
    memory = 2 * HIGH_WATER
    try {
      const { err } = await call(traces, spanReq(2))
      expect(err?.code).toBe(grpc.status.UNAVAILABLE)
      const [details] = err!.metadata.get('grpc-status-details-bin') as Buffer[]
      const status = RpcStatus.toObject(RpcStatus.decode(details!), { longs: Number }) as { code: number; details: Array<{ typeUrl: string; value: Uint8Array }> }
      expect(status.code).toBe(GrpcCode.UNAVAILABLE)
      expect(status.details[0]!.typeUrl).toBe('type.googleapis.com/google.rpc.RetryInfo')
      expect(RetryInfo.toObject(RetryInfo.decode(status.details[0]!.value), { longs: Number })).toEqual({ retryDelay: { seconds: 2, nanos: 500_000_000 } })
      expect(receiver.stats().rejected.overloaded).toBeGreaterThanOrEqual(1)
    } finally {
      memory = 0
    }
    consumer.overloaded = true
    try {
      expect((await call(traces, spanReq(2))).err?.code).toBe(grpc.status.UNAVAILABLE)
    } finally {
      consumer.overloaded = false
    }
  })

  it('reports partial_success.rejected_data_points when the pipeline rejects points', async () => {
    consumer.rejectPoints = 2
    try {
      const body = encodeMetrics({
        resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'g', gauge: { dataPoints: [{ asDouble: 1 }, { asDouble: 2 }, { asDouble: 3 }] } }] }] }],
      })
      const before = receiver.stats()
      const { err, res } = await call(metrics, body)
      expect(err).toBeNull()
      expect(MetricsResp.toObject(MetricsResp.decode(res!), { longs: Number })).toEqual({ partialSuccess: { rejectedDataPoints: 2, errorMessage: 'test rejects points' } })
      const after = receiver.stats()
      expect(after.acceptedPoints - before.acceptedPoints).toBe(1)
      expect(after.partial - before.partial).toBe(2)
    } finally {
      consumer.rejectPoints = 0
    }
  })

  it('answers INVALID_ARGUMENT (not INTERNAL) to a corrupt gzip message', async () => {
    const before = receiver.stats().rejected.decode
    const session = http2.connect(`http://127.0.0.1:${receiver.port}`)
    try {
      const garbage = Buffer.from('definitely not gzip')
      const frame = Buffer.concat([Buffer.from([1, 0, 0, 0, garbage.length]), garbage])
      const req = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', 'grpc-encoding': 'gzip', te: 'trailers' })
      const status = new Promise<string>((resolve) => {
        req.on('trailers', (t) => resolve(String(t['grpc-status'])))
        req.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])))
      })
      req.end(frame)
      req.resume()
      expect(await status).toBe(String(grpc.status.INVALID_ARGUMENT))
      expect(receiver.stats().rejected.decode).toBe(before + 1)
    } finally {
      session.close()
    }
  })

  it('an empty request is a full success', async () => {
    const { err, res } = await call(metrics, Buffer.alloc(0))
    expect(err).toBeNull()
    expect(res?.length).toBe(0)
  })

  it('survives a storm of malformed, oversize and bomb requests during valid traffic; counts stay exact', async () => {
    const s0 = consumer.spans
    const valid: Promise<unknown>[] = []
    const bad: Promise<{ err: grpc.ServiceError | null }>[] = []
    for (let i = 0; i < 200; i++) {
      valid.push(call(traces, spanReq(5, 'storm')).then((r) => expect(r.err).toBeNull()))
      const junk = Buffer.from(Array.from({ length: 64 }, (_, j) => (i * 31 + j * 17) & 0xff))
      bad.push(call(i % 2 ? traces : metrics, junk))
      if (i % 20 === 0) bad.push(call(traces, Buffer.alloc(LIMIT + 1)))
      if (i % 50 === 0) bad.push(call(gzTraces, Buffer.alloc(32 * 1024 * 1024)))
    }
    await Promise.all(valid)
    const outcomes = await Promise.all(bad)
    for (const o of outcomes) {
      if (o.err) expect([grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED]).toContain(o.err.code)
    }
    expect(consumer.spans - s0).toBe(1000)
    expect((await call(traces, spanReq(1))).err).toBeNull()
  })

  it('shutdown is idempotent and safe before start', async () => {
    const r = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0' })
    await r.shutdown()
    await r.shutdown()
    const r2 = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0' })
    await r2.start()
    await Promise.all([r2.shutdown(), r2.shutdown()])
  })
})
