/**
 * Issue 16 item 2: the Kafka span consumer's memory is bounded and yields to OTLP.
 *
 * The shared memory guard reads V8's heapUsed; here it reads a simulated heap instead, which holds
 * what the test says is live: `base` (other work, e.g. OTLP requests being recorded) plus the
 * decoded form of the span batch the Kafka receiver is handing to the pipeline right now (2 bytes
 * per record byte, while consumeTraces runs). An OTLP request arriving during that call asks the
 * guard for room, as the OTLP receivers do. Before the fix a backlog was handed over in batches of
 * up to 500 records whatever their size, so the simulated heap passed the mark and OTLP requests
 * were refused while Kafka caught up; the Kafka consumer never slowed down for OTLP.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { bufferLimitProperties, MIN_BUFFERED_BYTES } from '../../src/kafka/buffer-limits.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { ConsumeResult, TelemetryConsumer } from '../../src/receivers/consumer.js'
import { KafkaSpansReceiver } from '../../src/receivers/kafka-spans/receiver.js'
import { MemoryGuard } from '../../src/receivers/memory.js'
import type { MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { CountingConsumer, eventually } from './helpers.js'
import { paddedSpanRecord } from './oracle.js'

const MiB = 1024 * 1024
const SPANS_PER_RECORD = 50

/** One otlp_proto record of SPANS_PER_RECORD spans, padded by a resource attribute to about `bytes`. */
const record = (i: number, bytes: number): Buffer => paddedSpanRecord(i, bytes, SPANS_PER_RECORD, () => 1_764_000_000_002)

/** The simulated heap and a pipeline that puts the decoded batch on it while it records it. */
class SimulatedHeap {
  base = 2 * MiB
  live = 0
  readonly guard: MemoryGuard
  otlpAdmitted = 0
  otlpRefused = 0
  /** largest decoded batch seen, bytes */
  maxLive = 0
  constructor(highWaterBytes: number) {
    this.guard = new MemoryGuard({ highWaterBytes, retryAfterMs: 1000, source: () => ({ heapUsed: this.base + this.live }), sampleIntervalMs: 0 })
  }
  /** An OTLP request of `bytes` arriving now: admitted or refused, as the OTLP receivers ask. */
  otlpRequest(bytes: number): void {
    const r = this.guard.reserve(bytes)
    if (r.outcome === 'admitted') {
      this.otlpAdmitted++
      r.reservation.release()
    } else this.otlpRefused++
  }
  pipeline(counting: CountingConsumer, recordBytes: number): TelemetryConsumer {
    return {
      consumeTraces: (req: TracesRequest): ConsumeResult => {
        const spans = req.resourceSpans.reduce((n, rs) => n + rs.spans.length, 0)
        this.live = (spans / SPANS_PER_RECORD) * recordBytes * 2
        this.maxLive = Math.max(this.maxLive, this.live)
        try {
          this.otlpRequest(64 * 1024)
          return counting.consumeTraces(req)
        } finally {
          this.live = 0
        }
      },
      consumeMetrics: (req: MetricsRequest): ConsumeResult => counting.consumeMetrics(req),
    }
  }
}

const stopAll: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of stopAll.splice(0)) await f()
})

async function backlog(bus: MemoryBus, topic: string, records: number, bytes: number): Promise<number> {
  const p = bus.producer()
  await p.connect()
  for (let i = 0; i < records; i += 20) await p.send(topic, Array.from({ length: Math.min(20, records - i) }, (_, j) => ({ value: record(i + j, bytes) })))
  return record(0, bytes).length
}

describe('Kafka span receiver memory bound (embedded bus)', () => {
  it('drains a 20 MB backlog under a 4 MiB cap without the shared guard refusing one OTLP request', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 1 })
    const recordBytes = await backlog(bus, 'spans', 200, 100_000)
    const heap = new SimulatedHeap(16 * MiB)
    const counting = new CountingConsumer()
    const r = new KafkaSpansReceiver({
      transport: bus,
      consumer: heap.pipeline(counting, recordBytes),
      topic: 'spans',
      groupId: 'g',
      startFrom: 'earliest',
      maxBufferedBytes: 4 * MiB,
      memoryGuard: heap.guard,
    })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => counting.spans === 200 * SPANS_PER_RECORD)
    expect(heap.otlpRefused).toBe(0)
    expect(heap.otlpAdmitted).toBeGreaterThan(1)
    // each batch the pipeline got held at most the cap's worth of records (decoded: twice that)
    expect(heap.maxLive).toBeLessThanOrEqual(2 * 4 * MiB)
    expect(heap.guard.stats()).toMatchObject({ refused: 0, backgroundBytes: 0, reservedBytes: 0 })
    expect(r.stats()).toMatchObject({ acceptedSpans: 200 * SPANS_PER_RECORD, memoryHandbacks: 0 })
  })

  it('while other work holds the heap above the background limit, Kafka waits (counted) and OTLP is admitted; then it drains, every span once', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 1 })
    const recordBytes = await backlog(bus, 'spans', 60, 100_000)
    // mark 16 MiB; background limit 16 - 4 = 12 MiB; other work holds 13 MiB
    const heap = new SimulatedHeap(16 * MiB)
    heap.base = 13 * MiB
    const counting = new CountingConsumer()
    const r = new KafkaSpansReceiver({
      transport: bus,
      consumer: heap.pipeline(counting, recordBytes),
      topic: 'spans',
      groupId: 'g',
      startFrom: 'earliest',
      maxBufferedBytes: 4 * MiB,
      memoryGuard: heap.guard,
      memoryWaitMs: 60_000,
    })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => r.stats().memoryWaits >= 1)
    await new Promise((res) => setTimeout(res, 300))
    expect(counting.spans).toBe(0)
    heap.otlpRequest(1 * MiB)
    expect(heap.otlpRefused).toBe(0)
    expect(heap.guard.stats().backgroundWaits).toBeGreaterThan(1)
    heap.base = 2 * MiB
    await eventually(() => counting.spans === 60 * SPANS_PER_RECORD)
    expect(heap.otlpRefused).toBe(0)
    expect(r.stats()).toMatchObject({ acceptedSpans: 60 * SPANS_PER_RECORD, memoryHandbacks: 0, redeliveries: 0 })
  })

  it('a batch that waited memoryWaitMs is handed back and redelivered exactly', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 1 })
    const recordBytes = await backlog(bus, 'spans', 20, 100_000)
    const heap = new SimulatedHeap(16 * MiB)
    heap.base = 13 * MiB
    const counting = new CountingConsumer()
    const r = new KafkaSpansReceiver({
      transport: bus,
      consumer: heap.pipeline(counting, recordBytes),
      topic: 'spans',
      groupId: 'g',
      startFrom: 'earliest',
      maxBufferedBytes: 4 * MiB,
      memoryGuard: heap.guard,
      memoryWaitMs: 100,
    })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => r.stats().memoryHandbacks >= 2)
    expect(counting.spans).toBe(0)
    heap.base = 2 * MiB
    await eventually(() => counting.spans === 20 * SPANS_PER_RECORD)
    await new Promise((res) => setTimeout(res, 100))
    expect(counting.spans).toBe(20 * SPANS_PER_RECORD)
  })
})

describe('MemoryGuard background pool', () => {
  it('admits background work up to the mark minus the headroom, one batch alone whatever its size; requests up to the mark', () => {
    let heap = 0
    const g = new MemoryGuard({ highWaterBytes: 100, retryAfterMs: 1, source: () => ({ heapUsed: heap }), sampleIntervalMs: 0, backgroundHeadroomBytes: 30 })
    const a = g.reserveBackground(50)
    expect(a.outcome).toBe('admitted')
    expect(g.reserveBackground(30)).toEqual({ outcome: 'wait', heldBytes: 50, limitBytes: 70 })
    // a request still finds the headroom
    const req = g.reserve(40)
    expect(req.outcome).toBe('admitted')
    if (req.outcome === 'admitted') req.reservation.release()
    expect(g.state()).toMatchObject({ heldBytes: 50, backgroundBytes: 50, reservedBytes: 0 })
    if (a.outcome === 'admitted') {
      a.reservation.release()
      a.reservation.release()
    }
    expect(g.stats()).toMatchObject({ backgroundBytes: 0, backgroundWaits: 1, refused: 0 })
    // larger than the limit, but nothing else of the background is held: admitted, so it progresses
    const big = g.reserveBackground(500)
    expect(big.outcome).toBe('admitted')
    if (big.outcome === 'admitted') big.reservation.release()
    // the heap alone above the background limit: background waits, requests are still admitted
    heap = 80
    expect(g.reserveBackground(1).outcome).toBe('wait')
    expect(g.reserve(10).outcome).toBe('admitted')
  })
})

describe('librdkafka buffer limits', () => {
  it('share the budget: a quarter queued, a quarter per fetch, never below what librdkafka accepts', () => {
    expect(bufferLimitProperties(16 * MiB)).toEqual({
      'queued.max.messages.kbytes': 4096,
      'fetch.max.bytes': 4 * MiB,
      'max.partition.fetch.bytes': 4 * MiB,
      'fetch.queue.backoff.ms': 5,
    })
    const min = bufferLimitProperties(1)
    expect(min['fetch.max.bytes']).toBe(1_000_000)
    expect(min['queued.max.messages.kbytes']).toBe(Math.floor(MIN_BUFFERED_BYTES / 4 / 1024))
    expect(bufferLimitProperties(1024 * MiB)['max.partition.fetch.bytes']).toBe(8 * MiB)
  })
})

describeKafka('Kafka span receiver memory bound (real broker)', () => {
  it('librdkafka takes the derived properties; records larger than a fetch are still consumed, every span once', async () => {
    const transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: uniqueName('h2-mem') })
    const topic = uniqueName('spans-mem')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([{ topic, numPartitions: 2 }])
    stopAll.push(async () => {
      await admin.deleteTopics([topic]).catch(() => undefined)
      await admin.disconnect()
    })
    const p = transport.producer()
    await p.connect()
    // 40 records of ~600 KB: 24 MB, more than the 4 MB budget, and each larger than a quarter of it
    for (let i = 0; i < 40; i += 4) await p.send(topic, Array.from({ length: 4 }, (_, j) => ({ value: record(i + j, 600_000) })))
    await p.disconnect()
    const counting = new CountingConsumer()
    const heap = new SimulatedHeap(64 * MiB)
    const r = new KafkaSpansReceiver({ transport, consumer: counting, topic, groupId: `${topic}-g`, startFrom: 'earliest', maxBufferedBytes: MIN_BUFFERED_BYTES, memoryGuard: heap.guard })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => counting.spans === 40 * SPANS_PER_RECORD, 60_000)
    expect(r.stats()).toMatchObject({ acceptedSpans: 40 * SPANS_PER_RECORD, poison: { decode: 0, empty: 0 }, memoryHandbacks: 0 })
  }, 90_000)
})
