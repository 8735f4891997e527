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
 * `incident`, not a rollback. With no reference (history shorter than one window or the sample
 * floor) the baseline's health is `unknown`, and the verdicts say so.
 */
import type { SeriesKey } from '../normalize/observations.js'
import type { SignalView, WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import { rateUpperBound } from './evidence.js'
import { BASELINE_DELTA, errorLevel, errorThreshold, latencyCutUs, latencyThresholdMs, type BaselineNumbers } from './rules.js'
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

/** The numbers of a window: request counts, the latency quantile and the samples above its own cut. */
export function requestNumbers(c: Contract, w: WindowStats): Omit<BaselineNumbers, 'resourceSlope'> {
  const latencyUs = w.latency.count > 0 ? w.latency.valueAtQuantile(c.signals.latency.quantile) : NaN
  const cutUs = Number.isFinite(latencyUs) ? latencyCutUs(c, latencyUs) : Infinity
  return {
    requests: w.requests,
    errors: w.errors,
    latencyUs,
    latencyCount: w.latency.count,
    latencyAbove: Number.isFinite(cutUs) ? w.latency.countAbove(cutUs) : 0,
  }
}

function errorsBeyondReference(c: Contract, w: WindowStats, ref: BaselineNumbers): boolean {
  if (w.requests < c.minSamples) return false
  const p0 = ref.errors / ref.requests
  return w.errors / w.requests >= errorThreshold(c, p0) && binomialUpperTail(w.errors, w.requests, errorLevel(c, ref)) <= c.alpha
}

function latencyBeyondReference(c: Contract, w: WindowStats, ref: BaselineNumbers): boolean {
  if (w.latency.count < c.minSamples || !Number.isFinite(ref.latencyUs)) return false
  if (w.latency.valueAtQuantile(c.signals.latency.quantile) < latencyThresholdMs(c, ref.latencyUs / 1000) * 1000) return false
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
  if (from - refFrom < c.window) return unknown('no history before the baseline window to judge it by')
  const rw = view.window(key, refFrom, from)
  if (rw.requests < c.minSamples) return unknown(`history before the baseline window holds ${rw.requests} requests < floor ${c.minSamples}`)
  const reference: BaselineNumbers = { ...requestNumbers(c, rw), resourceSlope: {} }
  const onsets: BaselineHealth['onsets'] = {}
  const notes: string[] = []
  if (errorsBeyondReference(c, bw, reference)) {
    onsets.error_rate = onsetOf(c, view, key, from, to, (w) => errorsBeyondReference(c, w, reference))
    notes.push(`error rate ${((bw.errors / bw.requests) * 100).toFixed(2)}% vs ${((reference.errors / reference.requests) * 100).toFixed(2)}% before`)
  }
  if (latencyBeyondReference(c, bw, reference)) {
    onsets.latency = onsetOf(c, view, key, from, to, (w) => latencyBeyondReference(c, w, reference))
    const q = bw.latency.valueAtQuantile(c.signals.latency.quantile) / 1000
    notes.push(`latency ${q.toFixed(1)}ms vs ${(reference.latencyUs / 1000).toFixed(1)}ms before`)
  }
  const unhealthy = onsets.error_rate !== undefined || onsets.latency !== undefined
  return {
    state: unhealthy ? 'unhealthy' : 'healthy',
    reference,
    referenceFromMs: refFrom,
    referenceToMs: from,
    onsets,
    note: unhealthy ? `baseline already breaching before the deployment (${notes.join(', ')})` : '',
  }
}
