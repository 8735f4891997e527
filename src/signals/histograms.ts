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
 *
 * New histograms take their counts from slabs: one ArrayBuffer per `SLAB_HISTOGRAMS` histograms,
 * each histogram a view of its own part. Reason: every ArrayBuffer is external memory, and V8
 * advances an incremental mark on each external allocation made while marking runs. With one buffer
 * per histogram, the 10,000 new versions of the engine bench's mass deployment (one new histogram per
 * series and 5 s bucket) finished a whole 170 ms mark inside one batch of recorded requests: event-
 * loop stalls of 90-250 ms (bench/engine.ts). A view is also two heap objects fewer to mark than a
 * buffer of its own. Cost: a slab is freed only when none of its histograms is referenced; the
 * histograms of one slab are made together (the same buckets of neighbouring series) and so mostly
 * die together, and at worst a slab keeps `SLAB_HISTOGRAMS - 1` dead histograms' counts alive.
 */
/** Histograms per slab: 64 x ~1.4 KiB at 1 significant digit (~5.8 KiB at 2). */
export const SLAB_HISTOGRAMS = 64

export class HistogramPool {
  readonly layout: HdrLayout
  private readonly free: CountsHistogram[] = []
  /** histograms currently handed out */
  live = 0
  created = 0
  destroyed = 0
  /** slabs allocated so far (each `SLAB_HISTOGRAMS` x the layout's counts) */
  slabs = 0
  private slab: ArrayBuffer | undefined
  /** index of the next unused histogram in `slab` */
  private slabNext = 0

  constructor(private readonly s: HistogramSettings) {
    this.layout = new HdrLayout(s)
  }

  take(): CountsHistogram {
    this.live++
    const h = this.free.pop()
    if (h !== undefined) return h
    this.created++
    const n = this.layout.length
    if (this.slab === undefined || this.slabNext === SLAB_HISTOGRAMS) {
      this.slab = new ArrayBuffer(n * 4 * SLAB_HISTOGRAMS)
      this.slabNext = 0
      this.slabs++
    }
    return new CountsHistogram(this.layout, new Uint32Array(this.slab, n * 4 * this.slabNext++, n))
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
    this.slab = undefined
    this.slabNext = 0
  }
}
