/**
 * The node:http2 gRPC transport (receivers.otlp.grpc.server: http2, otlp-grpc/h2-server.ts) at the
 * protocol level, with raw HTTP/2 clients: what the SDK-exporter tests (otlp-grpc*.test.ts, run over
 * both transports) cannot send. Plus idle GOAWAY and draining shutdown, over both transports, and
 * the message buffer pool.
 */
import http2 from 'node:http2'
import { deflateSync } from 'node:zlib'
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConsumeResult, TelemetryOrigin } from '../../src/receivers/consumer.js'
import { MemoryGuard } from '../../src/receivers/memory.js'
import type { TracesRequest } from '../../src/receivers/otlp/model.js'
import { MessageBufferPool } from '../../src/receivers/otlp-grpc/buffer-pool.js'
import { encodeGrpcMessage, parseGrpcTimeout } from '../../src/receivers/otlp-grpc/h2-server.js'
import { METRICS_EXPORT_PATH, OtlpGrpcReceiver, TRACE_EXPORT_PATH, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { GrpcCode } from '../../src/receivers/status.js'
import { parseConfig } from '../../src/config/load.js'
import { CountingConsumer } from './helpers.js'
import { encodeTraces } from './oracle.js'
import { GRPC_SERVERS } from './grpc-servers.js'

const LIMIT = 1024 * 1024
const spans = (n: number, service = 'h2') =>
  encodeTraces({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [{ spans: Array.from({ length: n }, () => ({ kind: 2, startTimeUnixNano: '1000', endTimeUnixNano: '2000' })) }],
      },
    ],
  })

function frame(message: Buffer, compressed = false): Buffer {
  const head = Buffer.alloc(5)
  head[0] = compressed ? 1 : 0
  head.writeUInt32BE(message.length, 1)
  return Buffer.concat([head, message])
}

interface Answer {
  httpStatus: number
  grpcStatus: string | undefined
  message: string | undefined
  headers: http2.IncomingHttpHeaders
  body: Buffer
}

/** One request on `session`; `send` writes the body (default: `body` in one piece, then end). */
function request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer | ((s: http2.ClientHttp2Stream) => void),
): Promise<Answer> {
  const st = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers }, { endStream: false })
  return new Promise((resolve, reject) => {
    let first: http2.IncomingHttpHeaders = {}
    let trailers: http2.IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    st.on('response', (h) => (first = h))
    st.on('trailers', (t) => (trailers = t))
    st.on('data', (c: Buffer) => chunks.push(c))
    st.on('error', reject)
    st.on('close', () => {
      const all = { ...first, ...trailers }
      resolve({
        httpStatus: Number(first[':status']),
        grpcStatus: all['grpc-status'] === undefined ? undefined : String(all['grpc-status']),
        message: all['grpc-message'] === undefined ? undefined : String(all['grpc-message']),
        headers: all,
        body: Buffer.concat(chunks),
      })
    })
    if (typeof body === 'function') body(st)
    else st.end(body)
  })
}

function connect(port: number): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`http://127.0.0.1:${port}`)
  s.on('error', () => undefined)
  return new Promise((resolve) => s.once('connect', () => resolve(s)))
}

class PeerConsumer extends CountingConsumer {
  peers: string[] = []
  override consumeTraces(req: TracesRequest, origin?: TelemetryOrigin): ConsumeResult {
    if (origin?.transport === 'otlp') this.peers.push(origin.peer)
    return super.consumeTraces(req)
  }
}

describe('gRPC over node:http2: protocol edges', () => {
  const consumer = new PeerConsumer()
  const guard = new MemoryGuard({ highWaterBytes: 512 * LIMIT, retryAfterMs: 1000, source: () => ({ heapUsed: 0 }), sampleIntervalMs: 0 })
  const receiver = new OtlpGrpcReceiver({ server: 'http2', consumer, endpoint: '127.0.0.1:0', maxRequestBytes: LIMIT, memoryGuard: guard, bufferPoolBytes: 256 * 1024 })
  let session: http2.ClientHttp2Session

  beforeAll(async () => {
    await receiver.start()
    session = await connect(receiver.port)
  })
  afterAll(async () => {
    session?.destroy()
    await receiver.shutdown()
  })

  it('is the http2 transport', () => {
    expect(receiver.server).toBe('http2')
    expect(receiver.buffers()).toBeDefined()
  })

  it('a message split byte by byte (prefix included) across DATA frames is read whole; the peer reaches the consumer', async () => {
    const before = consumer.spans
    const bytes = frame(spans(40))
    const a = await request(session, {}, (st) => {
      let i = 0
      const next = (): void => {
        if (i >= bytes.length) {
          st.end()
          return
        }
        // 1-byte writes through the prefix, then 1 KiB pieces
        const n = i < 8 ? 1 : 1024
        st.write(bytes.subarray(i, i + n), next)
        i += n
      }
      next()
    })
    expect(a).toMatchObject({ httpStatus: 200, grpcStatus: '0' })
    expect(a.body).toEqual(Buffer.alloc(5))
    expect(consumer.spans - before).toBe(40)
    expect(consumer.peers.at(-1)).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it('unknown path and other methods: UNIMPLEMENTED; other content types: 415; unknown grpc-encoding: UNIMPLEMENTED + grpc-accept-encoding', async () => {
    const s0 = receiver.stats()
    const unknown = await request(session, { ':path': '/opentelemetry.proto.collector.logs.v1.LogsService/Export' }, frame(Buffer.alloc(0)))
    expect(unknown.grpcStatus).toBe(String(GrpcCode.UNIMPLEMENTED))
    const get = await request(session, { ':method': 'GET' }, Buffer.alloc(0))
    expect(get).toMatchObject({ httpStatus: 405, grpcStatus: String(GrpcCode.UNIMPLEMENTED) })
    const json = await request(session, { 'content-type': 'application/json' }, Buffer.from('{}'))
    expect(json.httpStatus).toBe(415)
    const br = await request(session, { 'grpc-encoding': 'br' }, frame(Buffer.from('x'), true))
    expect(br.grpcStatus).toBe(String(GrpcCode.UNIMPLEMENTED))
    expect(br.headers['grpc-accept-encoding']).toBe('identity,gzip,deflate')
    const s1 = receiver.stats()
    expect(s1.rejected.decode - s0.rejected.decode).toBe(3)
    expect(s1.rejected.unsupported_media_type - s0.rejected.unsupported_media_type).toBe(1)
    // application/grpc+proto with a parameter is gRPC
    expect((await request(session, { 'content-type': 'application/grpc+proto; charset=utf-8' }, frame(spans(1)))).grpcStatus).toBe('0')
  })

  it('truncated, missing and second messages, and a compressed flag without grpc-encoding: INVALID_ARGUMENT', async () => {
    const s0 = receiver.stats().rejected.decode
    const whole = frame(spans(3))
    const truncated = await request(session, {}, whole.subarray(0, whole.length - 2))
    expect(truncated.grpcStatus).toBe(String(GrpcCode.INVALID_ARGUMENT))
    expect(truncated.message).toMatch(/truncated/)
    expect((await request(session, {}, Buffer.alloc(0))).grpcStatus).toBe(String(GrpcCode.INVALID_ARGUMENT))
    expect((await request(session, {}, Buffer.concat([whole, whole]))).grpcStatus).toBe(String(GrpcCode.INVALID_ARGUMENT))
    expect((await request(session, {}, frame(spans(1), true))).grpcStatus).toBe(String(GrpcCode.INVALID_ARGUMENT))
    expect(receiver.stats().rejected.decode - s0).toBe(4)
  })

  it('a call refused while its client is still sending is reset, so nothing more of it is read', async () => {
    // announces more than the limit, sends a little and never ends its side: only the reset closes it
    const a = await request(session, {}, (st) => {
      const head = Buffer.alloc(5)
      head.writeUInt32BE(LIMIT + 1, 1)
      st.write(Buffer.concat([head, Buffer.alloc(1024)]))
    })
    expect(a.grpcStatus).toBe(String(GrpcCode.RESOURCE_EXHAUSTED))
    expect(a.headers['grpc-status-details-bin']).toBeUndefined()
    expect(guard.stats()).toMatchObject({ reservedBytes: 0, reservations: 0 })
  }, 10_000)

  it('deflate (zlib) messages are inflated; the metrics path answers too', async () => {
    const before = consumer.spans
    const a = await request(session, { 'grpc-encoding': 'deflate' }, frame(deflateSync(spans(7)), true))
    expect(a.grpcStatus).toBe('0')
    expect(consumer.spans - before).toBe(7)
    expect((await request(session, { ':path': METRICS_EXPORT_PATH }, frame(Buffer.alloc(0)))).grpcStatus).toBe('0')
  })

  it('grpc-timeout: a call whose message is not in by its deadline gets DEADLINE_EXCEEDED, not counted as a refusal, and gives its reservation back', async () => {
    const s0 = receiver.stats()
    const a = await request(session, { 'grpc-timeout': '150m' }, (st) => {
      const head = Buffer.alloc(5)
      head.writeUInt32BE(1000, 1)
      st.write(Buffer.concat([head, Buffer.alloc(100)]))
    })
    expect(a.grpcStatus).toBe(String(GrpcCode.DEADLINE_EXCEEDED))
    expect(receiver.stats().rejected).toEqual(s0.rejected)
    expect(guard.stats()).toMatchObject({ reservedBytes: 0, reservations: 0 })
    expect(receiver.limits().callsInProgress).toBe(0)
  })

  it('reuses message buffers from a bounded pool', async () => {
    const b0 = receiver.buffers()!
    for (let i = 0; i < 20; i++) expect((await request(session, {}, frame(spans(200)))).grpcStatus).toBe('0')
    const b1 = receiver.buffers()!
    expect(b1.hits - b0.hits).toBeGreaterThanOrEqual(19)
    expect(b1.idleBytes).toBeLessThanOrEqual(256 * 1024)
  })

  it('non-ASCII in grpc-message is percent-encoded', async () => {
    expect(encodeGrpcMessage('ok plain')).toBe('ok plain')
    expect(encodeGrpcMessage('50% ü\n')).toBe('50%25 %C3%BC%0A')
  })

  it('parses grpc-timeout units; malformed means no deadline', () => {
    expect(parseGrpcTimeout('5S')).toBe(5000)
    expect(parseGrpcTimeout('2M')).toBe(120_000)
    expect(parseGrpcTimeout('1H')).toBe(3_600_000)
    expect(parseGrpcTimeout('250m')).toBe(250)
    expect(parseGrpcTimeout('1500u')).toBe(2)
    expect(parseGrpcTimeout('10n')).toBe(1)
    expect(parseGrpcTimeout('123456789S')).toBeUndefined()
    expect(parseGrpcTimeout('5s')).toBeUndefined()
    expect(parseGrpcTimeout(undefined)).toBeUndefined()
  })
})

describe('gRPC over node:http2: concurrent calls with pooled buffers', () => {
  it('many interleaved calls, randomly split, some gzip, some cancelled mid-message: every answered call recorded exactly, nothing held after', async () => {
    const { gzipSync } = await import('node:zlib')
    const seen = new Map<string, number>()
    const consumer = new (class extends CountingConsumer {
      override consumeTraces(req: TracesRequest): ConsumeResult {
        for (const rs of req.resourceSpans) {
          const svc = String(rs.resource['service.name'])
          seen.set(svc, (seen.get(svc) ?? 0) + rs.spans.length)
        }
        return super.consumeTraces(req)
      }
    })()
    const guard = new MemoryGuard({ highWaterBytes: 512 * LIMIT, retryAfterMs: 1000, source: () => ({ heapUsed: 0 }) })
    // a small pool, so buffers are reused across calls all the time
    const receiver = new OtlpGrpcReceiver({ server: 'http2', consumer, endpoint: '127.0.0.1:0', maxRequestBytes: LIMIT, memoryGuard: guard, bufferPoolBytes: 512 * 1024 })
    await receiver.start()
    const sessions = await Promise.all([0, 1, 2, 3].map(() => connect(receiver.port)))
    try {
      let seed = 12345
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff
        return seed % n
      }
      const expected = new Map<string, number>()
      const calls = Array.from({ length: 160 }, (_, i) => {
        const n = 1 + rand(300)
        const service = `svc-${i}`
        const gz = i % 5 === 0
        const cancel = i % 7 === 3
        const bytes = gz ? frame(gzipSync(spans(n, service)), true) : frame(spans(n, service))
        const session = sessions[i % sessions.length] as http2.ClientHttp2Session
        const answer = request(session, gz ? { 'grpc-encoding': 'gzip' } : {}, (st) => {
          // 1..4 pieces at random split points, written on later turns so calls interleave
          const cuts = [0, ...Array.from({ length: rand(4) }, () => rand(bytes.length)).sort((a, b) => a - b), bytes.length]
          let k = 0
          const next = (): void => {
            // cancelled after the first piece, while the message is incomplete (a call cancelled after its
            // whole message was sent may have been recorded already: any server may do that)
            if (cancel && k === 1 && cuts.length > 2) {
              st.close(http2.constants.NGHTTP2_CANCEL)
              return
            }
            if (k >= cuts.length - 1) {
              st.end()
              return
            }
            const piece = bytes.subarray(cuts[k], cuts[k + 1])
            k++
            setImmediate(() => st.write(piece, next))
          }
          next()
        }).catch(() => undefined)
        return answer.then((a) => {
          if (a?.grpcStatus === '0') expected.set(service, n)
          return a
        })
      })
      const answers = await Promise.all(calls)
      const ok = answers.filter((a) => a?.grpcStatus === '0').length
      expect(ok).toBeGreaterThan(100)
      expect(ok).toBeLessThan(calls.length)
      // only OK answers were recorded, each with exactly its own spans (a reused buffer overwritten early would break this)
      expect(seen).toEqual(expected)
      await new Promise((r) => setTimeout(r, 50))
      expect(receiver.limits().callsInProgress).toBe(0)
      expect(guard.stats()).toMatchObject({ reservedBytes: 0, reservations: 0 })
      const b = receiver.buffers()!
      expect(b.hits).toBeGreaterThan(0)
      expect(b.idleBytes).toBeLessThanOrEqual(512 * 1024)
      expect(receiver.stats().rejected).toMatchObject({ decode: 0, internal: 0, too_large: 0 })
    } finally {
      for (const s of sessions) s.destroy()
      await receiver.shutdown()
    }
  })
})

describe('message buffer pool', () => {
  it('rounds to power-of-two classes, reuses, keeps at most maxIdleBytes idle, never pools oversize buffers', () => {
    const pool = new MessageBufferPool({ maxIdleBytes: 64 * 1024, minBytes: 16 * 1024, maxPooledBytes: 64 * 1024 })
    const a = pool.acquire(20_000)
    expect(a.length).toBe(32 * 1024)
    expect(a.byteOffset).toBe(0)
    expect(a.buffer.byteLength).toBe(a.length)
    pool.release(a)
    expect(pool.acquire(17_000)).toBe(a)
    const big = pool.acquire(100_000)
    expect(big.length).toBe(100_000)
    pool.release(big)
    const [x, y, z] = [pool.acquire(60_000), pool.acquire(60_000), pool.acquire(1)]
    expect(z.length).toBe(16 * 1024)
    pool.release(x)
    pool.release(y)
    pool.release(z)
    // x fills the idle limit; y and z are dropped
    expect(pool.stats()).toMatchObject({ hits: 1, misses: 4, unpooled: 1, dropped: 2, idleBytes: 64 * 1024, idleBuffers: 1 })
    pool.clear()
    expect(pool.stats()).toMatchObject({ idleBytes: 0, idleBuffers: 0 })
  })

  it('with maxIdleBytes 0 nothing is kept', () => {
    const pool = new MessageBufferPool({ maxIdleBytes: 0 })
    pool.release(pool.acquire(30_000))
    expect(pool.stats()).toMatchObject({ idleBytes: 0, dropped: 1 })
  })
})

type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')

for (const server of GRPC_SERVERS)
  describe(`gRPC connections (${server})`, () => {
    it('an idle connection is closed with GOAWAY after idleTimeout', async () => {
      const receiver = new OtlpGrpcReceiver({ server, consumer: new CountingConsumer(), endpoint: '127.0.0.1:0', idleTimeoutMs: 300 })
      await receiver.start()
      const session = await connect(receiver.port)
      try {
        const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)))
        expect((await request(session, {}, frame(spans(1)))).grpcStatus).toBe('0')
        const t0 = performance.now()
        expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR)
        expect(performance.now() - t0).toBeGreaterThanOrEqual(200)
      } finally {
        session.destroy()
        await receiver.shutdown()
      }
    })

    it('shutdown lets a call in flight finish, refuses new connections, and resolves', async () => {
      const consumer = new CountingConsumer()
      const receiver = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', drainTimeoutMs: 5000 })
      await receiver.start()
      const session = await connect(receiver.port)
      try {
        const bytes = frame(spans(5))
        let finish: () => void = () => undefined
        const answer = request(session, {}, (st) => {
          st.write(bytes.subarray(0, 10))
          finish = () => st.end(bytes.subarray(10))
        })
        await new Promise((r) => setTimeout(r, 100))
        const stopped = receiver.shutdown()
        await new Promise((r) => setTimeout(r, 100))
        finish()
        expect((await answer).grpcStatus).toBe('0')
        await stopped
        expect(consumer.spans).toBe(5)
        const client = new TraceClient(`127.0.0.1:${receiver.port}`, grpc.credentials.createInsecure()) as unknown as Raw
        const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Export(spans(1), new grpc.Metadata(), (e) => resolve(e)))
        client.close()
        expect(err?.code).toBe(grpc.status.UNAVAILABLE)
      } finally {
        session.destroy()
      }
    })
  })

describe('config', () => {
  it('receivers.otlp.grpc.server: http2 by default, grpc-js when set, nothing else', () => {
    expect(parseConfig({}).receivers.otlp.grpc.server).toBe('http2')
    expect(parseConfig({ receivers: { otlp: { grpc: { server: 'grpc-js' } } } }).receivers.otlp.grpc.server).toBe('grpc-js')
    expect(() => parseConfig({ receivers: { otlp: { grpc: { server: 'netty' } } } })).toThrow(/receivers\.otlp\.grpc\.server/)
  })
})
