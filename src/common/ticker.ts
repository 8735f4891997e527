/**
 * A periodic timer whose fires fall on whole multiples of its interval on a clock (a 1 s ticker on
 * the wall clock fires just after :00.000, :01.000, ...), not on the phase its process happened to
 * start at.
 *
 * Why: a node's watermark is its clock minus `engine.lateness`, and a tick announces a bucket once
 * that watermark has entered it. Nodes ticking on their own phases announce the same bucket up to
 * one interval apart, and the deciders' watermark (the minimum over the nodes) waits for the last
 * of them: a DaemonSet's decisions came up to one tick interval later than its slowest node's data,
 * by an amount fixed by when its processes started. On the edges every node announces within the
 * clock skew between them (NTP: milliseconds); one process alone judges each bucket as soon as its
 * watermark passes the edge instead of up to one interval later.
 *
 * Each fire is scheduled afresh from the clock (no drift accumulates; a fire delayed by a long
 * event-loop turn is followed by the next edge, never by a burst of catch-up fires). The clock is
 * injected, as everywhere: a clock skewed against the applications' moves the edges with it.
 */
import type { Clock } from './clock.js'

/**
 * How long after an edge a fire is aimed: a timer may fire a millisecond before its delay on the
 * wall clock (timers run on the monotonic clock), and a fire just before the edge would announce
 * the previous second.
 */
export const EDGE_SLACK_MS = 3

/**
 * The delay from `now` to the next fire: the first edge (multiple of `intervalMs`) strictly after
 * `now`, plus the slack; in (EDGE_SLACK_MS, intervalMs + EDGE_SLACK_MS]. A fire that comes a little
 * early (after its edge, before edge + slack) is followed by the next edge's, never by a second one.
 */
export function delayToNextEdge(now: number, intervalMs: number): number {
  const phase = ((now % intervalMs) + intervalMs) % intervalMs
  return intervalMs - phase + EDGE_SLACK_MS
}

export class AlignedTicker {
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(
    private readonly fn: () => void,
    private readonly intervalMs: number,
    private readonly clock: Clock,
  ) {
    if (!(intervalMs > 0)) throw new RangeError(`ticker interval must be > 0 ms, got ${intervalMs}`)
  }

  /** Schedules the first fire at the next edge. Calling it again does nothing. */
  start(): void {
    if (this.timer !== undefined || this.stopped) return
    this.schedule()
  }

  /** No fire after this; idempotent. */
  stop(): void {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      if (this.stopped) return
      // the next fire is scheduled before fn runs: a throw in fn (the caller's to catch) must not end the ticker
      this.schedule()
      this.fn()
    }, delayToNextEdge(this.clock.now(), this.intervalMs))
  }
}
