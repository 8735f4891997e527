/**
 * The Kafka span path in distributed mode, on the real broker: OTLP spans on the spans topic
 * (otlp_proto, one ExportTraceServiceRequest per record as the Collector's kafka exporter writes
 * them, spread over the topic's partitions with no regard to service) consumed by two ingest
 * sidecars (`decider.distributed`, `receivers.kafkaSpans`) sharing the span consumer group, so each
 * sees a random share of the service's spans; both turn theirs into partials on the partials topic,
 * and a decider (DeciderProcess) merges them. A bad deployment is rolled back under plain replay's
 * id, and the counts are exact: the decider's signal store holds as many requests as spans were sent.
 *
 * Time: the sidecars' clock is the telemetry clock (one ManualClock), moved to a bucket's end only
 * once the receivers accepted every span of that bucket, so the nodes announce what they hold. The
 * span group is settled (both members assigned, by probe records without spans) before any span is
 * sent: a rebalance mid-stream would redeliver a batch (at-least-once), which is the consumer's
 * contract, not what this test measures.
 */
import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ManualClock } from '../../src/common/clock.js'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import { replayLines, type ReplaySummary } from '../../src/cli/commands/replay.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import type { ConsumedMessage, ProducerRecord } from '../../src/kafka/types.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { DeciderProcess } from '../../src/runtime/decider-process.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { encodeTraces } from '../receivers/oracle.js'
import { DEFAULT_START, generate } from '../support/otlp-fixtures.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { waitFor } from '../support/wait.js'

const BUCKET_MS = 5000
const SPAN_PARTITIONS = 3
const DEPLOY_S = 90

interface JsonSpan {
  traceId: string
  spanId: string
  endTimeUnixNano: string
}
interface JsonTraces {
  resourceSpans: { scopeSpans: { spans: JsonSpan[] }[] }[]
}

/** An OTLP/JSON traces line as the Collector's otlp_proto record (ids as bytes), its span count and newest end time. */
function protoRecord(line: string): { value: Buffer; spans: number; endMs: number } {
  const j = JSON.parse(line) as JsonTraces
  let spans = 0
  let endMs = -Infinity
  for (const rs of j.resourceSpans) {
    for (const ss of rs.scopeSpans) {
      for (const s of ss.spans) {
        spans += 1
        endMs = Math.max(endMs, Number(BigInt(s.endTimeUnixNano) / 1_000_000n))
        Object.assign(s, { traceId: Buffer.from(s.traceId, 'hex'), spanId: Buffer.from(s.spanId, 'hex') })
      }
    }
  }
  return { value: encodeTraces(j), spans, endMs }
}

describeKafka('Kafka span path in distributed mode (real broker)', () => {
  let transport: ConfluentTransport
  let lines: string[]
  let base: ReplaySummary
  const prefix = uniqueName('it-kspans')

  beforeAll(async () => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    // a canary: v1 alone, then v2 beside it failing a third of its requests; spans only (the span topic carries no metrics)
    lines = generate({
      seed: 12,
      durationS: 200,
      metricsEveryS: 1_000_000,
      load: (t) =>
        t < DEPLOY_S
          ? [{ version: '1.0.0', rps: 40, errorRate: 0.01, medianMs: 40 }]
          : [
              { version: '1.0.0', rps: 30, errorRate: 0.01, medianMs: 40 },
              { version: '2.0.0', rps: 10, errorRate: 0.3, medianMs: 40 },
            ],
    }).filter((l) => l.startsWith('{"resourceSpans"'))
    base = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })
  }, 120_000)

  afterAll(async () => {
    const admin = transport.admin()
    await admin
      .deleteTopics([`${prefix}.spans`, `${prefix}.partials`, `${prefix}.decider.state`, `${prefix}.decisions`, `${prefix}.incidents`, `${prefix}.deployments`])
      .catch(() => undefined)
    await admin.disconnect()
  })

  it('spans on the topic -> two ingest sidecars sharing the span group -> partials -> decider: the rollback, every span counted once', async () => {
    const rollback = base.verdicts.find((v) => v.kind === 'rollback')!
    expect(rollback).toBeDefined()
    const kafka = {
      brokers: kafkaBrokers().split(','),
      groupPrefix: prefix,
      topics: { spans: `${prefix}.spans`, partials: `${prefix}.partials`, decisions: `${prefix}.decisions`, incidents: `${prefix}.incidents`, deployments: `${prefix}.deployments` },
    }
    const admin = transport.admin()
    await admin.ensureTopics([{ topic: kafka.topics.spans, numPartitions: SPAN_PARTITIONS }])
    await admin.disconnect()

    const deciderCfg = parseConfig({
      kafka,
      decider: { partitions: 4 },
      publish: { wal: { enabled: false } },
      receivers: { deployments: { enabled: false } },
      runtime: { admin: { enabled: false }, state: { minWriteInterval: '1s' } },
    })
    const decider = new DeciderProcess({ config: deciderCfg, transport, logger: silentLogger, headless: true, clock: null, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
    const clock = new ManualClock(DEFAULT_START)
    const sidecar = (node: string) =>
      new Sidecar({
        config: parseConfig({
          kafka: { ...kafka, instanceId: node },
          decider: { distributed: true, enabled: false, partitions: 4 },
          receivers: { otlp: { grpc: { enabled: false }, http: { enabled: false } }, kafkaSpans: { enabled: true, encoding: 'otlp_proto', startFrom: 'earliest' }, deployments: { enabled: false } },
          runtime: { admin: { enabled: false }, telemetry: { enabled: false }, tickInterval: '10ms', state: { enabled: false } },
        }),
        transport,
        logger: silentLogger,
        headless: true,
        clock,
      })
    const sidecars = [sidecar('node-0'), sidecar('node-1')]
    const producer = transport.producer()
    await decider.start()
    for (const s of sidecars) await s.start()
    await producer.connect()
    try {
      const rxs = sidecars.map((s) => s.receivers.kafkaSpans!)
      expect(rxs.every((r) => r !== undefined)).toBe(true)
      expect(sidecars.every((s) => s.decider === undefined)).toBe(true)
      const accepted = () => rxs.reduce((a, r) => a + r.stats().acceptedSpans, 0)
      await waitFor(() => decider.service.stats().partitions.length === 4, 'the decider to own the partitions')
      // the span group settled: every member was assigned partitions and read from them
      const probe = encodeTraces({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'probe' } }] }, scopeSpans: [] }] })
      const t0 = Date.now()
      while (!rxs.every((r) => (r.stats().consumer?.messages ?? 0) > 0)) {
        if (Date.now() - t0 > 30_000) throw new Error('timed out waiting for the span group to settle')
        await producer.send(kafka.topics.spans, Array.from({ length: SPAN_PARTITIONS }, (_, partition) => ({ value: probe, partition })))
        await new Promise((r) => setTimeout(r, 200))
      }
      let sent = 0
      let records = 0
      let pending: ProducerRecord[] = []
      let bucket = Math.floor(DEFAULT_START / BUCKET_MS)
      let now = DEFAULT_START
      const flushBucket = async (to: number) => {
        await producer.send(kafka.topics.spans, pending)
        pending = []
        await waitFor(() => accepted() === sent, `the sidecars to accept ${sent} spans`)
        clock.set(to)
        // one tick of the node (10 ms) per bucket: each bucket announced on its own, as live
        await new Promise((r) => setTimeout(r, 30))
      }
      for (const line of lines) {
        const r = protoRecord(line)
        const b = Math.floor(r.endMs / BUCKET_MS)
        if (b > bucket) {
          await flushBucket(now)
          bucket = b
        }
        // no key, spread over the partitions: one service's spans land on every partition
        pending.push({ value: r.value, partition: records % SPAN_PARTITIONS })
        records += 1
        sent += r.spans
        now = Math.max(now, r.endMs)
      }
      await flushBucket(now)
      // past the last bucket plus lateness: the node announces (and the decider judges) everything
      await flushBucket(now + 2 * deciderCfg.engine.lateness + 2 * BUCKET_MS)
      for (const r of rxs) expect(r.stats().poison).toEqual(Object.fromEntries(Object.keys(r.stats().poison).map((k) => [k, 0])))
      // the group shared the spans: both nodes accepted some, and both published partials
      expect(rxs.every((r) => r.stats().acceptedSpans > 0)).toBe(true)
      expect(sidecars.every((s) => (s.partials?.stats().partials ?? 0) > 0)).toBe(true)

      const store = () => decider.service.pipeline()!.store
      const held = () =>
        ['1.0.0', '2.0.0'].reduce((a, version) => a + store().window({ namespace: 'shop', service: 'checkout', version }, DEFAULT_START - 60_000, now + 60_000).requests, 0)
      expect(sent).toBeGreaterThan(7000)
      await waitFor(() => held() === sent, `the decider's store to hold ${sent} requests (holds ${held()})`)
      expect(held()).toBe(sent)
      expect(decider.service.stats().decider?.latePartials).toBe(0)

      const got: ConsumedMessage[] = []
      const reader = transport.consumer({ groupId: uniqueName('it-kspans-read'), topics: [kafka.topics.decisions], fromBeginning: true, onError: () => undefined })
      await reader.start(async (b) => void got.push(...b.messages))
      const rollbacks = () => got.map((m) => JSON.parse((m.value as Buffer).toString()) as { id: string; kind: string; payload: { decidedAt: number } }).filter((e) => e.kind === 'rollback')
      try {
        await waitFor(() => rollbacks().length > 0, 'the rollback on the decisions topic')
        await new Promise((r) => setTimeout(r, 1000))
      } finally {
        await reader.stop()
      }
      expect(new Set(rollbacks().map((e) => e.id))).toEqual(new Set([rollback.id]))
      expect(Math.abs(rollbacks()[0]!.payload.decidedAt - rollback.decidedAt)).toBeLessThanOrEqual(BUCKET_MS)
    } finally {
      await producer.disconnect()
      for (const s of sidecars) await s.drain()
      await decider.shutdown()
    }
  }, 120_000)
})
