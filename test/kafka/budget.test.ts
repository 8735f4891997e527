/**
 * The byte-budgeted consumer (src/kafka/confluent-budget.ts) against a scripted stand-in for the
 * library's lower-level consumer: how many records it asks for, what it commits and when, and what
 * a failed batch does. The real-broker behaviour is in confluent.test.ts (both consumers).
 */
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { BudgetedConsumer, recordsWithin } from '../../src/kafka/confluent-budget.js'
import type { LibRawConsumer, LibRawMessage, LibTopicPartitionOffset } from '../../src/kafka/client.js'
import { SecurityWatch } from '../../src/kafka/librdkafka.js'
import type { Batch, ConsumerOptions } from '../../src/kafka/types.js'

const MiB = 1024 * 1024

/** A raw consumer whose consume(n) takes up to n records from a queue (empty: an empty list after 5 ms); records every call. */
class ScriptedConsumer {
  readonly asked: number[] = []
  readonly commits: LibTopicPartitionOffset[][] = []
  readonly syncCommits: LibTopicPartitionOffset[][] = []
  readonly seeks: LibTopicPartitionOffset[] = []
  conf: Record<string, unknown> = {}
  /** seeks that fail before one succeeds */
  failSeeks = 0
  /** when set, a successful seek refills the queue from this log (the partition's records from the offset on) */
  log: LibRawMessage[] | undefined
  constructor(private readonly queue: LibRawMessage[]) {}
  connect(_o: unknown, cb: (err: unknown) => void) {
    setImmediate(() => cb(null))
  }
  subscribe() {}
  setDefaultConsumeTimeout() {}
  setDefaultIsTimeoutOnlyForFirstMessage() {}
  consume(n: number, cb: (err: unknown, m: LibRawMessage[]) => void) {
    this.asked.push(n)
    const next = this.queue.splice(0, n)
    setTimeout(() => cb(null, next), next.length === 0 ? 5 : 0)
  }
  commit(o: LibTopicPartitionOffset[]) {
    this.commits.push(o)
  }
  commitSync(o: LibTopicPartitionOffset[]) {
    this.syncCommits.push(o)
  }
  seek(to: LibTopicPartitionOffset, _t: number, cb: (err: unknown) => void) {
    this.seeks.push(to)
    if (this.failSeeks > 0) {
      this.failSeeks -= 1
      cb(Object.assign(new Error('Local: Erroneous state'), { code: -172 }))
      return
    }
    if (this.log !== undefined) {
      this.queue.splice(0, this.queue.length, ...this.log.filter((m) => m.partition !== to.partition || m.offset >= to.offset))
    }
    cb(null)
  }
  getWatermarkOffsets() {
    return { highOffset: 1000, lowOffset: 0 }
  }
  disconnect(cb: (err: unknown) => void) {
    cb(null)
  }
  on() {}
}

function records(partition: number, from: number, count: number, bytes: number): LibRawMessage[] {
  return Array.from({ length: count }, (_, i) => ({ topic: 't', partition, offset: from + i, size: bytes, value: Buffer.alloc(8), key: null, timestamp: 1 }))
}

function make(script: LibRawMessage[], budget = 4 * MiB, maxBatchSize = 500, extra: Partial<ConsumerOptions> = {}) {
  const raw = new ScriptedConsumer(script)
  const errors: unknown[] = []
  const c = new BudgetedConsumer(
    { groupId: 'g', topics: ['t'], maxBufferedBytes: budget, maxBatchSize, onError: (e) => errors.push(e), ...extra },
    {
      create: (conf) => {
        raw.conf = conf
        return raw as unknown as LibRawConsumer
      },
      base: { 'bootstrap.servers': 'x:1' },
      log: silentLogger,
      watch: new SecurityWatch({ protocol: 'PLAINTEXT' }),
    },
  )
  return { raw, c, errors }
}

async function until(cond: () => boolean): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > 5_000) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('recordsWithin', () => {
  it('asks for a quarter of the budget, at most 1 MiB, in records of the observed size, within 1..maxBatchSize', () => {
    expect(recordsWithin(4 * MiB, 200_000, 500)).toBe(5)
    expect(recordsWithin(4 * MiB, 12_000, 500)).toBe(87)
    expect(recordsWithin(4 * MiB, 100, 500)).toBe(500)
    expect(recordsWithin(4 * MiB, 50 * MiB, 500)).toBe(1)
    // a larger budget goes to librdkafka's queue and fetches, not to bigger batches
    expect(recordsWithin(64 * MiB, 200_000, 500)).toBe(5)
    // a budget below the floor counts as the floor
    expect(recordsWithin(1, 200_000, 500)).toBe(recordsWithin(4_000_000, 200_000, 500))
  })
})

describe('BudgetedConsumer (scripted library consumer)', () => {
  it('sizes each consume from the records seen: large records, few per call; what it holds stays within a quarter of the budget', async () => {
    const big = 200_000
    const { raw, c } = make(records(0, 0, 103, big))
    const seen: number[] = []
    await c.start(async (b) => {
      seen.push(b.messages.length)
    })
    await until(() => raw.asked.length >= 4)
    await c.stop()
    // the first ask assumes fetch-sized records (4 MiB budget: 1 MiB fetches: 1 record); then 200 KB records: 5
    expect(raw.asked.slice(0, 3)).toEqual([1, 5, 5])
    for (const n of seen) expect(n * big).toBeLessThanOrEqual(MiB)
    expect(raw.conf['fetch.max.bytes']).toBe(MiB)
    expect(raw.conf['enable.auto.commit']).toBe(false)
    // the broker's fetch hold is librdkafka's default unless the consumer asks (types.ts maxWaitMs)
    expect(raw.conf['fetch.wait.max.ms']).toBeUndefined()
    expect(make([], 4 * MiB, 500, { maxWaitMs: 100 }).raw.conf['fetch.wait.max.ms']).toBe(100)
  })

  it('splits one consume by partition, keeps offset order, and commits last+1 per partition once handled', async () => {
    const mixed = [...records(0, 10, 3, 100), ...records(1, 40, 2, 100), ...records(0, 13, 1, 100)]
    const { raw, c } = make(mixed)
    const batches: Batch[] = []
    await c.start(async (b) => {
      batches.push(b)
    })
    await until(() => c.stats().messages >= 6 && raw.asked.length >= 3)
    await c.stop()
    // the first consume asks for 1 (nothing seen yet), the second for the rest, which holds both partitions
    expect(batches.map((b) => [b.partition, b.messages.map((m) => m.offset)])).toEqual([
      [0, ['10']],
      [0, ['11', '12', '13']],
      [1, ['40', '41']],
    ])
    // a consume that returned less than it asked for (the queue ran dry) commits at once
    expect(raw.commits.at(-1)).toEqual([
      { topic: 't', partition: 0, offset: 14 },
      { topic: 't', partition: 1, offset: 42 },
    ])
    expect(raw.syncCommits).toEqual([])
    expect(c.stats().messages).toBe(6)
    expect(batches[0]?.lag).toBe(1000 - 11)
  })

  it('a rejected batch is not committed: its partition is sought back to its first offset; other partitions go on', async () => {
    const { raw, c, errors } = make([...records(0, 5, 2, 100), ...records(1, 7, 2, 100)])
    await c.start(async (b) => {
      if (b.partition === 0) throw new Error('handler failed')
    })
    await until(() => raw.commits.length >= 1)
    await c.stop()
    // (the stand-in does not redeliver after a seek: each failed batch of partition 0 is sought back to its own first offset)
    expect(raw.seeks[0]).toEqual({ topic: 't', partition: 0, offset: 5 })
    expect(raw.seeks.every((s) => s.partition === 0)).toBe(true)
    expect(raw.commits.flat()).toEqual([{ topic: 't', partition: 1, offset: 9 }])
    expect(c.stats().handlerFailures).toBe(raw.seeks.length)
    expect(errors).toHaveLength(raw.seeks.length)
  })

  it('a failed seek back: the partition\'s later records are neither handled nor committed until a seek succeeds', async () => {
    const log = records(0, 5, 4, 100)
    const { raw, c } = make([...log])
    raw.log = log
    raw.failSeeks = 1
    const batches: string[][] = []
    let failed = false
    await c.start(async (b) => {
      batches.push(b.messages.map((m) => m.offset))
      if (!failed) {
        failed = true
        throw new Error('handler failed')
      }
    })
    await until(() => raw.commits.length >= 1)
    await c.stop()
    // read 1 (one record: nothing seen yet) is rejected and its seek fails; read 2 (6-8) is skipped
    // while the seek is retried and succeeds; read 3 replays from 5
    expect(batches).toEqual([['5'], ['5', '6', '7', '8']])
    expect(raw.seeks).toEqual([
      { topic: 't', partition: 0, offset: 5 },
      { topic: 't', partition: 0, offset: 5 },
    ])
    expect(raw.commits.flat()).toEqual([{ topic: 't', partition: 0, offset: 9 }])
  })

  it('stop commits what was handled since the last commit, synchronously; stop is idempotent', async () => {
    // records of 2 MiB: one per consume, each returning all it asked for, so no commit is due before 100 ms
    const { raw, c } = make(records(0, 0, 50, 2 * MiB))
    let last = -1
    await c.start(async (b) => {
      last = Number(b.messages.at(-1)?.offset)
      await new Promise((r) => setTimeout(r, 20))
    })
    await until(() => last >= 2)
    await c.stop()
    await c.stop()
    expect(raw.asked.every((n) => n === 1)).toBe(true)
    // whatever the interval committed on the way, the last commit (the one at stop) covers the last handled batch
    expect(raw.syncCommits.length).toBeLessThanOrEqual(1)
    expect([...raw.commits.flat(), ...raw.syncCommits.flat()].at(-1)).toEqual({ topic: 't', partition: 0, offset: last + 1 })
  })

  it('refuses an assignment listener (librdkafka assigns on its own here)', () => {
    expect(() =>
      new BudgetedConsumer(
        { groupId: 'g', topics: ['t'], maxBufferedBytes: 4 * MiB, onAssignment: () => undefined },
        { create: () => new ScriptedConsumer([]) as unknown as LibRawConsumer, base: {}, log: silentLogger, watch: new SecurityWatch({ protocol: 'PLAINTEXT' }) },
      ),
    ).toThrow(/assignment listener/)
  })
})
