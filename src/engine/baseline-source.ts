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
 * "Worse" is judged against the snapshot's own sequential-test levels: the old version's live error
 * ratio above the level the new version's evidence is judged against, or its live latency quantile
 * above the latency cut. Under that condition the new version, behaving exactly like the old one,
 * could build evidence against the snapshot; below it, it cannot (up to the noise of the live
 * estimate, which the threshold's full effect and the second witness absorb).
 */
import type { Contract } from './config.js'
import type { BaselineNumbers } from './rules.js'
import type { Levels } from './sequential.js'

/**
 * True when the old version's live numbers show it worse than its frozen snapshot (see above).
 * `levels` are the snapshot's (the engine caches them per snapshot: their upper bounds cost a
 * bisection each, and this runs for every watch beside a serving old version at every tick).
 */
export function liveWorseThanSnapshot(c: Contract, live: Pick<BaselineNumbers, 'requests' | 'errors' | 'latencyUs' | 'latencyCount'>, snapshot: BaselineNumbers, levels: Levels): boolean {
  if (snapshot.requests < c.minSamples) return true
  if (live.requests >= c.minSamples && live.errors / live.requests > levels.errorLevel) return true
  if (live.latencyCount >= c.minSamples && Number.isFinite(live.latencyUs)) {
    if (!Number.isFinite(levels.latencyCutUs)) return true
    if (live.latencyUs > levels.latencyCutUs) return true
  }
  return false
}
