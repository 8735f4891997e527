/**
 * A won claim on a decision (state.ts, "Fencing") held while its driver works: renews the lease
 * every third of `leaseMs`, serializes every write of the record (renewals and the driver's child
 * record) so that an older record can never land after a newer one, and aborts `signal` the moment
 * a write finds the claim superseded by another actuator's.
 */
import type { Clock } from '../common/clock.js'
import type { ActuatorState, DecisionProgress } from './state.js'

export type ClaimWrite = 'written' | 'fenced' | 'failed'

export class Claim {
  /** the record in force as this claim last wrote it */
  record: DecisionProgress
  lost = false
  /** renewals that could not be written (Kafka unavailable); the lease may then lapse */
  renewFailures = 0
  readonly signal: AbortSignal
  private readonly ac = new AbortController()
  private chain: Promise<unknown> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly state: ActuatorState,
    record: DecisionProgress,
    private readonly leaseMs: number,
    private readonly clock: Clock,
    parent: AbortSignal,
  ) {
    this.record = record
    this.signal = AbortSignal.any([parent, this.ac.signal])
    this.timer = setInterval(() => {
      void this.write((p) => p).then((w) => {
        if (w === 'failed') this.renewFailures++
      })
    }, Math.max(50, Math.floor(leaseMs / 3)))
    this.timer.unref()
  }

  /** writes `f(record)` with a renewed lease, after every earlier write of this claim; never rejects */
  write(f: (p: DecisionProgress) => DecisionProgress): Promise<ClaimWrite> {
    const run = this.chain.then(async (): Promise<ClaimWrite> => {
      if (this.lost) return 'fenced'
      const now = this.clock.now()
      const next: DecisionProgress = { ...f(this.record), lease: now + this.leaseMs, updatedAt: now }
      try {
        const o = await this.state.put(next)
        if (o.kind === 'fenced') {
          this.lost = true
          this.ac.abort()
          return 'fenced'
        }
      } catch {
        return 'failed'
      }
      this.record = next
      return 'written'
    })
    this.chain = run
    return run
  }

  /** stops renewing and waits for writes in flight; idempotent */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.chain
  }
}
