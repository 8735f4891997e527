/**
 * OTLP/gRPC connection, call and memory caps (issue 11 item 3): many connections x many streams,
 * each announcing a message just under maxRequestBytes and sending it slowly, used to be buffered
 * without bound (RSS 202 -> 1,673 MiB). Asserts on counters, not on RSS.
 */
import net from 'node:net'
import http2 from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { MemoryGuard } from '../../src/receivers/memory.js'
import { OtlpGrpcReceiver, TRACE_EXPORT_PATH, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { CountingConsumer } from './helpers.js'
import { GRPC_SERVERS, reservedFor } from './grpc-servers.js'
import { RetryInfo, RpcStatus, encodeTraces } from './oracle.js'

const LIMIT = 1024 * 1024
const UNAVAILABLE = String(grpc.status.UNAVAILABLE)

/** A stream that announces a message of LIMIT - 1 bytes, sends 16 KiB of it and stalls. */
function stalledCall(session: http2.ClientHttp2Session): { status: Promise<{ code: string; details: Buffer | undefined }>; stream: http2.ClientHttp2Stream } {
  const stream = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false })
  const status = new Promise<{ code: string; details: Buffer | undefined }>((resolve) => {
    const done = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] === undefined) return
      const bin = h['grpc-status-details-bin']
      resolve({ code: String(h['grpc-status']), details: typeof bin === 'string' ? Buffer.from(bin, 'base64') : undefined })
    }
    stream.on('response', done)
    stream.on('trailers', done)
    stream.on('error', () => resolve({ code: 'stream error', details: undefined }))
  })
  stream.on('error', () => undefined)
  const header = Buffer.alloc(5)
  header.writeUInt32BE(LIMIT - 1, 1)
  stream.write(Buffer.concat([header, Buffer.alloc(16 * 1024, 0x0a)]))
  stream.resume()
  return { status, stream }
}

function connect(port: number): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`http://127.0.0.1:${port}`)
  s.on('error', () => undefined)
  return new Promise((resolve) => s.once('connect', () => resolve(s)))
}

const spanReq = encodeTraces({
  resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'after' } }] }, scopeSpans: [{ spans: [{ kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }],
})

type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')

async function exportOnce(port: number): Promise<grpc.ServiceError | null> {
  const client = new TraceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Raw
  try {
    return await new Promise((resolve) => client.Export(spanReq, new grpc.Metadata(), (err) => resolve(err)))
  } finally {
    client.close()
  }
}

for (const server of GRPC_SERVERS)
describe(`OTLP/gRPC limits (${server})`, () => {
  const perCall = reservedFor(server, LIMIT - 1)
  const cleanup: Array<() => unknown> = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })

  it('caps calls in total across connections and connections; the stalled calls time out and give everything back', async () => {
    const consumer = new CountingConsumer()
    const guard = new MemoryGuard({ highWaterBytes: 512 * LIMIT, retryAfterMs: 1000, source: () => ({ heapUsed: 0 }) })
    const receiver = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', maxRequestBytes: LIMIT, memoryGuard: guard, maxConcurrentCalls: 8, maxConnections: 3, readTimeoutMs: 2000 })
    await receiver.start()
    cleanup.push(() => receiver.shutdown())
    // 3 connections x 6 streams: under the per-connection stream limit, over the total
    const sessions = await Promise.all([0, 1, 2].map(() => connect(receiver.port)))
    cleanup.push(() => sessions.forEach((s) => s.destroy()))
    const calls = sessions.flatMap((s) => Array.from({ length: 6 }, () => stalledCall(s)))
    const outcomes: string[] = []
    for (const c of calls) void c.status.then((s) => outcomes.push(s.code))
    await vi.waitFor(() => expect(outcomes.length).toBe(10), { timeout: 1500 })
    expect(outcomes.every((c) => c === UNAVAILABLE)).toBe(true)
    expect(receiver.limits()).toMatchObject({ callsInProgress: 8, callsRefused: 10, connectionsOpen: 3 })
    // each admitted call reserved what its message will take (grpc-js: 2 copies; http2: one pooled buffer) before the rest was read
    expect(guard.stats().reservedBytes).toBe(8 * perCall)

    // connections over the cap are closed on accept, and counted
    const extra = [net.connect(receiver.port, '127.0.0.1'), net.connect(receiver.port, '127.0.0.1')]
    cleanup.push(() => extra.forEach((s) => s.destroy()))
    await vi.waitFor(() => expect(receiver.limits().connectionsRefused).toBe(2))
    await Promise.all(extra.map((s) => new Promise((res) => (s.closed ? res(undefined) : s.once('close', res)))))

    // the 8 stalled calls never complete their message: each is answered at readTimeout
    const all = await Promise.all(calls.map((c) => c.status))
    expect(all.map((s) => s.code)).toEqual(Array(18).fill(UNAVAILABLE))
    expect(receiver.limits()).toMatchObject({ callsInProgress: 0, readTimeouts: 8 })
    expect(guard.stats()).toMatchObject({ reservedBytes: 0, reservations: 0 })
    expect(receiver.stats().rejected.overloaded).toBe(18)

    // and the receiver still serves: free a connection slot, then a normal export succeeds
    sessions[0]!.destroy()
    await vi.waitFor(() => expect(receiver.limits().connectionsOpen).toBeLessThan(3))
    expect(await exportOnce(receiver.port)).toBeNull()
    expect(consumer.spans).toBe(1)
  })

  it('the memory guard admits only the calls whose announced message fits; the others get UNAVAILABLE + RetryInfo unbuffered', async () => {
    const consumer = new CountingConsumer()
    // room for two calls' messages with either transport
    const guard = new MemoryGuard({ highWaterBytes: 2.25 * perCall, retryAfterMs: 1500, source: () => ({ heapUsed: 0 }) })
    const receiver = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', maxRequestBytes: LIMIT, memoryGuard: guard, readTimeoutMs: 1000 })
    await receiver.start()
    cleanup.push(() => receiver.shutdown())
    const session = await connect(receiver.port)
    cleanup.push(() => session.destroy())
    const calls = Array.from({ length: 10 }, () => stalledCall(session))
    const refused: Array<{ code: string; details: Buffer | undefined }> = []
    for (const c of calls) void c.status.then((s) => refused.push(s))
    // two calls' reservations fit under the mark, a third does not
    await vi.waitFor(() => expect(refused.length).toBe(8), { timeout: 900 })
    expect(guard.stats()).toMatchObject({ reservedBytes: 2 * perCall, reservations: 2, refused: 8 })
    const first = refused[0]!
    expect(first.code).toBe(UNAVAILABLE)
    const status = RpcStatus.toObject(RpcStatus.decode(first.details!), { longs: Number }) as { details: Array<{ typeUrl: string; value: Uint8Array }> }
    expect(status.details[0]!.typeUrl).toBe('type.googleapis.com/google.rpc.RetryInfo')
    expect(RetryInfo.toObject(RetryInfo.decode(status.details[0]!.value), { longs: Number })).toEqual({ retryDelay: { seconds: 1, nanos: 500_000_000 } })
    await Promise.all(calls.map((c) => c.status))
    expect(guard.stats()).toMatchObject({ reservedBytes: 0, reservations: 0 })
    // a complete message shrinks its reservation to its real size and is accepted
    expect(await exportOnce(receiver.port)).toBeNull()
    expect(consumer.spans).toBe(1)
    expect(guard.stats().reservedBytes).toBe(0)
  })
})
