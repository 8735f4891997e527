/**
 * The error test in a second form, for a corroborating witness: evidence against the frozen
 * baseline's COUNTS, not against a plug-in upper bound of its rate, and that the version's error
 * rate is above the baseline's at all, not above it by half the contract's effect. Pure numbers,
 * no I/O.
 *
 * Why: errorLevel (rules.ts) judges the new version against the baseline rate's 99 % upper bound
 * plus half the contract's effect. A quiet service's baseline holds a few hundred requests and 0-3
 * errors; its upper bound is then most of the level (2 % for 2 errors in 500 requests, where the
 * rate is nearer 0.5 %), and a 5 % fault at 1.5 req/s took 7-10 minutes to reach even the
 * corroboration bound, or never did within a recording (issue 10: `low-traffic-60s-bad-deploy`
 * seed 5).
 *
 * Why no lift: a second witness answers "is this symptom really there?", not "is it big enough to
 * act on?". How big is the reading's own duty (errorRateRule: the span's ratio beyond the full
 * threshold, and every slice beyond it or holding its share of the errors), and a two-witness
 * decision is a false alarm only if its leader is one (rules.ts corroborationBound). Against the
 * lifted level (half way to the threshold) the witness of a 5 % fault at 1.5 req/s with six minutes
 * of history needed 9 reports of 60 s; against the baseline's rate, 3 (bench/error-evidence.ts).
 * A version whose error rate is no higher than its baseline's still becomes a witness with
 * probability at most 1/bound = sqrt(alpha).
 *
 * The composite null: the baseline's errors are Binomial(nb, p) for an unknown rate p, and the new
 * version's rate is at most p. For each p,
 *     E(p) = Eb(p) x En(p)
 * is an e-value: Eb(p) is the likelihood ratio of the baseline's counts, a mixture over a fixed
 * log-uniform prior of rates against p (expectation 1 when the rate is p), and En(L) the betting
 * test of the new version's requests against level L (evidence.ts: a test supermartingale when the
 * rate is at most L). They concern different requests, so conditional on the baseline Ville's
 * inequality bounds the chance that En ever reaches 1/(a Eb(p*)) by a Eb(p*), and averaged over the
 * baseline by a, for the true p*. The infimum over p is below E(p*): an anytime-valid e-process
 * for the composite null, with no separate 1 % for the baseline's bound. The price is the prior's:
 * at the baseline's own rate Eb is about 0.3 / sqrt(errors), so against a large baseline this test
 * is slower than the plug-in; against a quiet one it is faster (bench/error-evidence.ts prints both).
 *
 * The infimum is taken on a grid p_0 < ... < p_(K-1) of rates from the baseline's own: on
 * (p_(j-1), p_j] the level is at most p_j, and a test at p_j is one for every rate below it, so
 * that interval contributes (min of Eb on it) x En(p_j). Above p_(K-1), where Eb exceeds TOP, the
 * test is Eb alone (En = 1, a test that never bets), at least TOP. The grid's rates come from the
 * baseline's counts: conditional on the baseline they are fixed, and the argument above is
 * conditional on it. Per level a watch keeps one adaptive bettor's log wealth (stakes from the same
 * recent counts as the plug-in test's, queued the same way: sequential.ts); the fixed-stake
 * bettors' wealth follows from the totals, as the levels are fixed for the watch (the grid is built
 * once, from the frozen baseline; a live baseline has none).
 *
 * With a pooled history (history-pool.ts) the counts are the history's and the infimum starts at
 * the window's own rate, as errorLevel narrows its level: judged from where the rate is now.
 *
 * Only a corroborating witness uses it (readings.ts; rules.ts corroborationBound): a two-witness
 * decision is a false alarm only if its leader is one, and the leader stays the plug-in test.
 */
import { ADAPTIVE_WEIGHT, FIXED_STAKES, kellyStake, LOG_FLOOR, logFactor, MAX_EVIDENCE } from './evidence.js'
import type { BaselineNumbers } from './rules.js'

/** Rates on the grid (levels per watch: the adaptive bettors' state). */
const GRID_POINTS = 24
/** The grid ends where Eb reaches this: far beyond any bound the evidence is compared with. */
const TOP = 1e8
/** The prior of Eb: log-uniform over [PRIOR_MIN, PRIOR_MAX], PRIOR_STEPS points. */
const PRIOR_MIN = 1e-5
const PRIOR_MAX = 0.5
const PRIOR_STEPS = 200
/** The highest level a grid tests (a rate of 1 leaves nothing to bet on). */
const MAX_LEVEL = 0.99
/**
 * The lowest: a clean baseline's first rate is 0, and a bet against a level of 0 is undefined
 * (stakes of 1/level). A test at a level above the rate it stands for is a test for that rate too.
 */
const MIN_LEVEL = 1e-6

/** The grid of one frozen baseline: ascending levels and, per level, the log of the least Eb on its interval. */
export interface ErrorGrid {
  levels: Float64Array
  logFloor: Float64Array
  /** log of the top interval's evidence (Eb at the last rate) */
  logTail: number
}

/** A watch's bettors on an ErrorGrid. */
export interface GridEvidence {
  /** log wealth of the adaptive bettor per level (empty before the first batch) */
  adaptive: number[]
  /** requests and errors fed so far (the fixed-stake bettors' wealth follows from them) */
  n: number
  bad: number
  /** the recent counts the next batch's adaptive stakes come from (queued like the plug-in test's stake) */
  stakeN: number
  stakeBad: number
}

export function newGridEvidence(): GridEvidence {
  return { adaptive: [], n: 0, bad: 0, stakeN: 0, stakeBad: 0 }
}

export function copyGrid(dst: GridEvidence, src: GridEvidence): void {
  dst.adaptive.length = src.adaptive.length
  for (let i = 0; i < src.adaptive.length; i++) dst.adaptive[i] = src.adaptive[i] as number
  dst.n = src.n
  dst.bad = src.bad
  dst.stakeN = src.stakeN
  dst.stakeBad = src.stakeBad
}

/**
 * The grid for a frozen baseline's error counts; undefined without requests. Built for every
 * frozen baseline (once per watch, at its freeze): until session 37 only where the plug-in bound spent a
 * quarter of the contract's effect, as against the same lifted level a large baseline's prior cost
 * more than its bound; against the baseline's own rate this test is the faster one at any traffic
 * (a version deployed after an hour of its predecessor at 1.5 req/s: 600 -> 300 s worst over seeds
 * 1-20, `node dist/bench/quality.js --seeds 20 --only low-traffic-60s-hour-bad-deploy`).
 */
export function errorGrid(base: BaselineNumbers): ErrorGrid | undefined {
  let k = base.errors
  let n = base.requests
  let low = 0
  const pooled = base.pooled?.errors
  if (pooled !== undefined && pooled.samples > n && n > 0) {
    low = k / n
    k = pooled.events
    n = pooled.samples
  }
  if (!(n > 0) || !(k >= 0) || k > n) return undefined
  const rate = k / n
  const logL = (p: number): number => (k > 0 ? k * Math.log(p) : 0) + (n - k > 0 ? (n - k) * Math.log1p(-p) : 0)
  const logMarginal = logMixture(logL)
  const logEb = (p: number): number => logMarginal - logL(p)
  const start = Math.max(rate, low)
  // the last rate: where Eb reaches TOP (Eb rises above the baseline's own rate) or MAX_LEVEL
  let lo = start
  let hi = MAX_LEVEL
  if (logEb(hi) > Math.log(TOP)) {
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2
      if (logEb(mid) >= Math.log(TOP)) hi = mid
      else lo = mid
    }
  }
  const top = hi
  // geometric in p + 1/n: fine steps near a zero rate, relative steps above it
  const a = start + 1 / n
  const ratio = top > start ? Math.pow((top + 1 / n) / a, 1 / (GRID_POINTS - 1)) : 1
  const points = top > start ? GRID_POINTS : 1
  const levels = new Float64Array(points)
  const logFloor = new Float64Array(points)
  let prev = start
  for (let j = 0; j < points; j++) {
    const p = j === points - 1 ? top : Math.min(top, a * Math.pow(ratio, j) - 1 / n)
    levels[j] = Math.max(MIN_LEVEL, p)
    // Eb is least at the baseline's own rate and rises on either side: on (prev, p] it is least at prev
    logFloor[j] = logEb(j === 0 ? start : prev)
    prev = p
  }
  return { levels, logFloor, logTail: logEb(top) }
}

/** log of the prior mixture of the baseline's likelihood (a streaming log-sum-exp over the log-uniform grid). */
function logMixture(logL: (p: number) => number): number {
  const a = Math.log(PRIOR_MIN)
  const step = (Math.log(PRIOR_MAX) - a) / (PRIOR_STEPS - 1)
  let max = -Infinity
  let sum = 0
  for (let i = 0; i < PRIOR_STEPS; i++) {
    const x = logL(Math.exp(a + i * step))
    if (x <= max) sum += Math.exp(x - max)
    else {
      sum = sum * Math.exp(max - x) + 1
      max = x
    }
  }
  return max + Math.log(sum / PRIOR_STEPS)
}

/**
 * Feeds one batch (`n` requests, `bad` errors) to every level's adaptive bettor at the stake fixed
 * from `stakeN` / `stakeBad` (data before the batch). Levels ascend, so once a level's stake is 0
 * (the recent rate is not above it) so is every later one's.
 */
export function feedGrid(g: GridEvidence, grid: ErrorGrid, n: number, bad: number): void {
  if (!(n > 0)) return
  const k = grid.levels.length
  if (g.adaptive.length !== k) {
    // a watch's grid never changes (built once from the frozen baseline): a length that differs is
    // a first batch, or a record from another grid size, whose bettors start over
    g.adaptive.length = 0
    for (let j = 0; j < k; j++) g.adaptive.push(0)
  }
  const good = Math.max(0, n - bad)
  for (let j = 0; j < k; j++) {
    const level = grid.levels[j] as number
    const lambda = kellyStake(g.stakeN, g.stakeBad, level)
    if (!(lambda > 0)) break
    g.adaptive[j] = Math.max(LOG_FLOOR, (g.adaptive[j] as number) + logFactor(lambda, level, bad, good))
  }
  g.n += n
  g.bad += bad
}

/** The composite e-value: the least over the grid's intervals, in [0, MAX_EVIDENCE]. */
export function compositeEvidence(g: GridEvidence, grid: ErrorGrid): number {
  let least = grid.logTail
  const good = Math.max(0, g.n - g.bad)
  for (let j = 0; j < grid.levels.length; j++) {
    const level = grid.levels[j] as number
    let fixed = 0
    for (const s of FIXED_STAKES) fixed += Math.exp(Math.min(700, Math.max(LOG_FLOOR, logFactor(s / level, level, g.bad, good))))
    const adaptive = Math.exp(Math.min(700, g.adaptive[j] ?? 0))
    const bet = ADAPTIVE_WEIGHT * adaptive + ((1 - ADAPTIVE_WEIGHT) / FIXED_STAKES.length) * fixed
    least = Math.min(least, (grid.logFloor[j] as number) + Math.log(bet))
  }
  const v = Math.exp(least)
  return v < MAX_EVIDENCE ? v : MAX_EVIDENCE
}
