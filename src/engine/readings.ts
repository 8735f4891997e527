/**
 * One evaluation's signal readings for a watch: the confirmation span at its end, the baseline it
 * is judged against (the frozen snapshot, or the old version's live numbers while it serves beside
 * the new one), the sequential tests fed the newly complete data, the four rules, corroborating
 * witnesses, and when a single request signal suffices alone (held at its critical level, or held
 * for `singleSignalHold`).
 */
import type { ResourceKind, SeriesKey } from '../normalize/observations.js'
import { alignDown, type SignalView, type WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import { deploySpan, minSpan } from './cadence.js'
import { requestNumbers, windowShift } from './gate.js'
import { idPhase } from './ids.js'
import { errorGrid } from './composite.js'
import { advance, errorCountsEvidence, errorEvidence, latencyEvidence, peek, type Levels, type WatchEvidence } from './sequential.js'
import {
  corroborationBound,
  errorLevel,
  errorThreshold,
  errorRateRule,
  heldAlone,
  heldLong,
  latencyLevels,
  latencyRule,
  medianSlope,
  probeRule,
  resourceRule,
  shiftLevels,
  type BaselineNumbers,
  type RuleResult,
} from './rules.js'
import { latencyFloorUs } from '../normalize/buckets.js'
import { liveWorseThanSnapshot } from './baseline-source.js'
import { loadConfounds, loadRatio, underLoadNote } from './load.js'
import type { EngineInput, FrozenBaseline, Watch } from './state.js'
import { alignUp } from './stats.js'

/** How long an old version without live traffic is left alone before it is asked again (live canary baseline). */
const OLD_RECHECK_MS = 60_000

/** no readings: one shared empty list, never pushed to */
export const NONE: RuleResult[] = []
export const isBreach = (r: RuleResult) => r.state === 'breach'
/** readings(): nothing can be decided at this evaluation (see there) */
export const QUIET = Symbol('quiet')
const NO_LEVELS: Levels = { errorLevel: NaN, latencyCutUs: NaN, latencyLevel: NaN, shift: [], errorGrid: undefined }
/**
 * Levels per baseline numbers object: a frozen snapshot is judged against the same levels every
 * tick (their upper bounds cost a bisection each); a live baseline is a new object per tick.
 */
const levelCache = new WeakMap<BaselineNumbers, Levels>()

/**
 * The levels the sequential tests judge a batch against, from (frozen or live) baseline numbers.
 * `frozen`: the numbers are a watch's snapshot, the same object for the whole watch, which alone
 * carries an error grid (composite.ts: its bettors need levels that never move).
 */
function levelsOf(c: Contract, n: BaselineNumbers | undefined, frozen: boolean): Levels {
  if (n === undefined) return NO_LEVELS
  let lv = levelCache.get(n)
  if (lv === undefined) levelCache.set(n, (lv = computeLevels(c, n, frozen)))
  return lv
}

function computeLevels(c: Contract, n: BaselineNumbers, frozen: boolean): Levels {
  const lat = n.latencyCount >= c.minSamples && Number.isFinite(n.latencyUs) ? latencyLevels(c, n) : undefined
  return {
    errorLevel: n.requests >= c.minSamples ? errorLevel(c, n) : NaN,
    latencyCutUs: lat?.cutUs ?? NaN,
    latencyLevel: lat?.level ?? NaN,
    shift: lat !== undefined ? shiftLevels(c, n) : [],
    errorGrid: frozen && n.requests >= c.minSamples ? errorGrid(n) : undefined,
  }
}

export interface Readings {
  list: RuleResult[]
  source: 'snapshot' | 'live'
  /** breaches against the history before an unhealthy baseline (gate.ts), onset = that breach's onset */
  preExisting: RuleResult[]
}

/**
 * A live baseline must be serving beside the candidate for the whole span: every slice holds its
 * share of the sample floor. The last draining old pod of a rolling update (a few requests from one
 * pod, in one slice) is not a population to judge against; the frozen snapshot is.
 */
function servesThroughout(ow: WindowStats, slices: number, minSamples: number): boolean {
  const width = (ow.toMs - ow.fromMs) / slices
  const need = Math.ceil(minSamples / slices)
  for (let i = 0; i < slices; i++) {
    let n = 0
    for (const b of ow.buckets) if (b.startMs >= ow.fromMs + i * width && b.startMs < ow.fromMs + (i + 1) * width) n += b.requests
    if (n < need) return false
  }
  return true
}

/**
 * Resource readings arrive every 10-60 s and their slope is a Theil-Sen fit over minutes: the rule
 * is re-run at most this often (telemetry time) per watch, or when the baseline source changes.
 */
const RESOURCE_EVERY_MS = 15_000

function resourceReading(
  w: Watch,
  view: SignalView,
  key: SeriesKey,
  end: number,
  g: number,
  evalFrom: number,
  base: Partial<Record<ResourceKind, number>> | undefined,
  source: 'snapshot' | 'live',
): RuleResult {
  if (w.resourceLast !== undefined && source === 'snapshot' && end - w.resourceAt < RESOURCE_EVERY_MS && end >= w.resourceAt) return w.resourceLast
  const r = resourceRule(w.contract, view, key, end, evalFrom, base)
  // the first reading of a watch is dated back by a phase of its own (its id), so that watches
  // deployed in the same tick (a mass rollout) re-run the rule in different ticks, not all at once
  w.resourceAt = w.resourceLast === undefined && source === 'snapshot' ? end - resourcePhase(w.id, g) : end
  w.resourceLast = source === 'snapshot' ? r : undefined
  return r
}

/** A watch's phase of the resource rule's cadence: a multiple of `g` below RESOURCE_EVERY_MS, from its id (hex). */
function resourcePhase(id: string, g: number): number {
  const steps = Math.floor(RESOURCE_EVERY_MS / g)
  return steps > 1 ? idPhase(id, 0, steps) * g : 0
}

/**
 * Readings at `end`, or undefined while the first confirmation span after the deployment is not
 * complete yet, or QUIET when `quietOk` and no rule can be in breach at `end`: the sequential tests
 * consumed the new data (as always), neither test's evidence (nor, for an unhealthy baseline, the
 * evidence against the history before it) reached its bound, no probe failed and the resource rule
 * (run on its own cadence, as always) is not in breach. A breach of a request signal needs its
 * evidence at the bound (rules.ts), so such an evaluation cannot decide anything: the error, latency
 * and probe readings are not computed. Every state change a full evaluation makes is made.
 */
export function readings(w: Watch, input: EngineInput, end: number, commitEnd: number, g: number, interval: number, base: FrozenBaseline | undefined, allowLive: boolean, quietOk = false, ge = g): Readings | typeof QUIET | undefined {
  const c = w.contract
  const view = input.view
  const key = w.key
  const earliest = alignUp(w.deployedAt, g)
  const baselineMs = base !== undefined ? Math.max(c.baselineWindow, base.toMs - base.fromMs) : c.baselineWindow
  // `ge`: the grid the judgement ends on (cadence.ts endGranularity; `g` for a recovery); a span may
  // lie on it while the store still holds it finely (deploySpan), else on `g` from `earliest`
  const cov = ge < g ? view.coverage(key) : undefined
  const spanAt = (t: number) => deploySpan(c, view, key, cov, t, w.deployedAt, g, ge, interval, baselineMs)
  const span = spanAt(end)
  if (span === undefined) return undefined
  const win = span.win
  const from = span.fromMs
  let numbers = base?.numbers
  // the numbers the sequential tests' levels come from: the snapshot object itself (its levels are
  // cached per object) unless the live numbers replace it
  let levelsFrom = base?.numbers
  let source: 'snapshot' | 'live' = 'snapshot'
  if (allowLive && w.baselineVersion !== '') {
    // canary: the old version serving beside the new one in the same span is the fairer baseline
    const oldKey = w.oldKey
    // After a finished rollout the old version serves nothing; it is then re-checked once a minute
    // (telemetry time) rather than at every tick. A canary's old version keeps serving and is read each tick.
    const ow = end >= w.oldIdleUntil ? view.window(oldKey, from, end) : undefined
    if (ow !== undefined && ow.requests < c.minSamples) w.oldIdleUntil = end + OLD_RECHECK_MS
    if (ow !== undefined && ow.requests >= c.minSamples && servesThroughout(ow, c.slices, c.minSamples)) {
      source = 'live'
      const liveResources: Partial<Record<ResourceKind, number>> = {}
      const r = c.signals.resource
      if (r.mode !== 'off') {
        const rw = view.window(oldKey, end - r.window, end)
        for (const kind of r.kinds) {
          const m = medianSlope(rw, kind, r.minPoints)
          if (m.pods > 0) liveResources[kind] = m.slope
        }
      }
      // its numbers: the old version over all of its time beside the new one since the deployment
      // (at most `baselineWindow`), not only this span: a span of two reports holds too few of its
      // requests for a tight upper bound, and the evidence it is compared with covers that time too
      const lf = Math.max(earliest, end - c.baselineWindow)
      const lw = lf < from ? view.window(oldKey, lf, end) : ow
      const resourceSlope = { ...(base?.numbers.resourceSlope ?? {}), ...liveResources }
      // the request signals keep the (tighter) snapshot unless the old version is now worse than it
      if (base === undefined || liveWorseThanSnapshot(c, lw, base.numbers, levelsOf(c, base.numbers, true))) {
        numbers = { ...requestNumbers(c, lw, false), shift: windowShift(c, lw), resourceSlope }
        levelsFrom = numbers
      } else {
        source = 'snapshot'
        numbers = Object.keys(liveResources).length === 0 ? base.numbers : { ...base.numbers, resourceSlope }
      }
    }
  }
  // the sequential tests consume the newly complete data once, against this evaluation's levels.
  // A new release's evidence starts at its first request, not at its first whole bucket: the series
  // is the version's own (a watch detected from telemetry has no data before `deployedAt`; one from
  // an event may hold a few of the same version's requests stamped just before it), and more of the
  // version's data only makes the anytime-valid test sooner, never less valid. The span (the
  // "sustained" question) still starts at the first whole bucket. A restored version (recovery) served
  // before its rollback, so its partial bucket is another period's data: excluded.
  const evidenceFrom = w.kind === 'deploy' ? alignDown(w.deployedAt, g) : earliest
  // Early firing (end past the watermark's commitEnd): the tests commit the data up to commitEnd
  // (their next stakes, fixed from the span up to `end`, queued at `end`) and look at the rest
  // without consuming it (sequential.ts peek) when their levels are the frozen snapshot's, the same
  // at the look as at the later commit; a live baseline's levels move, so its tests wait for the
  // watermark. In steady state the look at a bucket and its later commit bet the same stake.
  const early = commitEnd < end
  const lv = levelsOf(c, levelsFrom, source === 'snapshot')
  advance(w.evidence, view, key, evidenceFrom, commitEnd, lv, win, interval, end)
  const ev = early && source === 'snapshot' ? peek(w.evidence, view, key, evidenceFrom, end, lv, win, interval) : w.evidence
  const evalFrom = w.kind === 'deploy' ? w.deployedAt + c.signals.resource.warmup : w.deployedAt
  const h = w.health
  const againstHistory = h !== undefined && h.state === 'unhealthy' && h.reference !== undefined && source === 'snapshot'
  // the history's tests (a pre-existing breach, not time-critical) commit only, no early look
  if (againstHistory) advance(w.refEvidence, view, key, evidenceFrom, commitEnd, levelsOf(c, h.reference, false), win, interval, end)
  const errNow = errorEvidence(ev)
  const latNow = latencyEvidence(ev)
  const seen = witnessMax(w, c, ev, lv, win, numbers, errNow, latNow)
  let resource: RuleResult | undefined
  if (quietOk && w.probeFailure === undefined) {
    const bound = 1 / c.alpha
    const below = (e: WatchEvidence) => errorEvidence(e) < bound && latencyEvidence(e) < bound
    if (errNow < bound && latNow < bound && (!againstHistory || below(w.refEvidence))) {
      resource = resourceReading(w, view, key, end, g, evalFrom, numbers?.resourceSlope, source)
      if (resource.state !== 'breach') {
        // what the loop below does for readings that are not breaches
        w.onsets.error_rate = undefined
        w.onsets.latency = undefined
        w.onsets.resource = undefined
        w.onsets.probe = undefined
        return QUIET
      }
    }
  }
  const list = [
    errorRateRule(c, win, numbers, errNow),
    latencyRule(c, view, key, win, numbers, latNow),
    resource ?? resourceReading(w, view, key, end, g, evalFrom, numbers?.resourceSlope, source),
    probeRule(c, win, w.probeFailure, w.failingNow.size, w.probeReadings),
  ]
  // An early look may not confirm what the committed data already does: its newest bucket is
  // partial, so the span can hold fewer than `minSamples` or a slice less than its share. A reading
  // beyond its threshold but not a breach is then also taken on the committed data (up to the
  // watermark, the committed evidence) and a breach there stands in for it: no decision comes later
  // than with `earlyFiring: false`. Only for a reading beyond its threshold: a healthy series costs
  // nothing more.
  // the committed span is read once, for whichever reading below needs it
  let cs: ReturnType<typeof deploySpan> | null = null
  if (early && numbers !== undefined) {
    for (const i of [0, 1] as const) {
      const r = list[i] as RuleResult
      if (r.state === 'breach' || !(r.threshold > 0 && r.value >= r.threshold)) continue
      if (cs === null) cs = spanAt(commitEnd)
      if (cs === undefined) break
      const rc = i === 0 ? errorRateRule(c, cs.win, numbers, errorEvidence(w.evidence)) : latencyRule(c, view, key, cs.win, numbers, latencyEvidence(w.evidence))
      if (rc.state === 'breach') list[i] = rc
    }
  }
  // a request signal beyond its threshold beside one that reached 1/alpha is a witness at the
  // corroboration bound (rules.ts corroborationBound); never critical, never a leader. The error
  // witness may also count its evidence against the baseline's counts (composite.ts)
  const [er, lat] = list as [RuleResult, RuleResult]
  if (lat.state === 'breach' && er.state === 'insufficient' && er.threshold > 0 && er.value >= er.threshold) {
    const plugIn = errNow
    const counts = errorCountsEvidence(ev, lv)
    const now = Math.max(plugIn, counts)
    const most = Math.max(now, seen.error)
    const witness = errorRateRule(c, win, numbers, most, corroborationBound(c))
    if (witness.state === 'breach') list[0] = corroborating(witness, `${counts > plugIn ? " against the baseline's counts" : ''}${most > now ? ' (its largest in this watch)' : ''}`)
  } else if (er.state === 'breach' && corroborates(c, lat, seen.latency)) {
    const most = Math.max(latNow, seen.latency)
    list[1] = corroborating(latencyRule(c, view, key, win, numbers, most, corroborationBound(c)), most > latNow ? ' (its largest in this watch)' : '')
  }
  // a breach that continues from the previous tick keeps its first onset. A request signal beyond
  // its critical level suffices alone only when held in every report over the shortest span and one
  // more report, or over the confirmation span as it grew when that is longer (an error ratio at the
  // absolute `critical` at once): a single-cause fault is sustained; a spike of one report (a cold
  // start of a few seconds) never fills three reports. The hold is judged on committed data; a
  // series whose tests commit on coarse edges behind complete data (60 s metrics judged between
  // minute edges, cadence.ts commitGranularity) holds over the span as it grew up to that commit,
  // not up to the look: the look's span reaches back as far as its growth allows, and measured
  // from the commit it asked for a hold longer than the data since the deployment (a Nezha
  // cpu_contention case, 60 s metrics at ~0.4 req/s, decided 120 s later than on the minute grid)
  let spanMs = span.toMs - span.fromMs
  let holdOnCommit = commitEnd < end && ge < g
  for (const r of list) {
    if (r.state === 'breach') {
      const prev = w.onsets[r.signal]
      if (prev !== undefined && r.signal !== 'probe') r.onsetMs = Math.min(prev, r.onsetMs ?? prev)
      w.onsets[r.signal] = r.onsetMs
      if (r.signal === 'error_rate' || r.signal === 'latency') {
        if (holdOnCommit) {
          if (cs === null) cs = spanAt(commitEnd)
          spanMs = cs === undefined ? Infinity : cs.toMs - cs.fromMs
          holdOnCommit = false
        }
        judgeAlone(r, { c, view, key, numbers, base, source, commitEnd, earliest, spanMs, interval, g, ge })
      }
    } else w.onsets[r.signal] = undefined // not `delete`: keeps the object out of V8 dictionary mode
  }
  if (!againstHistory || h === undefined || h.reference === undefined) return { list, source, preExisting: NONE }
  const preExisting: RuleResult[] = []
  {
    const note = `against the history before the baseline (${h.note})`
    if (h.onsets.error_rate !== undefined) {
      const r = errorRateRule(c, win, h.reference, errorEvidence(w.refEvidence))
      if (r.state === 'breach') preExisting.push({ ...r, critical: false, onsetMs: h.onsets.error_rate, note })
    }
    if (h.onsets.latency !== undefined) {
      const r = latencyRule(c, view, key, win, h.reference, latencyEvidence(w.refEvidence))
      if (r.state === 'breach') preExisting.push({ ...r, critical: false, onsetMs: h.onsets.latency, note })
    }
  }
  return { list, source, preExisting }
}

/**
 * A reading that may become a corroborating witness: beyond its threshold, evidence short of
 * 1/alpha, and at the corroboration bound now or at `most`, the largest its test has shown in this
 * watch (witnessMax).
 */
function corroborates(c: Contract, r: RuleResult, most: number): boolean {
  return r.state === 'insufficient' && r.threshold > 0 && r.value >= r.threshold && r.evidence !== undefined && Math.max(r.evidence, most) >= corroborationBound(c) && r.evidence < 1 / c.alpha
}

/**
 * Keeps the largest evidence each request signal's test has shown in this watch (Watch.witnessed),
 * which a second witness counts (rules.ts corroborationBound). Why the largest and not the current
 * value: a test's evidence is a test supermartingale, and Ville's inequality bounds the chance that
 * it EVER reaches 1/sqrt(alpha) by sqrt(alpha), the same bound as for its value at the decision
 * (a stopping time); a sequential test that crossed its bound has rejected, whatever its wealth
 * does after. The false-alarm bound of a two-witness decision rests on its leader alone, whose
 * current evidence must still reach 1/alpha; the witness must still be beyond its threshold over
 * the span now. Measured: a 1.5 req/s service on 60 s metrics (`low-traffic-60s-bad-deploy` seed 2)
 * showed its error evidence against the baseline's counts at 58 when its latency was still short of
 * 1/alpha, and 23 a report later, when latency reached it: one batch of 2 errors in 120 requests
 * had taken the current value under 32, and the decision waited another report (260 s from the
 * first export against the 185 s target).
 * Cost: the error test against the baseline's counts (composite.ts, 24 rates) is read only while
 * the span's error ratio is beyond its threshold; the plain tests' values are read every evaluation
 * anyway (the quiet check).
 */
function witnessMax(w: Watch, c: Contract, ev: WatchEvidence, lv: Levels, win: WindowStats, numbers: BaselineNumbers | undefined, errNow: number, latNow: number): Watch['witnessed'] {
  const seen = w.witnessed
  let err = errNow
  if (numbers !== undefined && numbers.requests > 0 && win.requests > 0 && win.errors / win.requests >= errorThreshold(c, numbers.errors / numbers.requests)) err = Math.max(err, errorCountsEvidence(ev, lv))
  if (err > seen.error) seen.error = err
  if (latNow > seen.latency) seen.latency = latNow
  return seen
}

function corroborating(r: RuleResult, how = ''): RuleResult {
  if (r.state === 'breach') r.note = `corroborating: evidence${how} ${(r.evidence ?? 0).toPrecision(3)} >= ${(r.evidenceBound ?? 0).toPrecision(3)}`
  return r
}

/** A request-signal breach judged at the full bound (1/alpha), not a corroborating one. */
function leads(c: Contract, r: RuleResult): boolean {
  return r.evidenceBound === undefined || r.evidenceBound >= 1 / c.alpha
}

/** What judgeAlone needs from its evaluation: the series, its baseline and the span's geometry. */
interface AloneAt {
  c: Contract
  view: SignalView
  key: SeriesKey
  numbers: BaselineNumbers | undefined
  base: FrozenBaseline | undefined
  source: 'snapshot' | 'live'
  /** the end of the committed data: both holds are judged on it (below) */
  commitEnd: number
  /** the first whole bucket after the deployment */
  earliest: number
  /** this evaluation's confirmation span, as long as it grew */
  spanMs: number
  interval: number
  g: number
  ge: number
}

/**
 * Does this breach of a request signal suffice alone? Sets `r.critical` and says why in `r.note`.
 * One witness: critical only when held (rules.ts heldAlone); an error ratio at the absolute
 * `critical` level suffices at once. A corroborating witness is never critical.
 * The hold is judged on committed data only: an early look reads the newest bucket before
 * every pod's batch is in, and a pod whose batch has not come has sent only the bucket's
 * first part, so a burst that ended inside that bucket would look up to one bucket longer
 * than it was; how long it held is a single signal's only guard against a burst (two
 * signals each carry their own evidence and may decide on the look).
 * A breach below its critical level suffices alone too once held for `singleSignalHold`
 * (rules.ts heldLong), on committed data for the same reason. Both holds read a metric's
 * latency at its bucket's lower bound (normalize/buckets.ts): its p99 is a bucket's midpoint
 * (SDK default bounds 100, 250, 500 ms), so a 1.3x shift across a bound reads 2x, beyond the
 * threshold in every report; read at the midpoint the hold rolled back 77 of 1,000 1.3x-slower
 * deployments, 75 of them on metrics (`node dist/bench/false-rollbacks.js --runs 1000 --slower 1.3`).
 * A quiet service's confirmation span grows until it holds minSamples, so the hold covers
 * the span as it grew (over the shortest one it would hold too few requests to judge), and a
 * gap is empty time as long as one slice of that span or one report, whichever is longer:
 * the span's own rule (a slice without any request is a gap); a 0.1 req/s service leaves
 * most 5 s buckets empty without having stopped (test/engine/cadence.test.ts).
 * Latency alone against the snapshot waits while the version serves a surge (load.ts): load
 * slows every version, and nothing serves beside it to tell the two apart.
 */
function judgeAlone(r: RuleResult, a: AloneAt): void {
  const { c, view, key, numbers, base, source, commitEnd, earliest, spanMs, interval, g, ge } = a
  const absolute = r.critical && r.signal === 'error_rate' && r.value >= c.signals.errorRate.critical
  const gapMs = Math.max(interval, g, spanMs / c.slices)
  // three reports (the shortest span and one more report) on the grid the judgement ends on, `ge`:
  // a 20-45 s exporter's hold is 60-135 s from the minute edge before (heldAlone starts it on
  // `g`), not a 60 s exporter's 180 s; before, 20 % fast 5xx on 20 s metrics waited 116 s
  // (median from the first export) where 15 s metrics took 30 s (`false-rollbacks.js
  // --intervals 20,30,45 --errors 0.2`)
  const aloneMs = Math.max(minSpan(c, interval, ge) + Math.max(interval, ge), spanMs)
  // a hold starts on the grid of the span's starts (cadence.ts endGranularity: a range the store answers whole)
  const underLoad = (holdMs: number): boolean =>
    r.signal === 'latency' && source === 'snapshot' && base !== undefined && loadConfounds(c, loadRatio(view, key, { requests: base.numbers.requests, fromMs: base.fromMs, toMs: base.toMs }, alignDown(commitEnd - holdMs, g), commitEnd))
  const lead = leads(c, r)
  const heldCritical = lead && numbers !== undefined && heldAlone(c, view, key, r, numbers, commitEnd, earliest, aloneMs, gapMs, g)
  r.critical = lead && (absolute || (heldCritical && !underLoad(aloneMs)))
  if (!r.critical && lead && numbers !== undefined && heldLong(c, view, key, r, numbers, commitEnd, earliest, gapMs, g)) {
    r.critical = !underLoad(c.singleSignalHold)
    r.note = `held ${c.singleSignalHold / 1000}s beyond the threshold${r.critical ? '' : `, ${underLoadNote(c)}`}`
  } else if (heldCritical && !r.critical) r.note = `at its critical level, ${underLoadNote(c)}`
  // a metric's p99 decided alone at its bucket's lower bound: the verdict says what was compared
  const layout = r.critical && r.signal === 'latency' ? view.coverage(key)?.latencyBuckets : undefined
  if (layout !== undefined) {
    const floor = `p99 in a bucket above ${Number((latencyFloorUs(layout, r.value * 1000) / 1000).toFixed(3))}ms`
    r.note = r.note === '' ? floor : `${r.note}; ${floor}`
  }
}
