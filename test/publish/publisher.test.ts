import { generateKeyPairSync } from 'node:crypto'
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { PermanentError, RetryableError } from '../../src/common/errors.js'
import type { Producer, ProducerRecord } from '../../src/kafka/types.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { publishSchema } from '../../src/publish/config.js'
import { DecisionPublisher, DISCONNECT_FLOOR_MS } from '../../src/publish/publisher.js'
import { DecisionWal } from '../../src/publish/wal.js'
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

  it('a verdict that cannot be signed is refused and counted, not thrown at the caller', async () => {
    const bus = new MemoryBus({ defaultPartitions: 1 })
    const pub = make(bus.producer())
    await pub.start()
    const bad = verdict('rollback', { id: 'nan' })
    bad.signals[0]!.value = Number.POSITIVE_INFINITY
    expect(pub.publish(bad)).toEqual({ kind: 'refused', id: 'nan', reason: 'unsignable' })
    expect(pub.stats()).toMatchObject({ unsignable: 1, depth: 0 })
    expect(pub.publish(verdict('rollback')).kind).toBe('queued')
    await pub.shutdown()
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

/** a producer whose sends never settle: a broker that accepted the connection and went away */
class HangingProducer implements Producer {
  sends = 0
  connect = () => Promise.resolve()
  disconnect = () => new Promise<void>(() => undefined)
  send(): Promise<void> {
    this.sends++
    return new Promise<void>(() => undefined)
  }
}

describe('DecisionPublisher write-ahead log', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-wal-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const walAt = (name: string, maxBytes = 1024 * 1024) => new DecisionWal({ file: join(dir, name, 'decisions.wal'), maxBytes })
  const withWal = (producer: Producer, wal: DecisionWal, over: Record<string, unknown> = {}) =>
    new DecisionPublisher({
      producer,
      signer,
      config: publishSchema.parse({ retry: { initial: '5ms', max: '20ms' }, drainTimeout: '200ms', ...over }),
      topics: { decisions: 'd', incidents: 'i' },
      logger: silentLogger,
      wal,
    })

  it('a decision signed but never acknowledged survives a crash: the next publisher re-publishes the same envelope', async () => {
    const down = new FlakyProducer()
    const first = withWal(down, walAt('crash'))
    await first.start()
    const out = first.publish(verdict('rollback', { id: 'survivor' }))
    expect(out).toMatchObject({ kind: 'queued', durable: true })
    const file = join(dir, 'crash', 'decisions.wal')
    const written = readFileSync(file, 'utf8')
    expect(written).toContain('"survivor"')
    // the "crash": the process dies here; no shutdown, no ack (the first publisher is simply dropped)

    const up = new FlakyProducer()
    up.down = false
    const second = withWal(up, walAt('crash'))
    await second.start()
    await second.flush()
    expect(second.stats()).toMatchObject({ replayed: 1, published: 1 })
    const sent = up.sent.flatMap((s) => s.records)
    expect(sent.map((r) => r.headers?.['pullback-id'])).toEqual(['survivor'])
    const env = openDecision(String(sent[0]!.value), new Verifier([k.publicKey]))
    expect(env.kind).toBe('valid')
    // byte for byte the envelope the first process signed: same id, same issuedAt, same signature
    expect(String(sent[0]!.value)).toBe(JSON.stringify((JSON.parse(written.split('\n')[0]!.slice(9)) as { envelope: unknown }).envelope))
    expect(statSync(file).size).toBe(0) // compacted once acknowledged
    await second.shutdown()
    const third = withWal(up, walAt('crash'))
    await third.start()
    expect(third.stats().replayed).toBe(0)
    await third.shutdown()
    down.down = false
  })

  it('skips a torn last line (counted) and keeps the complete ones', async () => {
    const file = join(dir, 'torn', 'decisions.wal')
    const first = withWal(new FlakyProducer(), walAt('torn'))
    await first.start()
    first.publish(verdict('rollback', { id: 'whole' }))
    appendFileSync(file, '0badc0de {"t":"put","topic":"d","envelope":{"id":"torn"')
    const up = new FlakyProducer()
    up.down = false
    const wal = walAt('torn')
    const second = withWal(up, wal)
    await second.start()
    await second.flush()
    expect(up.sent.flatMap((s) => s.records.map((r) => r.headers?.['pullback-id']))).toEqual(['whole'])
    expect(wal.stats().corrupt).toBe(1)
    await second.shutdown()
  })

  it('at maxBytes a decision is still queued, in memory only, and counted', async () => {
    const p = new FlakyProducer()
    const pub = withWal(p, walAt('full', 3000))
    await pub.start()
    const outs = [1, 2, 3, 4].map((i) => pub.publish(verdict('rollback', { id: `f${i}` })))
    expect(outs.map((o) => o.kind === 'queued' && o.durable)).toContain(false)
    expect(outs.every((o) => o.kind === 'queued')).toBe(true)
    expect(pub.stats().notDurable).toBe(outs.filter((o) => o.kind === 'queued' && !o.durable).length)
    expect(statSync(join(dir, 'full', 'decisions.wal')).size).toBeLessThanOrEqual(3000)
    p.down = false
    await pub.flush()
    expect(p.sent.flatMap((s) => s.records).length).toBe(4)
    await pub.shutdown()
  })

  it('refuses a log another live process holds', async () => {
    const file = join(dir, 'locked', 'decisions.wal')
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(`${file}.lock`, String(process.ppid))
    const pub = withWal(new FlakyProducer(), walAt('locked'))
    await expect(pub.start()).rejects.toThrow(/in use by process/)
    writeFileSync(`${file}.lock`, '999999999') // a pid that is gone: taken over
    const again = withWal(new FlakyProducer(), walAt('locked'))
    await again.start()
    await again.shutdown()
  })

  it('drain is bounded by drainTimeout even when a send never returns, and says the log keeps what is unacknowledged', async () => {
    const p = new HangingProducer()
    const pub = withWal(p, walAt('hang'))
    await pub.start()
    pub.publish(verdict('rollback', { id: 'h1' }))
    pub.publish(verdict('rollback', { id: 'h2' }))
    await new Promise((r) => setTimeout(r, 20))
    const t0 = performance.now()
    const d = await pub.drain()
    const ms = performance.now() - t0
    expect(ms).toBeLessThan(200 + DISCONNECT_FLOOR_MS + 150)
    expect(d).toEqual({ kind: 'unacknowledged', count: 2, kept: 2, lost: 0, walFile: join(dir, 'hang', 'decisions.wal') })
    expect(pub.stats().abandonedAtShutdown).toBe(2)
    expect(readFileSync(join(dir, 'hang', 'decisions.wal'), 'utf8')).toContain('"h2"')
  })
})
