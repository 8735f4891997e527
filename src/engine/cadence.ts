/**
 * Judging a series at the cadence its data really has. Pure.
 *
 * Spans arrive within seconds; metric points every 10-60 s, each covering the interval since the
 * previous one (the store spreads a point's delta over that interval). Two rules make the engine
 * indifferent to that cadence:
 *   - a series is judged only up to the time its data is complete (`SeriesCoverage.completeUntilMs`:
 *     the oldest newest report among its exporters still reporting, never earlier than its newest
 *     time minus one report interval, src/signals/report-chains.ts), so the head of a window is
 *     never an artificial gap;
 *   - the confirmation span is at least the contract's `window`, at least two report intervals (a
 *     breach needs two reports of the series), and reaches back in time, never before the
 *     deployment, until it holds `minSamples` requests (a quiet service is judged over a longer span
 *     than a busy API; the contract's numbers are floors).
 * A series whose span (plus its report lag) reaches past the store's fine ring is judged on coarse
 * bucket boundaries (`granularity`), so every range the engine asks for is answered whole: slow
 * exporters cost no extra memory for fine buckets they do not need.
 */
import type { SeriesKey } from '../normalize/observations.js'
import { alignDown, type BucketStats, type SeriesCoverage, type SignalView, type WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import { alignUp } from './stats.js'

/**
 * A span reaches back in search of `minSamples` at most this many times its shortest length, or as
 * far as its baseline was taken over when that is longer (`baselineWindow`, or longer for a quiet
 * service, see baselineSpan): a quiet service is judged over at most as long a span as its baseline.
 */
const MAX_SPAN_GROWTH = 8

/** The interval one report of the series covers (0 for spans or an unknown series). */
export function reportInterval(cov: SeriesCoverage | undefined): number {
  const i = cov?.reportIntervalMs ?? 0
  // whole seconds: nanosecond timestamps make a 60 s exporter's interval 60.0000002 s, and two of
  // those must not round a span up to the next coarse bucket
  return Number.isFinite(i) && i > 0 ? Math.round(i / 1000) * 1000 : 0
}

/**
 * The bucket width a series is judged at: fine, unless the shortest span plus the series' report
 * lag would reach beyond the fine ring; then coarse (a 60 s exporter is judged minute by minute).
 */
export function granularity(c: Contract, view: SignalView, cov: SeriesCoverage | undefined): number {
  const coarse = view.coarseBucketMs
  if (!(coarse > view.bucketMs)) return view.bucketMs
  const interval = reportInterval(cov)
  const need = interval + alignUp(Math.max(c.window, 2 * interval), view.bucketMs) + view.bucketMs
  return need > view.fineRetentionMs ? coarse : view.bucketMs
}

/**
 * The grid a deployment's judgements END on, `g` (granularity) for its window starts. A series
 * reporting at most once per coarse bucket whose span still reaches past the fine ring (20-60 s
 * exporters: a 30 s one needs 30 + 60 + 5 s of fine ring, the default keeps 60 s) is judged when
 * each report makes its data complete, at the fine grid, and its spans start on the coarse grid
 * (confirmationSpan, heldAlone, heldLong): every range is still answered whole, a span is up to one
 * coarse bucket longer than its minimum, and no report waits for the next minute's edge. Before
 * session 44 such a series was judged minute by minute, and a report that completed its data at
 * :20 waited for :00 (`false-rollbacks.js --intervals 20,30,45 --errors 0.05 --slower 2`: within
 * 90 s of the first export 119 -> 132 of 152 runs on 20 s metrics, 30 s within 95 s 120 -> 132 of
 * 154). A longer fine ring would do the same at 81 KiB instead of 51 KiB per fully populated series
 * (`signals.js --fine-retention-s 150`), over the 64 KiB budget. 60 s exporters since session 48:
 * their pods report on their own phases, so the data is complete at the slowest pod's report,
 * rarely on a minute edge, and on the minute grid what a report completed waited for the next one
 * (`low-traffic-60s-bad-deploy` seed 2: 211 -> 180 s from the first export); their end stays within
 * the 5 s buckets the store still holds (evaluationEnd). Slower than once a minute: the coarse grid.
 * While the store still holds a deployment's span in fine buckets, the span itself lies on the fine
 * grid (deploySpan: a 20 s exporter's first spans; a 30-60 s one's reach past the fine ring and
 * start on minute edges).
 */
export function endGranularity(view: SignalView, cov: SeriesCoverage | undefined, g: number): number {
  const interval = reportInterval(cov)
  return g > view.bucketMs && interval > 0 && interval <= g ? view.bucketMs : g
}

/**
 * The grid a deployment's sequential tests COMMIT data on: `ge`, unless a commit on it could be
 * folded into a coarse bucket before the next one reads on from it. A commit ends where the series'
 * data is complete, up to one report interval (and one 5 s bucket) behind its newest data; the store
 * keeps `fineRetentionMs` of 5 s buckets behind the newest, and what lies between a commit's end
 * and an older fine ring's start is inside a coarse bucket whose first part was already consumed:
 * it cannot be read apart and would be lost to the evidence. So an exporter slower than the fine
 * ring less two buckets (55 and 60 s by default) commits on coarse edges and looks at the rest
 * without committing it (sequential.ts peek, the early look of span series). Measured before this
 * rule, committing a 60 s exporter at 5 s ends: drawn run #303 (1.9 req/s, four pods) fed its error
 * test 21 % fewer requests and half its errors, and was no longer rolled back.
 */
export function commitGranularity(view: SignalView, cov: SeriesCoverage | undefined, g: number, ge: number): number {
  return ge < g && reportInterval(cov) + 2 * view.bucketMs > view.fineRetentionMs ? g : ge
}

/**
 * Latest time, aligned to `g`, the series can be judged up to: the watermark, but not past its
 * complete data. With `g` finer than the series' window grid `coarse` (endGranularity), an end
 * between coarse edges only where the store still holds 5 s buckets (`fineFromMs`): a 60 s
 * exporter's pod one report behind may leave the complete data before them, and a range ending
 * there would be answered only to its coarse edge (the minute edge is then the end).
 */
export function evaluationEnd(cov: SeriesCoverage | undefined, watermark: number, g: number, coarse = g): number {
  const t = cov === undefined || !Number.isFinite(cov.completeUntilMs) ? watermark : Math.min(watermark, cov.completeUntilMs)
  const end = alignDown(t, g)
  if (!(g < coarse) || end % coarse === 0) return end
  const fine = cov?.fineFromMs
  return fine !== undefined && end >= fine ? end : alignDown(t, coarse)
}

/**
 * Early firing: the end a span series may be judged up to before the watermark passes it, `dataEnd`
 * (evaluationEnd) otherwise. Spans come in batches (the SDKs' batch span processors export every
 * ~5 s), so the watermark trails the newest telemetry by `engine.lateness` for the batches of other
 * pods still in flight. A batch whose newest span ends at or after a bucket's end has brought its
 * pod's spans of that bucket; and once the clock has passed the end of the bucket holding the
 * newest span, the rest of that bucket is in flight too (a batch leaving 1 ms before an edge would
 * otherwise hold its bucket back a whole batch). Such a bucket is judged on what is there: the
 * slice rules apply as to complete data (rules.ts: a slice holding its share of the sample floor
 * must be beyond the threshold, an empty one is a gap), and the evidence commits only what the
 * watermark passed (sequential.ts peek). Never for metric series (their data is complete when
 * every exporter's report covering it is in, see `completeUntilMs`) nor for coarse buckets. Bounded by `now`: a skewed clock's future spans do not
 * move it.
 */
export function earlyEnd(cov: SeriesCoverage | undefined, now: number, dataEnd: number, g: number, bucketMs: number): number {
  if (cov === undefined || reportInterval(cov) !== 0 || g !== bucketMs) return dataEnd
  const t = Math.min(now, cov.newestMs)
  if (!Number.isFinite(t)) return dataEnd
  const head = alignDown(t, g)
  return Math.max(dataEnd, now >= head + g ? head + g : head)
}

/** Shortest confirmation span for a series, a multiple of `g`: the contract window, and two report intervals. */
export function minSpan(c: Contract, interval: number, g: number): number {
  return alignUp(Math.max(c.window, 2 * interval), g)
}

export interface Span {
  fromMs: number
  toMs: number
  /** the shortest span this series allows (window, two report intervals), whatever this one grew to */
  minLengthMs: number
  win: WindowStats
}

/**
 * The confirmation span ending at `end`, or undefined while the first full shortest span after
 * `earliest` (the first bucket after the deployment) is not complete yet.
 */
export function confirmationSpan(c: Contract, view: SignalView, key: SeriesKey, end: number, earliest: number, g: number, interval: number, baselineMs = c.baselineWindow): Span | undefined {
  const min = minSpan(c, interval, g)
  if (end - min < earliest) return undefined
  // on the grid of `g` (a no-op unless the end is on a finer one: endGranularity); `earliest` is on it
  const from = Math.max(earliest, alignDown(end - min, g))
  const win = view.window(key, from, end)
  if (win.requests >= c.minSamples || from <= earliest) return { fromMs: from, toMs: end, minLengthMs: min, win }
  // too few requests: the span reaches back, report by report (bucket by bucket), to the shortest
  // one that holds `minSamples` (or as far as it may, see MAX_SPAN_GROWTH, never before the
  // deployment); read in one query over the longest span, then once more for the span
  const lo = Math.max(alignUp(earliest, g), end - alignUp(Math.max(min * MAX_SPAN_GROWTH, baselineMs), g))
  const all = view.window(key, lo, end)
  const start = Math.max(lo, alignDown(reachBack(all, from, win.requests, c.minSamples, lo), g))
  if (start >= from) return { fromMs: from, toMs: end, minLengthMs: min, win }
  return { fromMs: start, toMs: end, minLengthMs: min, win: start === lo ? all : view.window(key, start, end) }
}

/**
 * The confirmation span of a deployment judged on the fine grid `ge` while its older data lies in
 * coarse buckets of `g` (endGranularity): the span on the fine grid (its minimum two reports, from
 * the first fine bucket after the deployment) when every bucket of it is still fine
 * (`SeriesCoverage.fineFromMs`), else the span on the coarse grid. Early in a watch the first is
 * what the store still holds finely: a 20 s exporter's first span is 40 s from the deployment's
 * first 5 s edge, not 60 s from its first minute edge. Never starts before the deployment (an onset
 * before it would make the breach look pre-existing). With `ge` = `g` (every other series, and a
 * recovery) it is confirmationSpan from the first bucket of `g` after `deployedAt`.
 */
export function deploySpan(c: Contract, view: SignalView, key: SeriesKey, cov: SeriesCoverage | undefined, end: number, deployedAt: number, g: number, ge: number, interval: number, baselineMs = c.baselineWindow): Span | undefined {
  const fineFrom = cov?.fineFromMs
  if (ge < g && fineFrom !== undefined) {
    const s = confirmationSpan(c, view, key, end, alignUp(deployedAt, ge), ge, interval, baselineMs)
    if (s === undefined || s.fromMs >= fineFrom) return s
  }
  return confirmationSpan(c, view, key, end, alignUp(deployedAt, g), g, interval, baselineMs)
}

/**
 * The old version's pre-deploy span frozen as the baseline: `baselineWindow` before `to`, or, for a
 * quiet service whose `baselineWindow` holds fewer than `minSamples` requests, reaching back bucket
 * by bucket until it holds them, as far as the store retains (`floor`, signals.retention): the rule
 * the confirmation span follows. Without it a service under `minSamples` per `baselineWindow` (under
 * 0.17 req/s by default) never has a baseline and is never judged.
 */
export function baselineSpan(c: Contract, view: SignalView, key: SeriesKey, to: number, floor: number): { fromMs: number; win: WindowStats } {
  const from = Math.max(to - c.baselineWindow, floor)
  const win = view.window(key, from, to)
  // an unknown series (no retention, floor -Infinity) has nothing further back to read
  if (win.requests >= c.minSamples || !(Number.isFinite(floor) && floor < from)) return { fromMs: from, win }
  const all = view.window(key, floor, to)
  const start = reachBack(all, from, win.requests, c.minSamples, floor)
  return start < from ? { fromMs: start, win: start === floor ? all : view.window(key, start, to) } : { fromMs: from, win }
}

/**
 * The latest bucket start before `from` (in `all`, a window reaching back to `lo`) at which the
 * buckets from there to `from` bring `have` up to `need` requests; the earliest bucket's start (or
 * `lo`) when they never do.
 */
function reachBack(all: WindowStats, from: number, have: number, need: number, lo: number): number {
  let n = have
  let at = lo
  for (let i = all.buckets.length - 1; i >= 0; i--) {
    const b = all.buckets[i] as BucketStats
    if (b.startMs >= from) continue
    at = b.startMs
    n += b.requests
    if (n >= need) break
  }
  return at
}
