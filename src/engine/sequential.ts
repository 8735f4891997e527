/**
 * The sequential tests of one watched version: its error and latency evidence, fed with each batch
 * of newly complete data exactly once. Pure apart from advancing the state it is handed.
 *
 * Contract: `advance` consumes [doneUntil, end) of the series (bucket aligned), judged against the
 * levels of this evaluation (from the frozen or live baseline), then fixes the next adaptive stake
 * from the confirmation span that ends at `end`, or at `stakeAt` past it under early firing (already
 * seen data, so the stake is predictable). `peek` is the same consumption on a copy: a look at data
 * the watermark has not passed yet, nothing committed.
 * Data that arrives later for an already consumed range is not fed again: the store's completeness
 * horizon (cadence.ts) makes that rare, and dropping it only weakens the evidence, never the
 * false-alarm guarantee.
 */
import type { SeriesKey } from '../normalize/observations.js'
import type { SignalView, WindowStats } from '../signals/view.js'
import { compositeEvidence, copyGrid, feedGrid, newGridEvidence, type ErrorGrid, type GridEvidence } from './composite.js'
import { eValue, feed, MAX_EVIDENCE, newEvidence, type BernoulliEvidence } from './evidence.js'

export interface SignalEvidence {
  ev: BernoulliEvidence
}

/**
 * Latency: the tail test at the contract's quantile (`ev`) and one shift test per `shiftQuantiles`
 * entry (`shift`, same order). Its e-value is the mixture TAIL_WEIGHT x tail + the rest shared by
 * the shift tests; each is a test supermartingale under "the version is not slower than its
 * baseline by half the contract's effect at that quantile", so the mixture is one under all of
 * them at once (a version no slower anywhere), and alpha holds for it as for each.
 */
export interface LatencyEvidence extends SignalEvidence {
  shift: BernoulliEvidence[]
}

export interface WatchEvidence {
  error: SignalEvidence
  /** the error test against the frozen baseline's counts (composite.ts), fed when the levels carry a grid */
  errorGrid: GridEvidence
  latency: LatencyEvidence
  /** end (exclusive, unix ms) of the data consumed so far; -Infinity before the first batch */
  doneUntil: number
  /** adaptive stakes fixed at the end of each batch, oldest first, waiting until no report they saw reaches a later batch (see advance) */
  stakes: Stakes[]
}

/** The adaptive bettors' stakes fixed at `at` (the end of a batch), from the data before it. */
interface Stakes {
  at: number
  error: number
  /** the span's requests and errors the stakes came from: the error grid's stakes per level follow from them */
  errN: number
  errBad: number
  latency: number
  shift: number[]
}

/** Pending stakes kept per watch; beyond it the oldest go (the bettor then waits: a stake of 0, never an invalid one). */
const MAX_STAKES = 64

/** Share of the latency mixture on the tail test when there are shift tests: a tail-only regression costs ln 2 of evidence. */
const TAIL_WEIGHT = 0.5

/** `shifts`: the contract's number of shift quantiles (fixed for the watch, so the mixture's weights are too). */
export function newWatchEvidence(shifts: number): WatchEvidence {
  return {
    error: { ev: newEvidence() },
    errorGrid: newGridEvidence(),
    latency: { ev: newEvidence(), shift: Array.from({ length: shifts }, newEvidence) },
    doneUntil: -Infinity,
    stakes: [],
  }
}

/** What a batch is judged against. A level outside (0, 1) skips that signal for the batch (no baseline yet). */
export interface Levels {
  /** error ratio the contract allows (threshold from the baseline's upper bound) */
  errorLevel: number
  /** latency threshold (microseconds): a request above it is "slow" */
  latencyCutUs: number
  /** share of slow requests allowed: 1 - quantile, or the baseline's own share above the cut when larger */
  latencyLevel: number
  /** the shift tests' cuts and levels (rules.ts shiftLevels), in the watch evidence's `shift` order; a NaN level skips one */
  shift: readonly { cutUs: number; level: number }[]
  /** the error grid of a frozen baseline (composite.ts); undefined for a live one, whose levels move */
  errorGrid: ErrorGrid | undefined
}

/** per-batch slow counts of the shift tests (the engine is synchronous: one buffer serves every call) */
const shiftSlow = new Float64Array(8)

/**
 * Consumes [doneUntil, end) (one window for both signals), then fixes the next stakes from `span`.
 *
 * `lagMs` is the series' report interval. A metric report covers (its previous report, its time]
 * and its counts are spread over the buckets of that interval, so one report may feed two batches.
 * A stake fixed from the first part would bet on the second knowing it (the same report's counts,
 * split): under H0 that inflates the wealth. So the adaptive stakes a batch starting at `from` uses
 * are those fixed at `from - lagMs` or earlier, from data no report reaching `from` contributed to.
 * Fixed stakes need no such care: their log wealth is linear in the counts, however they are split.
 * Spans land at their own times; their interval (the batch cadence, ~5 s) costs one bucket.
 *
 * `stakeAt` (>= end): the time up to which `span` reached, when it reaches past the batch (early
 * firing: the batch is what the watermark passed, the span ends at the series' newest data). The
 * next stakes were fixed from data before `stakeAt`, so they are queued at `stakeAt`: only a batch
 * starting at or after it may use them.
 */
export function advance(e: WatchEvidence, view: SignalView, key: SeriesKey, earliest: number, end: number, lv: Levels, span: WindowStats, lagMs = 0, stakeAt = end): void {
  const from = Math.max(e.doneUntil, earliest)
  if (!(end > from)) return
  e.doneUntil = end
  useStakes(e, from - lagMs)
  const errOk = lv.errorLevel > 0 && lv.errorLevel < 1
  const latOk = lv.latencyLevel > 0 && lv.latencyLevel < 1 && Number.isFinite(lv.latencyCutUs)
  if (!errOk && !latOk) return
  const shifts = latOk ? Math.min(lv.shift.length, e.latency.shift.length, shiftSlow.length) : 0
  shiftSlow.fill(0, 0, shifts)
  let n = 0
  let bad = 0
  let lat = 0
  let slow = 0
  if (from >= span.fromMs && end <= span.toMs) {
    // the batch lies in the span (the usual case: its tail, one tick after the last; or the part
    // the watermark passed, see stakeAt): read its buckets, no extra query
    for (const b of span.buckets) {
      if (b.startMs < from || b.startMs >= end) continue
      n += b.requests
      bad += b.errors
      if (latOk && b.latencyCount > 0) {
        lat += b.latencyCount
        slow += b.latencyCountAbove(lv.latencyCutUs)
        for (let k = 0; k < shifts; k++) if (testable(lv.shift[k])) shiftSlow[k] = (shiftSlow[k] as number) + b.latencyCountAbove((lv.shift[k] as ShiftLevel).cutUs)
      }
    }
  } else {
    const b: WindowStats = view.window(key, from, end)
    n = b.requests
    bad = b.errors
    lat = b.latency.count
    slow = latOk ? b.latency.countAbove(lv.latencyCutUs) : 0
    for (let k = 0; k < shifts; k++) if (testable(lv.shift[k])) shiftSlow[k] = b.latency.countAbove((lv.shift[k] as ShiftLevel).cutUs)
  }
  if (errOk) {
    feed(e.error.ev, n, bad, lv.errorLevel, span.requests, span.errors)
    if (lv.errorGrid !== undefined) feedGrid(e.errorGrid, lv.errorGrid, n, bad)
  }
  if (latOk) {
    feed(e.latency.ev, lat, slow, lv.latencyLevel, span.latency.count, span.latency.countAbove(lv.latencyCutUs))
    for (let k = 0; k < shifts; k++) {
      const s = lv.shift[k] as ShiftLevel
      if (testable(s)) feed(e.latency.shift[k] as BernoulliEvidence, lat, shiftSlow[k] as number, s.level, span.latency.count, span.latency.countAbove(s.cutUs))
    }
  }
  // feed() fixed each bettor's next stake from the span: queue them until a later batch may use them
  e.stakes.push({ at: stakeAt, error: e.error.ev.nextLambda, errN: span.requests, errBad: span.errors, latency: e.latency.ev.nextLambda, shift: e.latency.shift.map((x) => x.nextLambda) })
  if (e.stakes.length > MAX_STAKES) e.stakes.shift()
}

/** One scratch per shift count: peek's result, valid until the next peek (the engine is synchronous). */
const scratch = new Map<number, WatchEvidence>()

/**
 * The evidence `e` would hold after also consuming [e.doneUntil, end), `e` unchanged: the early look
 * at data the watermark has not passed (cadence.ts earlyEnd). The result is a scratch object, valid
 * until the next call. Why the look keeps the guarantee: within a batch every request multiplies
 * the wealth by a factor fixed before the batch (the queued stake, or a fixed one), so the wealth
 * after a part of the batch is the same test martingale stopped earlier; a later commit of the
 * whole batch feeds a superset of it at the same stakes. Only when the levels are the same at the
 * commit as at the look (a frozen baseline's: the caller's duty) is that one martingale.
 */
export function peek(e: WatchEvidence, view: SignalView, key: SeriesKey, earliest: number, end: number, lv: Levels, span: WindowStats, lagMs = 0): WatchEvidence {
  const shifts = e.latency.shift.length
  let s = scratch.get(shifts)
  if (s === undefined) scratch.set(shifts, (s = newWatchEvidence(shifts)))
  copyInto(s.error.ev, e.error.ev)
  copyGrid(s.errorGrid, e.errorGrid)
  copyInto(s.latency.ev, e.latency.ev)
  for (let k = 0; k < shifts; k++) copyInto(s.latency.shift[k] as BernoulliEvidence, e.latency.shift[k] as BernoulliEvidence)
  s.doneUntil = e.doneUntil
  s.stakes.length = 0
  for (const st of e.stakes) s.stakes.push(st)
  advance(s, view, key, earliest, end, lv, span, lagMs)
  return s
}

function copyInto(dst: BernoulliEvidence, src: BernoulliEvidence): void {
  dst.adaptive = src.adaptive
  dst.nextLambda = src.nextLambda
  for (let i = 0; i < src.fixed.length; i++) dst.fixed[i] = src.fixed[i] as number
  dst.n = src.n
  dst.bad = src.bad
}

/** Sets each adaptive bettor's stake to the newest queued one fixed at or before `until` (0 when none); drops the older ones. */
function useStakes(e: WatchEvidence, until: number): void {
  let pick = -1
  for (let i = 0; i < e.stakes.length && (e.stakes[i] as Stakes).at <= until; i++) pick = i
  const st = pick >= 0 ? (e.stakes[pick] as Stakes) : undefined
  if (pick > 0) e.stakes.splice(0, pick)
  e.error.ev.nextLambda = st?.error ?? 0
  e.errorGrid.stakeN = st?.errN ?? 0
  e.errorGrid.stakeBad = st?.errBad ?? 0
  e.latency.ev.nextLambda = st?.latency ?? 0
  for (let k = 0; k < e.latency.shift.length; k++) (e.latency.shift[k] as BernoulliEvidence).nextLambda = st?.shift[k] ?? 0
}

type ShiftLevel = Levels['shift'][number]

function testable(s: ShiftLevel | undefined): boolean {
  return s !== undefined && s.level > 0 && s.level < 1 && Number.isFinite(s.cutUs)
}

export function errorEvidence(e: WatchEvidence): number {
  return eValue(e.error.ev)
}

/**
 * The error test against the frozen baseline's counts (composite.ts); 0 without a grid (a live
 * baseline). Only a corroborating witness may count it: the false-alarm bound of a two-witness
 * decision rests on its leader alone (rules.ts corroborationBound).
 */
export function errorCountsEvidence(e: WatchEvidence, lv: Levels): number {
  return lv.errorGrid === undefined ? 0 : compositeEvidence(e.errorGrid, lv.errorGrid)
}

export function latencyEvidence(e: WatchEvidence): number {
  const shift = e.latency.shift
  if (shift.length === 0) return eValue(e.latency.ev)
  let sum = 0
  for (const s of shift) sum += eValue(s)
  return Math.min(MAX_EVIDENCE, TAIL_WEIGHT * eValue(e.latency.ev) + ((1 - TAIL_WEIGHT) / shift.length) * sum)
}
