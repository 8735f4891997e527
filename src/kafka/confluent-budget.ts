/**
 * A real-broker consumer whose memory is bounded in bytes (issue 16 item 2): the consumer
 * ConfluentTransport makes when `ConsumerOptions.maxBufferedBytes` is set (the Kafka span receiver).
 *
 * Why not the KafkaJS-compatible API (confluent.ts): that layer keeps its own message cache sized in
 * RECORDS (at least `js.consumer.max.batch.size`, more at high rates: 1.5 s of consumption), filled
 * by a native loop that stops only when librdkafka's queue is empty for 1 ms, which a fast broker
 * never lets happen. With 512-span records of 197 KB, 500 cached records were 97 MB outside the
 * byte budget; a record cap small enough for those starved 12 KB records. Its sizes are fixed at
 * construction. Here each `consume(n)` asks for n = the JavaScript share of the budget divided by
 * the records' observed size, so what JavaScript holds follows the bytes whatever the record size.
 *
 * Semantics are those of types.ts, as confluent.ts gives them: one partition's messages in offset
 * order per handler call; offset last+1 committed only after the handler resolved; a rejected batch
 * is not committed, its partition is sought back to the batch's first offset, and after a backoff
 * the batch is delivered again. Differences, both invisible to handlers:
 * - commits are asynchronous and coalesced: stored per partition after each handled batch, sent
 *   when the queue ran dry (a consume returned fewer records than asked) or 100 ms after the last
 *   commit, and synchronously at stop. A crash loses at most the last 100 ms of commits: those
 *   batches are delivered again (at-least-once, as before).
 * - no rebalance listener: librdkafka assigns partitions itself (`onAssignment` is refused).
 * Never throws out of its loop; errors go to `onError`.
 *
 * The same class is the transport's group-less reader (types.ts ReaderOptions; `reader` given): no
 * subscribe, no commit (its `group.id` only satisfies the library: no group is formed). The loop
 * asks the broker's metadata for the topic (every READER_METADATA_MS until it lists partitions; a
 * reader never creates a topic) and assigns all of them from their beginning itself.
 */
import { PermanentError, RetryableError, errorMessage } from '../common/errors.js'
import type { Logger } from '../common/logger.js'
import { sleep } from '../common/sleep.js'
import { bufferLimitProperties, MIN_BUFFERED_BYTES } from './buffer-limits.js'
import type { LibMetadata, LibRawConsumer, LibRawMessage, LibTopicPartitionOffset } from './client.js'
import { PROBE_INTERVAL_MS, classifyKafkaError, headersOf, lagFromStatistics, redeliveryBackoffMs, reportConsumerError, type SecurityWatch } from './librdkafka.js'
import type { BatchHandler, ConsumedMessage, Consumer, ConsumerOptions, ConsumerStats } from './types.js'

/** how long one consume waits for a first record: bounds how late `stop` is noticed and how stale `lastPollMs` gets when idle */
const POLL_MS = 250
/**
 * a reader's: its stop is on the path of whoever read a topic to its end (a decider's restore waits
 * for it; at 250 ms it was most of the restore), and an idle reader's extra wake-ups are cheap
 */
export const READER_POLL_MS = 50
/**
 * a reader's `fetch.wait.max.ms` unless its options say otherwise: partitions whose start offset
 * is looked up after the first fetch went out join only the next one (ConsumerOptions.maxWaitMs),
 * and a read to the end waits for its last partitions
 */
export const READER_FETCH_WAIT_MS = 100
/** the longest a handled batch waits for its commit while records keep coming */
const COMMIT_INTERVAL_MS = 100
/** librdkafka ERR__NO_OFFSET: a commit with nothing to commit, not an error */
const NO_OFFSET = -168
/** weight of the newest consume's mean record size in the running estimate */
const SIZE_WEIGHT = 0.3
/** a reader's wait between metadata requests while its topic is not listed yet; also each request's timeout */
export const READER_METADATA_MS = 500
/** librdkafka RD_KAFKA_OFFSET_BEGINNING: a partition's first retained record */
const OFFSET_BEGINNING = -2

export type RawConsumerFactory = (conf: Record<string, unknown>, topicConf: Record<string, unknown>) => LibRawConsumer

export interface BudgetedConsumerDeps {
  create: RawConsumerFactory
  /** bootstrap.servers, client.id and the security properties every client of the transport gets */
  base: Record<string, unknown>
  log: Logger
  watch: SecurityWatch
  /** `kafka.debug` is set (its contexts are in `base`): librdkafka's debug lines are logged at debug */
  debug?: boolean
}

/**
 * The most record bytes one consume returns (and so one batch holds, and the handler decodes at
 * once), whatever the budget. Measured before pretenuring was turned off (src/cli/v8-flags.ts;
 * `node dist/bench/peer-kafka.js --only pullback --no-sustained`, 197 KB records, 4 MiB budget): at
 * 2 MiB per consume 6 of 25 drains peaked at 137-143 MiB RSS (the rest 88-92), at 1 MiB 0 of 5, at
 * the same drain rate; at 512 KiB a third slower. Not re-measured at 2 MiB since.
 */
export const MAX_CONSUME_BYTES = 1024 * 1024

/**
 * How many records one consume may return: the JavaScript side's share of the budget (a quarter,
 * src/kafka/buffer-limits.ts, at most MAX_CONSUME_BYTES) over the records' estimated size, at least
 * 1 and at most `maxBatchSize`. Pure; exported for tests.
 */
export function recordsWithin(budgetBytes: number, recordBytes: number, maxBatchSize: number): number {
  const share = Math.min(MAX_CONSUME_BYTES, Math.max(MIN_BUFFERED_BYTES, budgetBytes) / 4)
  const n = Math.floor(share / Math.max(1, recordBytes))
  return Math.max(1, Math.min(maxBatchSize, n))
}

/** what makes a BudgetedConsumer a group-less reader (ConfluentTransport.reader) */
export interface ReaderMode {
  name: string
  topic: string
}

export class BudgetedConsumer implements Consumer {
  private readonly c: LibRawConsumer
  private readonly s: ConsumerStats = { lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: false }
  private readonly budget: number
  private readonly maxBatch: number
  private started = false
  private stopped = false
  private abandoned = false
  private loop: Promise<void> | undefined
  private failureStreak = 0
  /** until records are seen: the largest a fetch may be, so the first consume asks for few */
  private recordBytes: number
  private sizeSeen = false
  /** next offset to consume per "topic/partition", from handled batches */
  private readonly position = new Map<string, bigint>()
  /** handled, not yet committed: "topic/partition" -> offset to commit */
  private readonly pending = new Map<string, LibTopicPartitionOffset>()
  private lastCommitMs = 0
  /** partitions whose seek back after a rejected batch failed: their records are not handled until a seek succeeds */
  private readonly reseek = new Map<string, LibTopicPartitionOffset>()
  /** aborted by stop(): a backoff ends early then */
  private readonly stopping = new AbortController()
  /** a reader: whether its topic's partitions are assigned yet */
  private assigned = false
  /** who this is in log lines */
  private readonly who: Record<string, string>

  constructor(
    private readonly opts: ConsumerOptions & { maxBufferedBytes: number },
    private readonly deps: BudgetedConsumerDeps,
    private readonly reader?: ReaderMode,
  ) {
    if (opts.onAssignment !== undefined) throw new PermanentError('KAFKA_STATE', 'a byte-budgeted consumer takes no assignment listener')
    this.budget = Math.max(MIN_BUFFERED_BYTES, opts.maxBufferedBytes)
    this.maxBatch = Math.max(1, opts.maxBatchSize ?? 500)
    this.who = reader !== undefined ? { reader: reader.name } : { group: opts.groupId }
    const limits = bufferLimitProperties(this.budget)
    this.recordBytes = limits['fetch.max.bytes']
    // what the KafkaJS layer sets, so members of one group made by either API agree; a reader joins
    // no group (the library refuses a consumer without a group id; one that only assigns, with
    // offsets given and nothing committed, never joins nor writes that group)
    const membership = reader !== undefined ? {} : { 'partition.assignment.strategy': 'roundrobin', 'session.timeout.ms': 10_000, 'heartbeat.interval.ms': 1_000 }
    this.c = deps.create(
      {
        ...deps.base,
        'group.id': opts.groupId,
        ...membership,
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        // a group member's subscription may create its topic (a broker with auto.create.topics.enable),
        // as the KafkaJS layer's does; a reader waits for its topic and never creates one
        'allow.auto.create.topics': reader === undefined,
        ...(opts.maxWaitMs !== undefined ? { 'fetch.wait.max.ms': opts.maxWaitMs } : {}),
        // warnings and worse only, unless kafka.debug asks for librdkafka's debug lines (level 7)
        log_level: deps.debug === true ? 7 : 4,
        'statistics.interval.ms': PROBE_INTERVAL_MS,
        ...limits,
        offset_commit_cb: (err: unknown) => this.onCommitted(err),
      },
      { 'auto.offset.reset': opts.fromBeginning ?? true ? 'earliest' : 'latest' },
    )
    this.c.on('event.log', (l) => {
      if (l.severity > 4) {
        if (deps.debug === true) deps.log.debug({ component: 'librdkafka', fac: l.fac, ...this.who }, l.message)
        return
      }
      deps.watch.observe(l.message)
      deps.log.warn({ component: 'librdkafka', fac: l.fac, ...this.who }, l.message)
    })
    // connection-level errors (broker down, all brokers down) are retried by librdkafka itself
    this.c.on('event.error', (err) => this.deps.log.debug({ err: errorMessage(err), ...this.who }, 'kafka consumer event'))
    this.c.on('event.stats', (ev) => {
      if (typeof ev?.message === 'string') this.onStatistics(ev.message)
    })
  }

  async start(handler: BatchHandler): Promise<void> {
    if (this.started) throw new PermanentError('KAFKA_STATE', 'consumer already started')
    this.started = true
    const what = this.reader !== undefined ? `reader ${this.reader.name} start` : `consumer ${this.opts.groupId} start`
    try {
      const connected = new Promise<void>((resolve, reject) => {
        this.c.connect({ timeout: 30_000 }, (err) => (err ? reject(err instanceof Error ? err : new Error(errorMessage(err))) : resolve()))
      })
      await this.deps.watch.guard(what, connected, () => this.disconnect())
      if (this.reader === undefined) this.c.subscribe(this.opts.topics)
      this.c.setDefaultConsumeTimeout(this.reader !== undefined ? READER_POLL_MS : POLL_MS)
      // after the first record, take what is queued without waiting for more
      this.c.setDefaultIsTimeoutOnlyForFirstMessage?.(true)
    } catch (err) {
      if (err instanceof PermanentError) {
        this.abandoned = true
        throw err
      }
      throw classifyKafkaError(err, what)
    }
    this.s.connected = true
    this.s.lastPollMs = Date.now()
    this.loop = this.run(handler)
  }

  private consume(n: number): Promise<LibRawMessage[]> {
    return new Promise((resolve, reject) => {
      this.c.consume(n, (err, messages) => (err ? reject(err instanceof Error ? err : new Error(errorMessage(err))) : resolve(messages ?? [])))
    })
  }

  private async run(handler: BatchHandler): Promise<void> {
    while (!this.stopped) {
      if (this.reader !== undefined && !this.assigned) {
        await this.assignReader(this.reader.topic)
        continue
      }
      const n = recordsWithin(this.budget, this.recordBytes, this.maxBatch)
      let records: LibRawMessage[]
      try {
        records = await this.consume(n)
      } catch (err) {
        if (this.stopped) break
        this.report(classifyKafkaError(err, `consume ${this.opts.topics.join(',')}`))
        await this.pause(POLL_MS)
        continue
      }
      this.s.lastPollMs = Date.now()
      if (records.length > 0) {
        this.learnSize(records)
        await this.handleAll(records, handler)
      }
      if (records.length < n || Date.now() - this.lastCommitMs >= COMMIT_INTERVAL_MS) this.commitPending()
    }
  }

  /**
   * A reader's one assignment: every partition the broker's metadata lists for `topic`, from the
   * beginning. Not listed yet (the topic does not exist, or its creation has not reached this
   * broker): asks again after READER_METADATA_MS; a failed request is reported and retried alike.
   */
  private async assignReader(topic: string): Promise<void> {
    let partitions: number[] = []
    try {
      const md = await new Promise<LibMetadata>((resolve, reject) => {
        this.c.getMetadata({ topic, timeout: READER_METADATA_MS }, (err, m) => (err ? reject(err instanceof Error ? err : new Error(errorMessage(err))) : resolve(m)))
      })
      partitions = (md.topics.find((t) => t.name === topic)?.partitions ?? []).map((p) => p.id)
      this.s.lastPollMs = Date.now()
    } catch (err) {
      if (this.stopped) return
      this.report(classifyKafkaError(err, `metadata of ${topic}`))
    }
    if (this.stopped) return
    if (partitions.length === 0) {
      await this.pause(READER_METADATA_MS)
      return
    }
    partitions.sort((a, b) => a - b)
    this.c.assign(partitions.map((partition) => ({ topic, partition, offset: OFFSET_BEGINNING })))
    this.assigned = true
  }

  private learnSize(records: LibRawMessage[]): void {
    let bytes = 0
    for (const r of records) bytes += r.size ?? r.value?.length ?? 0
    const mean = bytes / records.length
    // the first records replace the guess; later, a jump to larger records counts at once (the
    // budget is an upper bound) and smaller ones lower the estimate gradually
    this.recordBytes = this.sizeSeen ? Math.max(mean, SIZE_WEIGHT * mean + (1 - SIZE_WEIGHT) * this.recordBytes) : mean
    this.sizeSeen = true
  }

  /** Splits one consume's records into per-partition batches (offset order within each is kept) and hands them over in turn. */
  private async handleAll(records: LibRawMessage[], handler: BatchHandler): Promise<void> {
    const groups = new Map<string, LibRawMessage[]>()
    for (const r of records) {
      const k = `${r.topic}/${r.partition}`
      const g = groups.get(k)
      if (g === undefined) groups.set(k, [r])
      else g.push(r)
    }
    for (const [key, group] of groups) {
      if (this.stopped) return
      const back = this.reseek.get(key)
      if (back !== undefined) {
        // these records follow the rejected batch: handling (and committing) them would skip it
        if (await this.seekBack(back)) this.reseek.delete(key)
        continue
      }
      await this.handleOne(key, group, handler)
    }
  }

  private async handleOne(key: string, group: LibRawMessage[], handler: BatchHandler): Promise<void> {
    const first = group[0] as LibRawMessage
    const last = group[group.length - 1] as LibRawMessage
    const high = this.highWatermark(first.topic, first.partition)
    // what waits from this batch's first message on (statistics stop while a handler blocks)
    if (high !== undefined) this.s.lag = Math.max(0, high - first.offset)
    const messages: ConsumedMessage[] = group.map((m) => ({
      topic: m.topic,
      partition: m.partition,
      offset: String(m.offset),
      key: m.key === undefined || m.key === null ? null : typeof m.key === 'string' ? Buffer.from(m.key) : m.key,
      value: m.value,
      headers: headersOf(flattenHeaders(m.headers)),
      timestamp: m.timestamp ?? 0,
    }))
    try {
      await handler({ topic: first.topic, partition: first.partition, messages, ...(high !== undefined ? { lag: Math.max(0, high - last.offset - 1) } : {}) })
    } catch (err) {
      this.s.handlerFailures += 1
      this.failureStreak += 1
      this.report(err)
      const back = { topic: first.topic, partition: first.partition, offset: first.offset }
      if (!(await this.seekBack(back))) this.reseek.set(key, back)
      await this.pause(redeliveryBackoffMs(this.failureStreak))
      return
    }
    this.failureStreak = 0
    const next = last.offset + 1
    this.pending.set(key, { topic: first.topic, partition: first.partition, offset: next })
    this.position.set(key, BigInt(next))
    this.s.batches += 1
    this.s.messages += messages.length
    this.s.lastBatchMs = Date.now()
    if (high !== undefined) this.s.lag = Math.max(0, high - next)
  }

  /** a backoff that stop() cuts short */
  private pause(ms: number): Promise<void> {
    return sleep(ms, this.stopping.signal)
  }

  /** librdkafka's cached high watermark (no request); undefined before the first fetch of the partition */
  private highWatermark(topic: string, partition: number): number | undefined {
    try {
      const w = this.c.getWatermarkOffsets(topic, partition)
      return typeof w?.highOffset === 'number' && w.highOffset >= 0 ? w.highOffset : undefined
    } catch {
      return undefined
    }
  }

  /** whether the partition's fetch position is now `to` (a failed seek leaves it after the rejected batch; the caller retries) */
  private seekBack(to: LibTopicPartitionOffset): Promise<boolean> {
    return new Promise((resolve) => {
      try {
        this.c.seek(to, 5_000, (err) => {
          if (err) this.report(classifyKafkaError(err, `seek ${to.topic}/${to.partition} back to ${to.offset}`))
          resolve(!err)
        })
      } catch (err) {
        this.report(classifyKafkaError(err, `seek ${to.topic}/${to.partition} back to ${to.offset}`))
        resolve(false)
      }
    })
  }

  /** Sends the stored offsets (asynchronously: the outcome arrives in offset_commit_cb). */
  private commitPending(): void {
    if (this.pending.size === 0 || this.opts.commit === false) {
      this.pending.clear()
      return
    }
    const offsets = [...this.pending.values()]
    this.pending.clear()
    this.lastCommitMs = Date.now()
    try {
      this.c.commit(offsets)
    } catch (err) {
      // the work is done; a lost commit means redelivery, which handlers tolerate
      this.report(classifyKafkaError(err, 'commit'))
    }
  }

  private onCommitted(err: unknown): void {
    if (err === null || err === undefined) return
    if ((err as { code?: unknown }).code === NO_OFFSET) return
    this.report(classifyKafkaError(err, 'commit'))
  }

  /** lag from librdkafka's statistics; they reach JavaScript through consume, so a stalled loop freezes them too */
  private onStatistics(json: string): void {
    if (this.stopped) return
    try {
      const probe = lagFromStatistics(json, this.position)
      if (probe.kind === 'known') this.s.lag = probe.lag
    } catch (err) {
      this.report(new RetryableError('KAFKA_STATS', `consumer statistics: ${errorMessage(err)}`, { cause: err }))
    }
  }

  private report(err: unknown): void {
    reportConsumerError(this.opts, this.deps.log, err)
  }

  private disconnect(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.c.disconnect(() => resolve())
      } catch {
        resolve()
      }
    })
  }

  /** Finishes the batch in hand, commits what was handled (synchronously), leaves the group (a reader: disconnects). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.stopping.abort()
    this.s.connected = false
    if (!this.started || this.abandoned) return
    await this.loop
    if (this.pending.size > 0 && this.opts.commit !== false) {
      try {
        this.c.commitSync([...this.pending.values()])
      } catch (err) {
        this.report(classifyKafkaError(err, 'commit at stop'))
      }
      this.pending.clear()
    }
    await this.disconnect()
  }

  stats(): ConsumerStats {
    return { ...this.s }
  }
}

/** node-rdkafka's header list ([{ key: value }, ...]) as one object; a repeated key keeps its first value */
function flattenHeaders(list: LibRawMessage['headers']): Record<string, unknown> | undefined {
  if (list === undefined) return undefined
  const out: Record<string, unknown> = {}
  for (const h of list) for (const [k, v] of Object.entries(h)) if (!(k in out)) out[k] = v
  return out
}
