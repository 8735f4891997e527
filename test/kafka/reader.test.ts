/**
 * The group-less reader (src/kafka/types.ts ReaderOptions) on the real broker and on the embedded
 * bus: every partition from the beginning, then what arrives; one partition's records in offset
 * order per batch; a rejected batch delivered again; stop idempotent. On the real broker also: it
 * forms no consumer group (none listed by the broker), waits for a topic that does not exist yet
 * without creating it, and stops while waiting.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { kafkaClient } from '../../src/kafka/client.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { Batch, Consumer, KafkaTransport, Producer } from '../../src/kafka/types.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { waitFor } from '../support/wait.js'

/** reads `topic` with a reader until `n` records arrived; the batches as delivered */
async function readAll(t: KafkaTransport, topic: string, n: number, readers: Consumer[], onBatch?: (b: Batch) => Promise<void>): Promise<{ batches: Batch[]; reader: Consumer }> {
  const batches: Batch[] = []
  let got = 0
  const reader = t.reader({ name: uniqueName('it-reader'), topic, onError: () => undefined })
  readers.push(reader)
  await reader.start(async (b) => {
    await onBatch?.(b)
    batches.push(b)
    got += b.messages.length
  })
  await waitFor(() => got >= n, `${n} records read`, 30_000)
  return { batches, reader }
}

/** a new topic of `partitions` partitions and a connected producer for it */
async function newTopic(t: KafkaTransport, prefix: string, partitions: number): Promise<{ topic: string; p: Producer }> {
  const topic = uniqueName(prefix)
  const admin = t.admin()
  await admin.ensureTopics([{ topic, numPartitions: partitions, replicationFactor: 1 }])
  await admin.disconnect()
  const p = t.producer()
  await p.connect()
  return { topic, p }
}

function checkOrder(batches: Batch[]): Map<number, number[]> {
  const byPartition = new Map<number, number[]>()
  for (const b of batches) {
    for (const m of b.messages) {
      expect(m.partition).toBe(b.partition)
      const list = byPartition.get(b.partition) ?? []
      list.push(Number(m.offset))
      byPartition.set(b.partition, list)
    }
  }
  for (const offsets of byPartition.values()) expect(offsets).toEqual([...offsets].sort((a, b) => a - b))
  return byPartition
}

function suite(label: string, make: () => KafkaTransport): void {
  describe(`reader (${label})`, () => {
    const readers: Consumer[] = []
    let t: KafkaTransport
    afterAll(async () => {
      for (const r of readers) await r.stop()
    })

    it('reads every partition from its beginning, then what arrives, in offset order per partition', async () => {
      t = make()
      const { topic, p } = await newTopic(t, 'it-reader', 3)
      await p.send(topic, Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: `before-${i}` })))
      const { batches, reader } = await readAll(t, topic, 300, readers)
      await p.send(topic, Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `after-${i}` })))
      await waitFor(() => batches.reduce((a, b) => a + b.messages.length, 0) >= 330, 'the records produced after the start', 30_000)
      await p.disconnect()
      const byPartition = checkOrder(batches)
      expect([...byPartition.keys()].sort()).toEqual([0, 1, 2])
      const values = batches.flatMap((b) => b.messages.map((m) => m.value?.toString()))
      expect(values.filter((v) => v?.startsWith('before-'))).toHaveLength(300)
      expect(values.filter((v) => v?.startsWith('after-'))).toHaveLength(30)
      await reader.stop()
      await reader.stop() // idempotent
    })

    it('delivers a rejected batch again, from its first record', async () => {
      const { topic, p } = await newTopic(t, 'it-reader-retry', 1)
      await p.send(topic, Array.from({ length: 20 }, (_, i) => ({ key: 'k', value: `v${i}` })))
      await p.disconnect()
      let failed = false
      const { batches } = await readAll(t, topic, 20, readers, (b) => {
        if (!failed) {
          failed = true
          return Promise.reject(new Error(`reject the batch at ${b.messages[0]?.offset}`))
        }
        return Promise.resolve()
      })
      expect(failed).toBe(true)
      const offsets = batches.flatMap((b) => b.messages.map((m) => Number(m.offset)))
      expect(offsets).toEqual(Array.from({ length: 20 }, (_, i) => i))
    })
  })
}

suite('embedded bus', () => new MemoryBus())

describeKafka('reader on the real broker', () => {
  const make = () => new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
  suite('real broker', make)

  const readers: Consumer[] = []
  afterAll(async () => {
    for (const r of readers) await r.stop()
  })

  it('forms no consumer group: the broker lists none after a read', async () => {
    const t = make()
    const { topic, p } = await newTopic(t, 'it-reader-nogroup', 2)
    await p.send(topic, [{ key: 'a', value: '1' }, { key: 'b', value: '2' }])
    await p.disconnect()
    const name = uniqueName('it-reader-named')
    let got = 0
    const r = t.reader({ name, topic, onError: () => undefined })
    readers.push(r)
    await r.start((b) => {
      got += b.messages.length
      return Promise.resolve()
    })
    await waitFor(() => got >= 2, 'both records', 30_000)
    // the library's own admin: pullback's Admin has no group listing
    const lib = new (kafkaClient().KafkaJS.Kafka)({ kafkaJS: { brokers: kafkaBrokers().split(',') } }).admin() as unknown as {
      connect(): Promise<void>
      listGroups(): Promise<{ groups: { groupId: string }[] }>
      disconnect(): Promise<void>
    }
    await lib.connect()
    try {
      const { groups } = await lib.listGroups()
      expect(groups.filter((g) => g.groupId.includes(name) || g.groupId === '')).toEqual([])
    } finally {
      await lib.disconnect()
    }
    await r.stop()
  })

  it('waits for a topic that does not exist yet, without creating it; stops while waiting', async () => {
    const t = make()
    const topic = uniqueName('it-reader-later')
    let got = 0
    const r = t.reader({ name: 'it-reader-later', topic, onError: () => undefined })
    readers.push(r)
    await r.start((b) => {
      got += b.messages.length
      return Promise.resolve()
    })
    await new Promise((res) => setTimeout(res, 1500))
    const admin = t.admin()
    expect(await admin.listTopics()).not.toContain(topic)
    await admin.ensureTopics([{ topic, numPartitions: 2, replicationFactor: 1 }])
    await admin.disconnect()
    const p = t.producer()
    await p.send(topic, [{ key: 'a', value: '1', partition: 0 }, { key: 'b', value: '2', partition: 1 }])
    await p.disconnect()
    await waitFor(() => got >= 2, 'the records of the topic created after the start', 30_000)
    await r.stop()

    // a reader of a topic that never comes stops at once
    const never = t.reader({ name: 'it-reader-never', topic: uniqueName('it-reader-never'), onError: () => undefined })
    await never.start(() => Promise.resolve())
    await new Promise((res) => setTimeout(res, 700))
    const t0 = Date.now()
    await never.stop()
    expect(Date.now() - t0).toBeLessThan(5_000)
  }, 60_000)
})
