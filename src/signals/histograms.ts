import { CountsHistogram, HdrLayout } from './hdr.js'

export interface HistogramSettings {
  lowestUs: number
  highestUs: number
  significantDigits: number
  poolSize: number
}

/**
 * Allocates fixed-size latency histograms (src/signals/hdr.ts: HDR layout of hdr-histogram-js,
 * 32-bit counts in a JS typed array) and recycles them, so that a steady stream of buckets opening
 * and closing does not churn the GC. Contract: a histogram taken is given back (`give`, which
 * resets it) when its bucket is recycled; one that is dropped without `give` is simply collected.
 * The free list is bounded by `poolSize`; beyond it histograms are left to the GC (`destroyed`).
 */
export class HistogramPool {
  readonly layout: HdrLayout
  private readonly free: CountsHistogram[] = []
  /** histograms currently handed out */
  live = 0
  created = 0
  destroyed = 0

  constructor(private readonly s: HistogramSettings) {
    this.layout = new HdrLayout(s)
  }

  take(): CountsHistogram {
    this.live++
    const h = this.free.pop()
    if (h !== undefined) return h
    this.created++
    return new CountsHistogram(this.layout)
  }

  give(h: CountsHistogram): void {
    this.live--
    if (this.free.length < this.s.poolSize) {
      h.reset()
      this.free.push(h)
    } else this.destroyed++
  }

  get pooled(): number {
    return this.free.length
  }

  /** Empties the free list (shutdown, tests). Histograms still handed out stay valid. */
  drain(): void {
    this.destroyed += this.free.length
    this.free.length = 0
  }
}
