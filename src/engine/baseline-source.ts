/**
 * Which baseline a request signal is judged against when the old version still serves beside the
 * new one (a canary, or a rolling update in progress): its frozen pre-deploy snapshot or its live
 * numbers since the deployment. Pure.
 *
 * The live numbers answer one question the snapshot cannot: has the old version itself got worse
 * since the deployment (a shared dependency failing, a traffic surge)? Then the new version must
 * not be blamed for it, and the live numbers are the baseline. Otherwise the snapshot is the
 * better baseline: it holds `baselineWindow` (5 min) of requests where the live numbers hold only
 * the seconds since the deployment, so its upper bounds are tight and the sequential tests reach
 * their bound on far fewer requests (measured on a rolling update with 5 % errors at 10-27 req/s:
 * decided about 10 s sooner, `bench/quality.ts`). A live old version that is better than its
 * snapshot changes nothing: the snapshot is the more lenient of the two then.
 *
 * "Worse" is judged against the snapshot's own sequential-test levels, as a test, not a point
 * estimate: the old version's live errors, or its live requests above the latency cut, are more
 * than its live requests make probable at the level the new version's evidence is judged against
 * (binomial upper tail at most sqrt(alpha), the strength a corroborating witness needs, see
 * rules.ts corroborationBound). Why a test: a p99 over the few hundred requests the old version
 * serves during a rollout sits in its service's long tail and swings; as a point estimate it read
 * 1.35x the snapshot for an old version no slower than before, the live baseline (2x looser) was
 * taken and a 2x slower new version read healthy for 25 s (`spans-and-metrics-bad-deploy` seed
 * 13). Why that strength suffices: a new version that behaves exactly like a worse old one (the
 * shared cause) builds evidence against the snapshot at the old one's rate; when the old one's own
 * counts are that unremarkable, the new one's are too, short of the 1/sqrt(alpha) even a second
 * witness needs, and far short of a leader's 1/alpha. A shared cause strong enough to lead a
 * decision shows in the old version's counts at far smaller tails and switches to the live numbers.
 */
import type { Contract } from './config.js'
import type { BaselineNumbers } from './rules.js'
import type { Levels } from './sequential.js'
import { binomialUpperTail } from './stats.js'
import type { LatencyView, WindowStats } from '../signals/view.js'

/** What the test reads of the old version's live window: its requests, errors, and latency samples above a cut. */
export type LiveWindow = Pick<WindowStats, 'requests' | 'errors'> & { latency: Pick<LatencyView, 'count' | 'countAbove'> }

/**
 * True when the old version's live window shows it worse than its frozen snapshot (see above).
 * `levels` are the snapshot's (the engine caches them per snapshot: their upper bounds cost a
 * bisection each, and this runs for every watch beside a serving old version at every tick; the
 * binomial tail is computed only when a point estimate is beyond its level).
 */
export function liveWorseThanSnapshot(c: Contract, live: LiveWindow, snapshot: BaselineNumbers, levels: Levels): boolean {
  if (snapshot.requests < c.minSamples) return true
  const significance = Math.sqrt(c.alpha)
  if (live.requests >= c.minSamples && beyond(live.errors, live.requests, levels.errorLevel, significance)) return true
  if (live.latency.count >= c.minSamples) {
    // a snapshot without latency levels cannot judge the old version's latency: the live numbers can
    if (!Number.isFinite(levels.latencyCutUs)) return true
    if (beyond(live.latency.countAbove(levels.latencyCutUs), live.latency.count, levels.latencyLevel, significance)) return true
  }
  return false
}

/** `k` of `n` improbable at `level`: P(Binomial(n, level) >= k) <= significance. A level outside (0, 1) tests nothing. */
function beyond(k: number, n: number, level: number, significance: number): boolean {
  if (!(level > 0 && level < 1) || k <= n * level) return false
  return binomialUpperTail(k, n, level) <= significance
}
