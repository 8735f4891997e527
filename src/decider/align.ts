/**
 * Aligns the partitions a decider owns on the nodes' clocks before their partials reach the engine.
 *
 * A consumer reads its partitions at different speeds (librdkafka fetches each on its own; the
 * embedded bus serves them in turn), so one partition may be read minutes ahead of another. Its
 * partials would then sit in the signal store while the engine judges on the slower partitions'
 * watermark, and the engine would see data from after `now` (measured: a rollback decided 15 s
 * earlier than a single process decides it). The aligner buffers each partition's runs (the
 * records up to and including a heartbeat) and hands them on in order of their nodes' clock, only
 * up to the newest clock every owned partition has reached: the merge of per-partition streams a
 * single process sees as one.
 *
 * Bound: at most `maxRuns` runs buffered; past it the oldest head is handed on regardless, counted
 * in `overflow` (an owned partition that stays silent while others stream cannot hold memory).
 */
import type { PartialBatch } from '../partials/types.js'

export interface Run {
  partition: number
  batches: PartialBatch[]
  /** the newest node clock in the run */
  nowMs: number
  /** produced before this owner got the partition: refill, recorded without judging */
  history: boolean
}

export class PartitionAligner {
  private readonly queues = new Map<number, Run[]>()
  private readonly received = new Map<number, number>()
  private buffered = 0
  private overflowCount = 0

  constructor(
    private readonly owned: ReadonlySet<number>,
    private readonly feed: (run: Run) => void,
    private readonly maxRuns = 100_000,
  ) {}

  get overflow(): number {
    return this.overflowCount
  }

  get size(): number {
    return this.buffered
  }

  push(run: Run): void {
    let q = this.queues.get(run.partition)
    if (q === undefined) {
      q = []
      this.queues.set(run.partition, q)
    }
    q.push(run)
    this.buffered += 1
    if (run.nowMs > (this.received.get(run.partition) ?? -Infinity)) this.received.set(run.partition, run.nowMs)
    this.drain()
  }

  /** Hands on everything buffered, oldest clock first (the end of a refill, a revoke). */
  flushAll(): void {
    this.drain(Infinity)
  }

  private drain(force?: number): void {
    let bound = force ?? Infinity
    if (force === undefined) for (const p of this.owned) bound = Math.min(bound, this.received.get(p) ?? -Infinity)
    for (;;) {
      let best: Run[] | undefined
      for (const q of this.queues.values()) {
        const h = q[0]
        if (h !== undefined && (best === undefined || h.nowMs < best[0]!.nowMs)) best = q
      }
      if (best === undefined) return
      const head = best[0]!
      if (head.nowMs > bound) {
        if (this.buffered <= this.maxRuns) return
        this.overflowCount += 1
      }
      best.shift()
      this.buffered -= 1
      this.feed(head)
    }
  }
}
