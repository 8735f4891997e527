/** Figures of repeated runs: every bench figure is min / median / max over its runs (issue 16), never the best run. */
export interface Spread {
  min: number
  median: number
  max: number
}

/** min / median / max of `xs` (the upper median for an even count); NaN for none. */
export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) return { min: NaN, median: NaN, max: NaN }
  const s = [...xs].sort((a, b) => a - b)
  return { min: s[0] as number, median: s[s.length >> 1] as number, max: s[s.length - 1] as number }
}

/** "min / median / max" with each value formatted by `f`. */
export function fmtSpread(s: Spread, f: (x: number) => string): string {
  return `${f(s.min)} / ${f(s.median)} / ${f(s.max)}`
}

/** The nearest-rank quantile q (0, 1] of `xs`; NaN for none. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number
}
