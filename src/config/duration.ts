import { z } from 'zod'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Parses "250ms", "30s", "5m", "1h", "1m30s" or a bare number of milliseconds. Returns NaN when invalid. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : NaN
  const s = input.trim()
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s)
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy
  let total = 0
  let matched = 0
  let m: RegExpExecArray | null
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * (UNITS[m[2] as string] as number)
    matched = re.lastIndex
  }
  return matched === s.length && matched > 0 ? total : NaN
}

/** A duration field: accepts "30s"-style strings or milliseconds; yields milliseconds. */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v)
    if (Number.isNaN(ms)) {
      ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(v)} (use e.g. "500ms", "30s", "5m")` })
      return z.NEVER
    }
    return ms
  })
