/**
 * A bounded quantile sketch for non-negative readings (bytes, cores): log-spaced buckets of 2 %
 * relative width, so any quantile is within 2 % of a reading that was observed. The bucket map is
 * bounded by the value range (about 2,100 buckets from 1e-6 to 1e12); readings outside it are
 * clamped to its ends and counted in `clamped`.
 */
const GROWTH = 1.02
const LOG_G = Math.log(GROWTH)
const MIN = 1e-6
const MAX = 1e12

export class QuantileSketch {
  private readonly buckets = new Map<number, number>()
  private zeros = 0
  count = 0
  clamped = 0

  add(v: number, n = 1): void {
    if (!Number.isFinite(v) || v < 0 || n <= 0) return
    this.count += n
    if (v === 0) {
      this.zeros += n
      return
    }
    let x = v
    if (x < MIN || x > MAX) {
      this.clamped += n
      x = Math.min(MAX, Math.max(MIN, x))
    }
    const k = Math.ceil(Math.log(x) / LOG_G)
    this.buckets.set(k, (this.buckets.get(k) ?? 0) + n)
  }

  /** readings of exactly 0 */
  get zeroCount(): number {
    return this.zeros
  }

  /** the non-empty buckets, ascending by index: bucket k holds readings in (GROWTH^(k-1), GROWTH^k] */
  entries(): [number, number][] {
    return [...this.buckets.entries()].sort((a, b) => a[0] - b[0])
  }

  /** merges a bucket of another sketch (or a decoded one): `n` readings in bucket `k` (k = 0 with zero: readings of 0) */
  addBucket(k: number, n: number, zero = false): void {
    if (!(n > 0) || !Number.isInteger(k)) return
    this.count += n
    if (zero) this.zeros += n
    else this.buckets.set(k, (this.buckets.get(k) ?? 0) + n)
  }

  merge(o: QuantileSketch): void {
    if (o.zeros > 0) this.addBucket(0, o.zeros, true)
    for (const [k, n] of o.buckets) this.addBucket(k, n)
    this.clamped += o.clamped
  }

  /** the q-quantile (0..1): the upper edge of the bucket holding it; NaN when empty */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN
    const rank = Math.max(1, Math.ceil(q * this.count))
    if (rank <= this.zeros) return 0
    let seen = this.zeros
    const keys = [...this.buckets.keys()].sort((a, b) => a - b)
    for (const k of keys) {
      seen += this.buckets.get(k) as number
      if (seen >= rank) return Math.exp(k * LOG_G)
    }
    return Math.exp((keys[keys.length - 1] as number) * LOG_G)
  }
}
