/**
 * pullback's own Kafka interface. Everything above src/kafka depends on this, never on a client
 * library, so the transport can be the real broker (confluent.ts, librdkafka through its
 * KafkaJS-compatible API, and confluent-budget.ts, its lower-level consumer, for consumers with a
 * byte budget) or the in-process embedded bus (memory.ts) with identical semantics:
 *
 * - Producers are idempotent with acks=all. `send` resolves only when the broker acknowledged every
 *   record; it rejects with a RetryableError (broker unreachable, timeout) or a PermanentError
 *   (record too large, topic authorization). Order per key is kept.
 * - Consumers belong to a group. The handler receives a batch of one partition's messages in offset
 *   order; offsets up to and including the last message are committed only after the handler's
 *   promise resolves. If it rejects, nothing in the batch is committed and the batch is delivered
 *   again (after a backoff) - the handler must be idempotent or tolerate redelivery.
 */
export type Headers = Record<string, string>

export interface ProducerRecord {
  key?: string | Buffer | null
  /** null is a tombstone: on a compacted topic it deletes the key */
  value: string | Buffer | null
  headers?: Headers
  /** partition override; normally chosen from the key */
  partition?: number
}

export interface ConsumedMessage {
  topic: string
  partition: number
  /** decimal string, as Kafka offsets are int64 */
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers: Headers
  /** unix ms of the record's timestamp */
  timestamp: number
}

export interface Batch {
  topic: string
  partition: number
  messages: ConsumedMessage[]
  /** messages of the partition after this batch when it was fetched (0: this batch reached its end), when known */
  lag?: number
}

export interface TopicPartition {
  topic: string
  partition: number
}

/**
 * A change of a group member's partitions. `revoked` is delivered before the partitions go to
 * another member (eager rebalance: every partition is revoked, then the new set assigned); the
 * consumer awaits the listener before it fetches again, so a revoked owner can write what it must
 * (its state) before the new owner reads it. `lost`: the partitions were taken without a revoke
 * (session timeout): someone else may already own them.
 */
export type AssignmentEvent =
  | { kind: 'assigned'; partitions: TopicPartition[] }
  | { kind: 'revoked'; partitions: TopicPartition[]; lost: boolean }

/**
 * Where assigned partitions start, as the listener of an `assigned` event may answer: the offset
 * each listed partition is read from (a partition not listed starts at its committed offset, else
 * as `fromBeginning` says). A listener that already knows the starts (a reader of a group that never
 * commits asks the broker for the partitions' first retained offsets anyway) spares the client two
 * lookups per partition, the committed-offset fetch and the offset reset, each of which the broker
 * answers only after the fetch it holds on that connection (`maxWaitMs`). An offset outside the
 * partition's retained range starts as `fromBeginning` says.
 */
export interface AssignmentStart {
  starts: readonly (TopicPartition & { offset: number })[]
}

/**
 * The assignment with the listener's answer applied, as both transports take it (librdkafka's
 * rebalance callback hands it back to the library; the embedded bus sets its positions from it):
 * `partitions` with the listener's start offsets where it gave one (a partition without one: no offset, the library's default start),
 * or undefined when it gave none (the library assigns as it would without a callback). A start for
 * a partition not in the assignment is ignored; a negative or non-integer one too (librdkafka reads
 * negative offsets as its logical ones: beginning, end, stored).
 */
export function withStarts(partitions: readonly TopicPartition[], answer: AssignmentStart | void): { topic: string; partition: number; offset?: number }[] | undefined {
  if (answer === undefined || answer.starts.length === 0) return undefined
  const at = new Map<string, number>()
  for (const s of answer.starts) if (Number.isSafeInteger(s.offset) && s.offset >= 0) at.set(`${s.topic}/${s.partition}`, s.offset)
  if (at.size === 0) return undefined
  return partitions.map((p) => {
    const offset = at.get(`${p.topic}/${p.partition}`)
    return offset === undefined ? { topic: p.topic, partition: p.partition } : { topic: p.topic, partition: p.partition, offset }
  })
}

/** Must not throw (a throw is reported to `onError` and the rebalance goes on, every partition at its default start). */
export type AssignmentListener = (ev: AssignmentEvent) => Promise<AssignmentStart | void> | AssignmentStart | void

export type BatchHandler = (batch: Batch) => Promise<void>

export interface Producer {
  connect(): Promise<void>
  send(topic: string, records: ProducerRecord[]): Promise<void>
  /** idempotent; may not settle while the broker is unreachable: a shutdown path bounds it (PRODUCER_CLOSE_MS) */
  disconnect(): Promise<void>
}

/** how long a component's producer close may take at shutdown after its own flush gave up or finished */
export const PRODUCER_CLOSE_MS = 1000

export interface ConsumerOptions {
  groupId: string
  topics: string[]
  /** where a group with no committed offset starts; default 'earliest' */
  fromBeginning?: boolean
  /** upper bound on messages per handler call; default 500 */
  maxBatchSize?: number
  /**
   * upper bound on the bytes of fetched records the client holds for this consumer: pre-fetched,
   * in flight and in the batch being handled (src/kafka/buffer-limits.ts says how it is shared);
   * one record larger than the bound is still delivered, alone. Unset: the client's defaults
   * (librdkafka: up to 64 MiB queued plus 50 MiB per fetch). With a budget and no `onAssignment`,
   * the real-broker transport reads through a consumer that sizes each fetch in bytes
   * (src/kafka/confluent-budget.ts); its commits are coalesced (at most 100 ms late while records
   * keep coming, synchronous at stop), so a crash may redeliver up to 100 ms more.
   */
  maxBufferedBytes?: number
  /**
   * how long the broker may hold a fetch while no record arrives (librdkafka's `fetch.wait.max.ms`,
   * default 500). A broker answers one connection's requests in order, so the consumer's other
   * requests to that broker wait behind a held fetch: the offset lookups of newly assigned
   * partitions with no committed offset wait up to one hold, and their first fetch up to another
   * (the decider's refill measured 1.0 s late this way, DeciderService). Lower: those waits
   * shorter, an idle consumer's fetches more frequent. The embedded bus ignores it.
   */
  maxWaitMs?: number
  /** called for errors the consumer loop cannot hand to the handler (never throws out of the loop) */
  onError?: (err: unknown) => void
  /** partition assignment changes of this member, awaited before fetching resumes */
  onAssignment?: AssignmentListener
  /**
   * default true. false: offsets are never committed; every (re)assignment starts from the
   * beginning of retention (`fromBeginning`) or the end. Redelivery after a failed handler is kept.
   */
  commit?: boolean
}

/**
 * A reader: every partition of one topic from its beginning, without a consumer group (the client
 * assigns the partitions itself; librdkafka `assign`, never `subscribe`). For reading a topic to its
 * end and tailing it (the engine state changelog, the actuator's compacted tables, the audit log),
 * where a group of its own per read cost twice on a user's cluster: a group formed anew waits the
 * broker's `group.initial.rebalance.delay.ms` (3 s by default) for its first assignment, and a
 * throwaway group stays listed (in `kafka-consumer-groups --list`, in every lag exporter) until
 * `offsets.retention.minutes` (7 days by default) after its last commit. A reader forms no group,
 * commits nothing and is never rebalanced. It waits for the topic to exist (a reader started before
 * the topic's first record sees it once the broker's metadata lists it) and reads the partitions
 * the topic has then; partitions added later are not read. Delivery is that of a consumer: one
 * partition's messages in offset order per handler call, a rejected batch delivered again.
 */
export interface ReaderOptions {
  /** names the reader in logs and errors (no group of this name is formed) */
  name: string
  topic: string
  /** upper bound on messages per handler call; default 500 */
  maxBatchSize?: number
  /** as `ConsumerOptions.maxBufferedBytes`; default READER_BUFFERED_BYTES (a reader is never unbounded) */
  maxBufferedBytes?: number
  /** as `ConsumerOptions.maxWaitMs`; a real-broker reader defaults to 100 ms (confluent-budget.ts READER_FETCH_WAIT_MS) */
  maxWaitMs?: number
  onError?: (err: unknown) => void
}

/** a reader's byte budget when its options set none: what it fetches and holds at once */
export const READER_BUFFERED_BYTES = 8 * 1024 * 1024

export interface ConsumerStats {
  /** unix ms of the last successful poll (with or without messages); a stalled consumer stops moving it */
  lastPollMs: number
  /** unix ms of the last handled batch */
  lastBatchMs: number
  batches: number
  messages: number
  handlerFailures: number
  /** consumer lag in messages summed over assigned partitions, when known */
  lag: number | undefined
  connected: boolean
}

export interface Consumer {
  /** joins the group (a reader: connects) and starts delivering to `handler`; resolves once subscribed */
  start(handler: BatchHandler): Promise<void>
  /** commits what was handled, leaves the group (a reader: disconnects); idempotent */
  stop(): Promise<void>
  stats(): ConsumerStats
}

/** A partition's retained offsets: `start` <= offset < `end`. */
export interface PartitionRange {
  start: number
  end: number
}

export interface TopicSpec {
  topic: string
  numPartitions?: number
  replicationFactor?: number
  /** e.g. { 'cleanup.policy': 'compact' } */
  configs?: Record<string, string>
}

export interface Admin {
  connect(): Promise<void>
  /** creates the topics that do not exist yet; existing ones are left alone */
  ensureTopics(topics: TopicSpec[]): Promise<void>
  listTopics(): Promise<string[]>
  /**
   * Each partition of `topic` as the broker answers now: `start`, its first retained offset (its low
   * watermark), and `end`, its high watermark (the offset the next record will get); a partition
   * that never held a record is 0..0. Rejects with a RetryableError or PermanentError, as the other
   * operations.
   */
  partitionRanges(topic: string): Promise<Map<number, PartitionRange>>
  deleteTopics(topics: string[]): Promise<void>
  disconnect(): Promise<void>
}

/** The transport: a real cluster or the embedded bus. */
export interface KafkaTransport {
  readonly kind: 'kafka' | 'embedded'
  producer(): Producer
  consumer(opts: ConsumerOptions): Consumer
  /** a group-less reader of one topic from its beginning (ReaderOptions) */
  reader(opts: ReaderOptions): Consumer
  admin(): Admin
}
