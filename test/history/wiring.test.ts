/**
 * The history stage as the processes wire it: the single-process sidecar samples its signal store
 * and writes what its receivers took in (read back through the calibration's Kafka history source,
 * here on the embedded bus); the decider's feed consumes partials from the real broker.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { createLogger, silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { KafkaHistorySource } from '../../src/calibrate/kafka.js'
import { HistoryAccumulator } from '../../src/history/accumulator.js'
import { PartialsHistoryFeed } from '../../src/history/feeds.js'
import { encodeBatch } from '../../src/partials/codec.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'

function otlpTraces(n: number, endMs: number): string {
  const spans = []
  for (let i = 0; i < n; i++) {
    const end = BigInt(endMs - i * 10) * 1_000_000n
    spans.push({
      traceId: 'a'.repeat(31) + (i % 10).toString(),
      spanId: 'b'.repeat(15) + (i % 10).toString(),
      name: 'GET /',
      kind: 2,
      startTimeUnixNano: String(end - 30_000_000n),
      endTimeUnixNano: String(end),
      attributes: [{ key: 'http.response.status_code', value: { intValue: i < 5 ? 500 : 200 } }],
      status: {},
    })
  }
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'web' } }, { key: 'service.namespace', value: { stringValue: 'shop' } }, { key: 'service.version', value: { stringValue: '1.0.0' } }] },
        scopeSpans: [{ spans }],
      },
    ],
  })
}

describe('single-process sidecar', () => {
  it('writes what its receivers took in to the history topic; /status shows the ladder and the history counters', async () => {
    const bus = new MemoryBus()
    const cfg = parseConfig({
      receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
      runtime: { admin: { endpoint: '127.0.0.1:0' }, telemetry: { enabled: false } },
    })
    const sidecar = new Sidecar({ config: cfg, transport: bus, logger: silentLogger, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
    await sidecar.start()
    try {
      expect(sidecar.history).toBeDefined()
      const now = Date.now()
      const res = await fetch(`http://127.0.0.1:${sidecar.receivers.http?.port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: otlpTraces(40, now) })
      expect(res.status).toBe(200)
      const admin = (sidecar as unknown as { admin: { address(): { port: number } } }).admin
      // a histogram under a name pullback does not read: /status names it
      const unknown = { resourceMetrics: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'web' } }, { key: 'service.namespace', value: { stringValue: 'shop' } }] }, scopeMetrics: [{ metrics: [{ name: 'http_server_requests_seconds', unit: 's', histogram: { aggregationTemporality: 2, dataPoints: [{ timeUnixNano: String(now * 1e6), count: '1', bucketCounts: ['1'] }] } }] }] }] }
      expect((await fetch(`http://127.0.0.1:${sidecar.receivers.http?.port}/v1/metrics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(unknown) })).status).toBe(200)
      const doc = (await (await fetch(`http://127.0.0.1:${admin.address().port}/status`)).json()) as { readiness: { service: string; rung: number }[]; history: { written: number }; unreadHistograms: { names: { name: string; points: number }[] } }
      expect(doc.readiness.map((e) => e.service)).toEqual(['shop/web', '*'])
      expect(doc.history.written).toBe(0)
      expect(doc.unreadHistograms.names).toEqual([{ name: 'http_server_requests_seconds', type: 'histogram', unit: 's', points: 1 }])
    } finally {
      await sidecar.shutdown()
    }
    // shutdown sampled the store up to now and wrote the open hour
    expect(sidecar.history?.stats().written).toBeGreaterThanOrEqual(1)
    const src = new KafkaHistorySource({ transport: bus, topic: cfg.kafka.topics.history, groupPrefix: 'test', logger: silentLogger })
    const end = Math.ceil(Date.now() / 60_000) * 60_000 + 60_000
    const range = { startMs: end - 3 * 3_600_000, endMs: end, stepMs: 60_000 }
    expect(await src.services(range)).toEqual([{ namespace: 'shop', name: 'web' }])
    const h = await src.history({ namespace: 'shop', name: 'web' }, range)
    expect(h.kind).toBe('ok')
    if (h.kind !== 'ok') return
    let count = 0
    let errors = 0
    let lat = 0
    for (let i = 0; i < h.history.requests.counts.length; i++) {
      const c = h.history.requests.counts[i] as number
      if (!Number.isNaN(c)) count += c
      errors += h.history.requests.errors[i] as number
    }
    for (const v of h.history.requests.latency) lat += v
    expect(count).toBe(40)
    expect(errors).toBe(5)
    expect(lat).toBe(40)
  })
})

describeKafka('decider feed on the real broker', () => {
  it('records the observations of partials consumed in its own group', async () => {
    const transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    const topic = uniqueName('it-hist-partials')
    const admin = transport.admin()
    await admin.ensureTopics([{ topic, numPartitions: 2 }])
    const producer = transport.producer()
    await producer.connect()
    const t = Date.UTC(2026, 10, 1, 10, 0, 30)
    const key = { namespace: 'shop', service: 'cart', version: 'v2' }
    await producer.send(topic, [
      {
        key: 'shop/cart',
        value: encodeBatch({
          node: 'node-a',
          nowMs: t,
          watermarkMs: t,
          final: false,
          partials: [
            { key, pod: '', bucketStartMs: t - (t % 5000), requests: { count: 12, errors: 3, firstMs: t, lastMs: t + 100, latenciesUs: [2000, 80_000], latencyCounts: [10, 2] }, intervals: [], resources: [], probes: [] },
            { key, pod: 'cart-1', bucketStartMs: t - (t % 5000), requests: undefined, intervals: [], resources: [{ resource: 'memory', timeMs: t, value: 3e8, request: 5e8 }], probes: [] },
          ],
        }),
      },
    ])
    const acc = new HistoryAccumulator({ stepMs: 60_000, graceMs: 120_000, maxServices: 10, maxPods: 10 })
    const feed = new PartialsHistoryFeed({ transport, topic, groupId: uniqueName('it-hist-group'), accumulator: acc, logger: createLogger('test', 'warn') })
    try {
      await feed.start()
      const until = Date.now() + 30_000
      while (acc.stats().open === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200))
      const [s] = acc.drain(t + 3_600_000, true)
      expect(s).toBeDefined()
      expect(s?.counts[0]).toBe(12)
      expect(s?.errors[0]).toBe(3)
      expect(s?.latency[0]).toBe(10)
      expect(s?.resources[0]).toMatchObject({ pod: 'cart-1', resource: 'memory', request: 5e8 })
      expect(feed.stats().undecodable).toBe(0)
    } finally {
      await feed.shutdown()
      await feed.shutdown()
      await producer.disconnect()
      await admin.deleteTopics([topic]).catch(() => undefined)
      await admin.disconnect()
    }
  })
})
