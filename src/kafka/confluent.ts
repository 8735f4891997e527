/**
 * The real-broker transport: @confluentinc/kafka-javascript (librdkafka) through its KafkaJS-compatible
 * API. This is the only file that uses the client library; it is loaded (client.ts) when the first
 * transport is constructed, not when this module is imported.
 *
 * Semantics (see types.ts): producers are idempotent with acks=all; consumers never auto-commit, they
 * commit offset last+1 of a batch only after the handler resolved; when the handler rejects, nothing
 * is resolved, the library seeks back to the batch's first message, and we wait (exponential backoff)
 * before the batch is redelivered.
 */
import { PermanentError, RetryableError, errorMessage } from '../common/errors.js'
import { silentLogger, type Logger } from '../common/logger.js'
import { sleep } from '../common/sleep.js'
import { bufferLimitProperties } from './buffer-limits.js'
import { BudgetedConsumer, READER_FETCH_WAIT_MS, type BudgetedConsumerDeps } from './confluent-budget.js'
import { kafkaClient, type LibAdmin, type LibConsumer, type LibKafka, type LibLogger, type LibProducer } from './client.js'
import { PLAINTEXT_SECURITY, type LibrdkafkaSecurity } from './config.js'
import { ASSIGN_PARTITIONS, PROBE_INTERVAL_MS, REVOKE_PARTITIONS, SecurityWatch, classifyKafkaError, headersOf, lagFromStatistics, redeliveryBackoffMs, reportConsumerError } from './librdkafka.js'
import type {
  Admin,
  BatchHandler,
  ConsumedMessage,
  Consumer,
  ConsumerOptions,
  ConsumerStats,
  KafkaTransport,
  PartitionRange,
  Producer,
  ProducerRecord,
  ReaderOptions,
  TopicSpec,
} from './types.js'
import { READER_BUFFERED_BYTES, withStarts } from './types.js'

export interface ConfluentOptions {
  brokers: string[]
  clientId: string
  logger?: Logger
  /** kafka.tls / kafka.auth mapped by config.ts's librdkafkaSecurity; unset: PLAINTEXT */
  security?: LibrdkafkaSecurity
  /** `kafka.debug`: librdkafka's debug contexts; their lines are logged at debug */
  debug?: string
}

/** Routes the library's log lines into pino; its "error" lines for handler failures are ours to report, so they are debug. */
function libraryLogger(log: Logger, watch: SecurityWatch, debug: boolean): LibLogger {
  const make = (l: Logger): LibLogger => ({
    info: (message: string, extra?: object) => l.debug(extra ?? {}, message),
    error: (message: string, extra?: object) => {
      watch.observe(message)
      l.warn(extra ?? {}, message)
    },
    warn: (message: string, extra?: object) => {
      watch.observe(message)
      l.warn(extra ?? {}, message)
    },
    debug: debug ? (message: string, extra?: object) => l.debug(extra ?? {}, message) : () => undefined,
    namespace: (namespace: string) => make(l.child({ ns: namespace })),
    setLogLevel: () => undefined,
  })
  return make(log.child({ component: 'librdkafka' }))
}

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v
}

class ConfluentProducer implements Producer {
  private readonly p: LibProducer
  private connected: Promise<void> | undefined
  private closed = false
  constructor(
    kafka: LibKafka,
    private readonly watch: SecurityWatch,
  ) {
    this.p = kafka.producer({
      kafkaJS: { idempotent: true, acks: -1, maxInFlightRequests: 5 },
      'linger.ms': 5,
      'message.timeout.ms': 30_000,
    })
  }
  connect(): Promise<void> {
    this.connected ??= this.watch
      .guard('producer connect', this.p.connect(), () => this.p.disconnect())
      .catch((err: unknown) => {
        this.connected = undefined
        throw err instanceof PermanentError ? err : classifyKafkaError(err, 'producer connect')
      })
    return this.connected
  }
  async send(topic: string, records: ProducerRecord[]): Promise<void> {
    if (this.closed) throw new PermanentError('KAFKA_CLOSED', 'producer is closed')
    await this.connect()
    try {
      await this.p.send({
        topic,
        messages: records.map((r) => ({
          key: r.key ?? null,
          value: r.value === null ? null : toBuffer(r.value),
          headers: r.headers,
          partition: r.partition,
        })),
      })
    } catch (err) {
      throw classifyKafkaError(err, `produce to ${topic}`)
    }
  }
  async disconnect(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.connected) {
      await this.connected.catch(() => undefined)
      await this.p.disconnect().catch(() => undefined)
    }
  }
}

class ConfluentConsumer implements Consumer {
  private readonly c: LibConsumer
  private readonly s: ConsumerStats = {
    lastPollMs: 0,
    lastBatchMs: 0,
    batches: 0,
    messages: 0,
    handlerFailures: 0,
    lag: undefined,
    connected: false,
  }
  private started = false
  private stopped = false
  /** start failed on a security error: the library client is left to its guard (disconnecting a connecting client waits for the connect) */
  private abandoned = false
  private failureStreak = 0
  /** next offset to consume per "topic/partition", from handled batches */
  private readonly position = new Map<string, bigint>()
  constructor(
    kafka: LibKafka,
    private readonly opts: ConsumerOptions,
    private readonly log: Logger,
    private readonly watch: SecurityWatch,
  ) {
    this.c = kafka.consumer({
      kafkaJS: {
        groupId: opts.groupId,
        fromBeginning: opts.fromBeginning ?? true,
        autoCommit: false,
      },
      'js.consumer.max.batch.size': opts.maxBatchSize ?? 500,
      'session.timeout.ms': 10_000,
      // OTLP span records are large (a Collector batch is often 100s of KB); librdkafka's 1 MiB
      // per-partition fetch would then return a handful of records per round trip
      'max.partition.fetch.bytes': 8 * 1024 * 1024,
      // a byte budget (issue 16 item 2) replaces the fetch size and caps librdkafka's pre-fetch queue
      ...(opts.maxBufferedBytes !== undefined ? bufferLimitProperties(opts.maxBufferedBytes) : {}),
      'heartbeat.interval.ms': 1_000,
      ...(opts.maxWaitMs !== undefined ? { 'fetch.wait.max.ms': opts.maxWaitMs } : {}),
      ...(opts.onAssignment !== undefined ? { rebalance_cb: (err: { code?: unknown }, assignment: { topic: string; partition: number }[], fns: { assignmentLost(): boolean }) => this.onRebalance(err, assignment, fns) } : {}),
      'statistics.interval.ms': PROBE_INTERVAL_MS,
      stats_cb: (ev: { message?: unknown }) => {
        if (typeof ev?.message === 'string') this.onStatistics(ev.message)
      },
    })
  }

  async start(handler: BatchHandler): Promise<void> {
    if (this.started) throw new PermanentError('KAFKA_STATE', 'consumer already started')
    this.started = true
    try {
      await this.watch.guard(`consumer ${this.opts.groupId} start`, this.c.connect(), () => this.c.disconnect())
      await this.c.subscribe({ topics: this.opts.topics })
    } catch (err) {
      if (err instanceof PermanentError) {
        this.abandoned = true
        throw err
      }
      throw classifyKafkaError(err, `consumer ${this.opts.groupId} start`)
    }
    this.s.connected = true
    this.s.lastPollMs = Date.now()
    await this.c.run({
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset }) => {
        this.s.lastPollMs = Date.now()
        if (batch.messages.length === 0) return
        // what waits from this batch's first message on (the statistics below stop while a handler blocks)
        const before = Number(batch.offsetLagLow())
        if (Number.isFinite(before) && before >= 0) this.s.lag = before + 1
        const messages: ConsumedMessage[] = batch.messages.map((m) => ({
          topic: batch.topic,
          partition: batch.partition,
          offset: m.offset,
          key: m.key,
          value: m.value,
          headers: headersOf(m.headers),
          timestamp: Number(m.timestamp),
        }))
        const remaining = Number(batch.offsetLag())
        try {
          await handler({ topic: batch.topic, partition: batch.partition, messages, ...(Number.isFinite(remaining) && remaining >= 0 ? { lag: remaining } : {}) })
        } catch (err) {
          // Not resolved: the library seeks back to the first message and redelivers after our backoff.
          this.s.handlerFailures += 1
          this.failureStreak += 1
          this.report(err)
          await sleep(redeliveryBackoffMs(this.failureStreak))
          throw err
        }
        this.failureStreak = 0
        const last = batch.messages[batch.messages.length - 1] as { offset: string }
        resolveOffset(last.offset)
        if (this.opts.commit !== false) {
          try {
            await this.c.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }])
          } catch (err) {
            // The work is done; a lost commit means redelivery, which handlers tolerate.
            this.report(classifyKafkaError(err, 'commit'))
          }
        }
        this.s.batches += 1
        this.s.messages += messages.length
        this.s.lastBatchMs = Date.now()
        this.position.set(`${batch.topic}/${batch.partition}`, BigInt(last.offset) + 1n)
        const lag = Number(batch.offsetLag())
        this.s.lag = Number.isFinite(lag) ? lag : undefined
      },
    })
  }

  /**
   * The library delivers no callback for an empty poll, so an idle consumer and a stalled one look
   * alike (confluent-kafka-javascript#476). librdkafka's statistics (every PROBE_INTERVAL_MS) tell
   * them apart: when every assigned partition is consumed up to its high watermark the consumer is
   * caught up, which counts as a poll; when messages wait and no batch arrives, `lastPollMs` stops
   * moving and health checks turn red.
   *
   * The statistics are computed inside the client from what it already knows (fetch responses), so
   * this sends no request; they reach JavaScript through the client's consume loop, so a loop that
   * stalled, or a handler that never returns, delivers none and `lastPollMs` freezes, as it should. It replaced an admin client that queried committed and high-watermark
   * offsets every 5 s: with the broker down those requests timed out, and across a broker restart
   * librdkafka then aborted the process (`rd_kafka_enq_once_del_source_return: Assertion
   * 'eonce->refcnt > 0' failed`, 4 times out of 4; the same bounce without it: 0). Never throws.
   */
  private onStatistics(json: string): void {
    if (this.stopped) return
    try {
      const probe = lagFromStatistics(json, this.position)
      if (probe.kind === 'unknown') return
      this.s.lag = probe.lag
      if (probe.lag === 0) this.s.lastPollMs = Date.now()
    } catch (err) {
      this.report(new RetryableError('KAFKA_STATS', `consumer statistics: ${errorMessage(err)}`, { cause: err }))
    }
  }

  /**
   * librdkafka's rebalance callback (awaited by the library before it assigns or revokes): tells the
   * listener, then lets the library apply the change as it would without a callback, or, when the
   * listener answers an assignment with start offsets, assigns those (the library assigns an
   * assignment the callback returns as it is, offsets included).
   */
  private async onRebalance(err: { code?: unknown }, assignment: { topic: string; partition: number }[], fns: { assignmentLost(): boolean }): Promise<{ topic: string; partition: number; offset?: number }[] | undefined> {
    const partitions = assignment.map((a) => ({ topic: a.topic, partition: a.partition }))
    const listener = this.opts.onAssignment
    if (listener === undefined) return undefined
    try {
      if (err.code === ASSIGN_PARTITIONS) return withStarts(partitions, await listener({ kind: 'assigned', partitions }))
      else if (err.code === REVOKE_PARTITIONS) await listener({ kind: 'revoked', partitions, lost: fns.assignmentLost() })
    } catch (e) {
      this.report(e)
    }
    return undefined
  }

  private report(err: unknown): void {
    reportConsumerError(this.opts, this.log, err)
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.s.connected = false
    if (!this.started || this.abandoned) return
    await this.c.disconnect().catch((err: unknown) => this.report(err))
  }

  stats(): ConsumerStats {
    return { ...this.s }
  }
}

class ConfluentAdmin implements Admin {
  private readonly a: LibAdmin
  private connected = false
  constructor(
    kafka: LibKafka,
    private readonly watch: SecurityWatch,
  ) {
    this.a = kafka.admin()
  }
  async connect(): Promise<void> {
    if (this.connected) return
    try {
      await this.watch.guard('admin connect', this.a.connect(), () => this.a.disconnect())
    } catch (err) {
      throw err instanceof PermanentError ? err : classifyKafkaError(err, 'admin connect')
    }
    this.connected = true
  }
  /**
   * The library's admin connect sends no request, so a wrong password or CA shows only in the first
   * operation: each is guarded like a connect (PermanentError within a second, not a 30 s timeout).
   */
  private op<T>(what: string, p: Promise<T>): Promise<T> {
    return this.watch.guard(what, p)
  }
  async ensureTopics(topics: TopicSpec[]): Promise<void> {
    await this.connect()
    const existing = new Set(await this.op('admin list topics', this.a.listTopics()))
    const missing = topics.filter((t) => !existing.has(t.topic))
    if (missing.length === 0) return
    try {
      await this.op(
        'admin create topics',
        this.a.createTopics({
          topics: missing.map((t) => ({
            topic: t.topic,
            numPartitions: t.numPartitions ?? 3,
            replicationFactor: t.replicationFactor ?? -1,
            configEntries: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value })),
          })),
        }),
      )
    } catch (err) {
      if (err instanceof PermanentError) throw err
      // another instance may have created it between list and create
      if (!/already exists/i.test(errorMessage(err))) throw classifyKafkaError(err, 'create topics')
    }
  }
  async listTopics(): Promise<string[]> {
    await this.connect()
    return this.op('admin list topics', this.a.listTopics())
  }
  async partitionRanges(topic: string): Promise<Map<number, PartitionRange>> {
    await this.connect()
    try {
      const offsets = await this.op('admin fetch topic offsets', this.a.fetchTopicOffsets(topic))
      return new Map(offsets.map((o) => [o.partition, { start: Number(o.low), end: Number(o.high) }]))
    } catch (err) {
      throw err instanceof PermanentError ? err : classifyKafkaError(err, 'fetch topic offsets')
    }
  }
  async deleteTopics(topics: string[]): Promise<void> {
    await this.connect()
    await this.op('admin delete topics', this.a.deleteTopics({ topics }))
  }
  async disconnect(): Promise<void> {
    if (!this.connected) return
    this.connected = false
    await this.a.disconnect().catch(() => undefined)
  }
}

export { lagFromStatistics, securityFailureOf, type LagProbe, type SecurityFailure } from './librdkafka.js'

export class ConfluentTransport implements KafkaTransport {
  readonly kind = 'kafka' as const
  private readonly kafka: LibKafka
  private readonly budgeted: BudgetedConsumerDeps
  private readonly log: Logger
  private readonly watch: SecurityWatch
  /**
   * Loads the client library (PermanentError naming the fix when it is missing or broken). Every
   * producer, consumer and admin client made here gets `opts.security`'s properties: the common
   * config of the library's Kafka object is merged into each client's.
   */
  constructor(opts: ConfluentOptions) {
    this.log = opts.logger ?? silentLogger
    const security = opts.security ?? PLAINTEXT_SECURITY
    this.watch = new SecurityWatch(security.summary)
    const { KafkaJS, KafkaConsumer } = kafkaClient()
    const debugging = opts.debug !== undefined
    const debug = debugging ? { debug: opts.debug } : {}
    this.budgeted = {
      create: (conf, topicConf) => new KafkaConsumer(conf, topicConf),
      base: { ...security.properties(), ...debug, 'bootstrap.servers': opts.brokers.join(','), 'client.id': opts.clientId },
      log: this.log,
      watch: this.watch,
      debug: debugging,
    }
    this.kafka = new KafkaJS.Kafka({
      ...security.properties(),
      ...debug,
      kafkaJS: { brokers: opts.brokers, clientId: opts.clientId, logger: libraryLogger(this.log, this.watch, debugging), logLevel: debugging ? KafkaJS.logLevel.DEBUG : KafkaJS.logLevel.WARN },
    })
  }
  producer(): Producer {
    return new ConfluentProducer(this.kafka, this.watch)
  }
  /** a consumer with a byte budget reads through the lower-level API (confluent-budget.ts says why) */
  consumer(opts: ConsumerOptions): Consumer {
    const { maxBufferedBytes } = opts
    if (maxBufferedBytes !== undefined && opts.onAssignment === undefined) return new BudgetedConsumer({ ...opts, maxBufferedBytes }, this.budgeted)
    return new ConfluentConsumer(this.kafka, opts, this.log, this.watch)
  }
  /** the lower-level consumer without a group (confluent-budget.ts, ReaderMode) */
  reader(opts: ReaderOptions): Consumer {
    const consumerOpts: ConsumerOptions & { maxBufferedBytes: number } = {
      // never joined (ReaderMode): names the reader in the library's and pullback's log lines
      groupId: `reader.${opts.name}`,
      topics: [opts.topic],
      fromBeginning: true,
      commit: false,
      maxBufferedBytes: opts.maxBufferedBytes ?? READER_BUFFERED_BYTES,
      ...(opts.maxBatchSize !== undefined ? { maxBatchSize: opts.maxBatchSize } : {}),
      maxWaitMs: opts.maxWaitMs ?? READER_FETCH_WAIT_MS,
      ...(opts.onError !== undefined ? { onError: opts.onError } : {}),
    }
    return new BudgetedConsumer(consumerOpts, this.budgeted, { name: opts.name, topic: opts.topic })
  }
  admin(): Admin {
    return new ConfluentAdmin(this.kafka, this.watch)
  }
}
