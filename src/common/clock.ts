/** Time is injected everywhere below the CLI so that live runs, replay and tests share the same code. */
export interface Clock {
  /** unix milliseconds */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A clock moved by hand (replay: telemetry time; tests). Never goes backwards. */
export class ManualClock implements Clock {
  private t: number
  constructor(start = 0) {
    this.t = start
  }
  now(): number {
    return this.t
  }
  set(t: number): void {
    if (t > this.t) this.t = t
  }
  advance(ms: number): void {
    this.t += Math.max(0, ms)
  }
}
