/**
 * The decider: merges the partials of every ingest node into one Pipeline's signal store and ticks
 * the engine on the decider's watermark, so N nodes decide as one process fed everything would.
 *
 * Watermark, per partition (README "Broker path"): a partition's watermark is the minimum over the
 * live ingest nodes of the watermarks they announced ON that partition (a node is live while it was
 * heard from on it within `nodeTimeoutMs` of the partition's clock; a silent node is ignored, so one
 * dead sidecar cannot stall every decision); the decider's watermark is the minimum over its
 * partitions (`assign`; unassigned: every partition heard from). Kafka keeps order per partition
 * only, so a node's announcement read on one partition says nothing about its data on another.
 * In-process paths (replay --nodes) use one stream, partition 0. Clock (`now`, which stamps
 * decisions): per partition the newest `nowMs` read on it; the decider's is the minimum over its
 * partitions (a partition read ahead of the others must not stamp decisions judged on the slower
 * ones' watermark). The engine is ticked whenever the watermark
 * enters a new bucket, as `pullback replay` ticks, and by `finish()` when every node's stream ended.
 *
 * Refill (`receiveAll(..., judge = false)`): a new partition owner re-reading the partials still on
 * the topic records them and follows the watermark without judging; the first judged call then
 * judges once at the watermark reached.
 *
 * Late partials: a partial whose bucket ends at or before the watermark the engine already judged is
 * still recorded (the store keeps it, later windows see it) but counted in `latePartials`: the
 * windows already judged are not judged again.
 *
 * Nodes leaving (README "Nodes leaving"): per (partition, node) a standing, `live`, `leaving` or
 * `gone`. A batch with `leaving` (the node's graceful shutdown) makes it `leaving`: its watermark
 * still holds the partition back, for `leaveGraceMs` of the partition's clock after the
 * announcement, then it is `gone` (`leavesExpired`). A live node silent for longer than
 * `nodeTimeoutMs` (crashed, cut off) is `gone` too (`timeouts`); a final node never goes. Any
 * later batch of a node makes it live again: within the grace (`returns`, a restart) its held
 * watermark kept the gap's buckets unjudged, so nothing it sends for them is late; after it
 * (`rejoins`) it restarts from the watermark already judged: buckets judged stay judged (its late
 * data counted in `latePartials`) and nothing is re-judged, since the engine ticks only when the
 * watermark enters a bucket beyond the last judged one.
 * Both bounds count on the partition's clock (the newest clock the nodes announced on it), not on
 * the decider's wall clock: a decider reading a backlog (a refill at assignment, a consumer lag)
 * then sees a node silent only if it is silent in the log next to the others, and replay on
 * telemetry time behaves as live. The cost: when every node of a partition stops, its clock stops
 * and nothing goes (there is nothing to judge either); a node whose clock runs ahead shortens the
 * others' bounds by its skew.
 *
 * Bounded passes (`turns`, runtime.evaluation as in the sidecar): a tick is then a pass of bounded
 * event-loop turns (EvaluationScheduler over the Pipeline's passes), so batches keep being received
 * between its turns. A pass keeps the clock and watermark it began with. Batches received while a
 * pass runs are held, in order, and recorded after it ends (`held`): recorded at once they would move
 * the store's newest time past the pass, and a burst (a poll of minutes of partials, a lagging
 * consumer) would then be judged in one jump, its older minutes already folded into the store's
 * coarse buckets, where replay's tick per bucket judged each on fine ones (test/decider/burst.test.ts).
 * Held: at most MAX_HELD_BATCHES; beyond, a batch is recorded at once (`heldOverflow`), and ticks
 * wanted meanwhile coalesce (one is owed at most). `waitHeld()` lets the consumer stop polling
 * while the held batches are worked off. `settle()` runs an open pass, the owed one and every held
 * batch to their ends at once; `finish()` settles first. Without `turns` every tick is one engine
 * call within receiveAll (replay).
 *
 * Bounds: at most `maxNodes` tracked nodes per partition; at the limit a `gone` node is forgotten
 * to make room (`nodesEvicted`), else a batch from one more node is recorded but its watermark is
 * not tracked (`nodesRefused`). Synchronous: receive/finish from one event loop turn at
 * a time; `consume` drives it from an async iterable.
 */
import type { Pipeline, TickResult } from '../runtime/pipeline.js'
import { EvaluationScheduler, type EvaluationSchedulerStats, type EvaluationTurnsConfig } from '../runtime/evaluation-scheduler.js'
import { alignDown } from '../signals/view.js'
import { decodeBatch } from '../partials/codec.js'
import { partialObservations, type PartialBatch } from '../partials/types.js'
import { classify, errorMessage } from '../common/errors.js'

export interface DeciderOptions {
  pipeline: Pipeline
  /** a node not heard from for this long (the partition's clock) no longer holds the watermark back; default 30 s */
  nodeTimeoutMs?: number
  /** a node that announced it is leaving holds the watermark back this long after (same clock); default 10 s */
  leaveGraceMs?: number
  /** default 10,000 */
  maxNodes?: number
  /** every tick's result with its clock and watermark (verdicts are acted on here) */
  onTick: (res: TickResult, now: number, watermark: number) => void
  /** call `finish()` by itself once every node of every partition announced the end of its stream (replay over a topic) */
  finishWhenAllFinal?: boolean
  /** each tick a pass of bounded event-loop turns (runtime.evaluation; file comment); absent: one engine call per tick */
  turns?: EvaluationTurnsConfig
}

export interface DeciderStats {
  batches: number
  partials: number
  observations: number
  /** partials for buckets the engine had already judged (recorded, not re-judged) */
  latePartials: number
  /** (partition, node) pairs tracked */
  nodes: number
  nodesRefused: number
  /** gone (partition, node) pairs forgotten at `maxNodes` to track a new one */
  nodesEvicted: number
  /** (partition, node) pairs that announced leaving */
  leaves: number
  /** ... whose leave grace passed: they no longer hold the watermark back */
  leavesExpired: number
  /** live (partition, node) pairs silent for longer than the node timeout (no leave announced: crashed or cut off) */
  timeouts: number
  /** leaving pairs heard from again within the grace (a restart: nothing of the gap was judged) */
  returns: number
  /** gone pairs heard from again (a restart after the grace or timeout: its gap's telemetry may be late) */
  rejoins: number
  /** batches that could not be decoded (consume only) */
  undecodable: number
  ticks: number
  /** bounded passes (`turns`) that failed (the engine or onTick threw): counted, the next tick begins a new one */
  failedPasses: number
  /** batches held while a pass runs, to be recorded after it (file comment) */
  held: number
  /** batches recorded at once, not held, because MAX_HELD_BATCHES were held already */
  heldOverflow: number
  /** the watermark the engine judged last, -Infinity before the first tick */
  judgedWatermarkMs: number
  /** finish() ran (every node's stream ended) */
  finished: boolean
}

/** a node's standing on one partition (file comment, "Nodes leaving") */
type Standing = 'live' | 'leaving' | 'gone'

interface NodeState {
  watermarkMs: number
  heardAtMs: number
  final: boolean
  standing: Standing
}

/**
 * Batches held while a pass runs (file comment). A batch is one node's publication of one bucket or
 * a heartbeat: 2,000 are minutes of a few hundred nodes, a few MB.
 */
export const MAX_HELD_BATCHES = 2_000

/** The consumer's wait for held batches at most (waitHeld). */
const HELD_WAIT_MS = 30_000

export type ConsumeOutcome = { kind: 'ended'; batches: number } | { kind: 'failed'; batches: number; error: string }

export class Decider {
  readonly pipeline: Pipeline
  private readonly timeoutMs: number
  private readonly leaveGraceMs: number
  private readonly maxNodes: number
  private readonly onTick: DeciderOptions['onTick']
  /** partition -> node -> its announcements on that partition */
  private readonly partitions = new Map<number, Map<string, NodeState>>()
  /** the partitions the watermark is taken over; undefined: every partition heard from */
  private assigned: ReadonlySet<number> | undefined
  private finished = false
  private readonly finishWhenAllFinal: boolean
  /** partition -> newest nowMs read on it */
  private readonly clocks = new Map<number, number>()
  private lastTickBucket = -Infinity
  /** `turns`: runs the ticks as bounded passes */
  private readonly sched: EvaluationScheduler | undefined
  /** the tick wanted next (`turns`), taken by the pass that begins next */
  private want: { now: number; watermark: number } | undefined
  /** the clock and watermark of the open pass */
  private open = { now: -Infinity, watermark: -Infinity }
  /** `turns`: what was received while a pass ran, in order (file comment) */
  private readonly heldRuns: { batches: readonly PartialBatch[]; partition: number; judge: boolean }[] = []
  private releaseQueued = false
  private heldWaiters: (() => void)[] = []
  private readonly st: DeciderStats = {
    batches: 0,
    partials: 0,
    observations: 0,
    latePartials: 0,
    nodes: 0,
    nodesRefused: 0,
    nodesEvicted: 0,
    leaves: 0,
    leavesExpired: 0,
    timeouts: 0,
    returns: 0,
    rejoins: 0,
    undecodable: 0,
    ticks: 0,
    failedPasses: 0,
    held: 0,
    heldOverflow: 0,
    judgedWatermarkMs: -Infinity,
    finished: false,
  }

  constructor(opts: DeciderOptions) {
    this.pipeline = opts.pipeline
    this.timeoutMs = opts.nodeTimeoutMs ?? 30_000
    this.leaveGraceMs = opts.leaveGraceMs ?? 10_000
    this.maxNodes = opts.maxNodes ?? 10_000
    this.onTick = opts.onTick
    this.finishWhenAllFinal = opts.finishWhenAllFinal === true
    this.sched =
      opts.turns === undefined
        ? undefined
        : new EvaluationScheduler({
            runner: this.pipeline,
            // a pass begins: it takes the tick wanted last (the newest watermark), counted here as the synchronous tick counts it
            clock: { now: () => this.beginPass() },
            // never started: passes begin from tick() through fire()
            intervalMs: 3_600_000,
            watermark: () => this.open.watermark,
            turns: opts.turns,
            onPass: (res) => {
              this.queueRelease()
              this.onTick(res, this.open.now, this.open.watermark)
            },
            onFailure: () => {
              this.st.failedPasses += 1
              this.queueRelease()
            },
          })
  }

  /** `turns`: the passes' figures (turns, the longest turn, late / skipped ticks); undefined without. */
  passStats(): EvaluationSchedulerStats | undefined {
    return this.sched?.stats()
  }

  /** A pass is open or owed, or batches are held for after it (`turns`): verdicts may still come. */
  get evaluating(): boolean {
    return (this.sched?.busy ?? false) || this.heldRuns.length > 0
  }

  /**
   * `turns`: runs an open pass, the tick owed after it and every held batch (with the passes they
   * cause) to their ends now, their onTick delivered. Otherwise nothing.
   */
  settle(): void {
    const sched = this.sched
    if (sched === undefined) return
    for (;;) {
      sched.settle()
      const r = this.heldRuns.shift()
      if (r === undefined) break
      this.st.held -= r.batches.length
      this.apply(r.batches, r.partition, r.judge)
    }
    this.wakeHeldWaiters()
  }

  /**
   * Resolves once at most half of MAX_HELD_BATCHES are held (at once when so), or after
   * HELD_WAIT_MS: the consumer's back-pressure, bounded well inside the consumer's poll interval
   * (librdkafka's max.poll.interval.ms, 300 s by default), so a slow backlog never costs the group membership.
   */
  waitHeld(): Promise<void> {
    if (this.st.held <= MAX_HELD_BATCHES / 2) return Promise.resolve()
    return new Promise((resolve) => {
      const t = setTimeout(resolve, HELD_WAIT_MS)
      t.unref()
      this.heldWaiters.push(() => {
        clearTimeout(t)
        resolve()
      })
    })
  }

  /** Idempotent: settles (see there) and stops the passes; later ticks are single engine calls. */
  shutdown(): void {
    this.settle()
    void this.sched?.shutdown()
  }

  stats(): DeciderStats {
    let nodes = 0
    for (const p of this.partitions.values()) nodes += p.size
    return { ...this.st, nodes, finished: this.finished }
  }

  /** The partitions this decider owns: its watermark is the minimum over them (one never heard from holds it at -Infinity). */
  assign(partitions: Iterable<number>): void {
    this.assigned = new Set(partitions)
  }

  /** The decider's clock: the minimum over its partitions of the newest time announced on each (-Infinity before any). */
  now(): number {
    let c = Infinity
    for (const p of this.assigned ?? this.clocks.keys()) {
      const pc = this.clocks.get(p) ?? -Infinity
      if (pc < c) c = pc
    }
    return c === Infinity ? -Infinity : c
  }

  /** The minimum over the partitions of their live nodes' minimum watermark; -Infinity when a partition has no live node. */
  watermark(): number {
    let w = Infinity
    const parts = this.assigned ?? this.partitions.keys()
    for (const p of parts) {
      const pw = this.partitionWatermark(p)
      if (pw < w) w = pw
    }
    return w === Infinity ? -Infinity : w
  }

  private partitionWatermark(partition: number): number {
    const nodes = this.partitions.get(partition)
    if (nodes === undefined) return -Infinity
    let w = Infinity
    for (const n of nodes.values()) {
      // standings follow the partition's clock in receiveAll (sweep), the only place it moves
      if (n.standing === 'gone') continue
      if (n.watermarkMs < w) w = n.watermarkMs
    }
    return w === Infinity ? -Infinity : w
  }

  /**
   * Marks gone the nodes of one partition whose leave grace or silence passed at `clock`, each
   * counted once. O(nodes), as the watermark is; run after every receiveAll of the partition.
   */
  private sweep(nodes: Map<string, NodeState>, clock: number): void {
    if (clock === -Infinity) return
    for (const n of nodes.values()) {
      if (n.final || n.standing === 'gone') continue
      // heard before the partition had a clock (hellos at a cold start): its silence counts from the first clock
      if (n.heardAtMs === -Infinity) n.heardAtMs = clock
      if (n.standing === 'leaving') {
        // <=: a grace of 0 lets go at the announcement itself
        if (n.heardAtMs <= clock - this.leaveGraceMs) {
          n.standing = 'gone'
          this.st.leavesExpired += 1
        }
      } else if (n.heardAtMs < clock - this.timeoutMs) {
        n.standing = 'gone'
        this.st.timeouts += 1
      }
    }
  }

  /** Room for one more node at `maxNodes`: forgets one gone node (counted); false when every node is live or leaving. */
  private evictGone(nodes: Map<string, NodeState>): boolean {
    for (const [name, n] of nodes) {
      if (n.standing !== 'gone') continue
      nodes.delete(name)
      this.st.nodesEvicted += 1
      return true
    }
    return false
  }

  /** A batch of `node` heard on a partition: its standing and watermark (a node's watermark never goes back). */
  private heard(n: NodeState, batch: PartialBatch, clock: number): void {
    const leaving = batch.leaving === true && !batch.final
    if (n.standing === 'gone' && !leaving) {
      this.st.rejoins += 1
      // what was judged while it was gone stays judged: its stale watermark would only pull the
      // partition's watermark under the judged one until its first announcement
      if (this.st.judgedWatermarkMs > n.watermarkMs) n.watermarkMs = this.st.judgedWatermarkMs
    } else if (n.standing === 'leaving' && !leaving) this.st.returns += 1
    if (leaving && n.standing !== 'leaving') {
      // a leave heard after the node was already gone (its leave outlived nodeTimeout in a backlog) is counted, and lets go at once
      this.st.leaves += 1
    }
    if (batch.watermarkMs > n.watermarkMs) n.watermarkMs = batch.watermarkMs
    n.heardAtMs = clock
    n.final = batch.final
    n.standing = leaving ? (n.standing === 'gone' ? 'gone' : 'leaving') : 'live'
  }

  /** Every node heard on every (assigned) partition ended its stream. */
  private allFinal(): boolean {
    let any = false
    for (const p of this.assigned ?? this.partitions.keys()) {
      const nodes = this.partitions.get(p)
      if (nodes === undefined) return false
      for (const n of nodes.values()) {
        if (!n.final) return false
        any = true
      }
    }
    return any
  }

  /** One node's publication: records its partials, then ticks when the watermark entered a new bucket. */
  receive(batch: PartialBatch): void {
    this.receiveAll([batch])
  }

  /**
   * Publications received together (one poll of a topic; one round of simulated nodes): all are
   * recorded and their announcements applied before the watermark is computed, so nodes that spoke
   * at the same time are never judged silent against each other, and the engine ticks at most once.
   */
  receiveAll(batches: readonly PartialBatch[], partition = 0, judge = true): void {
    const sched = this.sched
    if (sched !== undefined && sched.running && (sched.busy || this.heldRuns.length > 0)) {
      if (this.st.held + batches.length <= MAX_HELD_BATCHES) {
        this.heldRuns.push({ batches, partition, judge })
        this.st.held += batches.length
        return
      }
      this.st.heldOverflow += batches.length
    }
    this.apply(batches, partition, judge)
  }

  private apply(batches: readonly PartialBatch[], partition: number, judge: boolean): void {
    const W = this.pipeline.store.bucketMs
    const judged = this.st.judgedWatermarkMs
    let announced = false
    for (const batch of batches) {
      this.st.batches += 1
      for (const p of batch.partials) {
        this.st.partials += 1
        if (p.bucketStartMs + W <= judged) this.st.latePartials += 1
        for (const obs of partialObservations(p)) {
          this.st.observations += 1
          this.pipeline.recordObservation(obs)
        }
      }
      if (batch.nowMs > (this.clocks.get(partition) ?? -Infinity)) this.clocks.set(partition, batch.nowMs)
    }
    const clock = this.clocks.get(partition) ?? -Infinity
    let nodes = this.partitions.get(partition)
    if (nodes === undefined) {
      nodes = new Map()
      this.partitions.set(partition, nodes)
    }
    for (const batch of batches) {
      let n = nodes.get(batch.node)
      if (n === undefined) {
        if (nodes.size >= this.maxNodes && !this.evictGone(nodes)) {
          this.st.nodesRefused += 1
          continue
        }
        n = { watermarkMs: -Infinity, heardAtMs: clock, final: false, standing: 'live' }
        nodes.set(batch.node, n)
      }
      // a node's watermark never goes back (a reordered batch cannot un-promise)
      this.heard(n, batch, clock)
      // a node's end of stream ticks nothing by itself: finish() does, once every node ended
      if (!batch.final) announced = true
    }
    this.sweep(nodes, clock)
    if (!judge) return
    if (this.finishWhenAllFinal && !this.finished && this.allFinal()) {
      this.finish()
      return
    }
    if (!announced) return
    const w = this.watermark()
    if (!Number.isFinite(w)) return
    const wb = alignDown(w, W)
    if (wb > this.lastTickBucket) {
      this.lastTickBucket = wb
      this.tick(w)
    }
  }

  /**
   * Every node's stream ended (replay's end of file): one tick at the final watermark, and one more
   * so that an event the tick's verdicts caused (the actuator's rollback) is registered, as
   * `pullback replay` does.
   */
  finish(): void {
    this.finished = true
    // the end of every stream: what is open or owed is judged first, then the final ticks at once
    this.settle()
    const w = this.watermark()
    if (!Number.isFinite(w)) return
    this.tickNow(w)
    this.tickNow(w)
  }

  /**
   * Drives the decider from encoded batches (a topic consumer, a pipe). An undecodable batch is
   * counted and skipped; a failure of the source ends the loop with its error (never thrown).
   */
  async consume(source: AsyncIterable<Uint8Array>): Promise<ConsumeOutcome> {
    // one ordered stream: partition 0
    let batches = 0
    try {
      for await (const buf of source) {
        let b: PartialBatch
        try {
          b = decodeBatch(buf)
        } catch (err) {
          if (classify(err) !== 'permanent') throw err
          this.st.undecodable += 1
          continue
        }
        batches += 1
        this.receive(b)
      }
      return { kind: 'ended', batches }
    } catch (err) {
      return { kind: 'failed', batches, error: errorMessage(err) }
    }
  }

  private tick(watermark: number): void {
    const sched = this.sched
    if (sched === undefined || !sched.running) return this.tickNow(watermark)
    this.want = { now: Math.floor(this.now()), watermark }
    // begins the pass in this turn when none runs, else owes it (coalesced with any other owed)
    sched.fire()
  }

  /** One tick as one engine call (a pass still open on the pipeline is run to its end first). */
  private tickNow(watermark: number): void {
    const now = Math.floor(this.now())
    this.st.ticks += 1
    if (watermark > this.st.judgedWatermarkMs) this.st.judgedWatermarkMs = watermark
    this.onTick(this.pipeline.tick(now, watermark), now, watermark)
  }

  /** After a pass: the held batches are recorded in a later turn (not within the pass's onTick). */
  private queueRelease(): void {
    if (this.releaseQueued || this.heldRuns.length === 0) return
    this.releaseQueued = true
    setImmediate(() => {
      this.releaseQueued = false
      this.release()
    })
  }

  /** Records held batches in order until one begins a pass (the rest wait for its end). */
  private release(): void {
    const sched = this.sched
    while (this.heldRuns.length > 0 && !(sched !== undefined && sched.running && sched.busy)) {
      const r = this.heldRuns.shift()!
      this.st.held -= r.batches.length
      this.apply(r.batches, r.partition, r.judge)
    }
    this.wakeHeldWaiters()
  }

  private wakeHeldWaiters(): void {
    if (this.heldWaiters.length === 0 || this.st.held > MAX_HELD_BATCHES / 2) return
    const w = this.heldWaiters
    this.heldWaiters = []
    for (const f of w) f()
  }

  /** The scheduler begins a pass: it judges the tick wanted last (`now` returned, the watermark in `open`). */
  private beginPass(): number {
    const w = this.want ?? { now: Math.floor(this.now()), watermark: this.watermark() }
    this.want = undefined
    this.open = w
    this.st.ticks += 1
    if (w.watermark > this.st.judgedWatermarkMs) this.st.judgedWatermarkMs = w.watermark
    return w.now
  }
}
