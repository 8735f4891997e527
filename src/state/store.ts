/**
 * The changelog store: the engine's state records (src/engine/persist.ts) on a compacted Kafka topic,
 * through pullback's own Kafka interface, so it works on the real broker and on the embedded bus.
 *
 * Layout: topic key `<scope>/<record key>`; the value is the record's JSON, or null (a tombstone)
 * when the record was deleted. A record goes to partition hash(service id) mod `partitions`, so all
 * records of a service share a partition (what a decider owning a service's partition restores).
 *
 * Reading to the end (`load()`): a reader (no consumer group: src/kafka/types.ts ReaderOptions) reads every partition from the beginning; a marker
 * record (header `pullback-state-marker: <nonce>`) is appended to every partition, and the read is
 * complete once every nonce has been read back. A read that stops making progress is retried from
 * the beginning with a new reader and new markers, a failed reader or topic creation with
 * backoff; each attempt is logged. Nothing here
 * exits the process: after `restoreTimeout` the outcome is `abandoned` and the caller starts without
 * restored state.
 *
 * Writing (`write()` -> background loop): records wait in a queue keyed by record, so a newer value
 * of a key replaces an unsent older one (the topic is compacted: only the newest value matters).
 * One produce call is in flight at a time, which keeps the order per key. A retryable failure puts
 * the batch back (unless a newer value arrived) and backs off; a permanent one is retried record by
 * record and the records that fail again are dropped and counted. At `maxQueue` distinct keys new
 * keys are refused and handed back to the caller (the engine changelog exports them again later).
 */
import { randomUUID } from 'node:crypto'
import type { Clock } from '../common/clock.js'
import { systemClock } from '../common/clock.js'
import { classify, errorMessage, RetryableError } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import { sleep, within } from '../common/sleep.js'
import type { StateChanges, StateDelete, StoredRecord } from '../engine/persist.js'
import { partitionFor } from '../kafka/memory.js'
import type { Batch, Consumer, KafkaTransport, Producer, ProducerRecord, TopicSpec } from '../kafka/types.js'
import { PRODUCER_CLOSE_MS } from '../kafka/types.js'
import type { StateConfig } from './config.js'

export const MARKER_HEADER = 'pullback-state-marker'

export type LoadOutcome =
  | { kind: 'loaded'; records: StoredRecord[]; read: number; attempts: number; ms: number }
  | { kind: 'abandoned'; reason: string; read: number; attempts: number; ms: number }

export interface WriteOutcome {
  accepted: number
  /** records refused because the queue was full: the caller should hand them again later */
  refused: StateDelete[]
}

export type FlushOutcome = { kind: 'flushed'; ms: number } | { kind: 'timeout'; pending: number; ms: number }

/** Where the pipeline hands its state changes. Synchronous: never waits for the broker. */
export interface StateSink {
  write(changes: StateChanges): WriteOutcome
}

export interface StateStoreStats {
  /** records waiting to be written */
  queued: number
  /** records and tombstones written (acknowledged) */
  written: number
  tombstones: number
  /** produce calls that failed and were retried */
  sendFailures: number
  /** records dropped after a permanent failure (e.g. larger than the broker accepts) */
  rejected: number
  /** records refused because `maxQueue` keys were waiting */
  refused: number
  /** records still queued when shutdown gave up */
  abandonedAtShutdown: number
  /** at load: records read (all scopes, markers excluded), other scopes' records, keys ignored past `maxRecords` */
  read: number
  foreign: number
  loadOverflow: number
  loadAttempts: number
}

export interface StateStoreOptions {
  transport: KafkaTransport
  config: StateConfig
  topic: string
  scope: string
  groupPrefix: string
  logger: Logger
  clock?: Clock
  /** test hooks: how long a read may make no progress before a new marker, backoff bounds */
  stallMs?: number
  backoffMs?: { min: number; max: number }
}

interface Pending {
  value: string | null
  partition: number
}

const PROGRESS_LOG_MS = 10_000

export const stateTopicSpec = (topic: string, partitions: number): TopicSpec => ({
  topic,
  numPartitions: partitions,
  // compaction never touches the active segment: roll it hourly, so a start reads at most about an
  // hour of superseded records on top of the newest value per key
  configs: { 'cleanup.policy': 'compact', 'segment.ms': '3600000' },
})

export class StateStore implements Component, StateSink {
  readonly name = 'state'
  private readonly producer: Producer
  private readonly clock: Clock
  private readonly prefix: string
  private readonly queue = new Map<string, Pending>()
  private draining: Promise<void> | undefined
  private readonly abort = new AbortController()
  private started = false
  private closed = false
  private ready = false
  private failStreak = 0
  private shutdownP: Promise<void> | undefined
  private readonly st: StateStoreStats = {
    queued: 0,
    written: 0,
    tombstones: 0,
    sendFailures: 0,
    rejected: 0,
    refused: 0,
    abandonedAtShutdown: 0,
    read: 0,
    foreign: 0,
    loadOverflow: 0,
    loadAttempts: 0,
  }

  constructor(private readonly o: StateStoreOptions) {
    this.producer = o.transport.producer()
    this.clock = o.clock ?? systemClock
    this.prefix = `${o.scope}/`
  }

  /** Marks the store usable; the topic is created (compacted) by the first load or write. */
  start(): Promise<void> {
    this.started = true
    return Promise.resolve()
  }

  stats(): StateStoreStats {
    return { ...this.st, queued: this.queue.size }
  }

  /** The records of this scope as of now, read to the end of every partition; see the file comment. */
  async load(): Promise<LoadOutcome> {
    const t0 = this.clock.now()
    const budget = this.o.config.restoreTimeout
    const deadline = budget > 0 ? t0 + budget : Infinity
    const table = new Map<string, string>()
    const seen = new Set<string>()
    let consumer: Consumer | undefined
    let attempts = 0
    const log = this.o.logger
    const handler = (batch: Batch): Promise<void> => {
      for (const m of batch.messages) {
        const nonce = m.headers[MARKER_HEADER]
        if (nonce !== undefined) {
          seen.add(nonce)
          continue
        }
        this.st.read += 1
        const key = m.key?.toString() ?? ''
        if (!key.startsWith(this.prefix)) {
          this.st.foreign += 1
          continue
        }
        const k = key.slice(this.prefix.length)
        if (m.value === null) table.delete(k)
        else if (table.has(k) || table.size < this.o.config.maxRecords) table.set(k, m.value.toString())
        else this.st.loadOverflow += 1
      }
      return Promise.resolve()
    }
    log.info({ topic: this.o.topic, scope: this.o.scope }, 'reading engine state')
    try {
      for (;;) {
        attempts += 1
        this.st.loadAttempts += 1
        try {
          await this.ensureReady()
          if (consumer === undefined) {
            table.clear()
            consumer = this.o.transport.reader({
              name: `${this.o.groupPrefix}.state.${this.o.scope}`,
              topic: this.o.topic,
              onError: (err) => log.debug({ err: errorMessage(err), topic: this.o.topic }, 'state reader error'),
            })
            try {
              await consumer.start(handler)
            } catch (err) {
              await consumer.stop().catch(() => undefined)
              consumer = undefined
              throw err
            }
          }
          const end = await this.readToEnd(seen, deadline, t0)
          if (end === 'done') {
            const ms = this.clock.now() - t0
            log.info({ topic: this.o.topic, scope: this.o.scope, records: table.size, read: this.st.read, attempts, ms }, 'engine state read')
            return { kind: 'loaded', records: [...table].map(([key, value]) => ({ key, value })), read: this.st.read, attempts, ms }
          }
          if (end === 'deadline') break
          // a reader that makes no progress (a partition's leader lost, markers never coming back): start over with a new one
          await consumer.stop().catch(() => undefined)
          consumer = undefined
          throw new RetryableError('STATE_READ_STALLED', `no progress reading ${this.o.topic} for ${this.stallMs()} ms`)
        } catch (err) {
          const cls = classify(err)
          log.warn({ err: errorMessage(err), class: cls, attempt: attempts, read: this.st.read, topic: this.o.topic }, 'reading engine state failed; retrying')
          if (cls === 'programmer') throw err
          const wait = Math.min(this.backoff(attempts), deadline - this.clock.now())
          if (wait <= 0) break
          await sleep(wait, this.abort.signal)
          if (this.abort.signal.aborted) break
        }
      }
      const ms = this.clock.now() - t0
      const reason = `reading ${this.o.topic} to its end took over ${budget} ms (${attempts} attempts)`
      log.error({ topic: this.o.topic, read: this.st.read, attempts, ms }, `${reason}: starting without restored engine state`)
      return { kind: 'abandoned', reason, read: this.st.read, attempts, ms }
    } finally {
      await consumer?.stop().catch(() => undefined)
    }
  }

  /** Queues the changes (deletes first, then upserts); never waits. */
  write(changes: StateChanges): WriteOutcome {
    const out: WriteOutcome = { accepted: 0, refused: [] }
    if (this.closed) {
      out.refused.push(...changes.deletes, ...changes.upserts.map((u) => ({ key: u.key, service: u.service })))
      this.st.refused += out.refused.length
      return out
    }
    const put = (key: string, service: string, value: string | null) => {
      const k = this.prefix + key
      if (!this.queue.has(k) && this.queue.size >= this.o.config.maxQueue) {
        this.st.refused += 1
        out.refused.push({ key, service })
        return
      }
      this.queue.set(k, { value, partition: partitionFor(Buffer.from(service), this.o.config.partitions) })
      out.accepted += 1
    }
    for (const d of changes.deletes) put(d.key, d.service, null)
    for (const u of changes.upserts) put(u.key, u.service, u.value)
    this.kick()
    return out
  }

  /** Resolves once everything queued so far is written, or after `timeoutMs`. Never rejects. */
  async flush(timeoutMs: number): Promise<FlushOutcome> {
    const t0 = this.clock.now()
    for (;;) {
      this.kick()
      if (this.queue.size === 0 && this.draining === undefined) return { kind: 'flushed', ms: this.clock.now() - t0 }
      const left = t0 + timeoutMs - this.clock.now()
      if (left <= 0) return { kind: 'timeout', pending: this.queue.size, ms: this.clock.now() - t0 }
      await sleep(Math.min(20, left))
    }
  }

  /** Writes what is queued (within `flushTimeout`), then closes the producer. Idempotent. */
  shutdown(): Promise<void> {
    this.shutdownP ??= this.close()
    return this.shutdownP
  }

  private async close(): Promise<void> {
    if (this.started) {
      const f = await this.flush(this.o.config.flushTimeout)
      if (f.kind === 'timeout') {
        this.st.abandonedAtShutdown = f.pending
        this.o.logger.warn({ pending: f.pending, ms: f.ms, topic: this.o.topic }, 'engine state not fully written at shutdown')
      }
    }
    this.closed = true
    this.abort.abort()
    await this.draining
    await within(this.producer.disconnect(), PRODUCER_CLOSE_MS)
  }

  private async ensureReady(): Promise<void> {
    if (this.ready) return
    const admin = this.o.transport.admin()
    try {
      await admin.connect()
      await admin.ensureTopics([stateTopicSpec(this.o.topic, this.o.config.partitions)])
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
    await this.producer.connect()
    this.ready = true
  }

  private async readToEnd(seen: Set<string>, deadline: number, t0: number): Promise<'done' | 'stalled' | 'deadline'> {
    const nonces = Array.from({ length: this.o.config.partitions }, () => randomUUID())
    const markers: ProducerRecord[] = nonces.map((n, p) => ({ key: `${this.prefix}~marker`, value: '{}', partition: p, headers: { [MARKER_HEADER]: n } }))
    await this.producer.send(this.o.topic, markers)
    let lastRead = this.st.read
    let lastProgress = this.clock.now()
    let lastLog = lastProgress
    for (;;) {
      if (nonces.every((n) => seen.has(n))) {
        for (const n of nonces) seen.delete(n)
        return 'done'
      }
      const now = this.clock.now()
      if (now >= deadline || this.abort.signal.aborted) return 'deadline'
      if (this.st.read !== lastRead) {
        lastRead = this.st.read
        lastProgress = now
      } else if (now - lastProgress >= this.stallMs()) return 'stalled'
      if (now - lastLog >= PROGRESS_LOG_MS) {
        lastLog = now
        this.o.logger.info({ topic: this.o.topic, read: this.st.read, ms: now - t0 }, 'still reading engine state')
      }
      await sleep(25, this.abort.signal)
    }
  }

  private stallMs(): number {
    return this.o.stallMs ?? 30_000
  }

  private backoff(attempt: number): number {
    const b = this.o.backoffMs ?? { min: 250, max: 10_000 }
    return Math.min(b.max, b.min * 2 ** Math.min(attempt - 1, 16))
  }

  private kick(): void {
    if (this.draining !== undefined || this.queue.size === 0 || this.closed) return
    this.draining = this.drainLoop().finally(() => {
      this.draining = undefined
    })
  }

  /** The background writer. Never rejects: every failure is classified, counted and retried or dropped. */
  private async drainLoop(): Promise<void> {
    while (this.queue.size > 0 && !this.closed) {
      const batch: [string, Pending][] = []
      for (const e of this.queue) {
        batch.push(e)
        if (batch.length >= this.o.config.maxBatch) break
      }
      for (const [k] of batch) this.queue.delete(k)
      try {
        await this.ensureReady()
        await this.producer.send(this.o.topic, batch.map(toRecord))
        this.sent(batch)
      } catch (err) {
        if (classify(err) === 'permanent') {
          for (const e of batch) await this.sendOne(e)
          continue
        }
        this.requeue(batch)
        this.failed(err)
        await sleep(this.backoff(this.failStreak), this.abort.signal)
      }
    }
  }

  private async sendOne(e: [string, Pending]): Promise<void> {
    try {
      await this.producer.send(this.o.topic, [toRecord(e)])
      this.sent([e])
    } catch (err) {
      if (classify(err) === 'permanent') {
        this.st.rejected += 1
        if (this.st.rejected === 1 || this.st.rejected % 1000 === 0) {
          this.o.logger.warn({ err: errorMessage(err), key: e[0], rejected: this.st.rejected }, 'engine state record refused by the broker; dropped')
        }
      } else {
        this.requeue([e])
        this.failed(err)
      }
    }
  }

  private sent(batch: readonly [string, Pending][]): void {
    for (const [, p] of batch) {
      this.st.written += 1
      if (p.value === null) this.st.tombstones += 1
    }
    if (this.failStreak > 0) {
      this.o.logger.info({ topic: this.o.topic, failures: this.failStreak }, 'engine state writes resumed')
      this.failStreak = 0
    }
  }

  private failed(err: unknown): void {
    this.st.sendFailures += 1
    this.failStreak += 1
    if (this.failStreak === 1) this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic, queued: this.queue.size }, 'engine state writes failing; retrying')
  }

  /** Puts records back unless a newer value of the same key arrived meanwhile. */
  private requeue(batch: readonly [string, Pending][]): void {
    for (const [k, p] of batch) if (!this.queue.has(k)) this.queue.set(k, p)
  }
}

function toRecord([key, p]: [string, Pending]): ProducerRecord {
  return { key, value: p.value, partition: p.partition }
}
