/**
 * The old version's longer pre-deploy history, pooled with its baseline window to bound the
 * baseline's error rate and its shares of slow requests (rules.ts narrowed). Pure; reads the view
 * once per watch, at freeze time.
 *
 * Why: the sequential tests judge the new version against the baseline's upper bounds (plus half
 * the contract's effect). A 1.5 req/s service's 5-minute window holds ~450 requests and ~2 errors:
 * its upper bound (2.3 %) is most of the error level, and the evidence for a 5 % fault waits 15
 * reports at 60 s (bench/error-evidence.ts); with the hour before it, 4.
 *
 * When: only when the validation gate (gate.ts judgeBaseline) found the window healthy against the
 * history before it (a breaching window is never pooled with the history that would hide it).
 * Safe under drift without a further test: rules.ts never lets a pooled level fall under the
 * window's own point estimate, lifted (plus half the effect for errors; the latency cuts already lie
 * half way to the threshold above the window's own quantiles), nor rise above the window's own
 * level. A service whose rate crept up within the hour is judged from where its window says it is
 * now; only a window that both misses a real rise and reads low by half the effect could be judged
 * too tightly, and a test of the window against the history would not catch that one either (it
 * reads low). Such a test (pool only when the window's share is not above the history's at
 * p <= 0.1) was tried: it left exactly the unlucky windows (4 errors in 560 where 1.5 were
 * expected) at their loose own bound, and cost `low-traffic-60s-hour-bad-deploy` seed 11 its verdict.
 *
 * What: the retained reference before the window (the gate's reference stretch, re-read at the
 * window's cuts) and every minute of the series' long history before that (src/signals/history.ts,
 * 60 min by default), plus the window. The long history's latency buckets are 2^(1/3) wide, so its
 * slow samples are counted with the bucket holding the cut (`countReaching`: more slow samples, a
 * higher level, the safe side).
 */
import type { SeriesKey } from '../normalize/observations.js'
import type { HistorySummary, SignalView, WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import type { BaselineHealth } from './gate.js'
import { latencyCutUs, type BaselineNumbers, type PooledCounts, type Share } from './rules.js'

/**
 * The counts to pool with the baseline window `bw` (whose numbers are `n`), or undefined when the
 * gate did not find the window healthy or there is no history before it.
 */
export function pooledHistory(c: Contract, view: SignalView, key: SeriesKey, bw: WindowStats, n: BaselineNumbers, health: BaselineHealth): PooledCounts | undefined {
  if (health.state !== 'healthy' || health.reference === undefined || !(bw.requests > 0)) return undefined
  const refFrom = health.referenceFromMs
  const rw = view.window(key, refFrom, health.referenceToMs)
  const hist = view.history?.(key)
  const older = hist === undefined ? [] : hist.starts.filter((t) => t + hist.widthMs <= refFrom)
  const long: HistorySummary | undefined = hist !== undefined && older.length > 0 ? hist.summary(Math.min(...older), refFrom) : undefined
  const fromMs = long !== undefined && long.requests > 0 ? Math.min(refFrom, long.fromMs) : refFrom
  // history counts before the window, per quantity
  const errors: Share = { events: rw.errors + (long?.errors ?? 0), samples: rw.requests + (long?.requests ?? 0) }
  const latencySamples = rw.latency.count + (long?.latencyCount ?? 0)
  const above = (cutUs: number): Share => ({ events: rw.latency.countAbove(cutUs) + (long?.countReaching(cutUs) ?? 0), samples: latencySamples })
  const hasLatency = Number.isFinite(n.latencyUs) && n.latencyCount > 0
  return {
    fromMs,
    errors: pool({ events: n.errors, samples: n.requests }, errors),
    latency: hasLatency ? pool({ events: n.latencyAbove, samples: n.latencyCount }, above(latencyCutUs(c, n.latencyUs))) : undefined,
    shift: n.shift.map((s) => (hasLatency && Number.isFinite(s.us) ? pool({ events: s.above, samples: n.latencyCount }, above(latencyCutUs(c, s.us))) : undefined)),
  }
}

/** The window's share pooled with its history's, or undefined without history. */
function pool(own: Share, before: Share): Share | undefined {
  if (!(before.samples > 0) || !(own.samples > 0)) return undefined
  return { events: own.events + before.events, samples: own.samples + before.samples }
}
