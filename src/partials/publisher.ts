/**
 * The ingest node's side of the broker path: each PartialBatch an IngestNode emits becomes records on
 * the partials topic (`kafka.topics.partials`, README "Broker path"):
 *
 * - one DATA record per service of the batch, key `namespace/service`, holding that service's
 *   partials, to partition FNV-1a32(key) mod `partitions` (explicit, so the embedded bus and the real
 *   broker place it alike, and the decider state topic puts the service's records on the same
 *   partition number). A data record promises nothing: its `watermarkMs` is -Infinity.
 * - then one HEARTBEAT record (no partials, key `~heartbeat`) to EVERY partition, carrying the node's
 *   clock, watermark and `final`: Kafka keeps order per partition, so a heartbeat read on a partition
 *   comes after every data record the node sent there before it, and a decider owning any subset of
 *   partitions hears every node.
 *
 * Sending: a FIFO queue of records, one produce call in flight at a time (order per partition is the
 * queue's order). A retryable failure keeps the records at the head and backs off (250 ms .. 10 s);
 * a permanent one (a record larger than the broker takes) drops that call's records, counted. At
 * `maxQueue` waiting records a new batch is refused whole and counted (`droppedBatches`,
 * `droppedPartials`): a node cut off from the broker loses data, never memory; its later heartbeats
 * still move the deciders' watermark once the broker is back, and the decider counts nothing late
 * for what was never sent.
 *
 * Leaving (`leave`, the sidecar's graceful shutdown): the node's last partials, then a LEAVING
 * heartbeat on every partition; deciders stop waiting for the node `decider.leaveGrace` after it
 * instead of `decider.nodeTimeout` (src/decider/README.md "Nodes leaving").
 */
import { classify, errorMessage } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import { sleep, within } from '../common/sleep.js'
import { serviceId } from '../normalize/observations.js'
import { partitionFor } from '../kafka/memory.js'
import type { Producer, ProducerRecord } from '../kafka/types.js'
import { PRODUCER_CLOSE_MS } from '../kafka/types.js'
import { encodeBatch } from './codec.js'
import type { PartialBatch, SeriesPartial } from './types.js'

export const HEARTBEAT_KEY = '~heartbeat'

/** The partition of a service's partials (and of its decider state records). */
export function servicePartition(namespace: string, service: string, partitions: number): number {
  return partitionFor(Buffer.from(serviceId(namespace, service)), partitions)
}

/** The records of one batch, in send order: data records per service, then a heartbeat per partition. */
export function batchRecords(batch: PartialBatch, partitions: number): ProducerRecord[] {
  const bySvc = new Map<string, SeriesPartial[]>()
  for (const p of batch.partials) {
    const sid = serviceId(p.key.namespace, p.key.service)
    const list = bySvc.get(sid)
    if (list === undefined) bySvc.set(sid, [p])
    else list.push(p)
  }
  const out: ProducerRecord[] = []
  for (const [sid, partials] of bySvc) {
    out.push({
      key: sid,
      value: encodeBatch({ node: batch.node, nowMs: batch.nowMs, watermarkMs: -Infinity, final: false, partials }),
      partition: partitionFor(Buffer.from(sid), partitions),
    })
  }
  const hb = encodeBatch({ node: batch.node, nowMs: batch.nowMs, watermarkMs: batch.watermarkMs, final: batch.final, leaving: batch.leaving === true, partials: [] })
  for (let p = 0; p < partitions; p++) out.push({ key: HEARTBEAT_KEY, value: hb, partition: p })
  return out
}

export interface PartialsPublisherOptions {
  producer: Producer
  topic: string
  /** the topic's partition count (decider.partitions) */
  partitions: number
  logger: Logger
  /** records waiting at most; default 100,000 */
  maxQueue?: number
  /** records per produce call; default 1000 */
  maxBatch?: number
}

export interface PartialsPublisherStats {
  batches: number
  partials: number
  dataRecords: number
  heartbeats: number
  /** encoded bytes of the data records / of the heartbeats sent */
  dataBytes: number
  heartbeatBytes: number
  queued: number
  droppedBatches: number
  droppedPartials: number
  sendFailures: number
  /** records dropped after a permanent produce failure */
  rejected: number
  /** leave announcements queued (0 or 1 per process) */
  leaves: number
  /** the newest watermark a live (not final, not leaving) batch announced, queued, not necessarily sent (what a leave repeats), unix ms; -Infinity before the first */
  watermarkMs: number
}

export type PartialsFlushOutcome = { kind: 'flushed' } | { kind: 'timeout'; pending: number }

export class PartialsPublisher implements Component {
  readonly name = 'partials'
  private readonly queue: ProducerRecord[] = []
  private head = 0
  private draining: Promise<void> | undefined
  private closed = false
  private failStreak = 0
  private readonly abort = new AbortController()
  private readonly maxQueue: number
  private readonly maxBatch: number
  private readonly st: PartialsPublisherStats = {
    batches: 0,
    partials: 0,
    dataRecords: 0,
    heartbeats: 0,
    dataBytes: 0,
    heartbeatBytes: 0,
    queued: 0,
    droppedBatches: 0,
    droppedPartials: 0,
    sendFailures: 0,
    rejected: 0,
    leaves: 0,
    watermarkMs: -Infinity,
  }

  constructor(private readonly o: PartialsPublisherOptions) {
    this.maxQueue = o.maxQueue ?? 100_000
    this.maxBatch = o.maxBatch ?? 1000
  }

  async start(): Promise<void> {
    await this.o.producer.connect()
  }

  stats(): PartialsPublisherStats {
    return { ...this.st, queued: this.queue.length - this.head }
  }

  /**
   * Makes the node known on every partition before its first data (a heartbeat that promises
   * nothing): a decider takes a partition's watermark over the nodes it has heard there, so a node
   * whose first records reach a partition after others' heartbeats would find its buckets judged.
   */
  hello(node: string): void {
    this.publish({ node, nowMs: -Infinity, watermarkMs: -Infinity, final: false, partials: [] })
  }

  /** Queues one batch's records (never waits); a batch that does not fit is refused whole and counted. */
  publish(batch: PartialBatch): void {
    if (this.closed || this.queue.length - this.head + batch.partials.length + this.o.partitions > this.maxQueue) {
      this.st.droppedBatches += 1
      this.st.droppedPartials += batch.partials.length
      return
    }
    this.st.batches += 1
    this.st.partials += batch.partials.length
    if (!batch.final && batch.leaving !== true && batch.watermarkMs > this.st.watermarkMs) this.st.watermarkMs = batch.watermarkMs
    for (const r of batchRecords(batch, this.o.partitions)) this.queue.push(r)
    this.kick()
  }

  /**
   * The node is stopping and may come back under the same name (SIGTERM): queues `last`'s partials
   * (the aggregator's flush of its open buckets) and a LEAVING heartbeat on every partition, after
   * everything queued before. The heartbeat repeats the newest live watermark announced, never
   * `last`'s (a flush announces its clock): the pods' exporters retry into the restarted node with
   * telemetry up to `engine.lateness` old, which only the live promise leaves room for. Call it
   * before `shutdown()`, which then sends it within its flush timeout; a leave that does not fit
   * the queue is refused like any batch (the deciders then fall back to `decider.nodeTimeout`).
   */
  leave(last: PartialBatch): void {
    const before = this.st.droppedBatches
    this.publish({ node: last.node, nowMs: last.nowMs, watermarkMs: this.st.watermarkMs, final: false, leaving: true, partials: last.partials })
    if (this.st.droppedBatches === before) this.st.leaves += 1
  }

  /** Resolves once everything queued so far is acknowledged, or after `timeoutMs`. Never rejects. */
  async flush(timeoutMs: number): Promise<PartialsFlushOutcome> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      this.kick()
      const pending = this.queue.length - this.head
      if (pending === 0 && this.draining === undefined) return { kind: 'flushed' }
      if (Date.now() >= deadline) return { kind: 'timeout', pending }
      await sleep(10)
    }
  }

  /** Sends what is queued within `flushTimeoutMs` (default 3 s), then closes the producer. */
  async shutdown(flushTimeoutMs = 3000): Promise<void> {
    if (this.closed) return
    const f = await this.flush(flushTimeoutMs)
    if (f.kind === 'timeout') this.o.logger.warn({ pending: f.pending, topic: this.o.topic }, 'partials not fully sent at shutdown')
    this.closed = true
    this.abort.abort()
    await this.draining
    await within(this.o.producer.disconnect(), PRODUCER_CLOSE_MS)
  }

  private kick(): void {
    if (this.draining !== undefined || this.closed || this.queue.length === this.head) return
    this.draining = this.drain().finally(() => {
      this.draining = undefined
    })
  }

  /** The background sender. Never rejects: failures are classified, counted, retried or dropped. */
  private async drain(): Promise<void> {
    while (this.queue.length > this.head && !this.closed) {
      const end = Math.min(this.queue.length, this.head + this.maxBatch)
      const records = this.queue.slice(this.head, end)
      try {
        await this.o.producer.send(this.o.topic, records)
        this.sent(records)
        this.head = end
        if (this.failStreak > 0) {
          this.o.logger.info({ topic: this.o.topic, failures: this.failStreak }, 'partials sending resumed')
          this.failStreak = 0
        }
      } catch (err) {
        if (classify(err) === 'permanent') {
          this.st.rejected += records.length
          this.head = end
          this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic, records: records.length }, 'partials refused by the broker; dropped')
        } else {
          this.st.sendFailures += 1
          this.failStreak += 1
          if (this.failStreak === 1) this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic }, 'partials sending failing; retrying')
          await sleep(Math.min(10_000, 250 * 2 ** Math.min(this.failStreak - 1, 6)), this.abort.signal)
        }
      }
      // compact the array once the sent prefix dominates
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head)
        this.head = 0
      }
    }
  }

  private sent(records: readonly ProducerRecord[]): void {
    for (const r of records) {
      const n = r.value === null ? 0 : r.value.length
      if (r.key === HEARTBEAT_KEY) {
        this.st.heartbeats += 1
        this.st.heartbeatBytes += n
      } else {
        this.st.dataRecords += 1
        this.st.dataBytes += n
      }
    }
  }
}
