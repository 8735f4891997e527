/**
 * The OTLP receivers with decode workers (receivers.workers > 0): answers and counters are those of
 * the inline path (partial_success counts exact, undecodable => INVALID_ARGUMENT / 400), a full
 * worker queue => the protocol's retryable answer (UNAVAILABLE + RetryInfo / 503 + Retry-After),
 * counted; gzip bodies and OTLP/JSON go through the workers too; metrics stay inline.
 */
import { gzipSync } from 'node:zlib'
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { OtlpGrpcReceiver, metricsServiceDefinition, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { createReceivers } from '../../src/receivers/index.js'
import { GrpcCode } from '../../src/receivers/status.js'
import { WorkerPool } from '../../src/workers/pool.js'
import { bundleDecodeWorker, type BundledWorker } from '../workers/bundle-worker.js'
import { GRPC_SERVERS } from './grpc-servers.js'
import { MetricsResp, RetryInfo, RpcStatus, TraceResp, encodeMetrics, encodeTraces } from './oracle.js'

type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')
const MetricsClient = grpc.makeGenericClientConstructor(metricsServiceDefinition, 'MetricsService')
const PB = 'application/x-protobuf'
const NOW_NS = BigInt(Date.now()) * 1_000_000n

const attr = (key: string, v: string) => ({ key, value: { stringValue: v } })
const span = (i: number) => ({
  kind: 2,
  startTimeUnixNano: String(NOW_NS - 5_000_000n),
  endTimeUnixNano: String(NOW_NS - BigInt(i)),
  attributes: [{ key: 'http.response.status_code', value: { intValue: i % 4 === 0 ? 503 : 200 } }],
})
/** `good` spans of a service, and `orphans` spans of a resource without service.name (rejected: partial success) */
const tracesObj = (good: number, orphans: number) => ({
  resourceSpans: [
    { resource: { attributes: [attr('service.name', 'svc'), attr('service.version', '1.0')] }, scopeSpans: [{ spans: Array.from({ length: good }, (_, i) => span(i)) }] },
    ...(orphans > 0 ? [{ resource: { attributes: [attr('host.name', 'h')] }, scopeSpans: [{ spans: Array.from({ length: orphans }, (_, i) => span(i)) }] }] : []),
  ],
})
const metricsObj = {
  resourceMetrics: [{ resource: { attributes: [attr('service.name', 'svc')] }, scopeMetrics: [{ metrics: [{ name: 'other', gauge: { dataPoints: [{ asDouble: 1, timeUnixNano: String(NOW_NS) }] } }] }] }],
}

let bundle: BundledWorker
beforeAll(async () => {
  bundle = await bundleDecodeWorker()
}, 60_000)
afterAll(() => bundle?.remove())

function pipeline(): Pipeline {
  const cfg = parseConfig({})
  return new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
}

function call(c: Raw, body: Buffer): Promise<{ err: grpc.ServiceError | null; res: Buffer | undefined }> {
  return new Promise((resolve) => c.Export(body, new grpc.Metadata(), (err, res) => resolve({ err, res })))
}

describe('OTLP receivers with decode workers', () => {
  for (const server of GRPC_SERVERS)
  it(`gRPC (${server}): partial success exact, undecodable INVALID_ARGUMENT, metrics inline, all counted as inline`, async () => {
    const workers = new WorkerPool({ threads: 2, retryAfterMs: 1000, script: bundle.file })
    await workers.start()
    const p = pipeline()
    const r = new OtlpGrpcReceiver({ server, consumer: p, endpoint: '127.0.0.1:0', workers })
    await r.start()
    const t = new TraceClient(`127.0.0.1:${r.port}`, grpc.credentials.createInsecure()) as unknown as Raw
    const m = new MetricsClient(`127.0.0.1:${r.port}`, grpc.credentials.createInsecure()) as unknown as Raw
    try {
      const ok = await call(t, encodeTraces(tracesObj(300, 7)))
      expect(ok.err).toBeNull()
      const resp = TraceResp.decode(ok.res as Buffer).toJSON() as { partialSuccess?: { rejectedSpans?: string; errorMessage?: string } }
      expect(resp.partialSuccess?.rejectedSpans).toBe('7')
      expect(resp.partialSuccess?.errorMessage).toBe('resource without service.name')
      const bad = await call(t, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]))
      expect(bad.err?.code).toBe(GrpcCode.INVALID_ARGUMENT)
      const mres = await call(m, encodeMetrics(metricsObj))
      expect(mres.err).toBeNull()
      expect(MetricsResp.decode(mres.res as Buffer).toJSON()).toEqual({})
      expect(r.stats()).toMatchObject({ requests: 3, acceptedSpans: 300, acceptedPoints: 1, partial: 7, rejected: { decode: 1 } })
      // recorded before the answer: the store has them now
      expect(p.normalizer.stats()).toMatchObject({ accepted: 301, rejected: 7, missingService: 7 })
      // two span requests went to the workers, the metrics request did not
      expect(workers.stats().completed).toBe(2)
      expect(workers.stats().transferred + workers.stats().copied).toBe(2)
    } finally {
      t.close()
      m.close()
      await r.shutdown()
      await workers.shutdown()
      p.shutdown()
    }
  })

  for (const server of GRPC_SERVERS)
  it(`gRPC (${server}): a full worker queue answers UNAVAILABLE with RetryInfo, counted as overloaded and in the pool`, async () => {
    const stuck = new URL(
      `data:text/javascript,${encodeURIComponent("import { parentPort } from 'node:worker_threads'\nparentPort.on('message', () => {})\nparentPort.postMessage({ outcome: 'ready' })")}`,
    )
    const workers = new WorkerPool({ threads: 1, maxQueued: 1, retryAfterMs: 2500, drainTimeoutMs: 100, script: stuck })
    await workers.start()
    const p = pipeline()
    const r = new OtlpGrpcReceiver({ server, consumer: p, endpoint: '127.0.0.1:0', workers, drainTimeoutMs: 200 })
    await r.start()
    const t = new TraceClient(`127.0.0.1:${r.port}`, grpc.credentials.createInsecure()) as unknown as Raw
    try {
      const first = call(t, encodeTraces(tracesObj(3, 0)))
      // the first job sits at the (stuck) worker; wait until it is there
      for (let i = 0; i < 100 && workers.stats().inFlight === 0; i++) await new Promise((res) => setTimeout(res, 20))
      const second = await call(t, encodeTraces(tracesObj(3, 0)))
      expect(second.err?.code).toBe(GrpcCode.UNAVAILABLE)
      const details = second.err?.metadata.get('grpc-status-details-bin')[0] as Buffer
      const status = RpcStatus.decode(details) as unknown as { details: Array<{ value: Uint8Array }> }
      expect(RetryInfo.decode(status.details[0]!.value).toJSON()).toEqual({ retryDelay: { seconds: '2' , nanos: 500_000_000 } })
      expect(r.stats().rejected.overloaded).toBe(1)
      expect(workers.stats().refused).toBe(1)
      await workers.shutdown()
      // the stuck job fails retryable when the pool stops: UNAVAILABLE, nothing recorded
      expect((await first).err?.code).toBe(GrpcCode.UNAVAILABLE)
      expect(p.normalizer.stats().accepted).toBe(0)
    } finally {
      t.close()
      await r.shutdown()
      await workers.shutdown()
      p.shutdown()
    }
  })

  it('HTTP: protobuf, gzip and JSON spans through the workers; partial success exact; 400 and 503 as inline', async () => {
    const workers = new WorkerPool({ threads: 1, retryAfterMs: 3000, script: bundle.file })
    await workers.start()
    const p = pipeline()
    const r = new OtlpHttpReceiver({ consumer: p, endpoint: '127.0.0.1:0', workers })
    await r.start()
    const post = (body: Uint8Array | string, headers: Record<string, string>) => fetch(`http://127.0.0.1:${r.port}/v1/traces`, { method: 'POST', body, headers })
    try {
      const pb = await post(encodeTraces(tracesObj(100, 2)), { 'content-type': PB })
      expect(pb.status).toBe(200)
      expect(TraceResp.decode(new Uint8Array(await pb.arrayBuffer())).toJSON()).toEqual({ partialSuccess: { rejectedSpans: '2', errorMessage: 'resource without service.name' } })
      const gz = await post(gzipSync(encodeTraces(tracesObj(50, 0))), { 'content-type': PB, 'content-encoding': 'gzip' })
      expect(gz.status).toBe(200)
      const json = await post(JSON.stringify(tracesObj(10, 1)), { 'content-type': 'application/json' })
      expect(json.status).toBe(200)
      expect(await json.json()).toEqual({ partialSuccess: { rejectedSpans: '1', errorMessage: 'resource without service.name' } })
      const bad = await post('{"resourceSpans": 3}', { 'content-type': 'application/json' })
      expect(bad.status).toBe(400)
      expect(r.stats()).toMatchObject({ requests: 4, acceptedSpans: 160, partial: 3, rejected: { decode: 1 } })
      expect(p.normalizer.stats()).toMatchObject({ accepted: 160, rejected: 3 })
      expect(workers.stats().completed).toBe(4)
      // a stopped pool: retryable 503 with Retry-After, counted as overloaded
      await workers.shutdown()
      const late = await post(encodeTraces(tracesObj(1, 0)), { 'content-type': PB })
      expect(late.status).toBe(503)
      expect(late.headers.get('retry-after')).toBe('3')
      expect(r.stats().rejected.overloaded).toBe(1)
    } finally {
      await r.shutdown()
      await workers.shutdown()
      p.shutdown()
    }
  })

  it('createReceivers: receivers.workers builds one shared pool, started before and stopped after the OTLP receivers', async () => {
    const cfg = parseConfig({ receivers: { workers: 2, otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } }, deployments: { enabled: false } } })
    const p = pipeline()
    const rs = createReceivers({ config: cfg.receivers, kafka: cfg.kafka, consumer: p, workerScript: bundle.file })
    expect(rs.workers?.threads).toBe(2)
    expect(rs.all.map((c) => c.name)).toEqual(['workers', 'otlp-grpc', 'otlp-http'])
    for (const c of rs.all) await c.start()
    const t = new TraceClient(`127.0.0.1:${rs.grpc?.port}`, grpc.credentials.createInsecure()) as unknown as Raw
    try {
      expect((await call(t, encodeTraces(tracesObj(5, 0)))).err).toBeNull()
      expect(rs.workers?.stats().completed).toBe(1)
    } finally {
      t.close()
      for (const c of [...rs.all].reverse()) await c.shutdown()
      p.shutdown()
    }
    expect(parseConfig({}).receivers.workers).toBe(0)
    expect(createReceivers({ config: parseConfig({ receivers: { deployments: { enabled: false } } }).receivers, kafka: cfg.kafka, consumer: p }).workers).toBeUndefined()
    expect(() => parseConfig({ receivers: { workers: -1 } })).toThrow(/receivers\.workers/)
    expect(() => parseConfig({ receivers: { workers: 'many' } })).toThrow(/receivers\.workers/)
  })
})
