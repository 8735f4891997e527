/**
 * The long history of one series: cheap per-minute summaries kept beyond the store's `retention`,
 * so that the engine's validation gate can tell a breach that began long before a deployment from
 * the service's normal state (a baseline frozen inside a 12 minute old outage is not "normal").
 *
 * Contract:
 *   - one slot per coarse bucket (1 min by default) for `history.duration` (60 min) before the
 *     store's coarse ring: a coarse bucket that leaves the ring is summarised into its slot
 *     (`fold`); nothing else writes here, so the hot path pays nothing;
 *   - a slot holds requests, errors and a compact latency histogram: LAT_BUCKETS log buckets of
 *     ratio 2^(1/3) from 1 ms (bucket 0 holds everything below 1 ms, the last one everything above
 *     ~65 s). Quantiles are read at the geometric middle of their bucket (+-12 %); `countAbove`
 *     counts only buckets wholly above the cut (like the HDR windows), `countReaching` also the
 *     one holding it (an upper bound on the samples above the cut). Latency counts are 16-bit
 *     with a per-slot scale: when a count would pass 65,535 the slot's counts are halved and its
 *     scale doubles (proportions kept, counts exact below 65,536 samples per bucket and minute);
 *   - fixed size, allocated at the first fold: LAT_BUCKETS x 2 + 13 bytes per slot (6.5 KiB for
 *     60 slots), counted in the store's stats as `historyBytes`; a series that never lives past
 *     its retention never allocates one.
 * Pure data structure, no clock.
 */
import type { HistorySummary } from './view.js'

/** Latency buckets per slot: 1 ms x 2^(k/3), k = 0..LAT_BUCKETS-1 (48: up to 2^16 ms). */
export const LAT_BUCKETS = 48
const LOWEST_US = 1000
const STEP = Math.cbrt(2)

/** Bucket of a latency in microseconds. */
export function latBucket(us: number): number {
  if (!(us >= LOWEST_US)) return 0
  // 3 x log2 with a little slack: 2 ms must land in the bucket that starts at 2 ms, not below it
  return Math.min(LAT_BUCKETS - 1, 1 + Math.floor(3 * Math.log2(us / LOWEST_US) + 1e-9))
}

/** Lowest value of bucket k (us); bucket 0 starts at 0. */
export function latLow(k: number): number {
  return k === 0 ? 0 : LOWEST_US * Math.pow(STEP, k - 1)
}

/** The value reported for bucket k: its geometric middle (bucket 0: 0.5 ms; the last: its lower edge). */
export function latMid(k: number): number {
  if (k === 0) return LOWEST_US / 2
  if (k === LAT_BUCKETS - 1) return latLow(k)
  return latLow(k) * Math.sqrt(STEP)
}

/** Bytes one slot costs (typed arrays only). */
export const SLOT_BYTES = LAT_BUCKETS * 2 + 4 + 4 + 4 + 1

export class LongHistory {
  /** minute (coarse bucket) index held by each slot, -1 when empty */
  readonly idx: Int32Array
  readonly requests: Uint32Array
  readonly errors: Uint32Array
  /** latency counts, slot-major (slot s at s x LAT_BUCKETS) */
  readonly lat: Uint16Array
  /** log2 of the scale of each slot's latency counts */
  readonly shift: Uint8Array
  /** newest slot index folded, -1 before the first */
  newest = -1

  constructor(
    readonly slots: number,
    readonly widthMs: number,
  ) {
    this.idx = new Int32Array(slots).fill(-1)
    this.requests = new Uint32Array(slots)
    this.errors = new Uint32Array(slots)
    this.lat = new Uint16Array(slots * LAT_BUCKETS)
    this.shift = new Uint8Array(slots)
  }

  get bytes(): number {
    return this.slots * SLOT_BYTES
  }

  /**
   * Adds one coarse bucket (index `c`, in units of `widthMs`) that left the store's ring: its counts
   * and its latency samples, given as (value us, count) pairs through `each`. A bucket older than
   * the ring's newest by `slots` or more is dropped (returns false).
   */
  fold(c: number, requests: number, errors: number, each: (visit: (us: number, n: number) => void) => void): boolean {
    const S = this.slots
    if (c <= this.newest - S) return false
    const i = ((c % S) + S) % S
    if (this.idx[i] !== c) {
      this.idx[i] = c
      this.requests[i] = 0
      this.errors[i] = 0
      this.lat.fill(0, i * LAT_BUCKETS, (i + 1) * LAT_BUCKETS)
      this.shift[i] = 0
    }
    if (c > this.newest) this.newest = c
    this.requests[i] = Math.min(0xffffffff, (this.requests[i] as number) + requests)
    this.errors[i] = Math.min(0xffffffff, (this.errors[i] as number) + errors)
    const base = i * LAT_BUCKETS
    each((us, n) => {
      if (!(n > 0)) return
      const k = base + latBucket(us)
      let sh = this.shift[i] as number
      let v = (this.lat[k] as number) + Math.round(n / 2 ** sh)
      while (v > 0xffff && sh < 31) {
        // halve the slot's counts (rounding up keeps a bucket that had samples non-empty)
        for (let j = base; j < base + LAT_BUCKETS; j++) this.lat[j] = Math.ceil((this.lat[j] as number) / 2)
        sh += 1
        v = (this.lat[k] as number) + Math.round(n / 2 ** sh)
      }
      this.shift[i] = sh
      this.lat[k] = Math.min(0xffff, v)
    })
    return true
  }

  /** Empties every slot. */
  clear(): void {
    this.idx.fill(-1)
    this.newest = -1
  }

  /** Oldest time (ms) held, or undefined when empty. */
  oldestMs(): number | undefined {
    let o = Infinity
    for (let i = 0; i < this.slots; i++) {
      const c = this.idx[i] as number
      if (c >= 0 && c > this.newest - this.slots && c < o) o = c
    }
    return Number.isFinite(o) ? o * this.widthMs : undefined
  }

  /** Summary of the slots whose minute lies wholly in [fromMs, toMs). */
  summary(fromMs: number, toMs: number): HistorySummary {
    const counts = new Float64Array(LAT_BUCKETS)
    let requests = 0
    let errors = 0
    let latencyCount = 0
    const lo = Math.ceil(fromMs / this.widthMs)
    const hi = Math.floor(toMs / this.widthMs)
    for (let i = 0; i < this.slots; i++) {
      const c = this.idx[i] as number
      if (c < 0 || c <= this.newest - this.slots || c < lo || c >= hi) continue
      requests += this.requests[i] as number
      errors += this.errors[i] as number
      const scale = 2 ** (this.shift[i] as number)
      for (let k = 0; k < LAT_BUCKETS; k++) {
        const v = (this.lat[i * LAT_BUCKETS + k] as number) * scale
        counts[k] = (counts[k] as number) + v
        latencyCount += v
      }
    }
    return {
      fromMs: lo * this.widthMs,
      toMs: hi * this.widthMs,
      requests,
      errors,
      latencyCount,
      valueAtQuantile(q: number): number {
        if (!(latencyCount > 0)) return Number.NaN
        const rank = Math.max(1, Math.ceil(Math.min(1, Math.max(0, q)) * latencyCount))
        let acc = 0
        for (let k = 0; k < LAT_BUCKETS; k++) {
          acc += counts[k] as number
          if (acc >= rank) return latMid(k)
        }
        return latMid(LAT_BUCKETS - 1)
      },
      countAbove(us: number): number {
        let n = 0
        for (let k = LAT_BUCKETS - 1; k > 0 && latLow(k) > us; k--) n += counts[k] as number
        return n
      },
      countReaching(us: number): number {
        // bucket k reaches above `us` when its upper edge (the next one's lower edge) does; the last has none
        let n = counts[LAT_BUCKETS - 1] as number
        for (let k = LAT_BUCKETS - 2; k >= 0 && latLow(k + 1) > us; k--) n += counts[k] as number
        return n
      },
    }
  }

  /** Minute indexes held (newest first), for scans. */
  minutes(): number[] {
    const out: number[] = []
    for (let i = 0; i < this.slots; i++) {
      const c = this.idx[i] as number
      if (c >= 0 && c > this.newest - this.slots) out.push(c)
    }
    return out.sort((a, b) => b - a)
  }
}
