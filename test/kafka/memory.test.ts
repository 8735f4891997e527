import { describe, expect, it } from 'vitest'
import { MemoryBus, partitionFor } from '../../src/kafka/memory.js'
import type { Batch } from '../../src/kafka/types.js'

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout')
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('MemoryBus', () => {
  it('keeps order per key and places a key on one partition', async () => {
    const bus = new MemoryBus({ defaultPartitions: 4 })
    const p = bus.producer()
    for (let i = 0; i < 20; i++) await p.send('t', [{ key: `k${i % 3}`, value: String(i) }])
    const seen: Batch[] = []
    const c = bus.consumer({ groupId: 'g', topics: ['t'] })
    await c.start(async (b) => void seen.push(b))
    await until(() => seen.reduce((n, b) => n + b.messages.length, 0) === 20)
    await c.stop()
    for (let k = 0; k < 3; k++) {
      const msgs = seen.flatMap((b) => b.messages).filter((m) => m.key?.toString() === `k${k}`)
      expect(new Set(msgs.map((m) => m.partition)).size).toBe(1)
      expect(msgs[0]!.partition).toBe(partitionFor(Buffer.from(`k${k}`), 4))
      const vals = msgs.map((m) => Number(m.value!.toString()))
      expect(vals).toEqual([...vals].sort((a, b) => a - b))
    }
  })

  it('commits only after the handler succeeds and redelivers a failed batch', async () => {
    const bus = new MemoryBus({ defaultPartitions: 1, redeliveryBackoffMs: 10 })
    await bus.producer().send('t', [{ key: 'a', value: '1' }, { key: 'a', value: '2' }])
    let calls = 0
    const got: string[] = []
    const c = bus.consumer({ groupId: 'g', topics: ['t'] })
    await c.start(async (b) => {
      calls++
      if (calls < 3) throw new Error('boom')
      got.push(...b.messages.map((m) => m.value!.toString()))
    })
    await until(() => got.length === 2)
    expect(calls).toBe(3)
    expect(c.stats().handlerFailures).toBe(2)
    await c.stop()
    // a new member of the same group resumes after the committed offset: nothing is delivered twice
    await bus.producer().send('t', [{ key: 'a', value: '3' }])
    const again: string[] = []
    const c2 = bus.consumer({ groupId: 'g', topics: ['t'] })
    await c2.start(async (b) => void again.push(...b.messages.map((m) => m.value!.toString())))
    await until(() => again.length === 1)
    await c2.stop()
    expect(again).toEqual(['3'])
  })

  it('a consumer stopped mid-batch without success leaves the batch to the next member', async () => {
    const bus = new MemoryBus({ defaultPartitions: 1, redeliveryBackoffMs: 10 })
    await bus.producer().send('t', [{ key: 'a', value: 'x' }])
    const c = bus.consumer({ groupId: 'g', topics: ['t'] })
    let started = false
    await c.start(async () => {
      started = true
      throw new Error('crash before commit')
    })
    await until(() => started)
    await c.stop()
    const got: string[] = []
    const c2 = bus.consumer({ groupId: 'g', topics: ['t'] })
    await c2.start(async (b) => void got.push(...b.messages.map((m) => m.value!.toString())))
    await until(() => got.length === 1)
    await c2.stop()
  })

  it('spreads partitions over group members and separate groups each see everything', async () => {
    const bus = new MemoryBus({ defaultPartitions: 4 })
    const a: number[] = []
    const b: number[] = []
    const other: number[] = []
    const ca = bus.consumer({ groupId: 'g', topics: ['t'] })
    const cb = bus.consumer({ groupId: 'g', topics: ['t'] })
    const co = bus.consumer({ groupId: 'h', topics: ['t'] })
    await ca.start(async (x) => void a.push(...x.messages.map((m) => m.partition)))
    await cb.start(async (x) => void b.push(...x.messages.map((m) => m.partition)))
    await co.start(async (x) => void other.push(...x.messages.map((m) => m.partition)))
    for (let i = 0; i < 40; i++) await bus.producer().send('t', [{ key: `k${i}`, value: 'v' }])
    await until(() => a.length + b.length === 40 && other.length === 40)
    expect(a.length).toBeGreaterThan(0)
    expect(b.length).toBeGreaterThan(0)
    expect(a.filter((p) => b.includes(p))).toEqual([])
    await Promise.all([ca.stop(), cb.stop(), co.stop()])
  })

  it('compacts a compact topic past the bound, keeping the newest record per key', async () => {
    const bus = new MemoryBus({ maxMessagesPerPartition: 5 })
    await bus.admin().ensureTopics([{ topic: 'c', numPartitions: 1, configs: { 'cleanup.policy': 'compact' } }])
    for (let i = 0; i < 12; i++) await bus.producer().send('c', [{ key: `k${i % 2}`, value: String(i) }])
    const got: string[] = []
    const c = bus.consumer({ groupId: 'g', topics: ['c'] })
    await c.start(async (x) => void got.push(...x.messages.map((m) => `${m.key!.toString()}=${m.value!.toString()}`)))
    await until(() => got.includes('k1=11'))
    await c.stop()
    expect(got).toContain('k0=10')
    expect(got).not.toContain('k0=0')
    expect(bus.stats().compacted).toBeGreaterThan(0)
  })
})
