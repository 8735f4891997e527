/**
 * The validation gate's long view: was the frozen baseline itself healthy? Pure.
 *
 * A breach that began well before the deployment and still holds fills the whole baseline window;
 * frozen as the baseline, it would make the failing state "normal" and hide it. So at freeze time
 * the baseline window [from, to) of the old version is compared with what the store still holds of
 * the same version before it (the reference: [retained, from)). When the baseline is beyond the
 * contract against that reference (a single look, fixed-sample test at alpha) the signal is marked
 * `unhealthy` with the onset of the breach (scanned back window by window), and the watch judges
 * the new version against the reference as well: a breach there is pre-existing and becomes an
 * `incident`, not a rollback. When the retained history shows nothing (a breach older than the
 * store's retention fills all of it), the series' long history of 1-minute summaries beyond the
 * retention is asked the same question (fromLongHistory). With no reference at all (history
 * shorter than one window or the sample floor) the baseline's health is `unknown`, and the verdicts
 * say so.
 */
import type { LatencyBuckets, SeriesKey } from '../normalize/observations.js'
import { latencyFloorUs } from '../normalize/buckets.js'
import type { HistorySummary, SignalView, WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import { rateUpperBound } from './evidence.js'
import { BASELINE_DELTA, boundedLatency, errorLevel, errorThreshold, certainThresholdMs, latencyCutUs, shiftNumbers, type BaselineNumbers } from './rules.js'
import { alignUp, binomialUpperTail } from './stats.js'
import type { BaselineHealthState } from './verdict.js'

export interface BaselineHealth {
  state: BaselineHealthState
  /** the old version's numbers before the baseline window, when it was long enough to judge by */
  reference: BaselineNumbers | undefined
  referenceFromMs: number
  referenceToMs: number
  /** request signals whose baseline was beyond the reference, with the onset of that breach */
  onsets: { error_rate?: number; latency?: number }
  note: string
}

/**
 * The numbers of a window: request counts, the latency quantile and the samples above its own cut,
 * and (unless `shift` is false: a live baseline that may not be used, whose shift quantiles would
 * cost two more reads of minutes of histograms per tick) the shift quantiles'.
 */
export function requestNumbers(c: Contract, w: WindowStats, shift = true): Omit<BaselineNumbers, 'resourceSlope'> {
  const latencyUs = w.latency.count > 0 ? w.latency.valueAtQuantile(c.signals.latency.quantile) : NaN
  const cutUs = Number.isFinite(latencyUs) ? latencyCutUs(c, latencyUs) : Infinity
  const upper = w.latency.count > 0 ? w.latency.upperAtQuantile(c.signals.latency.quantile) : NaN
  return {
    requests: w.requests,
    errors: w.errors,
    latencyUs,
    ...(upper > latencyUs ? { latencyUpperUs: upper } : {}),
    latencyCount: w.latency.count,
    latencyAbove: Number.isFinite(cutUs) ? w.latency.countAbove(cutUs) : 0,
    shift: shift ? windowShift(c, w) : [],
  }
}

/** The shift quantiles' numbers of a window (rules.ts shiftNumbers). */
export function windowShift(c: Contract, w: WindowStats): BaselineNumbers['shift'] {
  return shiftNumbers(c, w.latency.count, (q) => w.latency.valueAtQuantile(q), (us) => w.latency.countAbove(us))
}

function errorsBeyondReference(c: Contract, w: WindowStats, ref: BaselineNumbers): boolean {
  if (w.requests < c.minSamples) return false
  const p0 = ref.errors / ref.requests
  return w.errors / w.requests >= errorThreshold(c, p0) && binomialUpperTail(w.errors, w.requests, errorLevel(c, ref)) <= c.alpha
}

/**
 * `layout`: the series' metric buckets, if any. The window's quantile must be CERTAINLY beyond the
 * reference's threshold, its bucket's lower bound (src/normalize/buckets.ts latencyFloorUs), as a
 * metric's latency deciding alone is (rules.ts heldAlone): an unhealthy baseline makes an incident
 * on one signal. Read inside its bucket, a metric's p99 moves with the minute-to-minute shape of a
 * wide bucket's tail (SDK bounds 1 s, 2.5 s): a quiet service of the Nezha data whose six minutes
 * before a deployment read 2.5 s against 1.0 s before them, both in (1, 2.5] s, was an incident.
 */
function latencyBeyondReference(c: Contract, w: WindowStats, ref: BaselineNumbers, layout: LatencyBuckets | undefined): boolean {
  if (w.latency.count < c.minSamples || !Number.isFinite(ref.latencyUs)) return false
  if (latencyFloorUs(layout, w.latency.valueAtQuantile(c.signals.latency.quantile)) < certainThresholdMs(c, ref) * 1000) return false
  const cutUs = latencyCutUs(c, ref.latencyUs)
  const level = Math.max(1 - c.signals.latency.quantile, rateUpperBound(ref.latencyAbove, ref.latencyCount, BASELINE_DELTA))
  return binomialUpperTail(w.latency.countAbove(cutUs), w.latency.count, level) <= c.alpha
}

/** Onset of a breach that holds at the end of [from, to): the start of the earliest window, scanned back, that is still beyond. */
function onsetOf(c: Contract, view: SignalView, key: SeriesKey, from: number, to: number, beyond: (w: WindowStats) => boolean): number {
  let onset = to
  for (let end = to; end - c.window >= from; end -= c.window) {
    if (!beyond(view.window(key, end - c.window, end))) break
    onset = end - c.window
  }
  return onset === to ? from : onset
}

/** `bw` is the baseline window [from, to) of the old version, as frozen. */
export function judgeBaseline(c: Contract, view: SignalView, key: SeriesKey, bw: WindowStats, bucketMs: number): BaselineHealth {
  const from = bw.fromMs
  const to = bw.toMs
  const retained = view.retainedFromMs(key)
  const refFrom = retained === undefined ? from : alignUp(retained, bucketMs)
  const unknown = (note: string): BaselineHealth => ({ state: 'unknown', reference: undefined, referenceFromMs: refFrom, referenceToMs: from, onsets: {}, note })
  if (from - refFrom < c.window) return fromLongHistory(c, view, key, bw, refFrom) ?? unknown('no history before the baseline window to judge it by')
  const rw = view.window(key, refFrom, from)
  if (rw.requests < c.minSamples) {
    return fromLongHistory(c, view, key, bw, refFrom) ?? unknown(`history before the baseline window holds ${rw.requests} requests < floor ${c.minSamples}`)
  }
  const reference: BaselineNumbers = { ...requestNumbers(c, rw), resourceSlope: {} }
  const onsets: BaselineHealth['onsets'] = {}
  const notes: string[] = []
  const cov = view.coverage(key)
  const bounded = boundedLatency(cov)
  if (errorsBeyondReference(c, bw, reference)) {
    onsets.error_rate = onsetOf(c, view, key, from, to, (w) => errorsBeyondReference(c, w, reference))
    notes.push(`error rate ${((bw.errors / bw.requests) * 100).toFixed(2)}% vs ${((reference.errors / reference.requests) * 100).toFixed(2)}% before`)
  }
  const layout = cov?.latencyBuckets
  if (bounded && latencyBeyondReference(c, bw, reference, layout)) {
    onsets.latency = onsetOf(c, view, key, from, to, (w) => latencyBeyondReference(c, w, reference, layout))
    const q = bw.latency.valueAtQuantile(c.signals.latency.quantile) / 1000
    notes.push(`latency ${q.toFixed(1)}ms vs ${(reference.latencyUs / 1000).toFixed(1)}ms before`)
  }
  const unhealthy = onsets.error_rate !== undefined || onsets.latency !== undefined
  if (!unhealthy) {
    // nothing beyond the retained history: the breach may be older than the retention
    const long = fromLongHistory(c, view, key, bw, refFrom)
    if (long !== undefined) return long
  }
  return {
    state: unhealthy ? 'unhealthy' : 'healthy',
    reference,
    referenceFromMs: refFrom,
    referenceToMs: from,
    onsets,
    note: unhealthy ? `baseline already breaching before the deployment (${notes.join(', ')})` : '',
  }
}

/** The numbers of a stretch of the long history, as a baseline to compare with. */
function historyNumbers(c: Contract, h: HistorySummary): BaselineNumbers {
  const latencyUs = h.latencyCount > 0 ? h.valueAtQuantile(c.signals.latency.quantile) : NaN
  const cutUs = Number.isFinite(latencyUs) ? latencyCutUs(c, latencyUs) : Infinity
  return {
    requests: h.requests,
    errors: h.errors,
    latencyUs,
    latencyCount: h.latencyCount,
    latencyAbove: Number.isFinite(cutUs) ? h.countAbove(cutUs) : 0,
    shift: shiftNumbers(c, h.latencyCount, (q) => h.valueAtQuantile(q), (us) => h.countAbove(us)),
    resourceSlope: {},
  }
}

/**
 * The long view beyond the store's retention (the series' 1-minute summaries, src/signals/history.ts):
 * was the frozen baseline beyond the contract against the service as it was before a breach that
 * began more than the retention ago?
 *
 * The summaries older than `before` (the start of the retained reference) are scanned newest first
 * for the most recent minute the baseline is beyond (error rate or latency, the same fixed-sample
 * tests as against the retained reference); the reference is that minute and the run of minutes
 * before it that the baseline is beyond on the same signal (the service's state before the breach
 * began), merged; the baseline must be beyond that merged reference too. Every test runs at
 * alpha / (minutes scanned): a scan over 60 minutes is 60 looks, and a benign baseline that is
 * "beyond" some minute by chance must stay as rare as one look at alpha. The breach's onset is the
 * end of the reference (the first minute after it). Undefined when the history holds no such minute.
 */
function fromLongHistory(c: Contract, view: SignalView, key: SeriesKey, bw: WindowStats, before: number): BaselineHealth | undefined {
  const hist = view.history?.(key)
  if (hist === undefined) return undefined
  const starts = hist.starts.filter((t) => t + hist.widthMs <= before)
  if (starts.length === 0) return undefined
  const cc: Contract = { ...c, alpha: c.alpha / starts.length }
  const minute = (t: number) => historyNumbers(cc, hist.summary(t, t + hist.widthMs))
  const errBeyond = (ref: BaselineNumbers) => ref.requests >= cc.minSamples && errorsBeyondReference(cc, bw, ref)
  const cov = view.coverage(key)
  const bounded = boundedLatency(cov)
  const layout = cov?.latencyBuckets
  const latBeyond = (ref: BaselineNumbers) => bounded && ref.latencyCount >= cc.minSamples && latencyBeyondReference(cc, bw, ref, layout)
  for (let i = 0; i < starts.length; i++) {
    const first = minute(starts[i] as number)
    const test = errBeyond(first) ? errBeyond : latBeyond(first) ? latBeyond : undefined
    if (test === undefined) continue
    // extend back over the consecutive minutes the baseline is beyond on the same signal
    let j = i
    while (j + 1 < starts.length && (starts[j + 1] as number) === (starts[j] as number) - hist.widthMs && test(minute(starts[j + 1] as number))) j++
    const refFrom = starts[j] as number
    const refTo = (starts[i] as number) + hist.widthMs
    const reference = historyNumbers(cc, hist.summary(refFrom, refTo))
    const onsets: BaselineHealth['onsets'] = {}
    const notes: string[] = []
    if (errBeyond(reference)) {
      onsets.error_rate = refTo
      notes.push(`error rate ${((bw.errors / bw.requests) * 100).toFixed(2)}% vs ${((reference.errors / reference.requests) * 100).toFixed(2)}%`)
    }
    if (latBeyond(reference)) {
      onsets.latency = refTo
      const q = bw.latency.valueAtQuantile(c.signals.latency.quantile) / 1000
      notes.push(`latency ${q.toFixed(1)}ms vs ${(reference.latencyUs / 1000).toFixed(1)}ms`)
    }
    if (onsets.error_rate === undefined && onsets.latency === undefined) return undefined
    const ago = Math.round((bw.fromMs - refTo) / 60_000)
    return {
      state: 'unhealthy',
      reference,
      referenceFromMs: refFrom,
      referenceToMs: refTo,
      onsets,
      note: `baseline already breaching before the deployment, since at least ${ago} min before the baseline window (${notes.join(', ')} in the long history before)`,
    }
  }
  return undefined
}
