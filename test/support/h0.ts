/** Helpers of the tests that measure a sequential test's false-alarm rate under H0 by simulation. */

/** Bad requests among `n`, each bad with probability `p`, drawn from `r` (a seeded PRNG). */
export function binomial(n: number, p: number, r: () => number): number {
  let k = 0
  for (let i = 0; i < n; i++) if (r() < p) k++
  return k
}

/** Share of seeds 1..runs for which `alarmed(seed)` is true: the measured false-alarm rate. */
export function alarmRate(runs: number, alarmed: (seed: number) => boolean): number {
  let alarms = 0
  for (let seed = 1; seed <= runs; seed++) if (alarmed(seed)) alarms++
  return alarms / runs
}
