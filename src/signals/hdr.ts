/**
 * A fixed-size HDR histogram held in a plain JS typed array, index-compatible with hdr-histogram-js
 * 3.0.1 (the same lowest/highest/significant-digits give the same bucket layout, the same
 * `getValueAtPercentile` answers; test/signals/hdr.test.ts checks it against the library's JS and
 * WebAssembly histograms). Why not the library's histograms: a window that slid by one bucket cost
 * a WASM subtract plus an add (~6.5 us per series, mostly call overhead and whole-array loops), and
 * the windows of 10,000 watched series move every engine tick. Here a record is an index
 * computation and an array increment, and a window's quantile is read directly from its buckets'
 * counts without merging them into another histogram first (~1 us per series incl. the window).
 *
 * Each histogram remembers the index range [lo, hi] that may hold counts, so add/subtract/reset
 * and the quantile scan touch only that range (latencies of one service span a few octaves).
 *
 * Counts are 32-bit per index (like the store's former `bitBucketSize: 32`); totals are exact doubles.
 */

export interface HdrSettings {
  lowestUs: number
  highestUs: number
  significantDigits: number
}

/** floor(log2(v)) for integers 1 <= v < 2^53, exact (Math.log2 may round near powers of two). */
function msb(v: number): number {
  if (v < 4294967296) return 31 - Math.clz32(v)
  return 63 - Math.clz32(Math.floor(v / 4294967296))
}

/** ulp of a positive double as hdr-histogram-js computes it (0 for 0). */
function ulp(x: number): number {
  return Math.pow(2, Math.floor(Math.log2(x)) - 52)
}

/** The bucket layout shared by all histograms of one configuration. */
export class HdrLayout {
  readonly unitMagnitude: number
  readonly subBucketHalfCountMagnitude: number
  readonly subBucketHalfCount: number
  readonly subBucketCount: number
  readonly bucketCount: number
  /** number of counts (indices) */
  readonly length: number
  /** per index: the lowest and the highest value it stands for */
  readonly lowest: Float64Array
  readonly highest: Float64Array

  constructor(s: HdrSettings) {
    const digits = s.significantDigits
    const largestSingleUnit = 2 * Math.floor(Math.pow(10, digits))
    this.unitMagnitude = msb(Math.max(1, Math.floor(s.lowestUs)))
    const subBucketCountMagnitude = Math.ceil(Math.log2(largestSingleUnit))
    this.subBucketHalfCountMagnitude = (subBucketCountMagnitude > 1 ? subBucketCountMagnitude : 1) - 1
    this.subBucketCount = Math.pow(2, this.subBucketHalfCountMagnitude + 1)
    this.subBucketHalfCount = this.subBucketCount / 2
    let smallestUntrackable = this.subBucketCount * Math.pow(2, this.unitMagnitude)
    let buckets = 1
    while (smallestUntrackable <= s.highestUs) {
      if (smallestUntrackable > Number.MAX_SAFE_INTEGER / 2) {
        buckets++
        break
      }
      smallestUntrackable *= 2
      buckets++
    }
    this.bucketCount = buckets
    this.length = (buckets + 1) * this.subBucketHalfCount
    this.lowest = new Float64Array(this.length)
    this.highest = new Float64Array(this.length)
    const half = this.subBucketHalfCount
    for (let i = 0; i < this.length; i++) {
      let b = Math.floor(i / half) - 1
      let sub = (i % half) + half
      if (b < 0) {
        sub -= half
        b = 0
      }
      const size = Math.pow(2, b + this.unitMagnitude)
      this.lowest[i] = sub * size
      this.highest[i] = sub * size + size - 1
    }
  }

  /** The first index whose lowest equivalent value is above `us` (`length` when none; 0 for us < 0). NaN: `length`. */
  firstIndexAbove(us: number): number {
    if (!(us >= 0)) return us < 0 ? 0 : this.length
    const low = this.lowest
    let lo = 0
    let hi = this.length
    // lowest[] increases with the index: binary search for the first lowest > us
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((low[mid] as number) > us) hi = mid
      else lo = mid + 1
    }
    return lo
  }

  /** Index of an integer value 0 <= v <= the configured highest value. */
  index(v: number): number {
    const unit = this.unitMagnitude
    const m = v < 4294967296 ? 31 - Math.clz32(v) : msb(v) // v = 0 gives -1: bucket 0
    const b = Math.max(m - this.subBucketHalfCountMagnitude - unit, 0)
    const shift = b + unit
    const sub = v < 4294967296 && shift < 32 ? v >>> shift : Math.floor(v / Math.pow(2, shift))
    return b * this.subBucketHalfCount + sub
  }

  /**
   * The count rank that `getValueAtPercentile(percentile)` looks for among `total` values:
   * ceil(fraction x total), guarded against floating-point error, at least 1.
   */
  static rank(percentile: number, total: number): number {
    const fp = (Math.min(percentile, 100) / 100) * total
    return Math.max(Math.ceil(fp - ulp(fp)), 1)
  }
}

export class CountsHistogram {
  readonly counts: Uint32Array
  /** number of recorded values */
  total = 0
  /** indices outside [lo, hi] hold 0 (the range may be wider than the data after a subtract) */
  lo: number
  hi = -1

  /**
   * `counts`, when given, is this histogram's own zeroed storage of exactly `layout.length` counts
   * (a view into a shared slab: src/signals/histograms.ts says why); otherwise one is allocated.
   */
  constructor(
    readonly layout: HdrLayout,
    counts?: Uint32Array,
  ) {
    if (counts !== undefined && counts.length !== layout.length) throw new RangeError(`counts holds ${counts.length} values, the layout ${layout.length}`)
    this.counts = counts ?? new Uint32Array(layout.length)
    this.lo = layout.length
  }

  /** Records an integer value in [0, highest]. */
  recordValue(v: number): void {
    const i = this.layout.index(v)
    this.counts[i] = (this.counts[i] as number) + 1
    this.total++
    if (i < this.lo) this.lo = i
    if (i > this.hi) this.hi = i
  }

  recordValueWithCount(v: number, n: number): void {
    const i = this.layout.index(v)
    this.counts[i] = (this.counts[i] as number) + n
    this.total += n
    if (i < this.lo) this.lo = i
    if (i > this.hi) this.hi = i
  }

  /** Adds another histogram of the same layout. */
  add(o: CountsHistogram): void {
    const c = this.counts
    const oc = o.counts
    for (let i = o.lo; i <= o.hi; i++) c[i] = (c[i] as number) + (oc[i] as number)
    this.total += o.total
    if (o.hi >= o.lo) {
      if (o.lo < this.lo) this.lo = o.lo
      if (o.hi > this.hi) this.hi = o.hi
    }
  }

  /** Subtracts a histogram whose counts were added to this one (the range stays conservative). */
  subtract(o: CountsHistogram): void {
    const c = this.counts
    const oc = o.counts
    for (let i = o.lo; i <= o.hi; i++) c[i] = (c[i] as number) - (oc[i] as number)
    this.total -= o.total
  }

  reset(): void {
    if (this.hi >= this.lo) this.counts.fill(0, this.lo, this.hi + 1)
    this.total = 0
    this.lo = this.layout.length
    this.hi = -1
  }

  /** hdr-histogram-js `getValueAtPercentile` (percentile in 0..100); 0 without values. */
  getValueAtPercentile(percentile: number): number {
    return valueAtPercentile([this], 1, percentile)
  }
}

/**
 * `getValueAtPercentile` of the sum of hs[0..n) (same layout) without building the sum: the
 * counts are scanned index by index across the histograms, up to the rank of the percentile
 * (from the top for quantiles above the median). Counts and totals must agree (they do: every
 * change goes through record/add/subtract/reset).
 */
export function valueAtPercentile(hs: readonly CountsHistogram[], n: number, percentile: number): number {
  let total = 0
  let lo = Infinity
  let hi = -1
  for (let j = 0; j < n; j++) {
    const h = hs[j] as CountsHistogram
    if (h.total <= 0) continue
    total += h.total
    if (h.lo < lo) lo = h.lo
    if (h.hi > hi) hi = h.hi
  }
  if (total <= 0) return 0
  const layout = (hs[0] as CountsHistogram).layout
  const k = HdrLayout.rank(percentile, total)
  const pick = percentile === 0 ? layout.lowest : layout.highest
  // the answer is the smallest index whose cumulative count reaches k; high quantiles are found
  // from the top (only the tail is scanned), low ones from the bottom
  if (k > total / 2) {
    // invariant: the cumulative count up to i is >= k; it drops below k at i - 1 when the counts
    // from i upward exceed total - k
    let above = 0
    for (let i = hi; i > lo; i--) {
      for (let j = 0; j < n; j++) above += (hs[j] as CountsHistogram).counts[i] as number
      if (total - above < k) return pick[i] as number
    }
    return pick[lo] as number
  }
  let cum = 0
  for (let i = lo; i <= hi; i++) {
    for (let j = 0; j < n; j++) cum += (hs[j] as CountsHistogram).counts[i] as number
    if (cum >= k) return pick[i] as number
  }
  return 0
}

/**
 * Samples of the sum of hs[0..n) (same layout) in buckets that lie wholly above `us`: whose lowest
 * equivalent value is > us. Exact counts; the same `us` selects the same buckets in any histogram
 * of the layout.
 */
export function countAbove(hs: readonly CountsHistogram[], n: number, us: number): number {
  if (n === 0) return 0
  const from = (hs[0] as CountsHistogram).layout.firstIndexAbove(us)
  let total = 0
  for (let j = 0; j < n; j++) {
    const h = hs[j] as CountsHistogram
    if (h.total <= 0) continue
    const c = h.counts
    for (let i = Math.max(from, h.lo); i <= h.hi; i++) total += c[i] as number
  }
  return total
}
