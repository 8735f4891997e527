/**
 * The decider role on a topic (README "Broker path"): a member of the consumer group
 * `<kafka.groupPrefix>.decider` on `kafka.topics.partials`, merging the partials of every ingest node
 * for the partitions it owns into its own Pipeline and judging on the per-partition watermark.
 *
 * Ownership and failover: Kafka's group protocol decides who owns which partition (no membership of
 * our own). The group never commits offsets. On every assignment the member builds a new engine for
 * exactly the partitions it now owns:
 *   1. restores the engine state records of those partitions from the decider state topic (a
 *      StateStore of scope `decider`; a record's partition is its service's partials partition),
 *   2. re-reads the partitions from the start of retention (their first offsets, given to the
 *      consumer as the assignment's starts: no offset lookup behind a held fetch): runs (records up to a heartbeat) produced
 *      before the assignment (broker timestamp) are recorded without judging, so the windows hold
 *      what the previous owner's held,
 *   3. the refill ends, and the engine judges once at the watermark reached, at whichever comes
 *      first: a batch that reaches the partition's end as the broker reported it at the assignment
 *      (its high watermark, queried once; records produced while the refill runs do not move it),
 *      a batch fetched with lag 0 (the end when it was fetched: the fallback when the query failed
 *      or timed out), or a run produced after the assignment. From then on the engine ticks as
 *      usual. (Producer and decider clocks are compared for the last: a skew of s seconds judges
 *      or skips s seconds of history.) A partition with no records holds nothing to refill.
 * On revoke it writes its state (persistNow + flush) before the library hands the partitions on
 * (the client awaits the listener), so the next owner restores what it decided. Killed without a
 * revoke, the next owner restores the state of at most `runtime.state.minWriteInterval` earlier, and
 * re-decides what was lost under the same deterministic ids (src/engine/ids.ts hashes telemetry
 * times carried by the partials), which the actuator executes once.
 *
 * Deployment events (`deployment()`) are kept for services on owned partitions only; others are
 * counted (`eventsNotOwned`). Nothing throws out of the consumer's handler: undecodable records are
 * counted and skipped.
 */
import { classify, errorMessage } from '../common/errors.js'
import { sleep } from '../common/sleep.js'
import type { Clock } from '../common/clock.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { PullbackConfig } from '../config/schema.js'
import type { DeploymentEvent } from '../engine/events.js'
import type { StoredRecord } from '../engine/persist.js'
import type { AssignmentStart, Batch, Consumer, ConsumerStats, KafkaTransport, PartitionRange } from '../kafka/types.js'
import { partitionFor } from '../kafka/memory.js'
import { decodeBatch } from '../partials/codec.js'
import type { PartialBatch } from '../partials/types.js'
import { servicePartition } from '../partials/publisher.js'
import { Pipeline, type TickResult } from '../runtime/pipeline.js'
import { StateStore } from '../state/store.js'
import { Decider, type DeciderStats } from './decider.js'
import { PartitionAligner, type Run } from './align.js'
import { DECIDER_STATE_SCOPE, deciderGroup, deciderLeaveGrace, deciderStateTopic } from './config.js'

export interface DeciderServiceOptions {
  config: PullbackConfig
  transport: KafkaTransport
  logger: Logger
  /** every tick of the current engine; verdicts are acted on here (published, or replay's actuator stand-in) */
  onTick: (res: TickResult, now: number, watermark: number, pipeline: Pipeline) => void
  /** persist and restore the engine state on the decider state topic; default `runtime.state.enabled` */
  state?: boolean
  /** live: the wall clock bounds telemetry time in the store (signals.maxClockSkew) */
  clock?: Clock
  /** consumer group override (tests); default `<groupPrefix>.decider` */
  groupId?: string
  /** replay over a topic: judge the end once every node announced the end of its stream */
  finishWhenAllFinal?: boolean
  /** the StateStore's read-to-end stall bound (tests) */
  stateStallMs?: number
}

export interface DeciderServiceStats {
  assignments: number
  revokes: number
  /** partitions owned now */
  partitions: number[]
  /** true while the current owner refills its windows */
  refilling: boolean
  /** assignment to the first judged run, ms (the refill) */
  lastRefillMs: number | undefined
  /** state records restored at the last assignment / skipped as another partition's */
  restoredRecords: number
  foreignRecords: number
  records: number
  /** runs (records up to a heartbeat) produced before their partition was assigned: recorded, not judged */
  refilledRuns: number
  /** assignments whose partition ends the broker did not give within ENDS_TIMEOUT_MS (refill ended by lag 0 instead) */
  endsUnknown: number
  undecodable: number
  /** records delivered for a partition this member no longer owns (between revoke and assign) */
  notOwned: number
  eventsNotOwned: number
  decider: DeciderStats | undefined
  /** runs buffered to align the owned partitions / handed on past the bound (README "Alignment") */
  aligned: number
  alignOverflow: number
  consumer: ConsumerStats | undefined
}

interface Incarnation {
  partitions: Set<number>
  pipeline: Pipeline
  decider: Decider
  /** no run was judged yet */
  refilling: boolean
  assignedAtMs: number
  /** partitions read to their end since the assignment: every later run of theirs is judged */
  caughtUp: Set<number>
  /** the partials partitions' ends at the assignment, by partition (undefined: not known, see ENDS_TIMEOUT_MS) */
  ends: Map<number, number> | undefined
  aligner: PartitionAligner
}

/**
 * How long an assignment waits for the broker's partition ends before refilling without them (the
 * consumer fetches nothing meanwhile: the listener is awaited). Without them the refill still ends,
 * at a batch fetched with lag 0 or at the first run produced after the assignment: later, never wrong.
 */
export const ENDS_TIMEOUT_MS = 5_000

/**
 * How long the broker may hold the decider's fetch while its partitions are quiet (librdkafka's
 * `fetch.wait.max.ms`, default 500). Partitions new to this member start with an offset lookup
 * (no committed offset: the refill reads from the beginning) that the broker answers only after
 * the held fetch on the same connection, and their first fetch waits for the next one: with the
 * default, a failover's refill ended 1.0 s late whenever the heir's other partitions were quiet
 * (bench/failover.ts, about 2 runs in 5). 100 ms bounds that at about 0.2 s for 10 fetches a second
 * by an idle decider; records that arrive end a held fetch at once either way. The assignment now
 * names the partitions' start offsets (assign), so no lookup waits; a first fetch still waits for
 * the one held.
 */
export const DECIDER_FETCH_WAIT_MS = 100

export class DeciderService implements Component {
  readonly name = 'decider'
  readonly state: StateStore | undefined
  private consumer: Consumer | undefined
  private current: Incarnation | undefined
  private readonly partitionCount: number
  private readonly st = {
    assignments: 0,
    revokes: 0,
    lastRefillMs: undefined as number | undefined,
    restoredRecords: 0,
    foreignRecords: 0,
    records: 0,
    refilledRuns: 0,
    endsUnknown: 0,
    undecodable: 0,
    notOwned: 0,
    eventsNotOwned: 0,
  }

  constructor(private readonly o: DeciderServiceOptions) {
    const cfg = o.config
    this.partitionCount = cfg.decider.partitions
    if (o.state ?? cfg.runtime.state.enabled) {
      this.state = new StateStore({
        transport: o.transport,
        config: { ...cfg.runtime.state, partitions: cfg.decider.partitions },
        topic: deciderStateTopic(cfg.decider, cfg.kafka.groupPrefix),
        scope: DECIDER_STATE_SCOPE,
        groupPrefix: cfg.kafka.groupPrefix,
        logger: o.logger.child({ component: 'decider-state' }),
        ...(o.stateStallMs !== undefined ? { stallMs: o.stateStallMs } : {}),
      })
    }
  }

  async start(): Promise<void> {
    const cfg = this.o.config
    const admin = this.o.transport.admin()
    try {
      await admin.connect()
      await admin.ensureTopics([partialsTopicSpec(cfg)])
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
    await this.state?.start()
    this.consumer = this.o.transport.consumer({
      groupId: this.o.groupId ?? deciderGroup(cfg.kafka.groupPrefix),
      topics: [cfg.kafka.topics.partials],
      fromBeginning: true,
      commit: false,
      maxBatchSize: 1000,
      maxWaitMs: DECIDER_FETCH_WAIT_MS,
      onAssignment: async (ev) => {
        const mine = ev.partitions.filter((p) => p.topic === cfg.kafka.topics.partials).map((p) => p.partition)
        if (ev.kind === 'assigned') return this.assign(mine)
        await this.revoke(ev.lost)
        return undefined
      },
      onError: (err) => this.o.logger.debug({ err: errorMessage(err) }, 'decider consumer error'),
    })
    await this.consumer.start((b) => this.handle(b))
    this.o.logger.info({ topic: cfg.kafka.topics.partials, group: this.o.groupId ?? deciderGroup(cfg.kafka.groupPrefix), partitions: this.partitionCount }, 'decider started')
  }

  /** A deployment event: handed to the engine when its service's partition is owned, else counted. */
  deployment(ev: DeploymentEvent): void {
    const cur = this.current
    if (cur === undefined || !cur.partitions.has(servicePartition(ev.namespace, ev.service, this.partitionCount))) {
      this.st.eventsNotOwned += 1
      return
    }
    cur.pipeline.deployment(ev)
  }

  /** The current engine (undefined while no partition is owned). */
  pipeline(): Pipeline | undefined {
    return this.current?.pipeline
  }

  stats(): DeciderServiceStats {
    const cur = this.current
    return {
      ...this.st,
      partitions: cur === undefined ? [] : [...cur.partitions].sort((a, b) => a - b),
      refilling: cur !== undefined && cur.refilling,
      decider: cur?.decider.stats(),
      aligned: cur?.aligner.size ?? 0,
      alignOverflow: cur?.aligner.overflow ?? 0,
      consumer: this.consumer?.stats(),
    }
  }

  /** Writes the owned state, leaves the group (a clean revoke), closes the state store. */
  async shutdown(): Promise<void> {
    await this.consumer?.stop()
    this.consumer = undefined
    await this.revoke(false)
    await this.state?.shutdown()
  }

  /**
   * Stops consuming without writing anything (tests: a decider killed in place; its partitions move
   * on once the group notices).
   */
  async abandon(): Promise<void> {
    const cur = this.current
    this.current = undefined
    cur?.decider.shutdown()
    cur?.pipeline.shutdown()
    await this.consumer?.stop()
    this.consumer = undefined
  }

  /**
   * Answers where the partitions start: their first retained offsets, as the broker gave them with
   * the ends (the refill reads from the beginning of retention either way; given, the consumer
   * skips two offset lookups per partition that each wait behind its held fetch). None when the
   * broker did not answer: the consumer starts at the beginning by itself.
   */
  private async assign(partitions: number[]): Promise<AssignmentStart | undefined> {
    // a second assignment without a revoke (should not happen with the eager protocol): start over
    if (this.current !== undefined) await this.revoke(false)
    this.st.assignments += 1
    if (partitions.length === 0) return undefined
    const cfg = this.o.config
    const st = cfg.runtime.state
    const pipeline = new Pipeline({
      engine: cfg.engine,
      signals: cfg.signals,
      ...(this.o.clock !== undefined ? { clock: this.o.clock } : {}),
      ...(this.state !== undefined ? { state: { sink: this.state, minWriteIntervalMs: st.minWriteInterval, versions: { maxServices: st.versions.maxServices, maxPerService: st.versions.maxPerService, refreshMs: st.versions.refresh } } } : {}),
    })
    const owned = new Set(partitions)
    if (this.state !== undefined) {
      const loaded = await this.state.load()
      if (loaded.kind === 'loaded') {
        const mine: StoredRecord[] = []
        for (const r of loaded.records) {
          const svc = recordService(r)
          if (svc !== undefined && owned.has(partitionFor(Buffer.from(svc), this.partitionCount))) mine.push(r)
          else this.st.foreignRecords += 1
        }
        pipeline.restore(mine)
        this.st.restoredRecords = mine.length
      }
    }
    const decider = new Decider({
      pipeline,
      nodeTimeoutMs: cfg.decider.nodeTimeout,
      leaveGraceMs: deciderLeaveGrace(cfg.decider, cfg.signals.bucket, cfg.engine.lateness),
      finishWhenAllFinal: this.o.finishWhenAllFinal === true,
      // ticks as passes of bounded event-loop turns, as in the sidecar: partials keep being received between them
      turns: cfg.runtime.evaluation,
      onTick: (res, now, watermark) => this.o.onTick(res, now, watermark, pipeline),
    })
    const assignedAtMs = Date.now()
    const ranges = await this.partitionRanges(owned)
    const ends = ranges === undefined ? undefined : new Map([...ranges].map(([p, r]) => [p, r.end]))
    const inc: Incarnation = { partitions: owned, pipeline, decider, refilling: true, assignedAtMs, caughtUp: new Set(), ends, aligner: undefined as unknown as PartitionAligner }
    inc.aligner = new PartitionAligner(owned, (r) => {
      if (!r.history && inc.refilling) {
        inc.refilling = false
        this.st.lastRefillMs = Date.now() - inc.assignedAtMs
        this.o.logger.info({ partitions: [...owned], ms: this.st.lastRefillMs, refilledRuns: this.st.refilledRuns }, 'decider windows refilled; judging')
      }
      decider.receiveAll(r.batches, r.partition, !r.history)
    })
    decider.assign(owned)
    this.current = inc
    this.o.logger.info({ partitions: [...owned], restored: this.st.restoredRecords }, 'decider partitions assigned; refilling windows')
    if (ranges === undefined) return undefined
    const topic = cfg.kafka.topics.partials
    return { starts: [...owned].flatMap((partition) => { const r = ranges.get(partition); return r === undefined ? [] : [{ topic, partition, offset: r.start }] }) }
  }

  /**
   * The partials partitions' ranges as the broker reports them now, asked once per assignment:
   * records below their ends were produced before the assignment (history), and a refill that reads
   * up to them has read what the previous owner left, however many records arrive meanwhile (a
   * batch's lag counts those too and may never reach 0 while ingest nodes publish); the refill
   * starts at their starts. Undefined (counted in `endsUnknown`, one warn line) when the broker does
   * not answer within ENDS_TIMEOUT_MS.
   */
  private async partitionRanges(owned: Set<number>): Promise<Map<number, PartitionRange> | undefined> {
    const admin = this.o.transport.admin()
    const waited = new AbortController()
    try {
      // a partition the broker leaves out has no end here: its refill ends by lag 0
      const ranges = await Promise.race([admin.connect().then(() => admin.partitionRanges(this.o.config.kafka.topics.partials)), sleep(ENDS_TIMEOUT_MS, waited.signal).then(() => undefined)])
      if (ranges === undefined) throw new Error(`no answer within ${ENDS_TIMEOUT_MS} ms`)
      return ranges
    } catch (err) {
      this.st.endsUnknown += 1
      this.o.logger.warn({ partitions: [...owned], err: errorMessage(err) }, 'decider could not read the partition ends; the refill ends at lag 0 or the first new record')
      return undefined
    } finally {
      waited.abort()
      void admin.disconnect().catch(() => undefined)
    }
  }

  private async revoke(lost: boolean): Promise<void> {
    const cur = this.current
    if (cur === undefined) return
    this.current = undefined
    // an open pass is run to its end first (its verdicts delivered; ids are deterministic, so a
    // verdict the next owner repeats is deduplicated), so the state written below is the pass's end
    cur.decider.shutdown()
    this.st.revokes += 1
    // a lost assignment may already be someone else's: writing now could overwrite the new owner's state
    if (this.state !== undefined && !lost) {
      const now = cur.decider.now()
      if (Number.isFinite(now)) cur.pipeline.persistNow(now)
      await this.state.flush(this.o.config.runtime.state.flushTimeout)
    }
    cur.pipeline.shutdown()
    this.o.logger.info({ partitions: [...cur.partitions], lost }, 'decider partitions revoked')
  }

  private handle(b: Batch): Promise<void> {
    const cur = this.current
    if (cur === undefined || !cur.partitions.has(b.partition)) {
      this.st.notOwned += b.messages.length
      return Promise.resolve()
    }
    // runs of records up to a heartbeat: a poll may span many buckets, and the engine must be
    // ticked at each bucket the watermark enters, as it is in replay; the aligner merges the
    // partitions on the nodes' clocks
    const runs: Run[] = []
    let run: PartialBatch[] = []
    let runNow = -Infinity
    let newest = -Infinity
    const caughtUp = cur.caughtUp.has(b.partition)
    const push = () => {
      runs.push({ partition: b.partition, batches: run, nowMs: runNow, history: !caughtUp && newest < cur.assignedAtMs })
      run = []
      runNow = -Infinity
      newest = -Infinity
    }
    for (const m of b.messages) {
      this.st.records += 1
      if (m.timestamp > newest) newest = m.timestamp
      if (m.value === null) continue
      let pb: PartialBatch
      try {
        pb = decodeBatch(m.value)
      } catch (err) {
        if (classify(err) !== 'permanent') throw err
        this.st.undecodable += 1
        continue
      }
      run.push(pb)
      if (pb.nowMs > runNow) runNow = pb.nowMs
      if (pb.partials.length === 0) push()
    }
    if (run.length > 0) push()
    // the batch reached the partition's end (as it was at the assignment, or its high watermark
    // when fetched): what the previous owner left is all read, so the last run judges once at the
    // watermark reached, without waiting for a record produced after the assignment (up to a
    // bucket plus the lateness later)
    const end = cur.ends?.get(b.partition)
    const lastMessage = b.messages[b.messages.length - 1]
    if (b.lag === 0 || (end !== undefined && lastMessage !== undefined && Number(lastMessage.offset) + 1 >= end)) {
      cur.caughtUp.add(b.partition)
      const last = runs[runs.length - 1]
      if (last !== undefined) last.history = false
    }
    for (const r of runs) {
      if (r.history) this.st.refilledRuns += 1
      cur.aligner.push(r)
    }
    // back-pressure: the decider holds what arrives while a pass runs; the next poll waits for it
    return cur.decider.waitHeld()
  }
}

/** The partials topic as pullback creates it (delete policy; retention = what a new owner refills from). */
export function partialsTopicSpec(cfg: PullbackConfig) {
  return {
    topic: cfg.kafka.topics.partials,
    numPartitions: cfg.decider.partitions,
    // retention applies per closed segment: without a short segment.ms (Kafka's default is 7 days)
    // nothing would be deleted for a week and every rebalance would re-read all of it
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(cfg.decider.retention), 'segment.ms': String(Math.max(60_000, Math.round(cfg.decider.retention / 3))) },
  }
}

function recordService(r: StoredRecord): string | undefined {
  try {
    const v = JSON.parse(r.value) as { service?: unknown }
    return typeof v.service === 'string' ? v.service : undefined
  } catch {
    return undefined
  }
}
