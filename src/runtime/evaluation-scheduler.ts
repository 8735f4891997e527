/**
 * Evaluation that cannot stall the event loop: every `intervalMs` one pass (one logical tick, the
 * engine over every watch) runs as several event-loop turns separated by setImmediate, so OTLP
 * requests, Kafka batches and admin probes are answered between them. Passes begin on the clock's
 * multiples of `intervalMs` (common/ticker.ts), so a bucket is judged as soon as the watermark
 * passes its end, not up to one interval later.
 *
 * A turn calls the pass runner (the Pipeline) in engine calls of at most SLICE_EVALUATIONS
 * evaluations' worth of work (EngineInput.pass; the engine counts a baseline freeze as ten
 * evaluations, a new watch as three) and ends once `maxWatchesPerTurn` evaluations' worth were done
 * or `turnBudgetMs` of wall time went by, measured here with the monotonic clock between engine
 * calls (the engine itself never reads a clock). A pass keeps the `now` and watermark it began with.
 * With runtime.state, the pass's state export follows its last engine call as further steps of the
 * same bound (Pipeline.stepPass); the pass, and `onPass` with its verdicts, ends after the export.
 *
 * Never two passes at once: a timer firing while a pass runs makes the next pass begin right after
 * it (counted `late`; one owed pass at most, further fires counted `skipped`). Nothing throws out of
 * a turn: a failed pass is counted, reported through `onFailure` and closed; the next interval
 * begins a new one. `shutdown()` (idempotent) stops the timer and runs an open pass to its end
 * synchronously, so its verdicts are delivered before the caller's final tick.
 */
import { z } from 'zod'
import { duration } from '../config/duration.js'
import type { Clock } from '../common/clock.js'
import { AlignedTicker } from '../common/ticker.js'
import type { Component } from '../common/lifecycle.js'
import type { PassRunner, TickResult } from './pipeline.js'

/** `runtime.evaluation`: the bound of one event-loop turn of evaluation (see the file comment). */
export const evaluationTurnsSchema = z
  .strictObject({
    /**
     * engine work per event-loop turn at most, in evaluations (one watch judged at a new bucket; a
     * baseline freeze counts 10, a newly detected deployment 3, a watch with nothing new 1/8)
     */
    maxWatchesPerTurn: z.number().int().min(1).default(2_000),
    /**
     * wall time after which a turn yields to the event loop (checked between engine calls of at most
     * SLICE_EVALUATIONS evaluations). 4 ms, not 8: a timer's delay is the turn plus the OTLP work
     * queued behind it plus any GC, and at 8 ms the 10,000-watch bench's event-loop delay p99 during
     * detection was 18.8-20.9 ms (6 idle runs, 4 under 20); at 4 ms 12.6-19.1 ms in 10 of 12 (the
     * other two 21.6 and 27.1, in a set with a 216 ms GC pause), a pass's evaluating time unchanged
     * within the noise (`node dist/bench/engine.js --runs 3 --evaluation full --skip-replay
     * --turn-budget N`)
     */
    turnBudget: duration().default(4),
  })
  .prefault({})

export type EvaluationTurnsConfig = z.output<typeof evaluationTurnsSchema>

/**
 * Engine work per call within a turn: the granularity at which the turn's wall time is checked.
 * 16, not 64: an evaluation's real cost varies more than the engine's work units say (the first
 * reading after a freeze computes the baseline's levels, the first resource reading its slopes:
 * ~0.8 ms each on the 2-core bench machine), and a call of 64 such made one engine call of 42-54 ms
 * CPU in the 10,000-watch bench. A call costs ~5 us of its own.
 */
export const SLICE_EVALUATIONS = 16

export interface EvaluationSchedulerOptions {
  runner: PassRunner
  /** stamps each pass's `now` (wall clock live) */
  clock: Clock
  intervalMs: number
  /** the watermark of a pass begun at `now` (now - engine.lateness) */
  watermark: (now: number) => number
  turns: EvaluationTurnsConfig
  /** a completed pass: its result, `now`, and what it cost; a throw here counts as a failed pass */
  onPass: (res: TickResult, now: number, pass: PassReport) => void
  /** a pass that failed (the engine or onPass threw), with the failures in a row */
  onFailure?: (err: unknown, failuresInARow: number) => void
  /** monotonic ms for the turn budget and the figures (default performance.now); injected in tests */
  monotonic?: () => number
}

export interface PassReport {
  /** first turn's start to the last turn's end, ms (I/O turns in between included) */
  wallMs: number
  /** ms spent evaluating, summed over the pass's turns */
  busyMs: number
  turns: number
  /** the longest turn of the pass, ms */
  maxTurnMs: number
  /** engine calls */
  calls: number
}

export interface EvaluationSchedulerStats {
  passes: number
  failed: number
  /** timer fires during a pass: the next pass began right after it */
  late: number
  /** timer fires during a pass when one was already owed: dropped */
  skipped: number
  turns: number
  /** the longest turn since start, ms */
  maxTurnMs: number
  last: PassReport | undefined
}

export class EvaluationScheduler implements Component {
  readonly name = 'evaluation-scheduler'
  private timer: AlignedTicker | undefined
  private immediate: NodeJS.Immediate | undefined
  private owed = false
  private stopped = false
  private failuresInARow = 0
  private current: { now: number; startedMs: number; busyMs: number; turns: number; maxTurnMs: number } | undefined
  private readonly mono: () => number
  private readonly st: EvaluationSchedulerStats = { passes: 0, failed: 0, late: 0, skipped: 0, turns: 0, maxTurnMs: 0, last: undefined }

  constructor(private readonly o: EvaluationSchedulerOptions) {
    this.mono = o.monotonic ?? (() => performance.now())
  }

  /** Passes begin on the clock's `intervalMs` edges (common/ticker.ts): a bucket is judged as soon as the watermark passes its end. */
  start(): Promise<void> {
    if (this.timer === undefined && !this.stopped) {
      this.timer = new AlignedTicker(() => this.fire(), this.o.intervalMs, this.o.clock)
      this.timer.start()
    }
    return Promise.resolve()
  }

  /** One interval: begins a pass now, or owes one after the pass that runs. */
  fire(): void {
    if (this.stopped) return
    if (this.current !== undefined || this.immediate !== undefined) {
      if (this.owed) this.st.skipped += 1
      else {
        this.owed = true
        this.st.late += 1
      }
      return
    }
    this.owed = true
    this.turn()
  }

  /** False once shut down (fire() then does nothing). */
  get running(): boolean {
    return !this.stopped
  }

  /** True while a pass is open or about to begin. */
  get busy(): boolean {
    return this.current !== undefined || this.immediate !== undefined
  }

  stats(): EvaluationSchedulerStats {
    return { ...this.st }
  }

  /**
   * Runs the open pass, then the one owed (if any), to their ends now, synchronously, their results
   * delivered through `onPass`; the scheduler stays running and idle. For a caller that must act on
   * a settled engine state (the decider's end of stream, a state export at a partition revoke).
   */
  settle(): void {
    if (this.stopped) return
    if (this.immediate !== undefined) clearImmediate(this.immediate)
    this.immediate = undefined
    // each round begins the owed pass (clearing `owed`) or ends the open one: it terminates
    while (this.current !== undefined || this.owed) this.run('to-end')
  }

  /** Idempotent: stops the timer and the turns; an open pass is run to its end now and delivered. */
  shutdown(): Promise<void> {
    if (this.stopped) return Promise.resolve()
    this.stopped = true
    this.timer?.stop()
    if (this.immediate !== undefined) clearImmediate(this.immediate)
    this.timer = undefined
    this.immediate = undefined
    this.owed = false
    if (this.current !== undefined) this.run('to-end')
    return Promise.resolve()
  }

  private readonly turn = (): void => {
    this.immediate = undefined
    if (this.stopped) return
    this.run(this.o.turns)
    if (!this.stopped && (this.current !== undefined || this.owed)) this.immediate = setImmediate(this.turn)
  }

  /** One turn: begins the owed pass if none is open, then engine calls until the pass is done or the turn's bound is reached ('to-end': none). */
  private run(bound: EvaluationTurnsConfig | 'to-end'): void {
    const t0 = this.mono()
    try {
      if (this.current === undefined) {
        if (!this.owed) return
        this.owed = false
        const now = this.o.clock.now()
        if (this.o.runner.beginPass(now, this.o.watermark(now)) === 'busy') throw new Error('a pass is already open on the runner')
        this.current = { now, startedMs: t0, busyMs: 0, turns: 0, maxTurnMs: 0 }
      }
      let left = bound === 'to-end' ? Infinity : bound.maxWatchesPerTurn
      for (;;) {
        const n = Math.min(left, SLICE_EVALUATIONS)
        const step = this.o.runner.stepPass(bound === 'to-end' ? Infinity : n)
        left -= n
        if (step.kind === 'done') {
          // the pass's figures end with the engine's last call; the turn (stats) includes onPass
          const cur = this.current
          const ms = this.mono() - t0
          const report: PassReport = { wallMs: this.mono() - cur.startedMs, busyMs: cur.busyMs + ms, turns: cur.turns + 1, maxTurnMs: Math.max(cur.maxTurnMs, ms), calls: step.calls }
          this.current = undefined
          this.st.passes += 1
          this.st.last = report
          try {
            this.o.onPass(step.result, step.now, report)
          } finally {
            this.endTurn(t0)
          }
          this.failuresInARow = 0
          return
        }
        if (bound !== 'to-end' && (left <= 0 || this.mono() - t0 >= bound.turnBudget)) break
      }
      this.endTurn(t0)
    } catch (err) {
      if (this.current !== undefined) this.endTurn(t0)
      this.current = undefined
      // the runner closed its pass when the engine threw; when onPass threw it was closed already
      this.st.failed += 1
      this.failuresInARow += 1
      try {
        this.o.onFailure?.(err, this.failuresInARow)
      } catch {
        // a failing reporter must not break the loop either
      }
    }
  }

  private endTurn(t0: number): void {
    const ms = this.mono() - t0
    const cur = this.current
    if (cur !== undefined) {
      cur.busyMs += ms
      cur.turns += 1
      if (ms > cur.maxTurnMs) cur.maxTurnMs = ms
    }
    this.st.turns += 1
    if (ms > this.st.maxTurnMs) this.st.maxTurnMs = ms
  }
}
