import http from 'node:http'
import { gzipSync } from 'node:zlib'
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import type { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryGuard } from '../../src/receivers/memory.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { CountingConsumer, sendMetrics, sendSpans } from './helpers.js'
import { MetricsResp, RpcStatus, TraceResp, encodeMetrics, encodeTraces } from './oracle.js'

const LIMIT = 1024 * 1024
/** the guard's mark; the tests' heap figure is 0 unless a test pushes it over */
const HIGH_WATER = 512 * 1024 * 1024
const PB = 'application/x-protobuf'
const spanReq = (n: number) =>
  encodeTraces({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'raw-http' } }] },
        scopeSpans: [{ spans: Array.from({ length: n }, () => ({ kind: 2, startTimeUnixNano: '1000', endTimeUnixNano: '2000' })) }],
      },
    ],
  })

describe('OTLP/HTTP receiver', () => {
  const consumer = new CountingConsumer()
  let memory = 0
  const receiver = new OtlpHttpReceiver({
    consumer,
    endpoint: '127.0.0.1:0',
    maxRequestBytes: LIMIT,
    memoryGuard: new MemoryGuard({ highWaterBytes: HIGH_WATER, retryAfterMs: 2500, source: () => ({ heapUsed: memory }), sampleIntervalMs: 0 }),
  })
  let base = ''
  const post = (path: string, body: Uint8Array | string, headers: Record<string, string>) =>
    fetch(`${base}${path}`, { method: 'POST', body, headers })

  beforeAll(async () => {
    await receiver.start()
    base = `http://127.0.0.1:${receiver.port}`
  })
  afterAll(() => receiver.shutdown())

  for (const compression of ['none', 'gzip'] as const) {
    it(`receives exact counts from the OTel SDK's HTTP (JSON) exporters (compression ${compression})`, async () => {
      const before = { spans: consumer.spans, points: consumer.points }
      await sendSpans(new OTLPTraceExporter({ url: `${base}/v1/traces`, compression: compression as CompressionAlgorithm }), `svc-http-${compression}`, 600)
      await sendMetrics(new OTLPMetricExporter({ url: `${base}/v1/metrics`, compression: compression as CompressionAlgorithm }), `svc-http-${compression}`, 30)
      expect(consumer.spans - before.spans).toBe(600)
      expect(consumer.points - before.points).toBe(60)
      expect(consumer.services.has(`svc-http-${compression}`)).toBe(true)
    })
  }

  it('accepts application/x-protobuf, plain and gzip, with an empty response on full success', async () => {
    const before = consumer.spans
    const r1 = await post('/v1/traces', spanReq(7), { 'content-type': PB })
    expect(r1.status).toBe(200)
    expect(r1.headers.get('content-type')).toBe(PB)
    expect((await r1.arrayBuffer()).byteLength).toBe(0)
    const r2 = await post('/v1/traces', gzipSync(spanReq(5)), { 'content-type': PB, 'content-encoding': 'gzip' })
    expect(r2.status).toBe(200)
    await r2.arrayBuffer()
    expect(consumer.spans - before).toBe(12)
  })

  it('reports partial_success in protobuf and JSON', async () => {
    consumer.rejectPoints = 1
    try {
      const body = encodeMetrics({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'g', gauge: { dataPoints: [{ asDouble: 1 }, { asDouble: 2 }] } }] }] }] })
      const r = await post('/v1/metrics', body, { 'content-type': PB })
      expect(r.status).toBe(200)
      expect(MetricsResp.toObject(MetricsResp.decode(new Uint8Array(await r.arrayBuffer())), { longs: Number })).toEqual({
        partialSuccess: { rejectedDataPoints: 1, errorMessage: 'test rejects points' },
      })
      const json = { resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'g', gauge: { dataPoints: [{ asDouble: 1 }, { asDouble: 2 }] } }] }] }] }
      const rj = await post('/v1/metrics', JSON.stringify(json), { 'content-type': 'application/json' })
      expect(rj.status).toBe(200)
      expect(await rj.json()).toEqual({ partialSuccess: { rejectedDataPoints: '1', errorMessage: 'test rejects points' } })
    } finally {
      consumer.rejectPoints = 0
    }
    const ok = await post('/v1/traces', spanReq(1), { 'content-type': PB })
    expect(TraceResp.decode(new Uint8Array(await ok.arrayBuffer())).toJSON()).toEqual({})
  })

  it('400 with a google.rpc.Status in the request content type for undecodable bodies', async () => {
    const before = receiver.stats().rejected.decode
    const r = await post('/v1/traces', Buffer.from([0x0a, 0x10, 0x01]), { 'content-type': PB })
    expect(r.status).toBe(400)
    const status = RpcStatus.toObject(RpcStatus.decode(new Uint8Array(await r.arrayBuffer()))) as { code: number; message: string }
    expect(status.code).toBe(3)
    expect(status.message).toMatch(/invalid protobuf/)
    const rj = await post('/v1/metrics', '{"resourceMetrics": [', { 'content-type': 'application/json' })
    expect(rj.status).toBe(400)
    expect(((await rj.json()) as { code: number }).code).toBe(3)
    const rg = await post('/v1/traces', Buffer.from('not gzip at all'), { 'content-type': PB, 'content-encoding': 'gzip' })
    expect(rg.status).toBe(400)
    await rg.arrayBuffer()
    expect(receiver.stats().rejected.decode).toBe(before + 3)
  })

  it('413 for oversize bodies and gzip bombs, 415, 404 and 405', async () => {
    const before = receiver.stats().rejected.too_large
    const big = await post('/v1/traces', Buffer.alloc(LIMIT + 1), { 'content-type': PB })
    expect(big.status).toBe(413)
    await big.arrayBuffer()
    const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024))
    expect(bomb.length).toBeLessThan(LIMIT / 4)
    const rb = await post('/v1/traces', bomb, { 'content-type': PB, 'content-encoding': 'gzip' })
    expect(rb.status).toBe(413)
    await rb.arrayBuffer()
    expect(receiver.stats().rejected.too_large).toBe(before + 2)

    const r415 = await post('/v1/traces', 'x', { 'content-type': 'text/plain' })
    expect(r415.status).toBe(415)
    await r415.arrayBuffer()
    const rEnc = await post('/v1/traces', 'x', { 'content-type': PB, 'content-encoding': 'br' })
    expect(rEnc.status).toBe(415)
    await rEnc.arrayBuffer()
    const r404 = await post('/v1/logs', 'x', { 'content-type': PB })
    expect(r404.status).toBe(404)
    await r404.arrayBuffer()
    const r405 = await fetch(`${base}/v1/traces`)
    expect(r405.status).toBe(405)
    expect(r405.headers.get('allow')).toBe('POST')
    await r405.arrayBuffer()
  })

  it('503 with Retry-After above the memory high-water mark', async () => {
    memory = 2 * HIGH_WATER
    try {
      const r = await post('/v1/traces', spanReq(1), { 'content-type': PB })
      expect(r.status).toBe(503)
      expect(r.headers.get('retry-after')).toBe('3')
      const status = RpcStatus.toObject(RpcStatus.decode(new Uint8Array(await r.arrayBuffer()))) as { code: number }
      expect(status.code).toBe(14)
    } finally {
      memory = 0
    }
  })

  it('a batch refused with 503 (memory high-water) and retried by the OTel exporter is counted exactly once', async () => {
    const before = consumer.spans
    const refusedBefore = receiver.stats().rejected.overloaded
    memory = 2 * HIGH_WATER
    const release = setTimeout(() => (memory = 0), 1200)
    try {
      await sendSpans(new OTLPTraceExporter({ url: `${base}/v1/traces` }), 'svc-retry', 300)
    } finally {
      clearTimeout(release)
      memory = 0
    }
    expect(receiver.stats().rejected.overloaded).toBeGreaterThan(refusedBefore)
    expect(consumer.spans - before).toBe(300)
  })

  it('survives a storm of malformed, oversize and bomb requests during valid traffic; counts stay exact', async () => {
    const s0 = consumer.spans
    const bomb = gzipSync(Buffer.alloc(40 * 1024 * 1024))
    const valid: Promise<void>[] = []
    const bad: Promise<number>[] = []
    for (let i = 0; i < 150; i++) {
      valid.push(post('/v1/traces', spanReq(4), { 'content-type': PB }).then(async (r) => void expect([r.status, await r.arrayBuffer()][0]).toBe(200)))
      const junk = Buffer.from(Array.from({ length: 48 }, (_, j) => (i * 29 + j * 13) & 0xff))
      bad.push(post(i % 2 ? '/v1/traces' : '/v1/metrics', junk, { 'content-type': PB }).then(async (r) => (await r.arrayBuffer(), r.status)))
      if (i % 15 === 0) bad.push(post('/v1/traces', Buffer.alloc(LIMIT + 1), { 'content-type': PB }).then(async (r) => (await r.arrayBuffer(), r.status)))
      if (i % 50 === 0) bad.push(post('/v1/traces', bomb, { 'content-type': PB, 'content-encoding': 'gzip' }).then(async (r) => (await r.arrayBuffer(), r.status)))
    }
    await Promise.all(valid)
    for (const status of await Promise.all(bad)) expect([200, 400, 413]).toContain(status)
    expect(consumer.spans - s0).toBe(600)
  })

  it('503 when more than maxInFlight bodies are being read; shutdown waits for the in-flight request', async () => {
    const r = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0', maxInFlight: 1 })
    await r.start()
    const body = spanReq(2)
    const slow = http.request({ host: '127.0.0.1', port: r.port, path: '/v1/traces', method: 'POST', headers: { 'content-type': PB, 'content-length': body.length } })
    const slowStatus = new Promise<number>((resolve) => slow.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0))))
    slow.write(body.subarray(0, 5))
    await new Promise((res) => setTimeout(res, 100))
    const second = await fetch(`http://127.0.0.1:${r.port}/v1/traces`, { method: 'POST', body, headers: { 'content-type': PB } })
    expect(second.status).toBe(503)
    await second.arrayBuffer()
    const stopped = r.shutdown()
    slow.end(body.subarray(5))
    expect(await slowStatus).toBe(200)
    await stopped
    expect(r.stats().rejected.overloaded).toBe(1)
    expect(r.stats().acceptedSpans).toBe(2)
  })

  it('shutdown drains and is idempotent; safe before start', async () => {
    const r = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0' })
    await r.shutdown()
    const r2 = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0' })
    await r2.start()
    await Promise.all([r2.shutdown(), r2.shutdown()])
    await expect(fetch(`http://127.0.0.1:${r2.port}/v1/traces`, { method: 'POST' })).rejects.toThrow()
  })
})
