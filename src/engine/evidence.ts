/**
 * Anytime-valid evidence for the request signals. Pure numbers, no I/O.
 *
 * Both request signals reduce to one question about a stream of Bernoulli outcomes of the watched
 * version: is the probability of a "bad" request above a level T that the contract allows?
 *   - error rate: bad = 5xx / span status ERROR; T = the contract's error threshold computed from the
 *     baseline's error rate (its upper confidence bound, so the baseline's sample size counts too);
 *   - latency:    bad = the request's latency lies above the contract's latency threshold c
 *     (multiplier x baseline quantile); T = 1 - quantile (1 % for p99), or the share of the
 *     baseline's own requests above c when that is larger (its upper bound). "The new p99 is
 *     at most c" is exactly "at most 1 % of its requests lie above c": the test compares bucket
 *     counts above c, never interpolated midpoints.
 *
 * The test is a betting martingale (a test supermartingale under H0: p <= T): before each batch of
 * requests a stake lambda >= 0 is fixed from data seen BEFORE the batch; the batch multiplies the
 * wealth by (1 + lambda (1 - T))^bad (1 - lambda T)^good. Under H0 the expected factor is at most 1,
 * so by Ville's inequality the probability that the wealth EVER reaches 1/alpha is at most alpha,
 * however often and at whatever cadence it is looked at (spans every second, metrics every 60 s).
 * This is the construction of the anytime-valid sequential tests used for canaries (Lindon, Sanden,
 * Shirikian, "Rapid Regression Detection in Software Deployments through Sequential Testing", KDD
 * 2022; Lindon and Malek, "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022),
 * specialised to one-sided Bernoulli streams against a contract level.
 *
 * The wealth is a mixture (an average of test martingales is one) of:
 *   - an adaptive bettor whose stake is the Kelly stake for the recent estimate of p (zero while
 *     the version behaves, so weeks of good data cost nothing and a fault that starts late in the
 *     watch is found as fast as one at the start), and
 *   - a few fixed-stake bettors, which win on the very first batch when a fault is present from the
 *     deployment on (the adaptive bettor has no estimate before its first batch).
 */

/** Fixed stakes, as the fraction of wealth risked per good request (lambda x T). */
export const FIXED_STAKES = [0.01, 0.04, 0.15, 0.4] as const
/** Mixture weight of the adaptive bettor; the rest is shared by the fixed ones. */
export const ADAPTIVE_WEIGHT = 0.5
/** The adaptive stake never risks more than this fraction of wealth on one good request. */
const MAX_STAKE = 0.5
/** log-wealth is floored here: a bettor this far down contributes nothing and must not underflow to -Infinity. */
export const LOG_FLOOR = -700

export interface BernoulliEvidence {
  /** log wealth of the adaptive bettor */
  adaptive: number
  /** stake (lambda) the adaptive bettor uses for the next batch, fixed before the batch is seen */
  nextLambda: number
  /** log wealth of each fixed-stake bettor (FIXED_STAKES order) */
  fixed: number[]
  /** requests and bad requests consumed so far */
  n: number
  bad: number
}

export function newEvidence(): BernoulliEvidence {
  return { adaptive: 0, nextLambda: 0, fixed: FIXED_STAKES.map(() => 0), n: 0, bad: 0 }
}

/** log of the factor a batch of `bad` bad and `good` good requests multiplies a bettor's wealth by, at stake `lambda` against `level`. */
export function logFactor(lambda: number, level: number, bad: number, good: number): number {
  if (lambda <= 0) return 0
  const up = Math.log1p(lambda * (1 - level))
  const down = Math.log1p(-Math.min(lambda * level, 1 - 1e-12))
  return bad * up + good * down
}

/**
 * Feeds one batch: `n` requests of which `bad` are bad, judged against the level `level` (T in
 * (0, 1)). Then fixes the adaptive stake for the NEXT batch from `recentBad / recentN` (data already
 * seen, typically the confirmation span ending with this batch). Mutates and returns `e`.
 */
export function feed(e: BernoulliEvidence, n: number, bad: number, level: number, recentN: number, recentBad: number): BernoulliEvidence {
  if (!(level > 0 && level < 1)) return e
  const good = Math.max(0, n - bad)
  if (n > 0) {
    e.adaptive = Math.max(LOG_FLOOR, e.adaptive + logFactor(e.nextLambda, level, bad, good))
    for (let i = 0; i < FIXED_STAKES.length; i++) {
      const lambda = (FIXED_STAKES[i] as number) / level
      e.fixed[i] = Math.max(LOG_FLOOR, (e.fixed[i] as number) + logFactor(lambda, level, bad, good))
    }
    e.n += n
    e.bad += bad
  }
  e.nextLambda = kellyStake(recentN, recentBad, level)
  return e
}

/**
 * The Kelly stake for an estimated p against level T: (p - T) / (T (1 - T)), capped so that one good
 * request risks at most MAX_STAKE of the wealth. The estimate is shrunk toward T by one pseudo-request
 * (a single bad request in a handful is not a reason to bet).
 */
export function kellyStake(n: number, bad: number, level: number): number {
  if (!(n > 0) || !(level > 0 && level < 1)) return 0
  const p = (bad + level) / (n + 1)
  if (p <= level) return 0
  return Math.min((p - level) / (level * (1 - level)), MAX_STAKE / level)
}

/** e-values are reported up to this: finite (verdicts are signed canonical JSON), far beyond any bound. */
export const MAX_EVIDENCE = 1e300

/** The mixture's e-value (wealth), in [0, MAX_EVIDENCE]. Reaching 1/alpha rejects H0 at level alpha, anytime. */
export function eValue(e: BernoulliEvidence): number {
  let fixed = 0
  for (const f of e.fixed) fixed += Math.exp(f)
  const v = ADAPTIVE_WEIGHT * Math.exp(e.adaptive) + ((1 - ADAPTIVE_WEIGHT) / FIXED_STAKES.length) * fixed
  return v < MAX_EVIDENCE ? v : MAX_EVIDENCE
}

/** Kullback-Leibler divergence of Bernoulli(p) from Bernoulli(q). */
function klBernoulli(p: number, q: number): number {
  const eps = 1e-15
  const a = Math.min(Math.max(p, eps), 1 - eps)
  const b = Math.min(Math.max(q, eps), 1 - eps)
  return a * Math.log(a / b) + (1 - a) * Math.log((1 - a) / (1 - b))
}

/**
 * Upper confidence bound for a Bernoulli rate from `bad` of `n` (Chernoff / KL bound): the largest q
 * with n KL(bad/n, q) <= ln(1/delta). Holds with probability >= 1 - delta; tight for rare events
 * (0 of 6,000 gives about 0.0012 at delta 1e-3, where a normal approximation would give 0).
 */
export function rateUpperBound(bad: number, n: number, delta: number): number {
  if (!(n > 0)) return 1
  const p = Math.min(1, Math.max(0, bad / n))
  const target = Math.log(1 / delta) / n
  let lo = p
  let hi = 1
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2
    if (klBernoulli(p, mid) > target) hi = mid
    else lo = mid
  }
  return hi
}
