/**
 * Issue 10's cadence targets for step regressions on metrics-only services, shared by the benches
 * that print them (quality.ts over the scenario library, false-rollbacks.ts `--errors` over drawn
 * services): rolled back within 3 export intervals + `engine.lateness` of the new version's first
 * export at 60 s, within 90 s at 15 s.
 */
export function cadenceLimits(latenessS: number): readonly { intervalS: number; limitS: number }[] {
  return [
    { intervalS: 60, limitS: 3 * 60 + latenessS },
    { intervalS: 15, limitS: 90 },
  ]
}
