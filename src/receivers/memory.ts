/**
 * The memory high-water mark shared by the OTLP receivers: above it, requests are refused with a
 * retryable answer (UNAVAILABLE / 503 + retry hint) before they are decoded, so compliant clients
 * back off and resend instead of the process running out of memory.
 */
import { OverloadedError } from './errors.js'

export interface MemoryGuardOptions {
  /** bytes; 0 disables the guard */
  highWaterBytes: number
  retryAfterMs: number
  /** what is measured; default process RSS */
  probe?: () => number
}

export class MemoryGuard {
  private readonly highWater: number
  readonly retryAfterMs: number
  private readonly probe: () => number

  constructor(opts: MemoryGuardOptions) {
    this.highWater = opts.highWaterBytes
    this.retryAfterMs = opts.retryAfterMs
    this.probe = opts.probe ?? (() => process.memoryUsage.rss())
  }

  /** Throws OverloadedError when over the high-water mark. process.memoryUsage.rss() costs ~1 µs. */
  check(): void {
    if (this.highWater <= 0) return
    const used = this.probe()
    if (used > this.highWater) {
      throw new OverloadedError(`memory ${Math.round(used / 1048576)} MiB above high-water mark ${Math.round(this.highWater / 1048576)} MiB`, this.retryAfterMs)
    }
  }
}
