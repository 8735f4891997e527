/**
 * Reading a topic "to its end" through the KafkaTransport interface, which has no high-watermark
 * query: a reader (no consumer group: src/kafka/types.ts ReaderOptions) reads from the beginning and, to know it has caught up,
 * appends a marker record (header `pullback-marker: <nonce>`, empty JSON value) with a chosen key and
 * waits until it reads that nonce back. Everything written before the marker to the marker key's
 * partition has then been read. Hence: tables read this way (the actuator state topic, artifacts)
 * are single-partition topics; the audit reader puts its marker on the service's key. Readers skip
 * marker records; a compacted topic keeps one marker per key.
 */
import { randomUUID } from 'node:crypto'
import type { Component } from '../common/lifecycle.js'
import { RetryableError, errorMessage } from '../common/errors.js'
import type { Logger } from '../common/logger.js'
import type { Consumer, KafkaTransport, Producer, TopicSpec } from '../kafka/types.js'

export const MARKER_HEADER = 'pullback-marker'

export interface LogEntry {
  key: string
  value: Buffer
  timestamp: number
  partition: number
  offset: string
}

export interface TopicTailOptions {
  transport: KafkaTransport
  topic: string
  groupPrefix: string
  /** called for every non-marker record, in partition order */
  onRecord: (e: LogEntry) => void
  /** called for every record with a null value (a deletion on a compacted topic), in partition order */
  onTombstone?: (key: string) => void
  logger: Logger
  /** an existing producer to write markers with (else one is created) */
  producer?: Producer
  /** when given, the topic is created with this spec (if missing) before subscribing: a consumer may not see a topic created after it subscribed for minutes */
  spec?: TopicSpec
}

export class TopicTail implements Component {
  readonly name: string
  private consumer: Consumer | undefined
  private readonly producer: Producer
  private readonly ownProducer: boolean
  private readonly waiting = new Map<string, () => void>()
  private readonly seen = new Set<string>()
  private started = false

  constructor(private readonly o: TopicTailOptions) {
    this.name = `tail.${o.topic}`
    this.ownProducer = o.producer === undefined
    this.producer = o.producer ?? o.transport.producer()
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    if (this.o.spec !== undefined) {
      const admin = this.o.transport.admin()
      await admin.connect()
      try {
        await admin.ensureTopics([this.o.spec])
      } finally {
        await admin.disconnect()
      }
    }
    if (this.ownProducer) await this.producer.connect()
    this.consumer = this.o.transport.reader({
      name: `${this.o.groupPrefix}.tail.${this.o.topic}`,
      topic: this.o.topic,
      onError: (err) => this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic }, 'tail consumer error'),
    })
    await this.consumer.start((batch) => {
      for (const m of batch.messages) {
        const nonce = m.headers[MARKER_HEADER]
        if (nonce !== undefined) {
          this.seen.add(nonce)
          this.waiting.get(nonce)?.()
          continue
        }
        if (m.value === null) {
          if (m.key !== null) this.o.onTombstone?.(m.key.toString())
          continue
        }
        try {
          this.o.onRecord({ key: m.key?.toString() ?? '', value: m.value, timestamp: m.timestamp, partition: m.partition, offset: m.offset })
        } catch (err) {
          this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic }, 'tail record handler failed; record skipped')
        }
      }
      return Promise.resolve()
    })
  }

  /** resolves once every record written to `markerKey`'s partition before the call has been read */
  async sync(markerKey = '__marker__', timeoutMs = 60_000): Promise<void> {
    const nonce = randomUUID()
    const seen = new Promise<void>((resolve) => {
      this.waiting.set(nonce, resolve)
      if (this.seen.has(nonce)) resolve()
    })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RetryableError('TAIL_SYNC_TIMEOUT', `reading ${this.o.topic} to its end took over ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      await this.producer.send(this.o.topic, [{ key: markerKey, value: '{}', headers: { [MARKER_HEADER]: nonce } }])
      await Promise.race([seen, timeout])
    } finally {
      clearTimeout(timer)
      this.waiting.delete(nonce)
      this.seen.delete(nonce)
    }
  }

  /** appends one record to the topic with the tail's producer (after start) */
  append(key: string, value: string): Promise<void> {
    return this.producer.send(this.o.topic, [{ key, value }])
  }

  async shutdown(): Promise<void> {
    if (!this.started) return
    this.started = false
    await this.consumer?.stop()
    if (this.ownProducer) await this.producer.disconnect()
  }
}

/**
 * One-shot: every record of `topic` up to now (complete for `markerKey`'s partition). With
 * `withTombstones`, deletions are listed too, as entries with an empty value.
 */
export async function readTopic(
  transport: KafkaTransport,
  topic: string,
  opts: { groupPrefix: string; markerKey?: string; logger: Logger; timeoutMs?: number; withTombstones?: boolean },
): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  const tail = new TopicTail({
    transport,
    topic,
    groupPrefix: opts.groupPrefix,
    logger: opts.logger,
    onRecord: (e) => out.push(e),
    ...(opts.withTombstones === true ? { onTombstone: (key: string) => out.push({ key, value: Buffer.alloc(0), timestamp: 0, partition: -1, offset: '' }) } : {}),
  })
  try {
    await tail.start()
    await tail.sync(opts.markerKey, opts.timeoutMs)
  } finally {
    await tail.shutdown()
  }
  return out
}
