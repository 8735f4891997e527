/**
 * The Kafka adapter against the real broker: keyed order, commit-after-success, redelivery of what
 * was not committed, and no redelivery of what was.
 */
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfluentTransport, lagFromStatistics } from '../../src/kafka/confluent.js'
import type { Batch, ConsumedMessage, Consumer } from '../../src/kafka/types.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { waitFor } from '../support/wait.js'

const KEYS = 100

function parse(m: ConsumedMessage): { key: string; seq: number } {
  const [key, seq] = (m.value as Buffer).toString().split(':')
  return { key: key as string, seq: Number(seq) }
}

// both consumers the transport makes: the KafkaJS-API one, and the byte-budgeted one (confluent-budget.ts) a maxBufferedBytes selects
for (const [label, budget] of [['KafkaJS API', undefined], ['byte budget', { maxBufferedBytes: 4 * 1024 * 1024 }]] as const) {
describeKafka(`kafka adapter (real broker, ${label})`, () => {
  let transport: ConfluentTransport
  const topic = uniqueName('it-adapter')
  const group = uniqueName('it-group')
  const consumers: Consumer[] = []

  beforeAll(async () => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    const admin = transport.admin()
    await admin.ensureTopics([{ topic, numPartitions: 3, replicationFactor: 1 }])
    await admin.ensureTopics([{ topic, numPartitions: 3, replicationFactor: 1 }]) // idempotent
    expect(await admin.listTopics()).toContain(topic)
    await admin.disconnect()
  })

  afterAll(async () => {
    for (const c of consumers) await c.stop()
  })

  const seqs = new Map<string, number>()
  async function produce(n: number): Promise<void> {
    const producer = transport.producer()
    const records = []
    for (let i = 0; i < n; i++) {
      const key = `k${i % KEYS}`
      const seq = (seqs.get(key) ?? 0) + 1
      seqs.set(key, seq)
      records.push({ key, value: `${key}:${seq}` })
    }
    for (let i = 0; i < records.length; i += 1000) await producer.send(topic, records.slice(i, i + 1000))
    await producer.disconnect()
    await producer.disconnect() // idempotent
  }

  function consumer(): Consumer {
    const c = transport.consumer({ groupId: group, topics: [topic], fromBeginning: true, onError: () => undefined, ...budget })
    consumers.push(c)
    return c
  }

  it('delivers 10,000 keyed messages in order per key, commits, and redelivers only what was not committed', async () => {
    await produce(10_000)

    // Phase 1: consume everything; per key, sequence numbers arrive strictly in order, none missing.
    const got = new Map<string, number[]>()
    const delivered = new Map<number, number>()
    const c1 = consumer()
    await c1.start(async (b: Batch) => {
      delivered.set(b.partition, (delivered.get(b.partition) ?? 0) + b.messages.length)
      for (const m of b.messages) {
        const { key, seq } = parse(m)
        const list = got.get(key) ?? []
        list.push(seq)
        got.set(key, list)
      }
    })
    await waitFor(() => [...got.values()].reduce((a, l) => a + l.length, 0) >= 10_000, '10,000 messages')
    await c1.stop()
    await c1.stop() // idempotent
    expect(got.size).toBe(KEYS)
    for (const [key, list] of got) {
      expect(list, key).toEqual(Array.from({ length: 10_000 / KEYS }, (_, i) => i + 1))
    }
    expect(c1.stats().messages).toBe(10_000)
    // the partition ranges the broker reports (what a new decider owner refills, from the start up
    // to the end): 10,000 records over the 3 partitions, each from 0 to the count it delivered
    const admin = transport.admin()
    const ranges = await admin.partitionRanges(topic)
    await admin.disconnect()
    expect([...ranges.keys()].sort()).toEqual([0, 1, 2])
    for (const [p, n] of delivered) expect(ranges.get(p), `partition ${p}`).toEqual({ start: 0, end: n })
    expect([...ranges.values()].reduce((a, r) => a + r.end, 0)).toBe(10_000)

    // Phase 2: 900 more; the handler fails every batch of partition 0, so those are never committed.
    await produce(900)
    const phase2 = new Map<number, number>()
    let p0Failures = 0
    const c2 = consumer()
    await c2.start(async (b: Batch) => {
      if (b.partition === 0) {
        p0Failures += 1
        throw new Error('simulated handler failure')
      }
      phase2.set(b.partition, (phase2.get(b.partition) ?? 0) + b.messages.length)
    })
    await waitFor(() => p0Failures > 0 && [...phase2.values()].reduce((a, n) => a + n, 0) > 0, 'phase 2 progress')
    // let partitions 1 and 2 drain fully
    await new Promise((r) => setTimeout(r, 3000))
    await c2.stop()
    expect(c2.stats().handlerFailures).toBeGreaterThan(0)
    const committedInPhase2 = [...phase2.values()].reduce((a, n) => a + n, 0)

    // Phase 3: a restarted consumer sees exactly the uncommitted partition-0 messages, nothing older.
    const phase3: ConsumedMessage[] = []
    const c3 = consumer()
    await c3.start(async (b: Batch) => {
      phase3.push(...b.messages)
    })
    await waitFor(() => phase3.length >= 900 - committedInPhase2, 'redelivery of uncommitted messages')
    await new Promise((r) => setTimeout(r, 2000)) // nothing more may arrive
    await c3.stop()
    expect(phase3.length).toBe(900 - committedInPhase2)
    expect(new Set(phase3.map((m) => m.partition))).toEqual(new Set([0]))
    // none of phase 1's messages came back: every redelivered seq is beyond the first 100 per key
    for (const m of phase3) expect(parse(m).seq).toBeGreaterThan(10_000 / KEYS)
  })

  it('an idle, caught-up consumer keeps reporting progress; one that cannot keep up does not', async () => {
    const idleTopic = uniqueName('it-idle')
    const admin = transport.admin()
    await admin.ensureTopics([{ topic: idleTopic, numPartitions: 1, replicationFactor: 1 }])
    await admin.disconnect()
    let release: () => void = () => undefined
    const blocked = new Promise<void>((r) => (release = r))
    const c = transport.consumer({ groupId: uniqueName('it-idle-group'), topics: [idleTopic], onError: () => undefined, ...budget })
    consumers.push(c)
    await c.start(async () => {
      await blocked // the handler never finishes: the consumer makes no progress
    })
    const t0 = Date.now()
    await waitFor(() => c.stats().lastPollMs > t0, 'a progress probe on the idle topic', 20_000)

    const p = transport.producer()
    await p.send(idleTopic, [{ key: 'a', value: 'x' }])
    await p.disconnect()
    await new Promise((r) => setTimeout(r, 1500))
    const frozenAt = c.stats().lastPollMs
    await new Promise((r) => setTimeout(r, 12_000))
    expect(c.stats().lastPollMs).toBe(frozenAt)
    expect(c.stats().lag).toBeGreaterThan(0)
    release()
  }, 60_000)

  it('kafka.debug: librdkafka debug lines of the chosen contexts reach the log at level debug', async () => {
    // librdkafka's cgrp context tells the group's join states; nothing else logs that line
    const joinStates = (lines: string[]) =>
      lines.map((l) => JSON.parse(l) as { level: number; component?: string; msg?: string }).filter((l) => l.component === 'librdkafka' && l.level === 20 && /changed join state/.test(l.msg ?? ''))
    const debugTopic = uniqueName('it-debug')
    const run = async (debug: string | undefined, until: (lines: string[]) => boolean) => {
      const lines: string[] = []
      const t = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test', logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }), ...(debug !== undefined ? { debug } : {}) })
      const admin = t.admin()
      await admin.ensureTopics([{ topic: debugTopic, numPartitions: 1, replicationFactor: 1 }])
      await admin.disconnect()
      const c = t.consumer({ groupId: uniqueName('it-debug-group'), topics: [debugTopic], onError: () => undefined, ...budget })
      consumers.push(c)
      await c.start(() => Promise.resolve())
      await waitFor(() => until(lines), 'the consumer joined its group', 30_000)
      await c.stop()
      return lines
    }
    expect(joinStates(await run('consumer,cgrp', (l) => joinStates(l).length > 0)).length).toBeGreaterThan(0)
    // without kafka.debug none, over a consumer's whole join (its probe has reported progress)
    const t0 = Date.now()
    const quiet = await run(undefined, (l) => l.length > 0 && Date.now() - t0 > 3000)
    expect(joinStates(quiet)).toEqual([])
  }, 60_000)
})
}

describe('consumer progress from librdkafka statistics (no broker request)', () => {
  // shaped like librdkafka's STATISTICS.md: partition -1 is the internal UA partition, `desired` marks the assignment
  const stats = (parts: Record<string, object>) => JSON.stringify({ name: 'c', type: 'consumer', brokers: {}, topics: { t: { topic: 't', partitions: parts } } })
  const part = (o: object) => ({ desired: true, hi_offset: 10, committed_offset: -1001, next_offset: 10, ...o })

  it('sums high watermark minus the handled position, else the committed offset, else the fetch position', () => {
    const json = stats({ '0': part({ hi_offset: 10 }), '1': part({ hi_offset: 50, committed_offset: 40, next_offset: 50 }), '2': part({ hi_offset: 7, next_offset: 5 }), '-1': { desired: false, hi_offset: -1001 } })
    expect(lagFromStatistics(json, new Map([['t/0', 4n]]))).toEqual({ kind: 'known', lag: 6 + 10 + 2, partitions: 3 })
  })

  it('a member assigned nothing is caught up; a partition without a watermark or position yet is unknown', () => {
    expect(lagFromStatistics(stats({ '0': { desired: false, hi_offset: 99 } }), new Map())).toEqual({ kind: 'known', lag: 0, partitions: 0 })
    expect(lagFromStatistics(stats({ '0': part({ hi_offset: -1001 }) }), new Map()).kind).toBe('unknown')
    expect(lagFromStatistics(stats({ '0': part({ next_offset: -1001 }) }), new Map()).kind).toBe('unknown')
  })
})
