/**
 * HistoryWriter: the component that owns the accumulator and writes finished hours to
 * `kafka.topics.history` (created here with its time retention, one partition: see README).
 *
 * Every `flushInterval` (a timer; a tick never throws: failures are logged once per streak and
 * counted) it runs the registered `beforeFlush` hooks (the store sampler reads its minutes there),
 * drains the hours that ended `grace` ago, encodes them and sends them, one send in flight at a
 * time. Unacknowledged summaries wait in a queue of at most `maxPending`; past it the oldest are
 * dropped (`pendingDropped`). A failed send keeps its summaries queued for the next flush.
 *
 * shutdown (idempotent, safe without start): stops the timer, drains every open hour (partial
 * hours are summed with their continuation on read), tries one last send bounded by
 * `shutdownSendTimeoutMs`, and disconnects the producer.
 */
import type { Clock } from '../common/clock.js'
import type { Component } from '../common/lifecycle.js'
import { errorMessage } from '../common/errors.js'
import { within } from '../common/sleep.js'
import type { Logger } from '../common/logger.js'
import type { KafkaTransport, Producer, TopicSpec } from '../kafka/types.js'
import { serviceId } from '../normalize/observations.js'
import { HistoryAccumulator, type AccumulatorStats, type HistoryFeed } from './accumulator.js'
import { encodeSummary } from './codec.js'
import type { HistoryConfig } from './config.js'

export interface HistoryWriterOptions {
  transport: KafkaTransport
  topic: string
  config: HistoryConfig
  logger: Logger
  clock: Clock
  /** bound on the whole shutdown (last send and the producer's close); default 2 s */
  shutdownTimeoutMs?: number
}

export interface HistoryWriterStats extends AccumulatorStats {
  /** summaries acknowledged by the broker, and their encoded bytes */
  written: number
  bytes: number
  pending: number
  pendingDropped: number
  sendFailures: number
  flushFailures: number
}

/** The topic as pullback creates it: time-retained, one partition (a reader syncs to its end with one marker). */
export function historyTopicSpec(topic: string, cfg: HistoryConfig): TopicSpec {
  return {
    topic,
    numPartitions: 1,
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(cfg.retention), 'segment.ms': String(Math.min(86_400_000, Math.max(3_600_000, Math.round(cfg.retention / 10)))) },
  }
}

interface Pending {
  key: string
  value: Buffer
}

export class HistoryWriter implements Component {
  readonly name = 'history'
  readonly accumulator: HistoryAccumulator
  private readonly hooks: ((nowMs: number, final: boolean) => void)[] = []
  private producer: Producer | undefined
  private timer: NodeJS.Timeout | undefined
  private queue: Pending[] = []
  private sending: Promise<void> | undefined
  private started = false
  private stopped = false
  private failStreak = 0
  private readonly st = { written: 0, bytes: 0, pendingDropped: 0, sendFailures: 0, flushFailures: 0 }

  constructor(private readonly o: HistoryWriterOptions) {
    const c = o.config
    this.accumulator = new HistoryAccumulator({ stepMs: c.step, graceMs: c.grace, maxServices: c.maxServices, maxPods: c.maxPods })
  }

  /** the narrow input of this stage */
  get feed(): HistoryFeed {
    return this.accumulator
  }

  /** runs before each flush with the flush's time (a sampler reads the store there); `final` at shutdown */
  beforeFlush(hook: (nowMs: number, final: boolean) => void): void {
    this.hooks.push(hook)
  }

  stats(): HistoryWriterStats {
    return { ...this.accumulator.stats(), ...this.st, pending: this.queue.length }
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const admin = this.o.transport.admin()
    try {
      await admin.ensureTopics([historyTopicSpec(this.o.topic, this.o.config)])
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
    this.producer = this.o.transport.producer()
    await this.producer.connect()
    this.timer = setInterval(() => this.flush(), this.o.config.flushInterval)
    this.timer.unref()
    this.o.logger.info({ topic: this.o.topic, step: this.o.config.step, retentionMs: this.o.config.retention }, 'history writer started')
  }

  /** One flush at the clock's time (the timer's body; tests call it). Never throws. */
  flush(nowMs = this.o.clock.now(), all = false): void {
    try {
      for (const h of this.hooks) h(nowMs, all)
      for (const s of this.accumulator.drain(nowMs, all)) {
        this.queue.push({ key: serviceId(s.namespace, s.service), value: encodeSummary(s) })
      }
      const over = this.queue.length - this.o.config.maxPending
      if (over > 0) {
        this.queue.splice(0, over)
        this.st.pendingDropped += over
      }
      this.failStreak = 0
    } catch (err) {
      this.st.flushFailures++
      if (this.failStreak++ === 0) this.o.logger.error({ err: errorMessage(err) }, 'history flush failed')
    }
    // send() never rejects: a failure is counted and its summaries stay queued
    void this.send()
  }

  /** resolves when the queue is empty or a send failed (the queue is kept) */
  private send(): Promise<void> {
    if (this.sending !== undefined) return this.sending
    const producer = this.producer
    if (producer === undefined || this.queue.length === 0) return Promise.resolve()
    const batch = this.queue.slice(0, 500)
    this.sending = producer
      .send(this.o.topic, batch)
      .then(
        () => {
          // the queue may have lost its head to the limit meanwhile: drop what was sent by identity
          const sent = new Set(batch)
          this.queue = this.queue.filter((p) => !sent.has(p))
          this.st.written += batch.length
          for (const p of batch) this.st.bytes += p.value.length
        },
        (err: unknown) => {
          this.st.sendFailures++
          this.o.logger.warn({ err: errorMessage(err), pending: this.queue.length }, 'history summaries not acknowledged; kept for the next flush')
        },
      )
      .finally(() => {
        this.sending = undefined
      })
    return this.sending
  }

  /** writes everything open now (tests; shutdown) and waits for the sends */
  async flushAll(nowMs = this.o.clock.now()): Promise<void> {
    this.flush(nowMs, true)
    while (this.sending !== undefined || this.queue.length > 0) {
      const before = this.st.sendFailures
      await this.send()
      if (this.st.sendFailures > before) return
    }
  }

  async shutdown(): Promise<void> {
    if (!this.started || this.stopped) return
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    // bounded as a whole: with the broker down neither the send nor the producer's close may hold the
    // process's shutdown (history is worth less than the decisions drained after or beside it)
    const deadline = Date.now() + (this.o.shutdownTimeoutMs ?? 2000)
    await within(this.flushAll(), deadline - Date.now())
    if (this.queue.length > 0) this.o.logger.warn({ pending: this.queue.length }, 'history summaries not written at shutdown')
    const closed = this.producer === undefined ? true : (await within(this.producer.disconnect(), Math.max(250, deadline - Date.now()))) === 'settled'
    this.o.logger.info({ written: this.st.written, bytes: this.st.bytes, producerClosed: closed }, 'history writer stopped')
  }
}
