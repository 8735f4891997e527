/**
 * Issue 13 item 7: TLS, mTLS and bearer tokens on the OTLP receivers, certificates rotated without a
 * restart. Real gRPC and HTTP, the OpenTelemetry JS SDK exporters as clients where a client's view
 * suffices, raw grpc-js / node clients where the exact refusal (status code, header) is asserted.
 * Certificates are generated with openssl into a temp dir (tls-fixtures.ts).
 */
import { writeFileSync } from 'node:fs'
import https from 'node:https'
import http from 'node:http'
import tls from 'node:tls'
import * as grpc from '@grpc/grpc-js'
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc'
import { OTLPTraceExporter as HttpTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OtlpGrpcReceiver, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { GrpcCode } from '../../src/receivers/status.js'
import { tlsSchema } from '../../src/receivers/tls.js'
import { authSchema } from '../../src/receivers/auth.js'
import { CountingConsumer, sendSpans } from './helpers.js'
import { encodeTraces } from './oracle.js'
import { makePki, type Pki } from './tls-fixtures.js'
import { GRPC_SERVERS } from './grpc-servers.js'

type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')

const oneSpan = encodeTraces({
  resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'raw' } }] }, scopeSpans: [{ spans: [{ kind: 2, startTimeUnixNano: '1000', endTimeUnixNano: '2000' }] }] }],
})

async function rawExport(port: number, creds: grpc.ChannelCredentials, authorization?: string): Promise<grpc.ServiceError | null> {
  const client = new TraceClient(`127.0.0.1:${port}`, creds) as unknown as Raw
  const md = new grpc.Metadata()
  if (authorization !== undefined) md.set('authorization', authorization)
  try {
    return await new Promise((resolve) => client.Export(oneSpan, md, { deadline: Date.now() + 5_000 }, (err: grpc.ServiceError | null) => resolve(err)))
  } finally {
    client.close()
  }
}

/** the CN of the certificate a new TLS connection is served */
function servedCn(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const cn = s.getPeerCertificate().subject.CN
      s.destroy()
      resolve(String(cn))
    })
    s.on('error', reject)
  })
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 50))
  }
}

let pki: Pki
beforeAll(() => {
  pki = makePki()
}, 60_000)
afterAll(() => pki?.cleanup())

const tlsCfg = (over: Record<string, unknown> = {}) => tlsSchema.parse({ certFile: pki.path('server.crt'), keyFile: pki.path('server.key'), reloadInterval: '100ms', ...over })

for (const server of GRPC_SERVERS)
describe(`OTLP/gRPC over TLS (${server})`, () => {
  it('accepts the SDK exporter over TLS and refuses plaintext clients', async () => {
    const consumer = new CountingConsumer()
    const r = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', tls: tlsCfg() })
    await r.start()
    try {
      await sendSpans(new GrpcTraceExporter({ url: `https://127.0.0.1:${r.port}`, credentials: grpc.credentials.createSsl(pki.pem('ca.crt')) }), 'svc-tls', 300)
      expect(consumer.spans).toBe(300)
      await expect(sendSpans(new GrpcTraceExporter({ url: `http://127.0.0.1:${r.port}` }), 'svc-plain', 50)).rejects.toBeDefined()
      expect(consumer.spans).toBe(300)
      const err = await rawExport(r.port, grpc.credentials.createInsecure())
      expect(err?.code).toBe(GrpcCode.UNAVAILABLE)
      expect(r.security().tlsHandshakeFailures).toBeGreaterThanOrEqual(2)
      expect(consumer.services.has('svc-plain')).toBe(false)
    } finally {
      await r.shutdown()
    }
  }, 30_000)

  it('mTLS: a client certificate from the client CA is required', async () => {
    const consumer = new CountingConsumer()
    const r = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', tls: tlsCfg({ clientCaFile: pki.path('ca.crt'), minVersion: '1.3' }) })
    await r.start()
    try {
      const ca = pki.pem('ca.crt')
      await sendSpans(new GrpcTraceExporter({ url: `https://127.0.0.1:${r.port}`, credentials: grpc.credentials.createSsl(ca, pki.pem('client.key'), pki.pem('client.crt')) }), 'svc-mtls', 120)
      expect(consumer.spans).toBe(120)
      expect(await rawExport(r.port, grpc.credentials.createSsl(ca, pki.pem('client.key'), pki.pem('client.crt')))).toBeNull()
      // no client certificate, then one from another CA: refused, nothing ingested
      expect((await rawExport(r.port, grpc.credentials.createSsl(ca)))?.code).toBe(GrpcCode.UNAVAILABLE)
      expect((await rawExport(r.port, grpc.credentials.createSsl(ca, pki.pem('rogue-client.key'), pki.pem('rogue-client.crt'))))?.code).toBe(GrpcCode.UNAVAILABLE)
      await expect(sendSpans(new GrpcTraceExporter({ url: `https://127.0.0.1:${r.port}`, credentials: grpc.credentials.createSsl(ca) }), 'svc-nocert', 30)).rejects.toBeDefined()
      expect(consumer.spans).toBe(121)
      expect(consumer.services.has('svc-nocert')).toBe(false)
    } finally {
      await r.shutdown()
    }
  }, 30_000)

  it('bearer token: a wrong or missing token is UNAUTHENTICATED, counted by reason; the right one passes', async () => {
    const tokenFile = pki.path('grpc.token')
    writeFileSync(tokenFile, 's3cret-token\n')
    const consumer = new CountingConsumer()
    const r = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', tls: tlsCfg(), auth: authSchema.parse({ bearerTokenFile: tokenFile }) })
    await r.start()
    try {
      const creds = () => grpc.credentials.createSsl(pki.pem('ca.crt'))
      expect((await rawExport(r.port, creds(), 'Bearer wrong-token'))?.code).toBe(GrpcCode.UNAUTHENTICATED)
      expect((await rawExport(r.port, creds()))?.code).toBe(GrpcCode.UNAUTHENTICATED)
      expect((await rawExport(r.port, creds(), 'Basic czNjcmV0'))?.code).toBe(GrpcCode.UNAUTHENTICATED)
      expect(consumer.spans).toBe(0)
      expect(r.stats().rejected.unauthenticated).toBe(3)
      expect(r.security().auth?.refused).toEqual({ missing: 1, malformed: 1, invalid: 1 })
      expect(await rawExport(r.port, creds(), 'Bearer s3cret-token')).toBeNull()
      const md = new grpc.Metadata()
      md.set('authorization', 'Bearer s3cret-token')
      await sendSpans(new GrpcTraceExporter({ url: `https://127.0.0.1:${r.port}`, credentials: creds(), metadata: md }), 'svc-token', 40)
      expect(consumer.spans).toBe(41)
    } finally {
      await r.shutdown()
    }
  }, 30_000)

  it('picks up a rotated certificate without a restart; a broken rotation keeps the old one', async () => {
    const consumer = new CountingConsumer()
    const r = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0', tls: tlsCfg() })
    await r.start()
    try {
      const ca = pki.pem('ca.crt')
      expect(await servedCn(r.port, ca)).toBe('server-one')
      // half-written rotation: a key that is not a key
      writeFileSync(pki.path('server.key'), 'not a key\n')
      await until(() => (r.security().tls?.reloadFailures ?? 0) >= 1)
      expect(await servedCn(r.port, ca)).toBe('server-one')
      pki.rotateServer('server-two')
      await until(async () => (await servedCn(r.port, ca)) === 'server-two')
      expect(r.security().tls?.reloads).toBe(1)
      await sendSpans(new GrpcTraceExporter({ url: `https://127.0.0.1:${r.port}`, credentials: grpc.credentials.createSsl(ca) }), 'svc-rotated', 25)
      expect(consumer.spans).toBe(25)
    } finally {
      await r.shutdown()
      pki.rotateServer('server-one')
    }
  }, 30_000)

  it('re-reads the token file: a rotated token replaces the old one without a restart', async () => {
    const tokenFile = pki.path('rotating.token')
    writeFileSync(tokenFile, 'token-one')
    const r = new OtlpGrpcReceiver({ server, consumer: new CountingConsumer(), endpoint: '127.0.0.1:0', auth: authSchema.parse({ bearerTokenFile: tokenFile, reloadInterval: '100ms' }) })
    await r.start()
    try {
      const creds = grpc.credentials.createInsecure()
      expect(await rawExport(r.port, creds, 'Bearer token-one')).toBeNull()
      writeFileSync(tokenFile, 'token-two\n')
      await until(async () => (await rawExport(r.port, creds, 'Bearer token-two')) === null)
      expect((await rawExport(r.port, creds, 'Bearer token-one'))?.code).toBe(GrpcCode.UNAUTHENTICATED)
    } finally {
      await r.shutdown()
    }
  }, 30_000)

  it('config: Collector-shaped tls/auth in camelCase, defaults filled; snake_case keys are refused', () => {
    expect(tlsSchema.parse({ certFile: 'a', keyFile: 'b' })).toEqual({ certFile: 'a', keyFile: 'b', minVersion: '1.2', reloadInterval: 60_000 })
    expect(() => tlsSchema.parse({ cert_file: 'a', key_file: 'b' })).toThrow()
    expect(() => tlsSchema.parse({ certFile: 'a', keyFile: 'b', minVersion: '1.1' })).toThrow()
    expect(authSchema.parse({ bearerTokenFile: '/t' })).toEqual({ bearerTokenFile: '/t', reloadInterval: 60_000 })
  })

  it('refuses to start with unreadable TLS files instead of serving plaintext', async () => {
    const r = new OtlpGrpcReceiver({ server, consumer: new CountingConsumer(), endpoint: '127.0.0.1:0', tls: tlsCfg({ keyFile: pki.path('missing.key') }) })
    await expect(r.start()).rejects.toThrow(/TLS/)
    await r.shutdown()
  })
})

function post(port: number, opts: { ca?: Buffer; cert?: Buffer; key?: Buffer; authorization?: string; plain?: boolean }): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/x-protobuf' }
    if (opts.authorization !== undefined) headers['authorization'] = opts.authorization
    const args = { host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', headers }
    const req = opts.plain === true ? http.request(args) : https.request({ ...args, ca: opts.ca, cert: opts.cert, key: opts.key })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }))
    })
    req.on('error', reject)
    req.end(oneSpan)
  })
}

describe('OTLP/HTTP over TLS', () => {
  it('TLS + bearer: the SDK exporter with the token is accepted; wrong token 401 + WWW-Authenticate; plaintext refused', async () => {
    const tokenFile = pki.path('http.token')
    writeFileSync(tokenFile, 'http-token')
    const consumer = new CountingConsumer()
    const r = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0', tls: tlsCfg(), auth: authSchema.parse({ bearerTokenFile: tokenFile }) })
    await r.start()
    try {
      const ca = pki.pem('ca.crt')
      await sendSpans(new HttpTraceExporter({ url: `https://127.0.0.1:${r.port}/v1/traces`, headers: { Authorization: 'Bearer http-token' }, httpAgentOptions: { ca } }), 'svc-http-tls', 200)
      expect(consumer.spans).toBe(200)
      const wrong = await post(r.port, { ca, authorization: 'Bearer nope' })
      expect(wrong.status).toBe(401)
      expect(wrong.headers['www-authenticate']).toMatch(/^Bearer/)
      expect((await post(r.port, { ca })).status).toBe(401)
      expect(r.stats().rejected.unauthenticated).toBe(2)
      expect(r.security().auth?.refused).toEqual({ missing: 1, malformed: 0, invalid: 1 })
      await expect(post(r.port, { plain: true, authorization: 'Bearer http-token' })).rejects.toThrow()
      expect((await post(r.port, { ca, authorization: 'Bearer http-token' })).status).toBe(200)
      expect(consumer.spans).toBe(201)
    } finally {
      await r.shutdown()
    }
  }, 30_000)

  it('mTLS: no client certificate or an untrusted one is refused at the handshake', async () => {
    const consumer = new CountingConsumer()
    const r = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0', tls: tlsCfg({ clientCaFile: pki.path('ca.crt') }) })
    await r.start()
    try {
      const ca = pki.pem('ca.crt')
      expect((await post(r.port, { ca, cert: pki.pem('client.crt'), key: pki.pem('client.key') })).status).toBe(200)
      await expect(post(r.port, { ca })).rejects.toThrow()
      await expect(post(r.port, { ca, cert: pki.pem('rogue-client.crt'), key: pki.pem('rogue-client.key') })).rejects.toThrow()
      expect(consumer.spans).toBe(1)
    } finally {
      await r.shutdown()
    }
  }, 30_000)

  it('picks up a rotated certificate without a restart', async () => {
    const r = new OtlpHttpReceiver({ consumer: new CountingConsumer(), endpoint: '127.0.0.1:0', tls: tlsCfg() })
    await r.start()
    try {
      const ca = pki.pem('ca.crt')
      expect(await servedCn(r.port, ca)).toBe('server-one')
      pki.rotateServer('server-three')
      await until(async () => (await servedCn(r.port, ca)) === 'server-three')
      expect((await post(r.port, { ca })).status).toBe(200)
    } finally {
      await r.shutdown()
      pki.rotateServer('server-one')
    }
  }, 30_000)
})
