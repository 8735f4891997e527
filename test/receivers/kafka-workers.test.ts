/**
 * Issue 16 item 3 on the Kafka path: span records decoded by the decode worker pool (src/workers)
 * reach the pipeline exactly once per span, poison records are counted once, and a batch whose
 * record the pool refused (its queue full of OTLP work, a worker crash, the pool stopping) is
 * redelivered without double-counting any span of it, on the embedded bus and on the real broker
 * (where the record bytes are moved to the workers, not copied).
 *
 * Each span carries its identity in its end time (record i, span j: BASE + i * 1000 + j ms), the one
 * per-span field the decoders keep, so the test checks a multiset: every span once, none twice.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import type { ConsumeResult, TelemetryConsumer } from '../../src/receivers/consumer.js'
import { OverloadedError } from '../../src/receivers/errors.js'
import { KafkaSpansReceiver } from '../../src/receivers/kafka-spans/receiver.js'
import type { MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'
import { WorkerPool } from '../../src/workers/pool.js'
import { bundleDecodeWorker, type BundledWorker } from '../workers/bundle-worker.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { eventually } from './helpers.js'
import { paddedSpanRecord } from './oracle.js'

const BASE_MS = 1_764_000_000_000
const SPANS = 40

/** Record i: SPANS spans whose end times name them; `pad` bytes of resource attribute (above 8 KiB the bytes are movable). */
const record = (i: number, pad: number): Buffer => paddedSpanRecord(i, pad, SPANS, (j) => BASE_MS + i * 1000 + j)

/** Every span handed to the pipeline, by identity (its end time), with how often. */
class SpanLedger implements TelemetryConsumer {
  readonly seen = new Map<number, number>()
  spans = 0
  consumeTraces(req: TracesRequest): ConsumeResult {
    let n = 0
    for (const rs of req.resourceSpans) {
      for (const s of rs.spans) {
        n++
        // the decoders derive milliseconds from nanoseconds in floating point
        const id = Math.round(s.endTimeMs)
        this.seen.set(id, (this.seen.get(id) ?? 0) + 1)
      }
    }
    this.spans += n
    return { accepted: n, rejected: 0 }
  }
  consumeMetrics(_req: MetricsRequest): ConsumeResult {
    return { accepted: 0, rejected: 0 }
  }
  /** identities seen other than exactly once, and the ones of `records` never seen */
  problems(records: number[]): string[] {
    const out: string[] = []
    const want = new Set<number>()
    for (const i of records) for (let j = 0; j < SPANS; j++) want.add(BASE_MS + i * 1000 + j)
    for (const [k, n] of this.seen) if (n !== 1 || !want.has(k)) out.push(`${k} x${n}`)
    for (const k of want) if (!this.seen.has(k)) out.push(`${k} missing`)
    return out
  }
}

/** The real pool, refusing every `every`-th job (`max` times in all) as a pool with a full queue does (OverloadedError, before the job is sent). */
function refusingEvery(pool: WorkerPool, every: number, max: number): { pool: WorkerPool; refused: () => number } {
  let calls = 0
  let refused = 0
  const wrapper = Object.create(pool) as WorkerPool
  wrapper.decodeTraces = (format, body, maxAttributes, owned) => {
    if (++calls % every === 0 && refused < max) {
      refused++
      return Promise.reject(new OverloadedError('more than 0 requests waiting for decode workers (test)', 10))
    }
    return pool.decodeTraces(format, body, maxAttributes, owned)
  }
  return { pool: wrapper, refused: () => refused }
}

let bundle: BundledWorker
let pool: WorkerPool
beforeAll(async () => {
  bundle = await bundleDecodeWorker()
  pool = new WorkerPool({ threads: 2, retryAfterMs: 10, script: bundle.file })
  await pool.start()
}, 60_000)
afterAll(async () => {
  await pool?.shutdown()
  bundle?.remove()
})

const stopAll: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of stopAll.splice(0).reverse()) await f()
})

/** Produces records 0..n-1 (with a tombstone and an undecodable record after every 10th) to `topic`. */
async function fill(transport: KafkaTransport, topic: string, n: number, pad: number): Promise<{ poison: number }> {
  const p = transport.producer()
  await p.connect()
  let poison = 0
  for (let i = 0; i < n; i += 10) {
    const values: Array<Buffer | null> = []
    for (let k = i; k < Math.min(n, i + 10); k++) values.push(record(k, pad))
    values.push(null, Buffer.from([0xff, 0xff, 0xff, 0x0f, 0x01]))
    poison += 2
    await p.send(
      topic,
      values.map((value) => ({ value })),
    )
  }
  await p.disconnect()
  return { poison }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe('Kafka span receiver with decode workers (embedded bus)', () => {
  it('every span reaches the pipeline once; poison is counted once; the decoding happened in the workers', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 2 })
    const { poison } = await fill(bus, 'spans', 60, 100)
    const ledger = new SpanLedger()
    const before = pool.stats().completed
    const r = new KafkaSpansReceiver({ transport: bus, consumer: ledger, topic: 'spans', groupId: 'g', startFrom: 'earliest', maxBatchSize: 7, workers: pool })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => r.stats().poison.decode + r.stats().poison.empty === poison && ledger.spans >= 60 * SPANS)
    await new Promise((res) => setTimeout(res, 100))
    expect(ledger.problems(range(60))).toEqual([])
    expect(r.stats()).toMatchObject({ acceptedSpans: 60 * SPANS, poison: { decode: poison / 2, empty: poison / 2 }, workerDecodes: 60, workerHandbacks: 0, redeliveries: 0 })
    // 60 records and 6 undecodable ones went to the workers; the embedded bus's Buffers were copied, never moved (it keeps its log)
    expect(pool.stats().completed - before).toBe(66)
  })

  it('a batch whose record the pool refused is handed back and redelivered: every span still once', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 10, defaultPartitions: 1 })
    const { poison } = await fill(bus, 'spans', 50, 100)
    const ledger = new SpanLedger()
    const refusing = refusingEvery(pool, 9, 4)
    const r = new KafkaSpansReceiver({ transport: bus, consumer: ledger, topic: 'spans', groupId: 'g', startFrom: 'earliest', maxBatchSize: 12, workers: refusing.pool, workerWindow: 3 })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => r.stats().poison.decode + r.stats().poison.empty === poison && ledger.spans >= 50 * SPANS, 30_000)
    await new Promise((res) => setTimeout(res, 100))
    expect(refusing.refused()).toBe(4)
    expect(r.stats().workerHandbacks).toBe(refusing.refused())
    expect(ledger.problems(range(50))).toEqual([])
    expect(r.stats()).toMatchObject({ acceptedSpans: 50 * SPANS, poison: { decode: poison / 2, empty: poison / 2 } })
  }, 40_000)
})

describeKafka('Kafka span receiver with decode workers (real broker)', () => {
  it('record bytes move to the workers; refused batches are refetched, not re-read from moved Buffers: every span once', async () => {
    const transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: uniqueName('kw') })
    const topic = uniqueName('spans-workers')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([{ topic, numPartitions: 2 }])
    stopAll.push(async () => {
      await admin.deleteTopics([topic]).catch(() => undefined)
      await admin.disconnect()
    })
    // 20 KB records: larger than node's Buffer pool, so their ArrayBuffers can be moved
    const { poison } = await fill(transport, topic, 80, 20_000)
    const ledger = new SpanLedger()
    const refusing = refusingEvery(pool, 11, 3)
    const moved = pool.stats().transferred
    const r = new KafkaSpansReceiver({ transport, consumer: ledger, topic, groupId: `${topic}-g`, startFrom: 'earliest', maxBatchSize: 16, workers: refusing.pool })
    stopAll.push(() => r.shutdown())
    await r.start()
    await eventually(() => r.stats().poison.decode + r.stats().poison.empty === poison && ledger.spans >= 80 * SPANS, 60_000)
    await new Promise((res) => setTimeout(res, 300))
    expect(refusing.refused()).toBeGreaterThan(0)
    expect(ledger.problems(range(80))).toEqual([])
    expect(r.stats()).toMatchObject({ acceptedSpans: 80 * SPANS, poison: { decode: poison / 2, empty: poison / 2 } })
    expect(pool.stats().transferred - moved).toBeGreaterThanOrEqual(80)
  }, 90_000)
})
