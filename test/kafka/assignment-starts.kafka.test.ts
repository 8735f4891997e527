/**
 * An assignment listener's start offsets (AssignmentStart), on the embedded bus and through
 * librdkafka's rebalance callback on the real broker: a listed partition is read from its start, a
 * start outside the retained range falls back to the default start (`fromBeginning`: the first
 * retained record), a partition not listed starts at its default, and a start for a partition the
 * member was not assigned is ignored.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { withStarts, type Consumer, type KafkaTransport } from '../../src/kafka/types.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { waitFor } from '../support/wait.js'

describe('withStarts (the assignment handed back to librdkafka)', () => {
  const parts = [
    { topic: 't', partition: 0 },
    { topic: 't', partition: 1 },
  ]
  it('no answer, or no usable start: undefined (the library assigns as without a callback)', () => {
    expect(withStarts(parts, undefined)).toBeUndefined()
    expect(withStarts(parts, { starts: [] })).toBeUndefined()
    expect(withStarts(parts, { starts: [{ topic: 't', partition: 0, offset: -2 }, { topic: 't', partition: 1, offset: 1.5 }] })).toBeUndefined()
  })
  it('each assigned partition with its start where one was given; a start for another partition ignored', () => {
    expect(withStarts(parts, { starts: [{ topic: 't', partition: 1, offset: 4 }, { topic: 'u', partition: 0, offset: 9 }] })).toEqual([
      { topic: 't', partition: 0 },
      { topic: 't', partition: 1, offset: 4 },
    ])
  })
})

/** 10 records in each of 2 partitions; a member whose listener starts partition 0 at 7, partition 1 at `p1Start`, and partition 5 (not its own) at 0 */
async function readWithStarts(transport: KafkaTransport, topic: string, p1Start: number | undefined, consumers: Consumer[]): Promise<Map<number, number[]>> {
  const admin = transport.admin()
  await admin.ensureTopics([{ topic, numPartitions: 2, replicationFactor: 1 }])
  await admin.disconnect()
  const producer = transport.producer()
  await producer.send(topic, Array.from({ length: 20 }, (_, i) => ({ value: `m${i}`, partition: i % 2 })))
  await producer.disconnect()
  const got = new Map<number, number[]>([
    [0, []],
    [1, []],
  ])
  const c = transport.consumer({
    groupId: uniqueName('it-starts'),
    topics: [topic],
    fromBeginning: true,
    commit: false,
    onError: () => undefined,
    onAssignment: (ev) => {
      if (ev.kind !== 'assigned') return undefined
      const starts = [
        { topic, partition: 0, offset: 7 },
        { topic, partition: 5, offset: 0 },
      ]
      if (p1Start !== undefined) starts.push({ topic, partition: 1, offset: p1Start })
      return { starts }
    },
  })
  consumers.push(c)
  await c.start(async (b) => void got.get(b.partition)!.push(...b.messages.map((m) => Number(m.offset))))
  await waitFor(() => got.get(0)!.length >= 3 && got.get(1)!.length >= 10, 'both partitions read', 30_000)
  return got
}

const range = (a: number, z: number): number[] => Array.from({ length: z - a }, (_, i) => a + i)

describe('assignment starts on the embedded bus', () => {
  const consumers: Consumer[] = []
  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop()
  })
  it('partition 0 from 7; partition 1 from its beginning (not listed, or listed beyond its end)', async () => {
    for (const p1 of [undefined, 50]) {
      const got = await readWithStarts(new MemoryBus({ defaultPartitions: 2 }), 't', p1, consumers)
      expect(got.get(0)).toEqual(range(7, 10))
      expect(got.get(1)).toEqual(range(0, 10))
    }
  })
})

describeKafka('assignment starts through the rebalance callback (real broker)', () => {
  const consumers: Consumer[] = []
  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop()
  })
  it('partition 0 from 7; partition 1 from its beginning (not listed, or listed beyond its end)', async () => {
    const transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    for (const p1 of [undefined, 50]) {
      const topic = uniqueName('it-starts')
      const got = await readWithStarts(transport, topic, p1, consumers)
      // a moment more: nothing before 7 arrives late on partition 0
      await new Promise((r) => setTimeout(r, 500))
      expect(got.get(0)).toEqual(range(7, 10))
      expect(got.get(1)).toEqual(range(0, 10))
      const admin = transport.admin()
      expect(await admin.partitionRanges(topic)).toEqual(
        new Map([
          [0, { start: 0, end: 10 }],
          [1, { start: 0, end: 10 }],
        ]),
      )
      await admin.deleteTopics([topic])
      await admin.disconnect()
    }
  })
})
