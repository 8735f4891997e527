/**
 * The span-coverage judgements of a fleet's sidecars on a compacted topic (src/normalize/span-coverage.ts
 * `CoverageShare`): a sidecar that found a service's SERVER spans sampled publishes it, and every
 * sidecar (itself after a restart included) reads it. Without it, a node running only the new pods
 * of a sampled service would count their sampled spans for minutes while the other nodes count the
 * old version's metrics; and a restarted sidecar would count sampled spans again until it had
 * judged anew.
 *
 * Topic `runtime.state.spanCoverage.topic` (default `<kafka.groupPrefix>.span-coverage`), one
 * partition, `cleanup.policy=compact`: key the service (`namespace/name`), value
 * `{"schema":1,"state":"sampled"|"complete","spans":N,"requests":N,"intervals":N}`.
 *
 * Contract:
 * - `start()` resolves at once: creating the topic, connecting and subscribing run in the background,
 *   retried with backoff (250 ms .. 10 s), one warn line when failing starts, one info line when it
 *   works. Until the topic is read, `get` answers from what was read so far (nothing at first): the
 *   normalizer then relies on its own judgement, as without the share.
 * - The reader belongs to no consumer group (src/kafka/types.ts ReaderOptions): every start reads
 *   the topic from the beginning, then follows it. At most `maxServices` judgements are held (least recently
 *   written forgotten first, counted in `evicted`); a record that is not a judgement is skipped and
 *   counted (`malformed`).
 * - `put` is synchronous: the judgement is held locally at once and queued for the producer (one
 *   value per service, the newest; at most `maxServices` queued, more refused and counted). One
 *   produce call in flight; a failure puts the batch back (unless a newer value came) and backs off.
 * - `shutdown()` is idempotent: stops the reader, gives the queue `flushTimeoutMs` (1 s), disconnects
 *   (given up after PRODUCER_CLOSE_MS: an unreachable broker must not hold the drain).
 *   What is still queued is counted (`abandonedAtShutdown`): another node, or this one after its
 *   restart, judges again.
 */
import { errorMessage } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import { sleep, within } from '../common/sleep.js'
import type { Batch, Consumer, KafkaTransport, Producer, ProducerRecord } from '../kafka/types.js'
import { PRODUCER_CLOSE_MS } from '../kafka/types.js'
import { LocalCoverageShare, type CoverageShare, type SpanCoverageChange } from '../normalize/span-coverage.js'

export const SPAN_COVERAGE_SCHEMA = 1

export interface SpanCoverageTopicOptions {
  transport: KafkaTransport
  topic: string
  groupPrefix: string
  logger: Logger
  /** judgements held and queued (default 10,000) */
  maxServices?: number
  flushTimeoutMs?: number
  backoffMs?: { min: number; max: number }
}

export interface SpanCoverageTopicStats {
  /** judgements read from the topic (this node's own included) */
  received: number
  /** judgements written (acknowledged) */
  published: number
  sendFailures: number
  /** judgements not queued because `maxServices` were waiting */
  refused: number
  malformed: number
  evicted: number
  abandonedAtShutdown: number
  /** the reader is subscribed */
  reading: boolean
}

type Judgement = 'sampled' | 'complete'

export class SpanCoverageTopic implements Component, CoverageShare {
  readonly name = 'span-coverage'
  private readonly held: LocalCoverageShare
  private readonly queue = new Map<string, string>()
  private readonly producer: Producer
  private consumer: Consumer | undefined
  private readonly abort = new AbortController()
  private connecting: Promise<void> | undefined
  private sending: Promise<void> | undefined
  private producerReady = false
  private closed = false
  private shutdownP: Promise<void> | undefined
  private readonly max: number
  private readonly st: Omit<SpanCoverageTopicStats, 'evicted'> = { received: 0, published: 0, sendFailures: 0, refused: 0, malformed: 0, abandonedAtShutdown: 0, reading: false }

  constructor(private readonly o: SpanCoverageTopicOptions) {
    this.producer = o.transport.producer()
    this.max = o.maxServices ?? 10_000
    this.held = new LocalCoverageShare(this.max)
  }

  start(): Promise<void> {
    if (this.connecting === undefined && !this.closed) this.connecting = this.connect()
    return Promise.resolve()
  }

  stats(): SpanCoverageTopicStats {
    return { ...this.st, evicted: this.held.evicted }
  }

  get(service: string): Judgement | undefined {
    return this.held.get(service)
  }

  anySampled(): boolean {
    return this.held.anySampled()
  }

  put(change: SpanCoverageChange): void {
    if (this.closed) return
    this.held.set(change.service, change.state)
    if (!this.queue.has(change.service) && this.queue.size >= this.max) {
      this.st.refused++
      return
    }
    this.queue.set(change.service, JSON.stringify({ schema: SPAN_COVERAGE_SCHEMA, state: change.state, spans: change.spans, requests: change.requests, intervals: change.intervals }))
    this.kick()
  }

  /** Resolves once the reader is subscribed (tests; the sidecar never waits for it). */
  async ready(): Promise<void> {
    await this.connecting
  }

  shutdown(): Promise<void> {
    this.shutdownP ??= this.close()
    return this.shutdownP
  }

  private handle = (batch: Batch): Promise<void> => {
    for (const m of batch.messages) {
      const service = m.key?.toString() ?? ''
      if (service === '') {
        this.st.malformed++
        continue
      }
      if (m.value === null) {
        this.held.delete(service)
        continue
      }
      const state = judgementOf(m.value.toString())
      if (state === undefined) {
        this.st.malformed++
        continue
      }
      this.st.received++
      // a newer local judgement not yet written wins over an older one read back
      if (!this.queue.has(service)) this.held.set(service, state)
    }
    return Promise.resolve()
  }

  private async connect(): Promise<void> {
    const log = this.o.logger
    const backoff = this.o.backoffMs ?? { min: 250, max: 10_000 }
    let wait = backoff.min
    let failing = false
    while (!this.closed) {
      try {
        const admin = this.o.transport.admin()
        try {
          await admin.connect()
          await admin.ensureTopics([{ topic: this.o.topic, numPartitions: 1, configs: { 'cleanup.policy': 'compact', 'segment.ms': '3600000' } }])
        } finally {
          await admin.disconnect().catch(() => undefined)
        }
        await this.producer.connect()
        this.producerReady = true
        const consumer = this.o.transport.reader({
          name: `${this.o.groupPrefix}.span-coverage`,
          topic: this.o.topic,
          onError: (err) => log.debug({ err: errorMessage(err), topic: this.o.topic }, 'span-coverage reader error'),
        })
        try {
          await consumer.start(this.handle)
        } catch (err) {
          await consumer.stop().catch(() => undefined)
          throw err
        }
        if (this.closed) {
          await consumer.stop().catch(() => undefined)
          return
        }
        this.consumer = consumer
        this.st.reading = true
        if (failing) log.info({ topic: this.o.topic }, 'span-coverage topic reachable again')
        this.kick()
        return
      } catch (err) {
        if (!failing) log.warn({ err: errorMessage(err), topic: this.o.topic }, 'span-coverage topic not reachable; retrying (each sidecar judges alone meanwhile)')
        failing = true
        await sleep(wait, this.abort.signal)
        wait = Math.min(backoff.max, wait * 2)
      }
    }
  }

  private kick(): void {
    if (this.sending !== undefined || !this.producerReady || this.queue.size === 0) return
    this.sending = this.drain().finally(() => {
      this.sending = undefined
      if (!this.closed) this.kick()
    })
  }

  /** Never rejects: failures are counted, logged once per streak and retried. */
  private async drain(): Promise<void> {
    const backoff = this.o.backoffMs ?? { min: 250, max: 10_000 }
    let wait = backoff.min
    let failing = false
    while (this.queue.size > 0 && !this.abort.signal.aborted) {
      const batch = [...this.queue.entries()]
      const records: ProducerRecord[] = batch.map(([key, value]) => ({ key, value }))
      try {
        await this.producer.send(this.o.topic, records)
        for (const [key, value] of batch) if (this.queue.get(key) === value) this.queue.delete(key)
        this.st.published += batch.length
        if (failing) this.o.logger.info({ topic: this.o.topic }, 'span-coverage judgements written again')
        failing = false
        wait = backoff.min
      } catch (err) {
        this.st.sendFailures++
        if (!failing) this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic, queued: this.queue.size }, 'span-coverage judgements not written; retrying')
        failing = true
        await sleep(wait, this.abort.signal)
        wait = Math.min(backoff.max, wait * 2)
      }
    }
  }

  private async close(): Promise<void> {
    this.closed = true
    const consumer = this.consumer
    this.consumer = undefined
    this.st.reading = false
    if (consumer !== undefined) await consumer.stop().catch(() => undefined)
    // one bound for everything left: the queue's flush, a connect or a produce call still in flight
    // (an unreachable broker must not hold the drain)
    const timer = new AbortController()
    const deadline = sleep(this.o.flushTimeoutMs ?? 1_000, timer.signal)
    const flush = this.sending ?? (this.producerReady && this.queue.size > 0 ? this.drain() : undefined)
    if (flush !== undefined) await Promise.race([flush, deadline])
    this.abort.abort()
    await Promise.race([Promise.all([this.connecting, this.sending]), deadline])
    timer.abort()
    this.st.abandonedAtShutdown += this.queue.size
    this.queue.clear()
    await within(this.producer.disconnect(), PRODUCER_CLOSE_MS)
  }
}

function judgementOf(text: string): Judgement | undefined {
  try {
    const v = JSON.parse(text) as { schema?: unknown; state?: unknown }
    if (v.schema !== SPAN_COVERAGE_SCHEMA) return undefined
    return v.state === 'sampled' || v.state === 'complete' ? v.state : undefined
  } catch {
    return undefined
  }
}
