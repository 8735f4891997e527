/**
 * The Kafka span stream receiver: a consumer group on `kafka.topics.spans` (default `otlp_spans`)
 * reading what the Collector's kafka exporter writes: each record value one
 * ExportTraceServiceRequest, `otlp_proto` (default) or `otlp_json` (config `encoding`; a
 * `content-type` record header, when present, overrides it per record).
 *
 * Delivery contract (src/kafka/types.ts): a batch's offsets are committed only after the handler
 * resolves, and the handler resolves only after the batch's spans were handed to the
 * TelemetryConsumer (one consumeTraces call per batch, so a retry never double-counts part of one).
 * - A poison record (undecodable, or a null tombstone) is counted, optionally produced to the
 *   dead-letter topic with an `x-pullback-error` header, and skipped: the offset moves past it.
 *   A failing dead-letter produce is counted and the record is skipped anyway (never a crash loop).
 * - consumeTraces throwing a RetryableError (pipeline over its high-water mark) rejects the batch,
 *   so the transport redelivers it after a backoff: backpressure, nothing lost. Any other error is
 *   counted (the batch's spans as rejected) and the batch committed.
 * - A wrong `encoding` must not fail silently: once `decodeAlarmAfter` records in a row failed to
 *   decode, `health()` turns `undecodable` (readiness names the cause) and a warning is logged at
 *   most once per DECODE_WARN_INTERVAL_MS while it lasts, naming the encoding the records do decode
 *   as when they do ("the producer may write otlp_json: check kafkaSpans.encoding"). One decodable
 *   record ends it.
 * - Memory (issue 16 item 2): the transport holds at most `maxBufferedBytes` of fetched records
 *   (librdkafka's pre-fetch queue and fetch sizes are derived from it: src/kafka/buffer-limits.ts),
 *   so a backlog is read as fast as it is handled, never buffered whole. With a `memoryGuard` (the
 *   one the OTLP receivers share) each batch's record bytes are reserved as background work before
 *   it is decoded: while the process holds more than the guard's background limit (its high-water
 *   mark minus a headroom kept for OTLP requests) the batch waits, polling every MEMORY_POLL_MS, and
 *   the consumer stops fetching meanwhile (its buffers are full): Kafka slows down, OTLP requests
 *   are not refused for Kafka's sake. A batch that waited `memoryWaitMs` is handed back for
 *   redelivery (RetryableError, counted in `memoryHandbacks`), so the consumer keeps polling its
 *   group. Waits are counted in `memoryWaits`.
 * - `health()` turns `stalled` when the consumer is connected but has not polled for `stallTimeoutMs`
 *   (librdkafka's KafkaJS-style consumer can stop silently; see notes/libraries.md). This relies on
 *   the ConsumerStats contract that `lastPollMs` moves on empty polls too; when this was written,
 *   src/kafka/confluent.ts moved it only on non-empty batches, so an idle topic would read as stalled.
 */
import { RetryableError, classify, errorMessage } from '../../common/errors.js'
import { sleep } from '../../common/sleep.js'
import type { Clock } from '../../common/clock.js'
import { systemClock } from '../../common/clock.js'
import type { Component } from '../../common/lifecycle.js'
import type { Logger } from '../../common/logger.js'
import { silentLogger } from '../../common/logger.js'
import type { Batch, ConsumedMessage, Consumer, ConsumerStats, KafkaTransport, Producer } from '../../kafka/types.js'
import type { TelemetryConsumer } from '../consumer.js'
import type { BackgroundReservation, MemoryGuard } from '../memory.js'
import { decodeTracesJson } from '../otlp/json.js'
import type { ResourceSpansLite, TracesRequest } from '../otlp/model.js'
import { countSpans, decodeTracesProto } from '../otlp/proto.js'

export type SpanEncoding = 'otlp_proto' | 'otlp_json'

export interface KafkaSpansReceiverOptions {
  transport: KafkaTransport
  consumer: TelemetryConsumer
  /** kafka.topics.spans */
  topic: string
  /** consumer group; by convention `${kafka.groupPrefix}.spans` */
  groupId: string
  encoding?: SpanEncoding
  /** where a group with no committed offset starts; default 'latest' (old spans say nothing about a deployment now) */
  startFrom?: 'earliest' | 'latest'
  deadLetterTopic?: string
  /** default 60 s */
  stallTimeoutMs?: number
  /** default 500 */
  maxBatchSize?: number
  /** bytes of fetched records the transport may hold (ConsumerOptions.maxBufferedBytes); default DEFAULT_KAFKA_MAX_BUFFERED_BYTES */
  maxBufferedBytes?: number
  /** the guard the OTLP receivers share; each batch is admitted as background work (see the file comment). Unset: no admission. */
  memoryGuard?: MemoryGuard
  /** how long a batch waits for room under the guard before it is handed back for redelivery; default 5 s */
  memoryWaitMs?: number
  maxAttributes?: number
  /** consecutive undecodable records after which health() reports `undecodable`; default 50 */
  decodeAlarmAfter?: number
  clock?: Clock
  logger?: Logger
}

export type PoisonReason = 'decode' | 'empty'

export interface KafkaSpansStats {
  messages: number
  batches: number
  acceptedSpans: number
  /** spans the pipeline rejected (consume result) or failed on permanently */
  rejectedSpans: number
  /** poison records skipped, by reason */
  poison: Record<PoisonReason, number>
  deadLettered: number
  deadLetterFailures: number
  /** batches handed back for redelivery because the pipeline was overloaded */
  redeliveries: number
  /** batches that waited for room under the memory guard's background limit */
  memoryWaits: number
  /** batches handed back for redelivery after waiting memoryWaitMs for that room */
  memoryHandbacks: number
  /** records in a row that failed to decode, up to now (0 once one decodes) */
  undecodableStreak: number
  consumer: ConsumerStats | undefined
}

export type ReceiverHealth =
  | { status: 'starting' }
  | { status: 'ok' }
  | { status: 'stalled'; lastPollMs: number; stalledForMs: number }
  /** every one of the last `streak` records failed to decode; `detail` names the likely cause */
  | { status: 'undecodable'; streak: number; detail: string }
  | { status: 'stopped' }

export const DECODE_WARN_INTERVAL_MS = 60_000

/**
 * 16 MiB of fetched records: at 200 KB per record (512 spans) about 80 records, a sixth of a second
 * of a 500 k spans/s drain, enough to keep the handler busy while the next fetch arrives. It is not
 * what decides the resident set during a drain (bench/peer-kafka.ts, 3 M spans, loaded machine,
 * 2026-12-01): an idle sidecar on Kafka is ~100 MiB (~40 MiB of it the node binary), and dropped
 * record Buffers stay resident until V8's next scavenge. Peak RSS was 195-203 MiB at 16 MiB,
 * 163-185 MiB at 4 MiB; with node --max-semi-space-size=2 (scavenges sooner) 178-184 and 115-155
 * MiB, at the same drain rate.
 */
export const DEFAULT_KAFKA_MAX_BUFFERED_BYTES = 16 * 1024 * 1024
const MEMORY_POLL_MS = 50

function contentTypeOf(m: ConsumedMessage): string | undefined {
  for (const k of Object.keys(m.headers)) if (k.toLowerCase() === 'content-type') return m.headers[k]
  return undefined
}

export class KafkaSpansReceiver implements Component {
  readonly name = 'kafka-spans'
  private readonly opts: Required<Omit<KafkaSpansReceiverOptions, 'deadLetterTopic' | 'logger' | 'clock' | 'memoryGuard'>> & { deadLetterTopic?: string; memoryGuard?: MemoryGuard }
  /** consecutive undecodable records, and what the latest one says */
  private undecodable = { streak: 0, lastError: '', decodesAs: undefined as SpanEncoding | undefined, probed: false, warnedMs: -Infinity }
  private readonly clock: Clock
  private readonly logger: Logger
  private kafkaConsumer: Consumer | undefined
  private dlq: Producer | undefined
  private state: 'new' | 'running' | 'stopped' = 'new'
  private startedMs = 0
  private stopping: Promise<void> | undefined
  private readonly counters = {
    messages: 0,
    batches: 0,
    acceptedSpans: 0,
    rejectedSpans: 0,
    poison: { decode: 0, empty: 0 } as Record<PoisonReason, number>,
    deadLettered: 0,
    deadLetterFailures: 0,
    redeliveries: 0,
    memoryWaits: 0,
    memoryHandbacks: 0,
  }

  constructor(opts: KafkaSpansReceiverOptions) {
    this.opts = {
      transport: opts.transport,
      consumer: opts.consumer,
      topic: opts.topic,
      groupId: opts.groupId,
      encoding: opts.encoding ?? 'otlp_proto',
      startFrom: opts.startFrom ?? 'latest',
      deadLetterTopic: opts.deadLetterTopic,
      stallTimeoutMs: opts.stallTimeoutMs ?? 60_000,
      maxBatchSize: opts.maxBatchSize ?? 500,
      maxBufferedBytes: opts.maxBufferedBytes ?? DEFAULT_KAFKA_MAX_BUFFERED_BYTES,
      memoryWaitMs: opts.memoryWaitMs ?? 5_000,
      ...(opts.memoryGuard !== undefined ? { memoryGuard: opts.memoryGuard } : {}),
      maxAttributes: opts.maxAttributes ?? 1024,
      decodeAlarmAfter: opts.decodeAlarmAfter ?? 50,
    }
    this.clock = opts.clock ?? systemClock
    this.logger = opts.logger ?? silentLogger
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`${this.name}: start() called twice`)
    const { transport, topic, groupId, maxBatchSize, maxBufferedBytes, deadLetterTopic } = this.opts
    if (deadLetterTopic !== undefined) {
      this.dlq = transport.producer()
      await this.dlq.connect()
    }
    this.kafkaConsumer = transport.consumer({
      groupId,
      topics: [topic],
      fromBeginning: this.opts.startFrom === 'earliest',
      maxBatchSize,
      maxBufferedBytes,
      onError: (err) => this.logger.warn({ err: errorMessage(err), topic }, 'span consumer error'),
    })
    this.startedMs = this.clock.now()
    this.state = 'running'
    await this.kafkaConsumer.start((batch) => this.handle(batch))
    this.logger.info({ topic, groupId, encoding: this.opts.encoding, transport: transport.kind }, 'kafka span receiver started')
  }

  /** The encoding of one record: its content-type header when it has one, else the configured one. */
  private encodingOf(m: ConsumedMessage): { encoding: SpanEncoding; fromHeader: boolean } {
    const ct = contentTypeOf(m)?.split(';')[0]?.trim().toLowerCase()
    if (ct === 'application/json') return { encoding: 'otlp_json', fromHeader: true }
    if (ct === 'application/x-protobuf') return { encoding: 'otlp_proto', fromHeader: true }
    return { encoding: this.opts.encoding, fromHeader: false }
  }

  /** Decodes one record; throws DecodeError (or the JSON decoder's PermanentError). */
  private decode(m: ConsumedMessage, encoding = this.encodingOf(m).encoding): TracesRequest {
    const value = m.value as Buffer
    const limits = { maxAttributes: this.opts.maxAttributes }
    return encoding === 'otlp_json' ? decodeTracesJson(value.toString('utf8'), limits) : decodeTracesProto(value, limits)
  }

  /** Counts an undecodable record toward the alarm; once per streak it tries the other encoding, to name the likely cause. */
  private noteUndecodable(m: ConsumedMessage, message: string): void {
    const u = this.undecodable
    u.streak++
    u.lastError = message
    if (u.probed || u.streak < this.opts.decodeAlarmAfter) return
    u.probed = true
    const { encoding, fromHeader } = this.encodingOf(m)
    if (fromHeader) return
    const other: SpanEncoding = encoding === 'otlp_proto' ? 'otlp_json' : 'otlp_proto'
    try {
      this.decode(m, other)
      u.decodesAs = other
    } catch {
      u.decodesAs = undefined
    }
  }

  private undecodableDetail(): string {
    const u = this.undecodable
    const cause =
      u.decodesAs !== undefined
        ? `they decode as ${u.decodesAs}: the producer writes ${u.decodesAs}, check kafkaSpans.encoding (now ${this.opts.encoding})`
        : `check kafkaSpans.encoding (now ${this.opts.encoding}) and what the producer writes to ${this.opts.topic}`
    return `every one of the last ${u.streak} records failed to decode as ${this.opts.encoding}; ${cause}; last error: ${u.lastError.slice(0, 200)}`
  }

  /** After a batch: one warning per DECODE_WARN_INTERVAL_MS while the alarm lasts, one info line when it ends. */
  private reportDecoding(): void {
    const u = this.undecodable
    if (u.streak >= this.opts.decodeAlarmAfter) {
      const now = this.clock.now()
      if (now - u.warnedMs < DECODE_WARN_INTERVAL_MS) return
      u.warnedMs = now
      this.logger.warn({ topic: this.opts.topic, encoding: this.opts.encoding, streak: u.streak, decodesAs: u.decodesAs, poison: this.counters.poison.decode }, this.undecodableDetail())
    }
  }

  /** Admits the batch under the memory guard (waiting for room, see the file comment), then handles it. */
  private async handle(batch: Batch): Promise<void> {
    const reservation = await this.admit(batch)
    try {
      await this.handleAdmitted(batch)
    } finally {
      reservation?.release()
    }
  }

  private async admit(batch: Batch): Promise<BackgroundReservation | undefined> {
    const guard = this.opts.memoryGuard
    if (guard === undefined) return undefined
    let bytes = 0
    for (const m of batch.messages) bytes += m.value?.length ?? 0
    const since = this.clock.now()
    for (let waited = false; ; waited = true) {
      const a = guard.reserveBackground(bytes)
      if (a.outcome === 'admitted') return a.reservation
      if (!waited) this.counters.memoryWaits++
      if (this.state !== 'running' || this.clock.now() - since >= this.opts.memoryWaitMs) {
        // nothing of this batch was counted yet: redelivery is exact
        this.counters.memoryHandbacks++
        throw new RetryableError(
          'KAFKA_SPANS_MEMORY',
          `span batch of ${bytes} bytes waited ${this.clock.now() - since} ms for memory: held ${a.heldBytes} bytes, background limit ${a.limitBytes} bytes`,
        )
      }
      await sleep(MEMORY_POLL_MS)
    }
  }

  private async handleAdmitted(batch: Batch): Promise<void> {
    const resourceSpans: ResourceSpansLite[] = []
    const poison: Array<{ m: ConsumedMessage; reason: PoisonReason; message: string }> = []
    let spans = 0
    for (const m of batch.messages) {
      if (m.value === null) {
        poison.push({ m, reason: 'empty', message: 'null record value' })
        continue
      }
      try {
        const req = this.decode(m)
        for (const rs of req.resourceSpans) resourceSpans.push(rs)
        spans += countSpans(req)
        if (this.undecodable.streak >= this.opts.decodeAlarmAfter) {
          this.logger.info({ topic: this.opts.topic, after: this.undecodable.streak }, 'span records decode again')
        }
        this.undecodable = { streak: 0, lastError: '', decodesAs: undefined, probed: false, warnedMs: -Infinity }
      } catch (err) {
        // whatever the decoder threw, this record will fail again: rethrowing would be a redelivery loop
        poison.push({ m, reason: 'decode', message: errorMessage(err) })
        this.noteUndecodable(m, errorMessage(err))
      }
    }
    this.reportDecoding()
    let accepted = spans
    let rejected = 0
    if (spans > 0) {
      try {
        const res = this.opts.consumer.consumeTraces({ resourceSpans }, { transport: 'kafka' })
        rejected = Math.min(spans, Math.max(0, res.rejected))
        accepted = spans - rejected
      } catch (err) {
        if (classify(err) === 'retryable') {
          // nothing of this batch was counted yet: redelivery is exact
          this.counters.redeliveries++
          throw err
        }
        this.logger.warn({ err: errorMessage(err), topic: batch.topic, partition: batch.partition }, 'span batch failed permanently; skipped')
        accepted = 0
        rejected = spans
      }
    }
    for (const p of poison) {
      // counted once its dead-lettering is settled, so poison == deadLettered + deadLetterFailures whenever a DLQ is set
      if (this.dlq !== undefined) await this.deadLetter(p.m, p.message)
      this.counters.poison[p.reason]++
    }
    this.counters.batches++
    this.counters.messages += batch.messages.length
    this.counters.acceptedSpans += accepted
    this.counters.rejectedSpans += rejected
  }

  private async deadLetter(m: ConsumedMessage, reason: string): Promise<void> {
    try {
      await (this.dlq as Producer).send(this.opts.deadLetterTopic as string, [
        {
          key: m.key,
          value: m.value ?? Buffer.alloc(0),
          headers: { ...m.headers, 'x-pullback-error': reason.slice(0, 512), 'x-pullback-source': `${m.topic}/${m.partition}@${m.offset}` },
        },
      ])
      this.counters.deadLettered++
    } catch (err) {
      this.counters.deadLetterFailures++
      this.logger.debug({ err: errorMessage(err) }, 'dead-letter produce failed')
    }
  }

  stats(): KafkaSpansStats {
    return { ...this.counters, poison: { ...this.counters.poison }, undecodableStreak: this.undecodable.streak, consumer: this.kafkaConsumer?.stats() }
  }

  /** Readiness: red while starting, stalled or stopped. */
  health(): ReceiverHealth {
    if (this.state === 'new') return { status: 'starting' }
    if (this.state === 'stopped') return { status: 'stopped' }
    if (this.undecodable.streak >= this.opts.decodeAlarmAfter) return { status: 'undecodable', streak: this.undecodable.streak, detail: this.undecodableDetail() }
    const cs = (this.kafkaConsumer as Consumer).stats()
    const now = this.clock.now()
    const last = Math.max(cs.lastPollMs, this.startedMs)
    if (cs.connected && now - last > this.opts.stallTimeoutMs) return { status: 'stalled', lastPollMs: cs.lastPollMs, stalledForMs: now - last }
    if (!cs.connected && now - this.startedMs > this.opts.stallTimeoutMs) return { status: 'stalled', lastPollMs: cs.lastPollMs, stalledForMs: now - last }
    return cs.connected ? { status: 'ok' } : { status: 'starting' }
  }

  /** Stops consuming (the transport commits what was handled), then closes the dead-letter producer. Idempotent. */
  shutdown(): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopping = (async () => {
      const wasRunning = this.state === 'running'
      this.state = 'stopped'
      try {
        await this.kafkaConsumer?.stop()
      } finally {
        await this.dlq?.disconnect()
      }
      if (wasRunning) this.logger.info({ topic: this.opts.topic }, 'kafka span receiver stopped')
    })()
    return this.stopping
  }
}
