/**
 * PartialsPublisher.leave (the sidecar's graceful shutdown): the last partials as data records, then a
 * LEAVING heartbeat on every partition that repeats the newest live watermark (not the flush's clock).
 */
import { describe, expect, it } from 'vitest'
import { PartialsPublisher, HEARTBEAT_KEY } from '../../src/partials/publisher.js'
import { decodeBatch } from '../../src/partials/codec.js'
import type { PartialBatch, SeriesPartial } from '../../src/partials/types.js'
import type { Producer, ProducerRecord } from '../../src/kafka/types.js'
import { silentLogger } from '../../src/common/logger.js'

const T = 1_700_000_000_000

function partial(bucketStartMs: number): SeriesPartial {
  return {
    key: { namespace: 'shop', service: 'cart', version: 'v1' },
    pod: '',
    bucketStartMs,
    requests: { count: 1, errors: 0, firstMs: bucketStartMs, lastMs: bucketStartMs, latenciesUs: [1000], latencyCounts: [1] },
    intervals: [],
    resources: [],
    probes: [],
  }
}

function recorder() {
  const sent: ProducerRecord[] = []
  const producer: Producer = {
    connect: async () => undefined,
    send: async (_t, rs) => void sent.push(...rs),
    disconnect: async () => undefined,
  }
  return { sent, producer }
}

describe('PartialsPublisher.leave', () => {
  it('sends the last partials, then "leaving" with the newest live watermark on every partition, before shutdown', async () => {
    const { sent, producer } = recorder()
    const pub = new PartialsPublisher({ producer, topic: 'p', partitions: 3, logger: silentLogger })
    await pub.start()
    pub.hello('n1')
    pub.publish({ node: 'n1', nowMs: T + 10_000, watermarkMs: T + 5000, final: false, partials: [partial(T)] })
    // the aggregator's flush at shutdown: every open bucket, watermark = its clock, final
    const flush: PartialBatch = { node: 'n1', nowMs: T + 12_000, watermarkMs: T + 12_000, final: true, partials: [partial(T + 10_000)] }
    pub.leave(flush)
    await pub.shutdown()
    expect(pub.stats()).toMatchObject({ leaves: 1, droppedBatches: 0 })
    const last4 = sent.slice(-4).map((r) => ({ key: r.key, partition: r.partition, b: decodeBatch(r.value as Buffer) }))
    expect(last4[0]!.key).toBe('shop/cart')
    expect(last4[0]!.b).toMatchObject({ final: false, watermarkMs: -Infinity, partials: [{ bucketStartMs: T + 10_000 }] })
    expect(last4[0]!.b.leaving).toBeUndefined()
    expect(last4.slice(1).map((r) => [r.key, r.partition])).toEqual([0, 1, 2].map((p) => [HEARTBEAT_KEY, p]))
    for (const r of last4.slice(1)) expect(r.b).toStrictEqual({ node: 'n1', nowMs: T + 12_000, watermarkMs: T + 5000, final: false, leaving: true, partials: [] })
    // nothing after shutdown
    pub.publish({ node: 'n1', nowMs: T + 20_000, watermarkMs: T + 15_000, final: false, partials: [] })
    expect(pub.stats().droppedBatches).toBe(1)
  })
})
