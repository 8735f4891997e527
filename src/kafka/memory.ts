/**
 * The embedded in-process bus: the KafkaTransport used when no broker is configured (laptop, demo,
 * unit tests). It keeps the semantics of src/kafka/types.ts so that code above src/kafka cannot
 * tell it from the real cluster:
 *
 * - topics have partitions; a keyed record goes to hash(key) mod partitions, so order per key holds;
 *   an unkeyed record goes round-robin. Producing to (or subscribing to) an unknown topic creates it
 *   with `defaultPartitions`, like a broker with auto.create.topics.enable.
 * - consumer groups own committed offsets; the partitions of a topic are spread over the group's
 *   members (round-robin by member id) and re-spread on every join/leave (a rebalance). A reader
 *   is the one member of a group the bus does not keep (nothing committed, nothing left behind).
 * - a handler gets one partition's batch in offset order; offsets are committed only after its
 *   promise resolves, and only if the member still owns the partition (as a commit after a
 *   rebalance fails in Kafka). A rejected batch is not committed and is delivered again from the
 *   committed offset after `redeliveryBackoffMs`.
 *
 * Limits (counted in `stats()`): each partition keeps at most `maxMessagesPerPartition` records.
 * Past the bound a `cleanup.policy=compact` topic keeps the newest record per key (compaction), any
 * other topic drops its oldest records (retention); a group whose committed offset falls below the
 * retained range resumes at the oldest retained record, as `auto.offset.reset=earliest` would.
 * Nothing here survives the process: durability across restarts needs the real broker.
 */
import { randomUUID } from 'node:crypto'
import type {
  Admin,
  AssignmentEvent,
  AssignmentStart,
  Batch,
  BatchHandler,
  ConsumedMessage,
  Consumer,
  ConsumerOptions,
  ConsumerStats,
  Headers,
  KafkaTransport,
  Producer,
  ProducerRecord,
  ReaderOptions,
  TopicPartition,
  TopicSpec,
} from './types.js'
import { withStarts } from './types.js'
import { PermanentError } from '../common/errors.js'

export interface MemoryBusOptions {
  /** partitions of auto-created topics; default 3 */
  defaultPartitions?: number
  /** retained records per partition; default 100_000 */
  maxMessagesPerPartition?: number
  /** delay before a failed batch is delivered again; default 100 ms */
  redeliveryBackoffMs?: number
  /** largest record value accepted, bytes; default 1 MiB (a larger one is a PermanentError, as on a broker) */
  maxMessageBytes?: number
}

export interface MemoryBusStats {
  topics: number
  records: number
  /** records removed by retention (non-compacted topics past the bound) */
  retentionDropped: number
  /** records removed by compaction */
  compacted: number
  rebalances: number
}

interface StoredRecord {
  offset: number
  key: Buffer | null
  value: Buffer | null
  headers: Headers
  timestamp: number
}

/**
 * `maxBufferedBytes` on the embedded bus: the records are in memory anyway, so the bound is on what
 * one batch hands the handler (keys and values), as the real client's buffers bound its batches.
 * The first record always goes, whatever its size, so that a large one cannot block its partition.
 */
function withinBytes(records: StoredRecord[], maxBytes: number | undefined): StoredRecord[] {
  if (maxBytes === undefined) return records
  let bytes = 0
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as StoredRecord
    bytes += (r.value?.length ?? 0) + (r.key?.length ?? 0)
    if (bytes > maxBytes && i > 0) return records.slice(0, i)
  }
  return records
}

class PartitionLog {
  /** offset of records[0] */
  base = 0
  next = 0
  records: StoredRecord[] = []
  get end(): number {
    return this.next
  }
  slice(from: number, max: number): StoredRecord[] {
    const start = Math.max(from, this.base)
    // records may have holes after compaction: find the first record with offset >= start
    let i = 0
    if (this.records.length > 0 && this.records[this.records.length - 1]!.offset - this.records[0]!.offset === this.records.length - 1) {
      i = start - this.records[0]!.offset
    } else {
      while (i < this.records.length && this.records[i]!.offset < start) i++
    }
    return this.records.slice(Math.max(0, i), Math.max(0, i) + max)
  }
}

interface TopicLog {
  name: string
  partitions: PartitionLog[]
  compact: boolean
  rr: number
}

interface GroupState {
  id: string
  /** "topic/partition" -> next offset to consume */
  committed: Map<string, number>
  members: MemoryConsumer[]
  generation: number
  /** members running their revoke listener: no member of the group fetches meanwhile (eager rebalance) */
  revoking: Set<MemoryConsumer>
}

const tp = (topic: string, partition: number) => `${topic}/${partition}`

/** FNV-1a 32-bit over the key bytes: stable across processes, so keyed placement is deterministic. */
export function partitionFor(key: Buffer, partitions: number): number {
  let h = 0x811c9dc5
  for (const b of key) {
    h ^= b
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h % partitions
}

const toBuf = (v: string | Buffer | null | undefined): Buffer | null =>
  v === null || v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v

export class MemoryBus implements KafkaTransport {
  readonly kind = 'embedded' as const
  private readonly topics = new Map<string, TopicLog>()
  private readonly groups = new Map<string, GroupState>()
  private readonly waiters = new Set<() => void>()
  private readonly opts: Required<MemoryBusOptions>
  private readonly counters = { retentionDropped: 0, compacted: 0, rebalances: 0 }

  constructor(opts: MemoryBusOptions = {}) {
    this.opts = {
      defaultPartitions: opts.defaultPartitions ?? 3,
      maxMessagesPerPartition: opts.maxMessagesPerPartition ?? 100_000,
      redeliveryBackoffMs: opts.redeliveryBackoffMs ?? 100,
      maxMessageBytes: opts.maxMessageBytes ?? 1024 * 1024,
    }
  }

  producer(): Producer {
    return {
      connect: () => Promise.resolve(),
      disconnect: () => Promise.resolve(),
      send: (topic, records) => {
        try {
          this.append(topic, records)
          return Promise.resolve()
        } catch (err) {
          return Promise.reject(err as Error)
        }
      },
    }
  }

  consumer(opts: ConsumerOptions): Consumer {
    return new MemoryConsumer(this, opts)
  }

  /** a member of a group of its own that the bus does not keep: nothing committed, nothing left behind */
  reader(opts: ReaderOptions): Consumer {
    const own: GroupState = { id: `reader.${opts.name}`, committed: new Map(), members: [], generation: 0, revoking: new Set() }
    return new MemoryConsumer(
      this,
      {
        groupId: own.id,
        topics: [opts.topic],
        fromBeginning: true,
        commit: false,
        ...(opts.maxBatchSize !== undefined ? { maxBatchSize: opts.maxBatchSize } : {}),
        ...(opts.onError !== undefined ? { onError: opts.onError } : {}),
      },
      own,
    )
  }

  admin(): Admin {
    return {
      connect: () => Promise.resolve(),
      disconnect: () => Promise.resolve(),
      ensureTopics: (specs: TopicSpec[]) => {
        for (const s of specs) this.topic(s.topic, s)
        return Promise.resolve()
      },
      listTopics: () => Promise.resolve([...this.topics.keys()]),
      partitionRanges: (topic: string) => Promise.resolve(new Map((this.topics.get(topic)?.partitions ?? []).map((p, i) => [i, { start: p.base, end: p.end }]))),
      deleteTopics: (names: string[]) => {
        for (const n of names) this.topics.delete(n)
        return Promise.resolve()
      },
    }
  }

  stats(): MemoryBusStats {
    let records = 0
    for (const t of this.topics.values()) for (const p of t.partitions) records += p.records.length
    return { topics: this.topics.size, records, ...this.counters }
  }

  // ---- internals shared with MemoryConsumer ----

  /** @internal */
  topic(name: string, spec?: TopicSpec): TopicLog {
    let t = this.topics.get(name)
    if (!t) {
      const n = Math.max(1, spec?.numPartitions ?? this.opts.defaultPartitions)
      t = {
        name,
        partitions: Array.from({ length: n }, () => new PartitionLog()),
        compact: (spec?.configs?.['cleanup.policy'] ?? '').split(',').includes('compact'),
        rr: 0,
      }
      this.topics.set(name, t)
    }
    return t
  }

  private append(topic: string, records: ProducerRecord[]): void {
    const t = this.topic(topic)
    for (const r of records) {
      const value = toBuf(r.value)
      if (value && value.length > this.opts.maxMessageBytes) {
        throw new PermanentError('KAFKA_RECORD_TOO_LARGE', `record of ${value.length} bytes exceeds ${this.opts.maxMessageBytes}`)
      }
      if (r.partition !== undefined && (r.partition < 0 || r.partition >= t.partitions.length)) {
        throw new PermanentError('KAFKA_UNKNOWN_PARTITION', `topic ${topic} has no partition ${r.partition}`)
      }
    }
    const now = Date.now()
    for (const r of records) {
      const key = toBuf(r.key)
      const p = r.partition ?? (key ? partitionFor(key, t.partitions.length) : t.rr++ % t.partitions.length)
      const log = t.partitions[p]!
      log.records.push({ offset: log.next++, key, value: toBuf(r.value), headers: { ...(r.headers ?? {}) }, timestamp: now })
      if (log.records.length > this.opts.maxMessagesPerPartition) this.trim(t, log)
    }
    this.wake()
  }

  private trim(t: TopicLog, log: PartitionLog): void {
    const before = log.records.length
    if (t.compact) {
      const last = new Map<string, number>()
      for (const r of log.records) if (r.key) last.set(r.key.toString('latin1'), r.offset)
      log.records = log.records.filter((r) => r.key !== null && last.get(r.key.toString('latin1')) === r.offset)
      this.counters.compacted += before - log.records.length
    }
    if (log.records.length > this.opts.maxMessagesPerPartition) {
      const drop = log.records.length - this.opts.maxMessagesPerPartition
      log.records.splice(0, drop)
      this.counters.retentionDropped += drop
    }
    log.base = log.records[0]?.offset ?? log.next
  }

  /** @internal */
  group(id: string): GroupState {
    let g = this.groups.get(id)
    if (!g) {
      g = { id, committed: new Map(), members: [], generation: 0, revoking: new Set() }
      this.groups.set(id, g)
    }
    return g
  }

  /** @internal re-spreads every subscribed topic's partitions over the group's members */
  rebalance(g: GroupState): void {
    g.generation++
    this.counters.rebalances++
    const members = [...g.members].sort((a, b) => (a.memberId < b.memberId ? -1 : 1))
    for (const m of members) {
      // the member announces the change (revoke, then assign) from its own loop before fetching again
      m.revokePending ??= m.listenedAssignment
      m.assignment = []
      if (m.revokePending.length > 0 && m.hasListener) g.revoking.add(m)
    }
    const topics = new Set(members.flatMap((m) => m.topics))
    for (const name of topics) {
      const subscribers = members.filter((m) => m.topics.includes(name))
      const t = this.topic(name)
      t.partitions.forEach((_, p) => subscribers[p % subscribers.length]!.assignment.push({ topic: name, partition: p }))
    }
    for (const m of members) m.generation = g.generation
    this.wake()
  }

  /** @internal resolves on the next append/rebalance/stop or after `ms` */
  waitForWork(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.waiters.add(done)
    })
  }

  /** @internal */
  wake(): void {
    for (const w of [...this.waiters]) w()
  }

  /** @internal */
  get redeliveryBackoffMs(): number {
    return this.opts.redeliveryBackoffMs
  }
}

class MemoryConsumer implements Consumer {
  readonly memberId = randomUUID()
  readonly topics: string[]
  assignment: TopicPartition[] = []
  generation = 0
  /** what the listener was last told is assigned */
  listenedAssignment: TopicPartition[] = []
  /** set by a rebalance: the partitions to announce as revoked before the new assignment */
  revokePending: TopicPartition[] | undefined
  /** the generation whose assignment the listener was told; positions are reset with it */
  private listenedGeneration = 0
  /** next offset per partition since the last assignment (commit: false keeps no group offsets) */
  private readonly positions = new Map<string, number>()
  private running = false
  private loop: Promise<void> | undefined
  private readonly group: GroupState
  private readonly maxBatch: number
  private readonly st: ConsumerStats = { lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: false }
  /** partition -> time before which a failed batch is not redelivered */
  private readonly backoffUntil = new Map<string, number>()

  constructor(
    private readonly bus: MemoryBus,
    private readonly opts: ConsumerOptions,
    /** a reader's own group (MemoryBus.reader); else the bus's group of `opts.groupId` */
    group?: GroupState,
  ) {
    this.topics = [...opts.topics]
    this.group = group ?? bus.group(opts.groupId)
    this.maxBatch = Math.max(1, opts.maxBatchSize ?? 500)
  }

  get hasListener(): boolean {
    return this.opts.onAssignment !== undefined
  }

  start(handler: BatchHandler): Promise<void> {
    if (this.running) return Promise.resolve()
    this.running = true
    for (const t of this.topics) this.bus.topic(t)
    this.group.members.push(this)
    this.bus.rebalance(this.group)
    this.st.connected = true
    this.loop = this.run(handler)
    return Promise.resolve()
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.bus.wake()
    await this.loop
    // a clean leave revokes what this member held before the others get it
    if (this.listenedAssignment.length > 0) await this.announce({ kind: 'revoked', partitions: this.listenedAssignment, lost: false })
    this.listenedAssignment = []
    this.group.revoking.delete(this)
    this.group.members = this.group.members.filter((m) => m !== this)
    this.bus.rebalance(this.group)
    this.st.connected = false
  }

  /**
   * Tells the listener about a rebalance since the last call: revoked (while the group waits), then
   * assigned once no member is still revoking. Answers false while the member must not fetch.
   */
  private async syncAssignment(): Promise<boolean> {
    if (this.revokePending !== undefined) {
      const revoked = this.revokePending
      this.revokePending = undefined
      if (revoked.length > 0) await this.announce({ kind: 'revoked', partitions: revoked, lost: false })
      this.group.revoking.delete(this)
      this.bus.wake()
    }
    if (this.group.revoking.size > 0) return false
    if (this.listenedGeneration !== this.generation) {
      this.listenedGeneration = this.generation
      this.positions.clear()
      this.listenedAssignment = [...this.assignment]
      const answer = await this.announce({ kind: 'assigned', partitions: [...this.assignment] })
      // the listener's starts, as librdkafka takes them: one outside the retained range is not taken
      for (const st of withStarts(this.assignment, answer) ?? []) {
        const log = this.bus.topic(st.topic).partitions[st.partition]
        if (st.offset !== undefined && log !== undefined && st.offset >= log.base && st.offset <= log.end) this.positions.set(tp(st.topic, st.partition), st.offset)
      }
      // another rebalance while the listener ran: announce that one first
      if (this.listenedGeneration !== this.generation || this.revokePending !== undefined) return false
    }
    return true
  }

  private async announce(ev: AssignmentEvent): Promise<AssignmentStart | void> {
    try {
      return await this.opts.onAssignment?.(ev)
    } catch (err) {
      try {
        this.opts.onError?.(err)
      } catch {
        // onError must not break the loop
      }
    }
  }

  stats(): ConsumerStats {
    return { ...this.st }
  }

  private position(topic: string, partition: number): number {
    const log = this.bus.topic(topic).partitions[partition]!
    const local = this.positions.get(tp(topic, partition))
    if (local !== undefined) return Math.max(local, log.base)
    const committed = this.opts.commit === false ? undefined : this.group.committed.get(tp(topic, partition))
    if (committed === undefined) return this.opts.fromBeginning === false ? log.end : log.base
    return Math.max(committed, log.base)
  }

  private async run(handler: BatchHandler): Promise<void> {
    while (this.running) {
      let delivered = false
      let lag = 0
      if (!(await this.syncAssignment())) {
        if (this.running) await this.bus.waitForWork(20)
        continue
      }
      const now = Date.now()
      for (const { topic, partition } of [...this.assignment]) {
        if (!this.running) break
        const key = tp(topic, partition)
        const log = this.bus.topic(topic).partitions[partition]!
        const pos = this.position(topic, partition)
        lag += Math.max(0, log.end - pos)
        if (pos >= log.end || (this.backoffUntil.get(key) ?? 0) > now) continue
        const records = withinBytes(log.slice(pos, this.maxBatch), this.opts.maxBufferedBytes)
        if (records.length === 0) {
          // compaction left a hole up to the end
          this.positions.set(key, log.end)
          if (this.opts.commit !== false) this.group.committed.set(key, log.end)
          continue
        }
        const next = records[records.length - 1]!.offset + 1
        const batch: Batch = { topic, partition, messages: records.map((r) => toMessage(topic, partition, r)), lag: Math.max(0, log.end - next) }
        const gen = this.generation
        delivered = true
        try {
          await handler(batch)
          this.st.batches++
          this.st.messages += records.length
          this.st.lastBatchMs = Date.now()
          // a commit after losing the partition is refused, as in Kafka: the new owner redelivers
          if (gen === this.generation && this.owns(topic, partition)) {
            this.positions.set(key, next)
            if (this.opts.commit !== false) this.group.committed.set(key, next)
          }
        } catch (err) {
          this.st.handlerFailures++
          this.backoffUntil.set(key, Date.now() + this.bus.redeliveryBackoffMs)
          try {
            this.opts.onError?.(err)
          } catch {
            // onError must not break the loop
          }
        }
      }
      this.st.lag = lag
      this.st.lastPollMs = Date.now()
      if (!delivered && this.running) await this.bus.waitForWork(Math.min(100, this.bus.redeliveryBackoffMs))
    }
  }

  private owns(topic: string, partition: number): boolean {
    return this.assignment.some((a) => a.topic === topic && a.partition === partition)
  }
}

function toMessage(topic: string, partition: number, r: StoredRecord): ConsumedMessage {
  return { topic, partition, offset: String(r.offset), key: r.key, value: r.value, headers: { ...r.headers }, timestamp: r.timestamp }
}

/** One bus per process is the embedded default; tests create their own. */
let shared: MemoryBus | undefined
export function sharedMemoryBus(): MemoryBus {
  shared ??= new MemoryBus()
  return shared
}

/** The process-wide embedded bus (alias used by createTransport). */
export const embeddedBus = sharedMemoryBus
