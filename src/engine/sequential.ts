/**
 * The sequential tests of one watched version: its error and latency evidence, fed with each batch
 * of newly complete data exactly once. Pure apart from advancing the state it is handed.
 *
 * Contract: `advance` consumes [doneUntil, end) of the series (bucket aligned), judged against the
 * levels of this evaluation (from the frozen or live baseline), then fixes the next adaptive stake
 * from the confirmation span that ends at `end` (already seen data, so the stake is predictable).
 * Data that arrives later for an already consumed range is not fed again: the store's completeness
 * horizon (cadence.ts) makes that rare, and dropping it only weakens the evidence, never the
 * false-alarm guarantee.
 */
import type { SeriesKey } from '../normalize/observations.js'
import type { SignalView, WindowStats } from '../signals/view.js'
import { eValue, feed, newEvidence, type BernoulliEvidence } from './evidence.js'

export interface SignalEvidence {
  ev: BernoulliEvidence
}

export interface WatchEvidence {
  error: SignalEvidence
  latency: SignalEvidence
  /** end (exclusive, unix ms) of the data consumed so far; -Infinity before the first batch */
  doneUntil: number
}

export function newWatchEvidence(): WatchEvidence {
  return { error: { ev: newEvidence() }, latency: { ev: newEvidence() }, doneUntil: -Infinity }
}

/** What a batch is judged against. A level outside (0, 1) skips that signal for the batch (no baseline yet). */
export interface Levels {
  /** error ratio the contract allows (threshold from the baseline's upper bound) */
  errorLevel: number
  /** latency threshold (microseconds): a request above it is "slow" */
  latencyCutUs: number
  /** share of slow requests allowed: 1 - quantile, or the baseline's own share above the cut when larger */
  latencyLevel: number
}

/** Consumes [doneUntil, end) (one window for both signals), then fixes the next stakes from `span`. */
export function advance(e: WatchEvidence, view: SignalView, key: SeriesKey, earliest: number, end: number, lv: Levels, span: WindowStats): void {
  const from = Math.max(e.doneUntil, earliest)
  if (!(end > from)) return
  e.doneUntil = end
  const errOk = lv.errorLevel > 0 && lv.errorLevel < 1
  const latOk = lv.latencyLevel > 0 && lv.latencyLevel < 1 && Number.isFinite(lv.latencyCutUs)
  if (!errOk && !latOk) return
  let n = 0
  let bad = 0
  let lat = 0
  let slow = 0
  if (from >= span.fromMs && end === span.toMs) {
    // the batch is the tail of the span (the usual case, one tick after the last): read its buckets, no extra query
    for (const b of span.buckets) {
      if (b.startMs < from) continue
      n += b.requests
      bad += b.errors
      if (latOk && b.latencyCount > 0) {
        lat += b.latencyCount
        slow += b.latencyCountAbove(lv.latencyCutUs)
      }
    }
  } else {
    const b: WindowStats = view.window(key, from, end)
    n = b.requests
    bad = b.errors
    lat = b.latency.count
    slow = latOk ? b.latency.countAbove(lv.latencyCutUs) : 0
  }
  if (errOk) feed(e.error.ev, n, bad, lv.errorLevel, span.requests, span.errors)
  if (latOk) feed(e.latency.ev, lat, slow, lv.latencyLevel, span.latency.count, span.latency.countAbove(lv.latencyCutUs))
}

export function errorEvidence(e: WatchEvidence): number {
  return eValue(e.error.ev)
}

export function latencyEvidence(e: WatchEvidence): number {
  return eValue(e.latency.ev)
}
