import * as hdr from 'hdr-histogram-js'
import type { Histogram } from 'hdr-histogram-js'

let wasmReady = false

/** Loads the hdr-histogram-js WebAssembly module once per process (synchronous, ~ms). */
export function ensureWasm(): void {
  if (wasmReady) return
  hdr.initWebAssemblySync()
  wasmReady = true
}

export interface HistogramSettings {
  lowestUs: number
  highestUs: number
  significantDigits: number
  poolSize: number
}

/**
 * Allocates fixed-size WASM histograms (autoResize off, 32-bit counts) and recycles them.
 * Contract: every histogram taken is either given back (`give`, which resets it) or destroyed by
 * the pool; WASM memory is never reclaimed by the GC, so a histogram that is dropped without
 * `give` leaks. The free list is bounded by `poolSize`; beyond it histograms are destroyed.
 */
export class HistogramPool {
  private readonly free: Histogram[] = []
  /** histograms currently handed out */
  live = 0
  created = 0
  destroyed = 0

  constructor(private readonly s: HistogramSettings) {
    ensureWasm()
  }

  take(): Histogram {
    this.live++
    const h = this.free.pop()
    if (h !== undefined) return h
    this.created++
    return hdr.build({
      lowestDiscernibleValue: this.s.lowestUs,
      highestTrackableValue: this.s.highestUs,
      numberOfSignificantValueDigits: this.s.significantDigits as 1 | 2 | 3,
      bitBucketSize: 32,
      autoResize: false,
      useWebAssembly: true,
    })
  }

  give(h: Histogram): void {
    this.live--
    if (this.free.length < this.s.poolSize) {
      h.reset()
      this.free.push(h)
    } else {
      h.destroy()
      this.destroyed++
    }
  }

  get pooled(): number {
    return this.free.length
  }

  /** Destroys the free list (shutdown, tests). Histograms still handed out stay valid. */
  drain(): void {
    for (const h of this.free) h.destroy()
    this.destroyed += this.free.length
    this.free.length = 0
  }
}
