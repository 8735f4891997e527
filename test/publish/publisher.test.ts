import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { PermanentError, RetryableError } from '../../src/common/errors.js'
import type { Producer, ProducerRecord } from '../../src/kafka/types.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { publishSchema } from '../../src/publish/config.js'
import { DecisionPublisher } from '../../src/publish/publisher.js'
import { openDecision } from '../../src/publish/envelope.js'
import { signerFromKey, Verifier } from '../../src/publish/signing.js'
import { verdict } from '../actuator/helpers.js'

const k = generateKeyPairSync('ed25519')
const signer = signerFromKey(k.privateKey)

/** a producer that fails while `down` is true */
class FlakyProducer implements Producer {
  down = true
  permanent = false
  attempts = 0
  sent: { topic: string; records: ProducerRecord[] }[] = []
  connect = () => Promise.resolve()
  disconnect = () => Promise.resolve()
  send(topic: string, records: ProducerRecord[]): Promise<void> {
    this.attempts++
    if (this.down) return Promise.reject(this.permanent ? new PermanentError('X', 'too large') : new RetryableError('KAFKA_DOWN', 'broker unreachable'))
    this.sent.push({ topic, records })
    return Promise.resolve()
  }
}

const make = (producer: Producer, over: Record<string, unknown> = {}) =>
  new DecisionPublisher({
    producer,
    signer,
    config: publishSchema.parse({ retry: { initial: '5ms', max: '20ms' }, drainTimeout: '200ms', ...over }),
    topics: { decisions: 'd', incidents: 'i' },
    logger: silentLogger,
  })

describe('DecisionPublisher', () => {
  it('routes by kind, keys by service, signs the envelope', async () => {
    const bus = new MemoryBus({ defaultPartitions: 1 })
    const pub = make(bus.producer())
    await pub.start()
    const outs = [pub.publish(verdict('rollback')), pub.publish(verdict('incident')), pub.publish(verdict('recovered'))]
    for (const o of outs) {
      expect(o.kind).toBe('queued')
      if (o.kind === 'queued') expect((await o.acked).kind).toBe('acked')
    }
    await pub.shutdown()
    const got: { topic: string; key: string; value: string }[] = []
    for (const topic of ['d', 'i']) {
      const c = bus.consumer({ groupId: `g-${topic}`, topics: [topic] })
      await c.start(async (b) => void got.push(...b.messages.map((m) => ({ topic, key: m.key!.toString(), value: m.value!.toString() }))))
      await new Promise((r) => setTimeout(r, 50))
      await c.stop()
    }
    expect(got.map((g) => g.topic).sort()).toEqual(['d', 'd', 'i'])
    expect(got.every((g) => g.key === 'default/web')).toBe(true)
    for (const g of got) expect(openDecision(g.value, new Verifier([k.publicKey])).kind).toBe('valid')
  })

  it('retries a failing broker with backoff and never drops a decision', async () => {
    const p = new FlakyProducer()
    const pub = make(p)
    await pub.start()
    const ids = [1, 2, 3].map((i) => verdict('rollback', { id: `r${i}` }))
    const outs = ids.map((v) => pub.publish(v))
    await new Promise((r) => setTimeout(r, 150))
    expect(p.attempts).toBeGreaterThan(3)
    expect(pub.stats().sendFailures).toBe(p.attempts)
    expect(pub.stats().depth).toBe(3)
    p.down = false
    for (const o of outs) if (o.kind === 'queued') expect((await o.acked).kind).toBe('acked')
    expect(p.sent.flatMap((s) => s.records.map((r) => JSON.parse(String(r.value)).id))).toEqual(['r1', 'r2', 'r3'])
    await pub.shutdown()
    expect(pub.stats()).toMatchObject({ published: 3, abandonedAtShutdown: 0 })
  })

  it('past the bound refuses new verdicts (counted) and keeps the queued ones', async () => {
    const p = new FlakyProducer()
    p.permanent = true
    const pub = make(p, { maxQueue: 2 })
    await pub.start()
    expect(pub.publish(verdict('rollback', { id: 'a' })).kind).toBe('queued')
    expect(pub.publish(verdict('rollback', { id: 'b' })).kind).toBe('queued')
    expect(pub.publish(verdict('rollback', { id: 'c' }))).toMatchObject({ kind: 'refused', reason: 'queue-full' })
    expect(pub.stats()).toMatchObject({ refused: 1, depth: 2 })
    await new Promise((r) => setTimeout(r, 60))
    expect(pub.stats().permanentFailures).toBeGreaterThan(0)
    p.down = false
    await pub.flush()
    expect(p.sent.flatMap((s) => s.records.map((r) => JSON.parse(String(r.value)).id))).toEqual(['a', 'b'])
    await pub.shutdown()
    expect(pub.publish(verdict('rollback')).kind).toBe('refused')
  })

  it('shutdown with the broker down waits drainTimeout, then reports what it abandons', async () => {
    const p = new FlakyProducer()
    const pub = make(p)
    await pub.start()
    const o = pub.publish(verdict('rollback'))
    await pub.shutdown()
    expect(pub.stats().abandonedAtShutdown).toBe(1)
    if (o.kind === 'queued') expect((await o.acked).kind).toBe('abandoned')
    await pub.shutdown()
  })
})
