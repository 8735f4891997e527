/**
 * StateStore on the embedded bus and on failing transports: the bounded queue, coalescing per key,
 * retry of retryable failures, dropping of permanent ones, read-to-end retried with backoff and
 * abandoned (never thrown) after its budget, and a bounded flush at shutdown.
 */
import { describe, expect, it } from 'vitest'
import { PermanentError, RetryableError } from '../../src/common/errors.js'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { Admin, KafkaTransport, Producer, ProducerRecord } from '../../src/kafka/types.js'
import { stateSchema, resolveState, type StateConfig } from '../../src/state/config.js'
import { StateStore } from '../../src/state/store.js'

const cfgOf = (raw: Record<string, unknown> = {}): StateConfig => stateSchema.parse(raw)
const up = (key: string, value = key) => ({ key, service: `ns/${key}`, value })

function storeOn(transport: KafkaTransport, config: StateConfig, scope = 'node-a'): StateStore {
  return new StateStore({ transport, config, topic: 'pullback.engine.state', scope, groupPrefix: 'pullback', logger: silentLogger, backoffMs: { min: 5, max: 20 }, stallMs: 200 })
}

/** the embedded bus with a producer that fails as told */
function flaky(bus: MemoryBus, fail: (records: ProducerRecord[], call: number) => Error | undefined, admin?: () => Error | undefined): KafkaTransport & { calls: number } {
  const t = {
    kind: 'embedded' as const,
    calls: 0,
    producer(): Producer {
      const p = bus.producer()
      return {
        connect: () => p.connect(),
        disconnect: () => p.disconnect(),
        send: (topic, records) => {
          const err = fail(records, t.calls++)
          return err !== undefined ? Promise.reject(err) : p.send(topic, records)
        },
      }
    },
    consumer: (o: Parameters<KafkaTransport['consumer']>[0]) => bus.consumer(o),
    reader: (o: Parameters<KafkaTransport['reader']>[0]) => bus.reader(o),
    admin(): Admin {
      const a = bus.admin()
      return {
        ...a,
        ensureTopics: (s) => {
          const err = admin?.()
          return err !== undefined ? Promise.reject(err) : a.ensureTopics(s)
        },
      }
    },
  }
  return t
}

async function loadedKeys(bus: MemoryBus, scope = 'node-a'): Promise<Record<string, string>> {
  const s = storeOn(bus, cfgOf(), scope)
  await s.start()
  const r = await s.load()
  await s.shutdown()
  if (r.kind !== 'loaded') throw new Error(r.reason)
  return Object.fromEntries(r.records.map((x) => [x.key, x.value]))
}

describe('writing', () => {
  it('creates the topic compacted, coalesces a key, writes deletions as tombstones', async () => {
    const bus = new MemoryBus({ maxMessagesPerPartition: 4 })
    const s = storeOn(bus, cfgOf())
    await s.start()
    s.write({ upserts: [up('a', '1'), up('b')], deletes: [] })
    s.write({ upserts: [up('a', '2')], deletes: [{ key: 'b', service: 'ns/b' }] })
    expect(await s.flush(1000)).toMatchObject({ kind: 'flushed' })
    for (let i = 0; i < 10; i++) s.write({ upserts: [up('c', String(i))], deletes: [] })
    await s.shutdown()
    // compaction kept the newest per key although 13+ records went to a partition holding 4
    expect(bus.stats().compacted).toBeGreaterThan(0)
    expect(await loadedKeys(bus)).toEqual({ a: '2', c: '9' })
  })

  it('refuses new keys past maxQueue and hands them back; a queued key is still replaced', async () => {
    const bus = new MemoryBus()
    const s = storeOn(flaky(bus, () => new RetryableError('DOWN', 'broker down')), cfgOf({ maxQueue: 2, flushTimeout: '100ms' }))
    await s.start()
    const r = s.write({ upserts: [up('a'), up('b'), up('c')], deletes: [] })
    expect(r).toEqual({ accepted: 2, refused: [{ key: 'c', service: 'ns/c' }] })
    expect(s.write({ upserts: [up('a', 'newer')], deletes: [] }).refused).toEqual([])
    expect(s.stats()).toMatchObject({ refused: 1 })
    const f = await s.flush(50)
    expect(f).toMatchObject({ kind: 'timeout', pending: 2 })
    await s.shutdown()
    expect(s.stats().abandonedAtShutdown).toBe(2)
  })

  it('retries a retryable failure until the broker is back, keeping the newest value', async () => {
    const bus = new MemoryBus()
    const t = flaky(bus, (_r, call) => (call < 3 ? new RetryableError('DOWN', 'broker down') : undefined))
    const s = storeOn(t, cfgOf())
    await s.start()
    s.write({ upserts: [up('a', 'old')], deletes: [] })
    s.write({ upserts: [up('a', 'new')], deletes: [] })
    expect(await s.flush(5000)).toMatchObject({ kind: 'flushed' })
    expect(s.stats().sendFailures).toBeGreaterThanOrEqual(1)
    await s.shutdown()
    expect(await loadedKeys(bus)).toEqual({ a: 'new' })
  })

  it('drops, and counts, only the record the broker refuses for good', async () => {
    const bus = new MemoryBus()
    const t = flaky(bus, (records) => (records.some((r) => r.value === 'too big') ? new PermanentError('KAFKA_RECORD_TOO_LARGE', 'too large') : undefined))
    const s = storeOn(t, cfgOf())
    await s.start()
    s.write({ upserts: [up('a'), up('b', 'too big'), up('c')], deletes: [] })
    expect(await s.flush(5000)).toMatchObject({ kind: 'flushed' })
    expect(s.stats()).toMatchObject({ rejected: 1, written: 2 })
    await s.shutdown()
    expect(await loadedKeys(bus)).toEqual({ a: 'a', c: 'c' })
  })
})

describe('reading to the end', () => {
  it('retries a failing topic creation with backoff instead of failing the start', async () => {
    const bus = new MemoryBus()
    let n = 0
    const s = storeOn(flaky(bus, () => undefined, () => (n++ < 2 ? new RetryableError('KAFKA_RETRYABLE', 'Unknown topic or partition') : undefined)), cfgOf())
    await s.start()
    const r = await s.load()
    expect(r).toMatchObject({ kind: 'loaded', attempts: 3 })
    await s.shutdown()
  })

  it('starts over with a new reader when a read makes no progress (a reader that never receives)', async () => {
    const bus = new MemoryBus()
    const t = flaky(bus, () => undefined)
    let consumers = 0
    const blind: KafkaTransport = {
      ...t,
      producer: () => t.producer(),
      admin: () => t.admin(),
      consumer: (o) => t.consumer(o),
      reader: (o) => {
        consumers += 1
        if (consumers > 1) return bus.reader(o)
        const stats = { lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: true }
        return { start: () => Promise.resolve(), stop: () => Promise.resolve(), stats: () => stats }
      },
    }
    const s = storeOn(blind, cfgOf())
    await s.start()
    const r = await s.load()
    expect(r).toMatchObject({ kind: 'loaded', attempts: 2 })
    expect(consumers).toBe(2)
    await s.shutdown()
  })

  it('gives up after restoreTimeout with an outcome, never an exception', async () => {
    const bus = new MemoryBus()
    const s = storeOn(flaky(bus, () => new RetryableError('DOWN', 'broker down')), cfgOf({ restoreTimeout: '300ms' }))
    await s.start()
    const r = await s.load()
    expect(r.kind).toBe('abandoned')
    expect(r.attempts).toBeGreaterThan(1)
    await s.shutdown()
  })

  it('reads only its scope, across partitions', async () => {
    const bus = new MemoryBus()
    const cfg = cfgOf({ partitions: 3 })
    const a = storeOn(bus, cfg, 'node-a')
    const b = storeOn(bus, cfg, 'node-b')
    await a.start()
    await b.start()
    a.write({ upserts: ['p', 'q', 'r', 's', 't'].map((k) => up(k)), deletes: [] })
    b.write({ upserts: [up('p', 'b')], deletes: [] })
    await a.shutdown()
    await b.shutdown()
    const again = storeOn(bus, cfg, 'node-a')
    await again.start()
    const r = await again.load()
    await again.shutdown()
    expect(r.kind === 'loaded' ? Object.fromEntries(r.records.map((x) => [x.key, x.value])) : r).toEqual({ p: 'p', q: 'q', r: 'r', s: 's', t: 't' })
    expect(again.stats().foreign).toBe(1)
  })
})

describe('config', () => {
  it('topic from the group prefix, scope from config, NODE_NAME, then "default"', () => {
    expect(resolveState(cfgOf(), 'pullback', {})).toEqual({ topic: 'pullback.engine.state', scope: 'default' })
    expect(resolveState(cfgOf(), 'demo-1', { NODE_NAME: 'node-7' })).toEqual({ topic: 'demo-1.engine.state', scope: 'node-7' })
    expect(resolveState(cfgOf({ topic: 't', scope: 's' }), 'pullback', { NODE_NAME: 'node-7' })).toEqual({ topic: 't', scope: 's' })
    expect(() => cfgOf({ scope: 'a/b' })).toThrow()
  })
})
