/** Small numeric helpers of the engine. Pure. */

// Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
]

export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x)
  x -= 1
  let a = LANCZOS[0] as number
  const t = x + 7.5
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] as number) / (x + i)
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a)
}

/**
 * One-sided binomial test: P(X >= k) for X ~ Binomial(n, p). Exact summation of the upper tail in
 * log space. When k is not above the mean the answer is >= ~0.5 and 1 is returned (the test is
 * only ever asked whether an excess is significant).
 */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1
  if (k > n) return 0
  if (p <= 0) return 0
  if (p >= 1) return 1
  if (k <= n * p) return 1
  const logTerm = logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p)
  let term = Math.exp(logTerm)
  let sum = term
  const r = p / (1 - p)
  for (let i = k; i < n && i < k + 200_000; i++) {
    term *= ((n - i) / (i + 1)) * r
    sum += term
    if (term < sum * 1e-15) break
  }
  return Math.min(1, sum)
}

/**
 * One-sided binomial test, the other tail: P(X <= k) for X ~ Binomial(n, p) (the upper tail of the
 * n - k failures). 1 when k is not below the mean (only a shortfall is ever asked about).
 */
export function binomialLowerTail(k: number, n: number, p: number): number {
  if (k >= n) return 1
  if (k < 0) return 0
  return binomialUpperTail(n - k, n, 1 - p)
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

export function alignUp(t: number, step: number): number {
  return Math.ceil(t / step) * step
}
