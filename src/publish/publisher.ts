/**
 * DecisionPublisher: verdicts in, signed decision envelopes out to Kafka.
 *
 * - rollback / recovered / not-recovered go to the decisions topic, incident to the incidents topic,
 *   keyed by service id ("namespace/service") so every decision of a service is ordered.
 * - `publish()` never blocks and never throws: it queues the envelope (FIFO, one in-flight send)
 *   and returns a tagged outcome. A failed send is retried with exponential backoff (full jitter,
 *   `retry.initial`..`retry.max`) for as long as the process lives; a PermanentError from the
 *   producer (record too large, authorization) is retried too, at the max interval, and counted
 *   separately, because a decision must not be lost to a misconfiguration that a person can fix.
 * - the queue is bounded by `maxQueue`: past it `publish()` refuses the new verdict (outcome
 *   `refused`, counter `refused`, one warning log per refusal streak) and the queued ones stay.
 * - `shutdown()` stops accepting, waits up to `drainTimeout` for the queue to drain, then logs the
 *   number of unacknowledged decisions (counter `abandonedAtShutdown`): only process exit drops them.
 */
import { sleep } from '../common/sleep.js'
import type { Logger } from '../common/logger.js'
import type { Component } from '../common/lifecycle.js'
import type { Clock } from '../common/clock.js'
import { systemClock } from '../common/clock.js'
import { classify, errorMessage } from '../common/errors.js'
import type { Verdict } from '../engine/verdict.js'
import type { Producer } from '../kafka/types.js'
import type { PublishConfig } from './config.js'
import { sealDecision, serviceId, type DecisionEnvelope } from './envelope.js'
import type { Signer } from './signing.js'

export type PublishOutcome =
  | { kind: 'queued'; id: string; topic: string; acked: Promise<AckOutcome> }
  | { kind: 'refused'; id: string; reason: 'queue-full' | 'stopped' }

export type AckOutcome = { kind: 'acked'; latencyMs: number } | { kind: 'abandoned' }

export interface PublisherCounters {
  published: number
  sendFailures: number
  permanentFailures: number
  refused: number
  queued: number
  abandonedAtShutdown: number
}

interface Pending {
  envelope: DecisionEnvelope
  topic: string
  enqueuedAt: number
  resolve: (o: AckOutcome) => void
}

export interface DecisionPublisherOptions {
  producer: Producer
  signer: Signer
  config: PublishConfig
  topics: { decisions: string; incidents: string }
  logger: Logger
  clock?: Clock
}

export class DecisionPublisher implements Component {
  readonly name = 'publish.decisions'
  private readonly queue: Pending[] = []
  private readonly counters: PublisherCounters = { published: 0, sendFailures: 0, permanentFailures: 0, refused: 0, queued: 0, abandonedAtShutdown: 0 }
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private refusing = false
  private readonly clock: Clock

  constructor(private readonly o: DecisionPublisherOptions) {
    this.clock = o.clock ?? systemClock
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return
    await this.o.producer.connect()
    this.state = 'running'
    this.loop = this.run()
    this.o.logger.info({ keyId: this.o.signer.keyId, topics: this.o.topics }, 'decision publisher started')
  }

  publish(verdict: Verdict): PublishOutcome {
    if (this.state !== 'running' && this.state !== 'new') return { kind: 'refused', id: verdict.id, reason: 'stopped' }
    if (this.queue.length >= this.o.config.maxQueue) {
      this.counters.refused++
      if (!this.refusing) {
        this.refusing = true
        this.o.logger.warn({ maxQueue: this.o.config.maxQueue, id: verdict.id }, 'decision queue full: refusing new decisions until the broker acknowledges queued ones')
      }
      return { kind: 'refused', id: verdict.id, reason: 'queue-full' }
    }
    const topic = verdict.kind === 'incident' ? this.o.topics.incidents : this.o.topics.decisions
    const envelope = sealDecision(verdict, this.o.signer, this.clock.now())
    let resolve!: (o: AckOutcome) => void
    const acked = new Promise<AckOutcome>((r) => (resolve = r))
    this.queue.push({ envelope, topic, enqueuedAt: performance.now(), resolve })
    this.counters.queued++
    this.wake?.()
    return { kind: 'queued', id: verdict.id, topic, acked }
  }

  /** resolves when everything queued so far is acknowledged (or abandoned at shutdown) */
  async flush(): Promise<void> {
    const last = this.queue[this.queue.length - 1]
    if (!last) return
    await new Promise<void>((r) => {
      const orig = last.resolve
      last.resolve = (o) => {
        orig(o)
        r()
      }
    })
  }

  stats(): PublisherCounters & { depth: number } {
    return { ...this.counters, depth: this.queue.length }
  }

  async shutdown(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') {
      await this.loop
      return
    }
    if (this.state === 'new') {
      this.state = 'stopped'
      return
    }
    this.state = 'stopping'
    const deadline = Date.now() + this.o.config.drainTimeout
    while (this.queue.length > 0 && Date.now() < deadline) await sleep(Math.min(50, deadline - Date.now()))
    this.state = 'stopped'
    this.wake?.()
    await this.loop
    if (this.queue.length > 0) {
      this.counters.abandonedAtShutdown += this.queue.length
      this.o.logger.error({ unacknowledged: this.queue.length, ids: this.queue.slice(0, 20).map((p) => p.envelope.id) }, 'shutting down with unacknowledged decisions')
      for (const p of this.queue.splice(0)) p.resolve({ kind: 'abandoned' })
    }
    await this.o.producer.disconnect()
    this.o.logger.info(this.stats(), 'decision publisher stopped')
  }

  private async run(): Promise<void> {
    let attempt = 0
    while (this.state !== 'stopped') {
      if (this.queue.length === 0) {
        await new Promise<void>((r) => {
          this.wake = r
          if (this.queue.length > 0 || this.state === 'stopped') r()
        })
        this.wake = undefined
        continue
      }
      // one topic per send keeps the batch simple; order per key holds because the queue is FIFO
      const head = this.queue[0]!
      const batch: Pending[] = []
      for (const p of this.queue) {
        if (p.topic !== head.topic || batch.length >= this.o.config.maxBatch) break
        batch.push(p)
      }
      try {
        await this.o.producer.send(
          head.topic,
          batch.map((p) => ({
            key: serviceId(p.envelope.payload),
            value: JSON.stringify(p.envelope),
            headers: { 'pullback-schema': '1', 'pullback-kind': p.envelope.kind, 'pullback-id': p.envelope.id },
          })),
        )
        this.queue.splice(0, batch.length)
        this.counters.published += batch.length
        if (this.queue.length < this.o.config.maxQueue) this.refusing = false
        const now = performance.now()
        for (const p of batch) p.resolve({ kind: 'acked', latencyMs: now - p.enqueuedAt })
        attempt = 0
      } catch (err) {
        const cls = classify(err)
        this.counters.sendFailures++
        if (cls === 'permanent') this.counters.permanentFailures++
        const cap = this.o.config.retry.max
        const ceiling = cls === 'permanent' ? cap : Math.min(cap, this.o.config.retry.initial * 2 ** attempt)
        attempt++
        if (attempt === 1 || attempt % 10 === 0) {
          this.o.logger.warn({ err: errorMessage(err), class: cls, attempt, queued: this.queue.length }, 'publishing decisions failed; retrying')
        }
        await this.sleepUnlessStopped(cls === 'permanent' ? cap : Math.random() * ceiling)
      }
    }
  }

  private async sleepUnlessStopped(ms: number): Promise<void> {
    const end = Date.now() + ms
    while (this.state !== 'stopped' && Date.now() < end) await sleep(Math.min(50, end - Date.now()))
  }
}

