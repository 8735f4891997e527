/**
 * The assembled sidecar: OTLP from the real SDK exporter reaches the windows, and shutdown drains
 * in the documented order, once, and refuses new requests afterwards.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { SpanKind } from '@opentelemetry/api'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import { parseConfig } from '../../src/config/load.js'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'

function config() {
  return parseConfig({
    receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
    runtime: { admin: { endpoint: '127.0.0.1:0' }, telemetry: { enabled: false } },
  })
}

function spans(n: number): ReadableSpan[] {
  const collected: ReadableSpan[] = []
  const sink: SpanExporter = { export: (s, cb) => (collected.push(...s), cb({ code: 0 })), shutdown: async () => undefined }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'web', 'service.namespace': 'shop', 'service.version': '1.0.0' }),
    spanProcessors: [{ onStart: () => undefined, onEnd: (s) => void sink.export([s], () => undefined), forceFlush: async () => undefined, shutdown: async () => undefined }],
  })
  const tracer = provider.getTracer('test')
  for (let i = 0; i < n; i++) tracer.startSpan('GET /', { kind: SpanKind.SERVER, attributes: { 'http.response.status_code': 200 } }).end()
  return collected
}

function send(url: string, batch: ReadableSpan[]): Promise<number> {
  const exp = new OTLPTraceExporter({ url, timeoutMillis: 3000 })
  return new Promise((resolve) => exp.export(batch, (r) => resolve(r.code)))
}

describe('sidecar assembly', () => {
  it('ingests from the SDK exporter and drains in order on shutdown', async () => {
    const sidecar = new Sidecar({ config: config(), transport: new MemoryBus(), logger: silentLogger, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
    await sidecar.start()
    const url = `http://127.0.0.1:${sidecar.receivers.http?.port}/v1/traces`
    expect(await send(url, spans(25))).toBe(0)
    expect(sidecar.receivers.http?.stats().acceptedSpans).toBe(25)
    expect(sidecar.pipeline.store.versions('shop', 'web').map((v) => v.version)).toEqual(['1.0.0'])

    const report = await sidecar.drain()
    expect(report.result).toBe('clean')
    expect(report.steps.map((s) => s.name)).toEqual(['not-ready', 'receivers', 'final-tick', 'publisher', 'close'])
    expect(report.steps.every((s) => s.outcome === 'done')).toBe(true)
    expect(await sidecar.drain()).toBe(report) // idempotent: the same drain
    await sidecar.shutdown()
    expect(await send(url, spans(1))).not.toBe(0) // no longer accepting
  })

  it('shutdown without start is safe', async () => {
    const sidecar = new Sidecar({ config: config(), transport: new MemoryBus(), logger: silentLogger, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
    await sidecar.shutdown()
    await sidecar.shutdown()
  })
})
