/**
 * Issue 10's cadence targets for step regressions on metrics-only services, shared by the benches
 * that print them (quality.ts over the scenario library, false-rollbacks.ts `--errors` over drawn
 * services): rolled back within 3 export intervals + `engine.lateness` of the new version's first
 * export at 60 s, within 90 s at 15 s.
 *
 * `intervals`: the export intervals a bench drew (false-rollbacks.ts `--intervals`). An interval
 * other than 15 or 60 s (10 s excepted: the issue names none for it, as before) gets the limit the
 * two stated ones lie on, the later of 90 s and 3 intervals + lateness; `derived` marks it, so no
 * one reads it as the issue's.
 */
export function cadenceLimits(latenessS: number, intervals: readonly number[] = [60, 15]): readonly { intervalS: number; limitS: number; derived: boolean }[] {
  const out: { intervalS: number; limitS: number; derived: boolean }[] = []
  for (const i of [...new Set(intervals)].sort((a, b) => b - a)) {
    if (i === 60) out.push({ intervalS: 60, limitS: 3 * 60 + latenessS, derived: false })
    else if (i === 15) out.push({ intervalS: 15, limitS: 90, derived: false })
    else if (i !== 10) out.push({ intervalS: i, limitS: Math.max(90, 3 * i + latenessS), derived: true })
  }
  return out
}
