import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/common/clock.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { Consumer, ConsumerStats, KafkaTransport } from '../../src/kafka/types.js'
import { DECODE_WARN_INTERVAL_MS, KafkaSpansReceiver } from '../../src/receivers/kafka-spans/receiver.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { CountingConsumer, eventually } from './helpers.js'
import { encodeTraces } from './oracle.js'

const protoRecord = (service: string, n: number) =>
  encodeTraces({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [
          {
            spans: Array.from({ length: n }, (_, i) => ({
              traceId: Buffer.alloc(16, i + 1),
              spanId: Buffer.alloc(8, i + 1),
              name: 'GET /',
              kind: 2,
              startTimeUnixNano: '1764000000000000000',
              endTimeUnixNano: '1764000000002000000',
            })),
          },
        ],
      },
    ],
  })

/** OTLP/JSON as the Collector's otlp_json encoding writes it (hex ids, int64 as strings). */
const jsonRecord = (service: string, n: number) =>
  JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
        scopeSpans: [
          {
            scope: { name: 'x' },
            spans: Array.from({ length: n }, (_, i) => ({
              traceId: '5b8efff798038103d269b633813fc60c',
              spanId: `eee19b7ec3c1b17${i % 10}`,
              name: 'GET /',
              kind: 2,
              startTimeUnixNano: '1764000000000000000',
              endTimeUnixNano: '1764000000002000000',
              attributes: [{ key: 'http.response.status_code', value: { intValue: '200' } }],
              status: {},
            })),
          },
        ],
      },
    ],
  })

const stopAll: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of stopAll.splice(0)) await f()
})

describe('Kafka span receiver (embedded bus)', () => {
  it('consumes otlp_proto, honours content-type, skips and dead-letters poison records', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10 })
    const consumer = new CountingConsumer()
    const r = new KafkaSpansReceiver({ transport: bus, consumer, topic: 'spans', groupId: 'g', deadLetterTopic: 'spans.dlq', startFrom: 'earliest' })
    stopAll.push(() => r.shutdown())
    await r.start()
    const producer = bus.producer()
    await producer.connect()
    await producer.send('spans', [
      { value: protoRecord('a', 3) },
      { value: Buffer.from([0x0a, 0x7f, 0x00]) },
      { value: jsonRecord('b', 2), headers: { 'Content-Type': 'application/json' } },
      { value: protoRecord('c', 4) },
    ])
    await eventually(() => consumer.spans === 9 && r.stats().deadLettered === 1)
    expect(r.stats()).toMatchObject({ acceptedSpans: 9, poison: { decode: 1, empty: 0 }, deadLettered: 1, deadLetterFailures: 0 })
    expect([...consumer.services].sort()).toEqual(['a', 'b', 'c'])
    const dlq: string[] = []
    const c = bus.consumer({ groupId: 'dlq-reader', topics: ['spans.dlq'] })
    await c.start(async (b) => void dlq.push(...b.messages.map((m) => m.headers['x-pullback-error'] ?? '')))
    stopAll.push(() => c.stop())
    await eventually(() => dlq.length === 1)
    expect(dlq[0]).toMatch(/invalid protobuf/)
  })

  it('otlp_json encoding; a retryable pipeline error redelivers the batch without double counting', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 1 })
    const consumer = new CountingConsumer()
    consumer.overloaded = true
    const r = new KafkaSpansReceiver({ transport: bus, consumer, topic: 'spans-json', groupId: 'g', encoding: 'otlp_json', startFrom: 'earliest' })
    stopAll.push(() => r.shutdown())
    await r.start()
    const producer = bus.producer()
    await producer.send('spans-json', [{ value: jsonRecord('j', 5) }, { value: 'not json' }, { value: jsonRecord('k', 1) }])
    await eventually(() => r.stats().redeliveries >= 3)
    expect(consumer.spans).toBe(0)
    consumer.overloaded = false
    await eventually(() => consumer.spans === 6)
    await new Promise((res) => setTimeout(res, 50))
    expect(consumer.spans).toBe(6)
    expect(r.stats().poison.decode).toBe(1)
    expect(r.stats().acceptedSpans).toBe(6)
  })

  it('a wrong encoding is loud: health names the likely cause, one warning per interval, a decodable record ends it', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 1 })
    const clock = new ManualClock(1_000_000)
    const logs: { level: number; msg: string }[] = []
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) })
    const consumer = new CountingConsumer()
    // configured for protobuf, fed what the Collector writes with encoding otlp_json (no content-type header)
    const r = new KafkaSpansReceiver({ transport: bus, consumer, topic: 'spans-wrong', groupId: 'g', encoding: 'otlp_proto', startFrom: 'earliest', decodeAlarmAfter: 20, clock, logger })
    stopAll.push(() => r.shutdown())
    await r.start()
    const producer = bus.producer()
    await producer.send('spans-wrong', Array.from({ length: 19 }, () => ({ value: jsonRecord('w', 1) })))
    await eventually(() => r.stats().poison.decode === 19)
    expect(r.health()).toMatchObject({ status: 'ok' }) // below the threshold: could be a few poison records
    await producer.send('spans-wrong', Array.from({ length: 30 }, () => ({ value: jsonRecord('w', 1) })))
    await eventually(() => r.stats().poison.decode === 49)
    const h = r.health()
    expect(h).toMatchObject({ status: 'undecodable', streak: 49 })
    if (h.status === 'undecodable') expect(h.detail).toMatch(/failed to decode as otlp_proto.*decode as otlp_json.*kafkaSpans\.encoding/)
    const warnings = () => logs.filter((l) => l.level === 40 && /kafkaSpans\.encoding/.test(l.msg))
    expect(warnings()).toHaveLength(1) // rate-limited: not one per batch
    expect(r.stats().undecodableStreak).toBe(49)

    clock.advance(DECODE_WARN_INTERVAL_MS)
    await producer.send('spans-wrong', [{ value: jsonRecord('w', 1) }])
    await eventually(() => r.stats().poison.decode === 50)
    expect(warnings()).toHaveLength(2)

    await producer.send('spans-wrong', [{ value: protoRecord('ok', 2) }])
    await eventually(() => consumer.spans === 2)
    expect(r.health()).toEqual({ status: 'ok' })
    expect(r.stats().undecodableStreak).toBe(0)
    expect(logs.some((l) => l.msg === 'span records decode again')).toBe(true)
  })

  it('health turns stalled when the connected consumer stops polling', async () => {
    const clock = new ManualClock(1_000_000)
    const stats: ConsumerStats = { lastPollMs: 1_000_000, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: true }
    const fake: Consumer = { start: async () => undefined, stop: async () => undefined, stats: () => ({ ...stats }) }
    const transport = { kind: 'embedded', consumer: () => fake, producer: () => { throw new Error('unused') }, admin: () => { throw new Error('unused') } } as unknown as KafkaTransport
    const r = new KafkaSpansReceiver({ transport, consumer: new CountingConsumer(), topic: 't', groupId: 'g', stallTimeoutMs: 30_000, clock })
    expect(r.health()).toEqual({ status: 'starting' })
    await r.start()
    expect(r.health()).toEqual({ status: 'ok' })
    clock.advance(29_000)
    stats.lastPollMs = clock.now()
    clock.advance(29_000)
    expect(r.health()).toEqual({ status: 'ok' })
    clock.advance(2_000)
    expect(r.health()).toEqual({ status: 'stalled', lastPollMs: 1_029_000, stalledForMs: 31_000 })
    await r.shutdown()
    await r.shutdown()
    expect(r.health()).toEqual({ status: 'stopped' })
  })
})

describeKafka('Kafka span receiver (real broker)', () => {
  it('consumes otlp_proto and otlp_json records written by a producer; poison skipped; exact counts', async () => {
    const transport = new ConfluentTransport({ brokers: [kafkaBrokers()], clientId: uniqueName('spans-test') })
    const topic = uniqueName('otlp_spans')
    const dlq = `${topic}.dlq`
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([{ topic, numPartitions: 3 }, { topic: dlq, numPartitions: 1 }])
    stopAll.push(async () => {
      await admin.deleteTopics([topic, dlq]).catch(() => undefined)
      await admin.disconnect()
    })
    const producer = transport.producer()
    await producer.connect()
    stopAll.push(() => producer.disconnect())
    const records = []
    for (let i = 0; i < 60; i++) records.push({ key: `k${i}`, value: protoRecord(`svc${i % 3}`, 10) })
    for (let i = 0; i < 20; i++) records.push({ key: `j${i}`, value: jsonRecord('json', 5), headers: { 'content-type': 'application/json' } })
    records.push({ key: 'poison', value: Buffer.from('garbage that is not protobuf \u00ff') })
    await producer.send(topic, records)

    const consumer = new CountingConsumer()
    const r = new KafkaSpansReceiver({ transport, consumer, topic, groupId: uniqueName('g'), deadLetterTopic: dlq, startFrom: 'earliest' })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => consumer.spans === 700 && r.stats().poison.decode === 1, 45_000)
    expect(r.stats().deadLettered + r.stats().deadLetterFailures).toBe(1)
    expect(r.health()).toEqual({ status: 'ok' })
    await new Promise((res) => setTimeout(res, 300))
    expect(consumer.spans).toBe(700)
  })
})
