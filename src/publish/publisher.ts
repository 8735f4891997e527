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
 * - with a write-ahead log (./wal.ts, `publish.wal`), `publish()` writes and fsyncs the envelope
 *   before it answers `queued`, and the broker's ack removes it; `start()` re-queues, ahead of
 *   anything new, what an earlier process signed but never got acknowledged (same envelope, same
 *   id: consumers dedupe by id). When the log cannot take a decision (full, disk error) the
 *   decision is queued in memory only: outcome `durable: false`, counter `notDurable`.
 * - `drain()` (and `shutdown()`) stops accepting and takes at most `drainTimeout` (plus
 *   DISCONNECT_FLOOR_MS for the producer to close): it waits for the queue to drain, then reports
 *   the decisions still unacknowledged (counter `abandonedAtShutdown`) and whether the write-ahead
 *   log keeps them for the next start. Without a log, process exit drops them.
 */
import { sleep, within } from '../common/sleep.js'
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
import type { DecisionWal, WalCounters } from './wal.js'

export type PublishOutcome =
  /** `durable`: on local disk (write-ahead log) before this returned; false without a log or when it could not take it */
  | { kind: 'queued'; id: string; topic: string; durable: boolean; acked: Promise<AckOutcome> }
  /** `unsignable`: the verdict holds what canonical JSON refuses (a non-finite number); counted, logged, never retried */
  | { kind: 'refused'; id: string; reason: 'queue-full' | 'stopped' | 'unsignable' }

export type AckOutcome = { kind: 'acked'; latencyMs: number } | { kind: 'abandoned' }

/** What a drain left behind. */
export type DrainOutcome =
  | { kind: 'drained' }
  /** `kept`: still in the write-ahead log, re-published at the next start; `lost`: no log held them */
  | { kind: 'unacknowledged'; count: number; kept: number; lost: number; walFile: string | undefined }

/** A shutdown step's failure for a drain that left decisions unacknowledged (sidecar and decider process alike). */
export function drainFailure(d: DrainOutcome): Error | undefined {
  if (d.kind !== 'unacknowledged') return undefined
  return new Error(d.lost === 0 ? `${d.count} decisions unacknowledged; kept in ${d.walFile} for the next start` : `${d.count} decisions unacknowledged, ${d.lost} of them lost (not in a write-ahead log)`)
}

export interface PublisherCounters {
  published: number
  sendFailures: number
  permanentFailures: number
  refused: number
  queued: number
  abandonedAtShutdown: number
  /** queued without being on disk: no log configured for it, the log full, or the disk failing */
  notDurable: number
  /** decisions an earlier process left in the write-ahead log, queued again at start */
  replayed: number
  /** verdicts that could not be signed (a bug upstream: one error log each) */
  unsignable: number
}

/** the producer's close after the drain may take this long even when the drain spent drainTimeout */
export const DISCONNECT_FLOOR_MS = 250

interface Pending {
  envelope: DecisionEnvelope
  topic: string
  enqueuedAt: number
  /** in the write-ahead log (so a drain that abandons it still keeps it) */
  durable: boolean
  resolve: (o: AckOutcome) => void
}

export interface DecisionPublisherOptions {
  producer: Producer
  signer: Signer
  config: PublishConfig
  topics: { decisions: string; incidents: string }
  logger: Logger
  clock?: Clock
  /** the write-ahead log; without it unacknowledged decisions live in memory only */
  wal?: DecisionWal
}

export class DecisionPublisher implements Component {
  readonly name = 'publish.decisions'
  private readonly queue: Pending[] = []
  private readonly counters: PublisherCounters = {
    published: 0,
    sendFailures: 0,
    permanentFailures: 0,
    refused: 0,
    queued: 0,
    abandonedAtShutdown: 0,
    notDurable: 0,
    replayed: 0,
    unsignable: 0,
  }
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private refusing = false
  private notDurableStreak = false
  private draining: Promise<DrainOutcome> | undefined
  private readonly clock: Clock

  constructor(private readonly o: DecisionPublisherOptions) {
    this.clock = o.clock ?? systemClock
  }

  /** Opens the write-ahead log (re-queuing what it holds), connects, starts sending. Throws PermanentError when the log is unusable. */
  async start(): Promise<void> {
    if (this.state !== 'new') return
    this.openWal()
    await this.o.producer.connect()
    this.state = 'running'
    this.loop = this.run()
    this.o.logger.info(
      { keyId: this.o.signer.keyId, topics: this.o.topics, wal: this.o.wal?.file ?? 'off', replayed: this.counters.replayed },
      'decision publisher started',
    )
  }

  /** Opens the log once and puts what an earlier process left ahead of the queue. */
  private openWal(): void {
    const wal = this.o.wal
    if (wal === undefined || wal.isOpen) return
    const { pending, corrupt } = wal.open()
    const queued = new Set(this.queue.map((p) => p.envelope.id))
    const replay: Pending[] = []
    for (const e of pending) {
      if (queued.has(e.envelope.id)) continue
      replay.push({ envelope: e.envelope, topic: e.topic, enqueuedAt: performance.now(), durable: true, resolve: () => undefined })
    }
    this.queue.unshift(...replay)
    this.counters.replayed += replay.length
    if (replay.length > 0 || corrupt > 0) {
      this.o.logger.warn(
        { file: wal.file, replayed: replay.length, ids: replay.slice(0, 20).map((p) => p.envelope.id), corruptLines: corrupt },
        'write-ahead log held decisions never acknowledged: publishing them again (same ids)',
      )
    }
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
    let envelope: DecisionEnvelope
    try {
      envelope = sealDecision(verdict, this.o.signer, this.clock.now())
    } catch (err) {
      // a throw here would fail the caller's whole evaluation tick and every other verdict in it
      this.counters.unsignable++
      this.o.logger.error({ err: errorMessage(err), id: verdict.id, kind: verdict.kind }, 'verdict cannot be signed; not published')
      return { kind: 'refused', id: verdict.id, reason: 'unsignable' }
    }
    const durable = this.writeAhead(topic, envelope)
    let resolve!: (o: AckOutcome) => void
    const acked = new Promise<AckOutcome>((r) => (resolve = r))
    this.queue.push({ envelope, topic, enqueuedAt: performance.now(), durable, resolve })
    this.counters.queued++
    this.wake?.()
    return { kind: 'queued', id: verdict.id, topic, durable, acked }
  }

  /** true once the envelope is fsynced in the log; false (counted, one warning per streak) when it is not. */
  private writeAhead(topic: string, envelope: DecisionEnvelope): boolean {
    const wal = this.o.wal
    if (wal === undefined) return false
    let outcome: ReturnType<DecisionWal['append']>
    try {
      this.openWal()
      outcome = wal.append({ topic, envelope })
    } catch (err) {
      outcome = { kind: 'failed', error: errorMessage(err) }
    }
    if (outcome.kind === 'durable') {
      this.notDurableStreak = false
      return true
    }
    this.counters.notDurable++
    if (!this.notDurableStreak) {
      this.notDurableStreak = true
      this.o.logger.error(
        { file: wal.file, id: envelope.id, reason: outcome.kind === 'full' ? 'write-ahead log full (publish.wal.maxBytes)' : outcome.error },
        'decision not written ahead: it is lost if the process dies before the broker acknowledges it',
      )
    }
    return false
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

  stats(): PublisherCounters & { depth: number; wal: (WalCounters & { pending: number; bytes: number }) | undefined } {
    return { ...this.counters, depth: this.queue.length, wal: this.o.wal?.stats() }
  }

  async shutdown(): Promise<void> {
    await this.drain()
  }

  /** Idempotent; see the file comment. Never throws. */
  drain(): Promise<DrainOutcome> {
    this.draining ??= this.drainOnce()
    return this.draining
  }

  private async drainOnce(): Promise<DrainOutcome> {
    if (this.state === 'new') {
      this.state = 'stopped'
      this.o.wal?.close()
      return { kind: 'drained' }
    }
    this.state = 'stopping'
    const deadline = Date.now() + this.o.config.drainTimeout
    while (this.queue.length > 0 && Date.now() < deadline) await sleep(Math.min(50, deadline - Date.now()))
    this.state = 'stopped'
    this.wake?.()
    // a send in flight against an unreachable broker can take message.timeout.ms: not waited past the deadline
    if (this.loop !== undefined) await within(this.loop, deadline - Date.now())
    let outcome: DrainOutcome = { kind: 'drained' }
    if (this.queue.length > 0) {
      const left = this.queue.splice(0)
      const kept = left.filter((p) => p.durable).length
      this.counters.abandonedAtShutdown += left.length
      outcome = { kind: 'unacknowledged', count: left.length, kept, lost: left.length - kept, walFile: this.o.wal?.file }
      this.o.logger.error(
        { unacknowledged: left.length, keptInWal: kept, lost: left.length - kept, walFile: this.o.wal?.file, ids: left.slice(0, 20).map((p) => p.envelope.id) },
        kept === left.length
          ? 'shutting down with unacknowledged decisions; the write-ahead log keeps them and the next start publishes them'
          : 'shutting down with unacknowledged decisions; those not in the write-ahead log are lost',
      )
      for (const p of left) p.resolve({ kind: 'abandoned' })
    }
    await within(this.o.producer.disconnect(), Math.max(DISCONNECT_FLOOR_MS, deadline - Date.now()))
    // after the last send settled (or was given up on): nothing acked later can race the close
    this.o.wal?.close()
    this.o.logger.info(this.stats(), 'decision publisher stopped')
    return outcome
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
        this.o.wal?.ack(batch.map((p) => p.envelope.id))
        if (this.queue[0] !== head) break // a drain gave up on this send while it was in flight and already reported the batch
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

