/**
 * The broker path's parts on hand-made input: the records a node batch becomes (data per service on
 * its partition, promising nothing, then a heartbeat to every partition), the per-partition
 * watermark (a node's heartbeat read on one partition says nothing about its data on another), and
 * the partition aligner (a partition read ahead waits for the others).
 */
import { describe, expect, it } from 'vitest'
import { batchRecords, HEARTBEAT_KEY, servicePartition } from '../../src/partials/publisher.js'
import { decodeBatch } from '../../src/partials/codec.js'
import type { PartialBatch, SeriesPartial } from '../../src/partials/types.js'
import { partitionFor } from '../../src/kafka/memory.js'
import { Decider } from '../../src/decider/decider.js'
import { PartitionAligner, type Run } from '../../src/decider/align.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { parseConfig } from '../../src/config/load.js'

const T = 1_700_000_000_000
function partial(service: string, bucketStartMs: number, count = 1): SeriesPartial {
  return {
    key: { namespace: 'shop', service, version: 'v1' },
    pod: '',
    bucketStartMs,
    requests: { count, errors: 0, firstMs: bucketStartMs, lastMs: bucketStartMs, latenciesUs: [1000], latencyCounts: [count] },
    intervals: [],
    resources: [],
    probes: [],
  }
}
const batch = (node: string, nowMs: number, partials: SeriesPartial[] = []): PartialBatch => ({ node, nowMs, watermarkMs: nowMs - 5000, final: false, partials })

describe('batchRecords', () => {
  it('one data record per service on FNV-1a(namespace/service) mod partitions, then a heartbeat to every partition', () => {
    const recs = batchRecords(batch('n1', T + 10_000, [partial('cart', T), partial('checkout', T), partial('cart', T + 5000)]), 4)
    expect(recs).toHaveLength(2 + 4)
    const [cart, checkout, ...hbs] = recs
    expect(cart!.key).toBe('shop/cart')
    expect(cart!.partition).toBe(partitionFor(Buffer.from('shop/cart'), 4))
    expect(cart!.partition).toBe(servicePartition('shop', 'cart', 4))
    expect(checkout!.partition).toBe(servicePartition('shop', 'checkout', 4))
    const data = decodeBatch(cart!.value as Buffer)
    expect(data.partials.map((p) => p.bucketStartMs)).toEqual([T, T + 5000])
    // a data record promises nothing: only heartbeats move a partition's watermark
    expect(data.watermarkMs).toBe(-Infinity)
    expect(hbs.map((r) => [r.key, r.partition])).toEqual([0, 1, 2, 3].map((p) => [HEARTBEAT_KEY, p]))
    expect(decodeBatch(hbs[0]!.value as Buffer)).toEqual({ node: 'n1', nowMs: T + 10_000, watermarkMs: T + 5000, final: false, partials: [] })
  })
})

describe('per-partition watermark', () => {
  const make = () => {
    const ticks: number[] = []
    const pipeline = new Pipeline({ engine: parseConfig({}).engine })
    const d = new Decider({ pipeline, onTick: (_r, _now, w) => ticks.push(w) })
    return { d, ticks, pipeline }
  }

  it('a node heard on partition 0 does not move partition 1: the decider waits for every owned partition', () => {
    const { d, ticks, pipeline } = make()
    d.assign([0, 1])
    d.receiveAll([batch('n1', T + 20_000)], 0)
    expect(d.watermark()).toBe(-Infinity)
    expect(ticks).toEqual([])
    d.receiveAll([batch('n1', T + 10_000)], 1)
    expect(d.watermark()).toBe(T + 5000)
    expect(d.now()).toBe(T + 10_000)
    expect(ticks).toEqual([T + 5000])
    // n1's data for partition 1 read after its heartbeat on partition 0 is not late
    d.receiveAll([{ ...batch('n1', T + 20_000, [partial('cart', T + 5000)]), watermarkMs: -Infinity }, batch('n1', T + 20_000)], 1)
    expect(d.stats().latePartials).toBe(0)
    expect(ticks).toEqual([T + 5000, T + 15_000])
    pipeline.shutdown()
  })

  it('judge=false (refill) records and follows the watermark without ticking; the next judged call ticks once', () => {
    const { d, ticks, pipeline } = make()
    d.assign([0])
    for (let s = 10; s <= 60; s += 5) d.receiveAll([batch('n1', T + s * 1000, [partial('cart', T + (s - 10) * 1000)])], 0, false)
    expect(ticks).toEqual([])
    expect(d.stats().partials).toBe(11)
    d.receiveAll([batch('n1', T + 65_000)], 0)
    expect(ticks).toEqual([T + 60_000])
    pipeline.shutdown()
  })
})

describe('PartitionAligner', () => {
  it('hands runs on in clock order, only up to the clock every owned partition reached', () => {
    const fed: string[] = []
    const a = new PartitionAligner(new Set([0, 1]), (r) => fed.push(`${r.partition}@${r.nowMs}`))
    const run = (partition: number, nowMs: number): Run => ({ partition, nowMs, batches: [], history: false })
    a.push(run(0, 10))
    a.push(run(0, 20))
    a.push(run(0, 30))
    expect(fed).toEqual([])
    a.push(run(1, 20))
    expect(fed).toEqual(['0@10', '0@20', '1@20'])
    a.push(run(1, 40))
    expect(fed).toEqual(['0@10', '0@20', '1@20', '0@30'])
    expect(a.size).toBe(1)
  })

  it('past its bound hands the oldest on regardless, counted', () => {
    const fed: number[] = []
    const a = new PartitionAligner(new Set([0, 1]), (r) => fed.push(r.nowMs), 2)
    for (let i = 1; i <= 4; i++) a.push({ partition: 0, nowMs: i, batches: [], history: false })
    expect(fed).toEqual([1, 2])
    expect(a.overflow).toBe(2)
  })
})
