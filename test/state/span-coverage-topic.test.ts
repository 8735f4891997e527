/**
 * The span-coverage share on the embedded bus (the same Kafka interface as the real broker; the
 * real broker in span-coverage-topic.kafka.test.ts): one sidecar's judgement reaches another and
 * outlives a restart; what is not a judgement is counted and skipped; a failing broker is retried.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { KafkaTransport, Producer } from '../../src/kafka/types.js'
import { Normalizer } from '../../src/normalize/normalizer.js'
import { SpanCoverageTopic } from '../../src/state/span-coverage-topic.js'
import { waitFor } from '../support/wait.js'

const TOPIC = 'pullback.span-coverage'
const open: SpanCoverageTopic[] = []
const share = (transport: KafkaTransport, extra: Partial<ConstructorParameters<typeof SpanCoverageTopic>[0]> = {}) => {
  const s = new SpanCoverageTopic({ transport, topic: TOPIC, groupPrefix: 'pullback', logger: silentLogger, backoffMs: { min: 5, max: 20 }, ...extra })
  open.push(s)
  return s
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.shutdown()
})

const change = (service: string, state: 'sampled' | 'complete') => ({ service, state, spans: 40, requests: 800, intervals: 2 })

describe('span-coverage topic (embedded bus)', () => {
  it("one sidecar's judgement reaches another; a restarted sidecar reads it back", async () => {
    const bus = new MemoryBus()
    const a = share(bus)
    const b = share(bus)
    await a.start()
    await b.start()
    await a.ready()
    await b.ready()
    expect(b.get('shop/checkout')).toBeUndefined()
    expect(b.anySampled()).toBe(false)
    a.put(change('shop/checkout', 'sampled'))
    expect(a.get('shop/checkout')).toBe('sampled')
    await waitFor(() => b.get('shop/checkout') === 'sampled', 'b.get(shop/checkout) === sampled')
    expect(b.anySampled()).toBe(true)
    a.put(change('shop/checkout', 'complete'))
    await waitFor(() => b.get('shop/checkout') === 'complete', 'b.get(shop/checkout) === complete')
    expect(b.anySampled()).toBe(false)
    await a.shutdown()
    await a.shutdown() // idempotent
    expect(a.stats()).toMatchObject({ published: 2, abandonedAtShutdown: 0 })
    const again = share(bus)
    await again.start()
    await again.ready()
    await waitFor(() => again.get('shop/checkout') === 'complete', 'again.get(shop/checkout) === complete')
  })

  it('a normalizer with an empty history follows the share: the new pod of a sampled service counts its metrics, not its spans', async () => {
    const bus = new MemoryBus()
    const a = share(bus)
    await a.start()
    await a.ready()
    a.put(change('shop/checkout', 'sampled'))
    const seen: string[] = []
    const n = new Normalizer({}, { record: (o) => (o.kind === 'request' ? seen.push(o.latencyCounts === undefined ? 'span' : 'metric') : undefined) }, { coverageShare: a })
    const resource = { 'service.name': 'checkout', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'checkout-new-1' }
    const span = { kind: 2, endTimeMs: 1_000_000, durationUs: 5_000, statusCode: 0, httpStatus: 200 }
    n.traces({ resourceSpans: [{ resource, spans: [span, span] }] } as never)
    expect(seen).toEqual([])
    expect(n.stats().sampledSpans).toBe(2)
  })

  it('a record that is not a judgement is counted and skipped, never thrown', async () => {
    const bus = new MemoryBus()
    const p = bus.producer()
    await p.send(TOPIC, [
      { key: 'shop/a', value: 'not json' },
      { key: 'shop/b', value: JSON.stringify({ schema: 99, state: 'sampled' }) },
      { key: null, value: JSON.stringify({ schema: 1, state: 'sampled' }) },
      { key: 'shop/c', value: JSON.stringify({ schema: 1, state: 'sampled' }) },
      { key: 'shop/d', value: JSON.stringify({ schema: 1, state: 'sampled' }) },
      { key: 'shop/d', value: null },
    ])
    const s = share(bus)
    await s.start()
    await waitFor(() => s.stats().received === 2, 's.stats().received === 2')
    expect(s.stats().malformed).toBe(3)
    expect(s.get('shop/c')).toBe('sampled')
    expect(s.get('shop/d')).toBeUndefined()
  })

  it('a broker that refuses writes: retried with backoff, nothing thrown, written once it accepts', async () => {
    const bus = new MemoryBus()
    let failing = true
    const transport: KafkaTransport = {
      kind: 'embedded',
      admin: () => bus.admin(),
      consumer: (o) => bus.consumer(o),
      reader: (o) => bus.reader(o),
      producer: (): Producer => {
        const real = bus.producer()
        return { connect: () => real.connect(), disconnect: () => real.disconnect(), send: (t, r) => (failing ? Promise.reject(new Error('broker down')) : real.send(t, r)) }
      },
    }
    const s = share(transport)
    await s.start()
    await s.ready()
    s.put(change('shop/checkout', 'sampled'))
    await waitFor(() => s.stats().sendFailures >= 2, 's.stats().sendFailures >= 2')
    expect(s.stats().published).toBe(0)
    failing = false
    await waitFor(() => s.stats().published === 1, 's.stats().published === 1')
    const reader = share(bus)
    await reader.start()
    await waitFor(() => reader.get('shop/checkout') === 'sampled', 'reader.get(shop/checkout) === sampled')
  })

  it('an unreachable broker never holds the drain: shutdown returns within its flush bound, the queue counted', async () => {
    const bus = new MemoryBus()
    const hang = () => new Promise<void>(() => undefined)
    const transport: KafkaTransport = {
      kind: 'embedded',
      admin: () => ({ ...bus.admin(), connect: hang }),
      consumer: (o) => bus.consumer(o),
      reader: (o) => bus.reader(o),
      producer: () => bus.producer(),
    }
    const s = share(transport, { flushTimeoutMs: 200 })
    await s.start()
    s.put(change('shop/checkout', 'sampled'))
    expect(s.get('shop/checkout')).toBe('sampled')
    const t0 = Date.now()
    await s.shutdown()
    expect(Date.now() - t0).toBeLessThan(5_000)
    expect(s.stats()).toMatchObject({ published: 0, abandonedAtShutdown: 1, reading: false })
  })

  it('bounded: past maxServices the least recently written judgement is forgotten and counted', async () => {
    const bus = new MemoryBus()
    const s = share(bus, { maxServices: 3 })
    for (let i = 0; i < 5; i++) s.put(change(`shop/s${i}`, 'sampled'))
    expect(s.stats().evicted).toBe(2)
    expect(s.get('shop/s0')).toBeUndefined()
    expect(s.get('shop/s4')).toBe('sampled')
    expect(s.stats().refused).toBe(2)
  })
})
