/**
 * Deterministic pseudo-random numbers for the simulator: a scenario recorded twice with the same
 * seed must produce the same bytes, so nothing in src/sim may call Math.random().
 */

/** 32-bit FNV-1a of a string: turns (scenario name, seed) into a PRNG seed. */
export function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** sfc32: small, fast, passes PractRand to large sizes; plenty for workload shapes. */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spareNormal: number | undefined

  constructor(seed: number | string) {
    const s = typeof seed === 'string' ? hash32(seed) : seed >>> 0
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = s
    for (let i = 0; i < 15; i++) this.u32()
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** uniform in [0, 1) */
  next(): number {
    return this.u32() / 4294967296
  }

  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** standard normal (Marsaglia polar) */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal
      this.spareNormal = undefined
      return v
    }
    let u = 0
    let v = 0
    let s = 0
    do {
      u = this.next() * 2 - 1
      v = this.next() * 2 - 1
      s = u * u + v * v
    } while (s >= 1 || s === 0)
    const m = Math.sqrt((-2 * Math.log(s)) / s)
    this.spareNormal = v * m
    return u * m
  }

  /** log-normal with the given median and shape sigma */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal())
  }

  /** Poisson count with mean lambda (Knuth for small lambda, normal approximation above 30) */
  poisson(lambda: number): number {
    if (lambda <= 0) return 0
    if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * this.normal()))
    const l = Math.exp(-lambda)
    let k = 0
    let p = 1
    do {
      k++
      p *= this.next()
    } while (p > l)
    return k - 1
  }

  /** lowercase hex of `chars` characters (multiple of 8) */
  hex(chars: number): string {
    let s = ''
    for (let i = 0; i < chars; i += 8) s += this.u32().toString(16).padStart(8, '0')
    return s
  }

  /** k8s-style random suffix: 5 chars from the bcdfghjklmnpqrstvwxz2456789 alphabet */
  podSuffix(len = 5): string {
    const alphabet = 'bcdfghjklmnpqrstvwxz2456789'
    let s = ''
    for (let i = 0; i < len; i++) s += alphabet[this.int(alphabet.length)]
    return s
  }
}
