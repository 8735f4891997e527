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
 *   (librdkafka's pre-fetch queue and fetch sizes are derived from it: src/kafka/buffer-limits.ts;
 *   each batch is sized in bytes, ~1 MiB: src/kafka/confluent-budget.ts), so a backlog is read as
 *   fast as it is handled, never buffered whole. With a `memoryGuard` (the
 *   one the OTLP receivers share) each batch's record bytes are reserved as background work before
 *   it is decoded: while the process holds more than the guard's background limit (its high-water
 *   mark minus a headroom kept for OTLP requests) the batch waits, polling every MEMORY_POLL_MS, and
 *   the consumer stops fetching meanwhile (its buffers are full): Kafka slows down, OTLP requests
 *   are not refused for Kafka's sake. A batch that waited `memoryWaitMs` is handed back for
 *   redelivery (RetryableError, counted in `memoryHandbacks`), so the consumer keeps polling its
 *   group. Waits are counted in `memoryWaits`.
 * - Decode workers (`workers`, receivers.workers > 0; issue 16 item 3): each otlp_proto or
 *   otlp_json record is decoded in the shared WorkerPool (src/workers) instead of on the main
 *   thread, at most `workerWindow` records of this receiver at the pool at once (so the OTLP
 *   receivers, which share the pool's queue, always find room), the batch still handed to the
 *   TelemetryConsumer in one consumeTraces call after every record of it was decoded, in record
 *   order. Without a dead-letter topic a record's bytes are moved to the worker, not copied (the
 *   transport never reads a handled record's value again; a redelivery is a new fetch). A record
 *   the worker cannot decode is poison exactly as inline; a pool that refuses the job (its queue
 *   full of OTLP work, a worker crashed, the pool stopping) hands the whole batch back for
 *   redelivery before anything of it was counted (`workerHandbacks`): exact-once as inline. The
 *   batch's memory reservation is held until its decoded spans were handed over, so bytes at the
 *   workers count against the guard's background limit as before.
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
import { OverloadedError } from '../errors.js'
import type { WorkerPool } from '../../workers/pool.js'

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
  /** decode records in these worker threads (shared with the OTLP receivers; started before and stopped after this receiver). Unset: inline. */
  workers?: WorkerPool
  /** records of this receiver at the workers at once; default 2 per worker thread */
  workerWindow?: number
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
  /** records decoded by the decode workers (the rest were decoded inline) */
  workerDecodes: number
  /** batches handed back for redelivery because the decode workers refused a record (queue full, crash, stopping) */
  workerHandbacks: number
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
 * 4 MiB of fetched records: at 200 KB per record (512 spans) about 20 records, fetched 1 MB at a
 * time. What decides the resident set during a drain is less the budget than how long dead record
 * bytes and decoded batches stay in V8's heap (bench/peer-kafka.ts, 3 M spans, loaded 2-core
 * machine, 2026-12-02; an idle sidecar on Kafka is ~80-100 MiB): record Buffers promoted to the old
 * generation stayed until a mark-compact (55-70 MiB of them at 16 MiB), hence releaseRecords();
 * with the image's --max-semi-space-size=2 a batch's decoded spans are promoted too, and the old
 * generation then grew to 80 MiB at 16 MiB (peak RSS 114-167 MiB in single runs), where 4 MiB
 * batches stay small: peak RSS 95 / 96 / 97 MiB over 3 runs at 96-152 k spans/s (the Collector:
 * 105-108 MiB at 43-66 k spans/s), README "Figures".
 */
export const DEFAULT_KAFKA_MAX_BUFFERED_BYTES = 4 * 1024 * 1024
const MEMORY_POLL_MS = 50

/** What became of one record: decoded, null (a tombstone), or undecodable (the decoder's message). */
type RecordOutcome = { outcome: 'decoded'; req: TracesRequest } | { outcome: 'empty' } | { outcome: 'failed'; message: string }
const EMPTY_RECORD: RecordOutcome = { outcome: 'empty' }

function contentTypeOf(m: ConsumedMessage): string | undefined {
  for (const k of Object.keys(m.headers)) if (k.toLowerCase() === 'content-type') return m.headers[k]
  return undefined
}

export class KafkaSpansReceiver implements Component {
  readonly name = 'kafka-spans'
  private readonly opts: Required<Omit<KafkaSpansReceiverOptions, 'deadLetterTopic' | 'logger' | 'clock' | 'memoryGuard' | 'workers'>> & {
    deadLetterTopic?: string
    memoryGuard?: MemoryGuard
    workers?: WorkerPool
  }
  /** consecutive undecodable records, and what the latest one says */
  private undecodable = { streak: 0, lastError: '', decodesAs: undefined as SpanEncoding | undefined, probed: false, warnedMs: -Infinity }
  private readonly clock: Clock
  private readonly logger: Logger
  private kafkaConsumer: Consumer | undefined
  /** record bytes may be moved off this heap once handled (movable()) */
  private readonly recordsOwned: boolean
  /** ArrayBuffers of records whose bytes were moved (to a worker, or released): never decoded again */
  private readonly moved = new WeakSet<object>()
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
    workerDecodes: 0,
    workerHandbacks: 0,
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
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
      workerWindow: opts.workerWindow ?? 2 * (opts.workers?.threads ?? 1),
      decodeAlarmAfter: opts.decodeAlarmAfter ?? 50,
    }
    this.clock = opts.clock ?? systemClock
    this.logger = opts.logger ?? silentLogger
    this.recordsOwned = opts.transport.kind === 'kafka' && opts.deadLetterTopic === undefined
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
  private noteUndecodable(m: ConsumedMessage, message: string, probe: boolean): void {
    const u = this.undecodable
    u.streak++
    u.lastError = message
    if (!probe || u.probed || u.streak < this.opts.decodeAlarmAfter) return
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

  /** One record decoded on this thread. */
  private decodeInline(m: ConsumedMessage): RecordOutcome {
    if (m.value === null) return EMPTY_RECORD
    try {
      return { outcome: 'decoded', req: this.decode(m) }
    } catch (err) {
      // whatever the decoder threw, this record will fail again: rethrowing would be a redelivery loop
      return { outcome: 'failed', message: errorMessage(err) }
    }
  }

  /**
   * Every record of the batch decoded by the workers, at most `workerWindow` at a time, outcomes in
   * record order. Throws the pool's OverloadedError (a RetryableError: the batch is redelivered)
   * when it refused one; nothing of the batch was counted then.
   */
  private async decodeAtWorkers(messages: ConsumedMessage[], pool: WorkerPool): Promise<RecordOutcome[]> {
    const out = new Array<RecordOutcome>(messages.length)
    let next = 0
    let refused: OverloadedError | undefined
    const lane = async (): Promise<void> => {
      while (refused === undefined && next < messages.length) {
        const i = next++
        const m = messages[i] as ConsumedMessage
        if (m.value === null) {
          out[i] = EMPTY_RECORD
          continue
        }
        const format = this.encodingOf(m).encoding === 'otlp_json' ? 'json' : 'proto'
        try {
          // moved to the worker only when nobody reads it again (see movable())
          const owned = this.movable(m.value)
          if (owned) this.moved.add(m.value.buffer)
          out[i] = { outcome: 'decoded', req: await pool.decodeTraces(format, m.value, this.opts.maxAttributes, owned) }
          this.counters.workerDecodes++
        } catch (err) {
          if (err instanceof OverloadedError) {
            refused ??= err
            return
          }
          // the worker's DecodeError, or whatever else it threw: as inline, poison (a redelivery would fail again)
          out[i] = { outcome: 'failed', message: errorMessage(err) }
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.opts.workerWindow, messages.length)) }, lane))
    if (refused !== undefined) {
      this.counters.workerHandbacks++
      throw refused
    }
    return out
  }

  /**
   * Whether a record's bytes may leave this thread's heap once decoded: only from the librdkafka
   * transport (it copies every fetched record into a Buffer of its own and never reads it again
   * after the handler; a redelivery is a new fetch after a seek), never from the embedded bus
   * (it hands out the Buffers of its log), and not when a dead-letter topic may still need them.
   * The Buffer must own its whole ArrayBuffer (not a slice of node's pool).
   */
  private movable(v: Buffer): boolean {
    if (!this.recordsOwned) return false
    const ab = v.buffer
    return ab instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === ab.byteLength && ab.byteLength > Buffer.poolSize
  }

  /**
   * Frees the handled batch's record bytes at the next scavenge instead of the next full GC: a
   * record Buffer lives while the client's cache and the batch hold it, long enough to be promoted
   * to V8's old generation, and its memory then stayed resident until a mark-compact (triggered by
   * 64 MiB of external memory growth): 55-70 MiB of dead records during a drain. Moving the bytes
   * to a new, unreferenced ArrayBuffer (a transfer) leaves the old object empty and the new one
   * young. Only for buffers movable() allows; after dead-lettering and counting. (Measured with the
   * KafkaJS-compatible consumer's record cache; the byte-budgeted consumer's ~1 MiB batches live
   * shorter, and a drain without this release measured the same, 136-146 MiB, before pretenuring was
   * turned off: kept for batches that a slow handler holds across scavenges.)
   */
  private releaseRecords(messages: ConsumedMessage[]): void {
    for (const m of messages) {
      const v = m.value
      if (v === null || !this.movable(v) || this.moved.has(v.buffer)) continue
      this.moved.add(v.buffer)
      structuredClone(v.buffer, { transfer: [v.buffer as ArrayBuffer] })
    }
  }

  private async handleAdmitted(batch: Batch): Promise<void> {
    for (const m of batch.messages) {
      // a tripwire, never expected: a record whose bytes were moved away would decode as an empty request and lose its spans silently
      if (m.value !== null && this.moved.has(m.value.buffer)) throw new RetryableError('KAFKA_SPANS_MOVED', `record ${m.topic}/${m.partition}@${m.offset} delivered again after its bytes were released`)
    }
    const resourceSpans: ResourceSpansLite[] = []
    const poison: Array<{ m: ConsumedMessage; reason: PoisonReason; message: string }> = []
    let spans = 0
    const pool = this.opts.workers
    const outcomes = pool === undefined ? batch.messages.map((m) => this.decodeInline(m)) : await this.decodeAtWorkers(batch.messages, pool)
    for (let i = 0; i < outcomes.length; i++) {
      const m = batch.messages[i] as ConsumedMessage
      const o = outcomes[i] as RecordOutcome
      if (o.outcome === 'empty') {
        poison.push({ m, reason: 'empty', message: 'null record value' })
      } else if (o.outcome === 'decoded') {
        for (const rs of o.req.resourceSpans) resourceSpans.push(rs)
        spans += countSpans(o.req)
        if (this.undecodable.streak >= this.opts.decodeAlarmAfter) {
          this.logger.info({ topic: this.opts.topic, after: this.undecodable.streak }, 'span records decode again')
        }
        this.undecodable = { streak: 0, lastError: '', decodesAs: undefined, probed: false, warnedMs: -Infinity }
      } else {
        poison.push({ m, reason: 'decode', message: o.message })
        // bytes moved to a worker cannot be probed for the other encoding
        this.noteUndecodable(m, o.message, m.value === null || !this.moved.has(m.value.buffer))
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
    this.releaseRecords(batch.messages)
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
