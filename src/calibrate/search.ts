/**
 * Per-service calibration: backtests pseudo-deployments (backtest.ts) over a service's history,
 * measures the false-rollback rate of the current contract, walks a small grid of candidate values
 * from the most sensitive to the least, and keeps the first that holds false rollbacks at or under
 * the target on the calibration deploys (the older part of the history). The newer part is held out:
 * it gives the chosen contract's false-rollback rate on days it was not chosen on, and its detection
 * power (the smallest error-rate step and latency multiplier still caught, injected into held-out
 * history).
 *
 * window and minSamples come from the traffic level (the 10th percentile of request rate: a quiet
 * hour must still fill the window); error minDelta/relativeFactor and latency
 * multiplier/minIncreaseMs from the grid.
 */
import { mergeContract, validateContract, type Contract, type ContractOverride, type EngineConfig } from '../engine/config.js'
import { deployTimes, pseudoDeploy, pseudoDeployMany, type BacktestConfig, type Injection, type PseudoOutcome } from './backtest.js'
import { serviceKey, type ServiceHistory } from './history.js'
import { QuantileSketch } from './quantile.js'

export interface CalibrateOptions {
  /** allowed false rollbacks per pseudo-deployment (0.01 = 1 per 100 deploys) */
  targetFalseRate: number
  /** history required before `enforce` is recommended, days */
  days: number
  /** pseudo-deployments per service (calibration + held out) */
  deploys: number
  /** share of the pseudo-deployments (the newest) held out */
  heldOutShare: number
  /** held-out deploys each injected regression is tried on */
  powerDeploys: number
  /** a regression counts as caught when at least this share of its pseudo-deploys roll back */
  catchRate: number
  onProgress?: (line: string) => void
}

export const DEFAULT_CALIBRATE: Omit<CalibrateOptions, 'onProgress'> = {
  targetFalseRate: 0.01,
  days: 30,
  deploys: 60,
  heldOutShare: 1 / 3,
  powerDeploys: 8,
  catchRate: 0.75,
}

/** error (minDelta, relativeFactor) and latency (multiplier, minIncreaseMs) steps, most sensitive first */
export const ERROR_GRID: readonly (readonly [number, number])[] = [
  [0.02, 2],
  [0.03, 2.5],
  [0.05, 3],
  [0.08, 4],
  [0.12, 5],
]
export const LATENCY_GRID: readonly (readonly [number, number])[] = [
  [1.5, 20],
  [1.75, 50],
  [2, 100],
  [2.5, 200],
  [3, 400],
]
export const ERROR_STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
export const LATENCY_FACTORS = [1.25, 1.5, 2, 3, 5]

export interface Tally {
  deploys: number
  falseRollbacks: number
  incidents: number
  /** pseudo-deploys never judged (always insufficient): they say nothing about false rollbacks */
  unjudged: number
}

export interface ResourceFinding {
  resource: 'memory' | 'cpu'
  p70: number
  p95: number
  /** the smallest request seen among the service's pods */
  request: number
  below: boolean
}

export type Enforce = { kind: 'enforce' } | { kind: 'observe'; reason: string }

export type CalibrationResult =
  | {
      kind: 'calibrated' | 'no-candidate'
      service: string
      historyDays: number
      traffic: { p10Rps: number; medianRps: number }
      current: Tally
      chosen: Tally
      heldOut: Tally
      /** the override written under engine.services[service] (YAML units: durations in ms) */
      override: ContractOverride
      contract: Contract
      /** smallest caught injected regression; undefined when none in the tried set was caught */
      power: { errorStep: number | undefined; latencyFactor: number | undefined }
      enforce: Enforce
      resources: ResourceFinding[]
      evidence: Record<string, string>
      elapsedMs: number
    }
  | { kind: 'too-little-data'; service: string; historyDays: number; reason: string }

function quantileOf(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number
}

export function trafficOf(h: ServiceHistory): { p10Rps: number; medianRps: number } {
  const r = h.requests
  const rates: number[] = []
  for (let i = 0; i < r.counts.length; i++) {
    const c = r.counts[i] as number
    if (!Number.isNaN(c)) rates.push(c / (r.stepMs / 1000))
  }
  const s = Float64Array.from(rates).sort()
  return { p10Rps: quantileOf(s, 0.1), medianRps: quantileOf(s, 0.5) }
}

/** window and minSamples from the traffic level, within what the signal store can answer. */
export function sizing(base: Contract, cfg: BacktestConfig, p10Rps: number): { window: number; minSamples: number; why: { window: string; minSamples: string } } {
  const unit = base.slices * cfg.signals.bucket
  const maxWindow = Math.max(unit, Math.floor((cfg.signals.fineRetention - cfg.engine.lateness) / unit) * unit)
  // a busy service can afford a larger sample floor (a steadier estimate) at no cost in time
  const minSamples = Math.min(400, Math.max(base.minSamples, Math.floor((p10Rps * 60) / 10) * 10))
  const needMs = p10Rps > 0 ? (minSamples / p10Rps) * 1000 : Infinity
  const window = Math.min(maxWindow, Math.max(base.window, Math.ceil(needMs / unit) * unit))
  const rate = `p10 traffic ${fmt(p10Rps)} req/s`
  return {
    window,
    minSamples,
    why: {
      minSamples: minSamples > base.minSamples ? `${rate}: a minute holds ${Math.floor(p10Rps * 60)} requests, so the floor rises to ${minSamples}` : `${rate}: the default floor ${base.minSamples} stands`,
      window:
        needMs > maxWindow
          ? `${rate}: ${minSamples} requests take ${fmtS(needMs)}, longer than the store's fine ring allows (${fmtS(maxWindow)}); the engine grows the span until it holds them`
          : `${rate}: ${minSamples} requests take ${fmtS(needMs)}`,
    },
  }
}

function fmt(n: number): string {
  return Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toPrecision(2)) : String(n)
}
function unit(v: number, r: 'memory' | 'cpu'): string {
  return r === 'memory' ? `${(v / 2 ** 20).toFixed(0)} MiB` : `${v.toFixed(2)} cores`
}
function fmtS(ms: number): string {
  return Number.isFinite(ms) ? `${Math.round(ms / 1000)} s` : 'forever'
}
function pct(t: Tally): string {
  return `${t.falseRollbacks}/${t.deploys} false rollbacks (${t.deploys > 0 ? ((100 * t.falseRollbacks) / t.deploys).toFixed(1) : '0'} %)`
}

function withService(cfg: BacktestConfig, key: string, c: Contract): BacktestConfig {
  const engine: EngineConfig = { ...cfg.engine, services: { ...cfg.engine.services, [key]: c } }
  return { engine, signals: cfg.signals }
}

/** Pseudo-deploys at `times`; stops early once more than `allowed` false rollbacks are seen. */
function tally(h: ServiceHistory, cfg: BacktestConfig, times: readonly number[], allowed = Infinity): Tally {
  const t: Tally = { deploys: 0, falseRollbacks: 0, incidents: 0, unjudged: 0 }
  for (const at of times) {
    const o = pseudoDeploy(h, at, cfg)
    t.deploys += 1
    if (o.kind === 'rollback') t.falseRollbacks += 1
    else if (o.kind === 'incident') t.incidents += 1
    else if (o.judgedTicks === 0) t.unjudged += 1
    if (t.falseRollbacks > allowed) break
  }
  return t
}

/**
 * tally() of several configurations over the same times, each pseudo-deploy replayed once for all
 * of them (pseudoDeployMany); configuration k stops once it has more than `allowed[k]` false
 * rollbacks, exactly where tally() alone would, so each Tally equals tally()'s.
 */
function tallyMany(h: ServiceHistory, cfgs: readonly BacktestConfig[], times: readonly number[], allowed: readonly number[], from?: readonly Tally[], onFalse?: (at: number) => void): Tally[] {
  const out: Tally[] = cfgs.map((_, k) => ({ ...(from?.[k] ?? { deploys: 0, falseRollbacks: 0, incidents: 0, unjudged: 0 }) }))
  const live = cfgs.map((_, k) => k).filter((k) => (out[k] as Tally).falseRollbacks <= (allowed[k] as number))
  for (const at of times) {
    if (live.length === 0) break
    const os = pseudoDeployMany(h, at, live.map((k) => cfgs[k] as BacktestConfig))
    for (let x = live.length - 1; x >= 0; x--) {
      const k = live[x] as number
      const t = out[k] as Tally
      const o = os[x] as PseudoOutcome
      t.deploys += 1
      if (o.kind === 'rollback') {
        t.falseRollbacks += 1
        onFalse?.(at)
      } else if (o.kind === 'incident') t.incidents += 1
      else if (o.judgedTicks === 0) t.unjudged += 1
      if (t.falseRollbacks > (allowed[k] as number)) live.splice(x, 1)
    }
  }
  return out
}

/** candidates replayed together at most (the batches double from 1: a calm service's first candidate usually holds) */
const MAX_BATCH = 16

function caught(o: PseudoOutcome): boolean {
  return o.kind === 'rollback'
}

/**
 * The smallest level caught in at least `rate` of the deploys. Detection is taken as monotone in the
 * level (a bigger step is caught at least as often), so the levels are bisected, and each level stops
 * as soon as its answer is certain.
 */
function smallestCaught<T extends number>(h: ServiceHistory, cfg: BacktestConfig, times: readonly number[], levels: readonly T[], inj: (l: T) => Injection, rate: number): T | undefined {
  if (times.length === 0) return undefined
  const need = Math.ceil(rate * times.length)
  const ok = (l: T): boolean => {
    let hit = 0
    let miss = 0
    for (const at of times) {
      if (caught(pseudoDeploy(h, at, cfg, inj(l)))) hit += 1
      else miss += 1
      if (hit >= need) return true
      if (miss > times.length - need) return false
    }
    return hit >= need
  }
  let lo = 0
  let hi = levels.length - 1
  let best: T | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const l = levels[mid] as T
    if (ok(l)) {
      best = l
      hi = mid - 1
    } else lo = mid + 1
  }
  return best
}

export function resourceFindings(h: ServiceHistory): ResourceFinding[] {
  const out: ResourceFinding[] = []
  for (const resource of ['memory', 'cpu'] as const) {
    const kept = h.usage?.[resource]
    const sk = kept ?? new QuantileSketch()
    let request = Infinity
    for (const s of h.resources) {
      if (s.resource !== resource) continue
      if (kept === undefined) for (const v of s.values) sk.add(v)
      if (!Number.isNaN(s.request)) request = Math.min(request, s.request)
    }
    if (sk.count === 0 || request === Infinity) continue
    const p70 = sk.quantile(0.7)
    out.push({ resource, p70, p95: sk.quantile(0.95), request, below: request < p70 })
  }
  return out
}

/**
 * The single-signal (critical) levels of grid step (i, j): the contract's own, scaled by how far the
 * step's threshold is from the grid's most sensitive one (minDelta for criticalDelta and the absolute
 * critical, relativeFactor for criticalFactor, the multiplier for the latency level), never lowered.
 * A noisy service is calibrated by loosening its thresholds; a critical level left where it was
 * would keep rolling it back on one signal, and no grid step could then hold the target. Only the
 * values that differ from the contract's are returned (the override names what calibration changed).
 */
export function criticalLevels(base: Contract, i: number, j: number): { errorRate: Partial<Contract['signals']['errorRate']>; latency: Partial<Contract['signals']['latency']> } {
  const [d0, f0] = ERROR_GRID[0] as readonly [number, number]
  const [d, f] = ERROR_GRID[i] as readonly [number, number]
  const m0 = (LATENCY_GRID[0] as readonly [number, number])[0]
  const m = (LATENCY_GRID[j] as readonly [number, number])[0]
  const e = base.signals.errorRate
  const round = (x: number) => Math.round(x * 1000) / 1000
  const errorRate: Partial<Contract['signals']['errorRate']> = {}
  const criticalFactor = round(e.criticalFactor * Math.max(1, f / f0))
  const criticalDelta = round(Math.min(1, e.criticalDelta * Math.max(1, d / d0)))
  const critical = round(Math.min(1, e.critical * Math.max(1, d / d0)))
  if (criticalFactor > e.criticalFactor) errorRate.criticalFactor = criticalFactor
  if (criticalDelta > e.criticalDelta) errorRate.criticalDelta = criticalDelta
  if (critical > e.critical) errorRate.critical = critical
  const latency: Partial<Contract['signals']['latency']> = {}
  const lc = round(Math.max(m, base.signals.latency.critical * Math.max(1, m / m0)))
  if (lc > base.signals.latency.critical) latency.critical = lc
  return { errorRate, latency }
}

export function calibrateService(h: ServiceHistory, cfg: BacktestConfig, opts: CalibrateOptions): CalibrationResult {
  const began = performance.now()
  const key = serviceKey(h.service)
  const say = (s: string) => opts.onProgress?.(`${key}: ${s}`)
  const historyDays = (h.lastDataMs - h.firstDataMs + h.requests.stepMs) / 86_400_000
  const times = deployTimes(h, cfg, opts.deploys)
  if (times.length < 3) return { kind: 'too-little-data', service: key, historyDays, reason: `${historyDays.toFixed(2)} days of history hold ${times.length} pseudo-deployments (at least 3 needed)` }
  const nHeld = Math.max(1, Math.round(times.length * opts.heldOutShare))
  const calTimes = times.slice(0, times.length - nHeld)
  const heldTimes = times.slice(times.length - nHeld)
  const allowed = Math.floor(opts.targetFalseRate * calTimes.length + 1e-9)
  const base = cfg.engine.services[key] ?? cfg.engine.defaults

  const traffic = trafficOf(h)

  // the traffic-sized window and floor are one candidate; the contract's own are the other (a larger floor is not always steadier: the span it needs reaches further back)
  const sized = sizing(base, cfg, traffic.p10Rps)
  const plain = { window: base.window, minSamples: base.minSamples, why: { window: `the contract's window (traffic-sized ${sized.window / 1000} s did worse)`, minSamples: `the contract's floor (traffic-sized ${sized.minSamples} did worse)` } }
  const sizes = sized.window === base.window && sized.minSamples === base.minSamples ? [sized] : [sized, plain]
  const candidates: { i: number; j: number; k: number }[] = []
  for (let i = 0; i < ERROR_GRID.length; i++) for (let j = 0; j < LATENCY_GRID.length; j++) for (let k = 0; k < sizes.length; k++) candidates.push({ i, j, k })
  candidates.sort((a, b) => a.i + a.j - (b.i + b.j) || a.i - b.i || a.j - b.j || a.k - b.k)

  const overrideOf = (i: number, j: number, k: number): ContractOverride => {
    const [minDelta, relativeFactor] = ERROR_GRID[i] as readonly [number, number]
    const [multiplier, minIncreaseMs] = LATENCY_GRID[j] as readonly [number, number]
    const size = sizes[k] ?? sized
    const critical = criticalLevels(base, i, j)
    return {
      window: size.window,
      minSamples: size.minSamples,
      // a service noisy enough to need looser thresholds has held single-signal episodes in its
      // own history (an error burst of half an hour is held far longer than any hold): past the
      // grid's first step it keeps the strict compound condition, and its critical levels (scaled
      // above) are then the only way one signal decides alone
      ...(i + j > 0 && base.singleSignalHold > 0 ? { singleSignalHold: 0 } : {}),
      signals: {
        errorRate: { minDelta, relativeFactor, ...critical.errorRate },
        latency: { multiplier, minIncreaseMs, ...critical.latency },
      },
    } as ContractOverride
  }

  // the valid candidates in order; one equal to the current contract is the current contract's tally
  const baseJson = JSON.stringify(base)
  const valid: { i: number; j: number; k: number; contract: Contract; same: boolean }[] = []
  for (const c of candidates) {
    const contract = mergeContract(base, overrideOf(c.i, c.j, c.k))
    if (validateContract(contract).length > 0) continue
    valid.push({ ...c, contract, same: JSON.stringify(contract) === baseJson })
  }

  // Candidates are judged in batches replayed together with one feed per pseudo-deploy (tallyMany),
  // the first batch with the current contract; they are read in order, so the first to hold the
  // target is the same pick. A batch's candidates after the pick are wasted work: batches start at
  // one and double. Deploys that falsely rolled a candidate back ("killers") are tried first on the
  // next batches: a less sensitive candidate mostly fails on the same ones, after a deploy or two
  // instead of after every deploy before it. A candidate that holds the target ran every deploy,
  // so its tally is the one in time order; a failing one's tally counts the deploys it took to
  // fail this way (the detail line says so) and the last candidate, whose tally is reported when
  // none holds, is measured again in time order.
  let current: Tally | undefined = undefined as Tally | undefined
  let pick: { i: number; j: number; k: number; tally: Tally } | undefined
  let last: { i: number; j: number; k: number; tally: Tally; cfg: BacktestConfig; ordered: boolean } | undefined
  const killers: number[] = []
  const known = new Set<number>()
  const onFalse = (at: number) => {
    if (known.has(at)) return
    known.add(at)
    killers.push(at)
  }
  let next = 0
  let batch = 1
  for (;;) {
    const group: typeof valid = []
    while (next < valid.length && group.length < batch) {
      const c = valid[next++] as (typeof valid)[number]
      group.push(c)
    }
    const runs = group.filter((c) => !c.same)
    const cfgs = runs.map((c) => withService(cfg, key, c.contract))
    const allow = runs.map(() => allowed)
    if (current === undefined) {
      cfgs.unshift(cfg)
      allow.unshift(Infinity)
    }
    const first = killers.filter((t) => calTimes.includes(t))
    const ordered = first.length === 0
    const rest = ordered ? calTimes : calTimes.filter((t) => !first.includes(t))
    const ts = tallyMany(h, cfgs, rest, allow, ordered ? undefined : tallyMany(h, cfgs, first, allow, undefined, onFalse), onFalse)
    if (current === undefined) {
      current = ts.shift() as Tally
      say(`history ${historyDays.toFixed(1)} days, p10 ${fmt(traffic.p10Rps)} req/s; current contract: ${pct(current)}`)
    }
    let x = 0
    for (const c of group) {
      const t = c.same ? current : (ts[x++] as Tally)
      last = { i: c.i, j: c.j, k: c.k, tally: t, cfg: withService(cfg, key, c.contract), ordered: ordered || c.same }
      const failed = t.falseRollbacks > allowed
      say(`candidate errorRate ${ERROR_GRID[c.i]?.join('/')} latency ${LATENCY_GRID[c.j]?.join('/')} minSamples ${c.contract.minSamples}: ${failed ? `> ${allowed}` : t.falseRollbacks} false rollbacks in ${t.deploys} deploys${failed && !last.ordered ? ' (those that failed earlier candidates first)' : ''}`)
      if (!failed) {
        pick = { i: c.i, j: c.j, k: c.k, tally: t }
        break
      }
    }
    batch = Math.min(MAX_BATCH, batch * 2)
    if (pick !== undefined || next >= valid.length) break
  }
  // no candidate held: the loosest one's tally is reported, measured in time order as tally() does
  if (pick === undefined && last !== undefined && !last.ordered) last.tally = tally(h, last.cfg, calTimes, allowed)
  // (the first batch always measured it; this keeps the type honest)
  current ??= tally(h, cfg, calTimes)
  const chosenAt = pick ?? last ?? { i: ERROR_GRID.length - 1, j: LATENCY_GRID.length - 1, k: 0, tally: current }
  const override = overrideOf(chosenAt.i, chosenAt.j, chosenAt.k)
  const size = sizes[chosenAt.k] ?? sized
  const contract = mergeContract(base, override)
  const ccfg = withService(cfg, key, contract)
  const heldOut = tally(h, ccfg, heldTimes)
  const powerTimes = heldTimes.slice(0, opts.powerDeploys)
  const errorStep = smallestCaught(h, ccfg, powerTimes, ERROR_STEPS, (l) => ({ errorStep: l }), opts.catchRate)
  const latencyFactor = smallestCaught(h, ccfg, powerTimes, LATENCY_FACTORS, (l) => ({ latencyFactor: l }), opts.catchRate)
  say(`held out: ${pct(heldOut)}; catches +${errorStep !== undefined ? (errorStep * 100).toFixed(0) : '?'} error points, ${latencyFactor ?? '?'}x latency`)

  const resources = resourceFindings(h)
  let enforce: Enforce = { kind: 'enforce' }
  if (historyDays + 1e-6 < opts.days) enforce = { kind: 'observe', reason: `only ${historyDays.toFixed(1)} days of history, fewer than --days ${opts.days}: not enforced until calibrated on the full period` }
  else if (pick === undefined) enforce = { kind: 'observe', reason: `no candidate held false rollbacks at or under ${(opts.targetFalseRate * 100).toFixed(1)} % (loosest: ${pct(chosenAt.tally)})` }

  const powerText = `catches (held out, >= ${Math.round(opts.catchRate * 100)} % of ${powerTimes.length} deploys, this signal alone)`
  const evidence: Record<string, string> = {
    window: size.why.window,
    minSamples: size.why.minSamples,
    'signals.errorRate.minDelta': `${pct(chosenAt.tally)} in calibration, ${pct(heldOut)} held out; ${powerText}: ${errorStep !== undefined ? `+${(errorStep * 100).toFixed(0)} error points` : `none of +${ERROR_STEPS.map((s) => s * 100).join('/+')} points`}`,
    'signals.errorRate.relativeFactor': `paired with minDelta (grid step ${chosenAt.i + 1} of ${ERROR_GRID.length}); current contract: ${pct(current)}`,
    'signals.latency.multiplier': `${powerText}: ${latencyFactor !== undefined ? `${latencyFactor}x latency` : `none of ${LATENCY_FACTORS.join('/')}x`}`,
    'signals.latency.minIncreaseMs': `paired with the multiplier (grid step ${chosenAt.j + 1} of ${LATENCY_GRID.length})`,
  }
  const scaled = `raised with the grid step (error ${chosenAt.i + 1}, latency ${chosenAt.j + 1}): a service noisy enough to need looser thresholds needs a proportionally higher level to roll back on one signal`
  for (const f of ['criticalFactor', 'criticalDelta', 'critical'] as const) if (override.signals?.errorRate?.[f] !== undefined) evidence[`signals.errorRate.${f}`] = scaled
  if (override.signals?.latency?.critical !== undefined) evidence['signals.latency.critical'] = `${scaled} (and never below the multiplier)`
  if (override.singleSignalHold !== undefined) evidence.singleSignalHold = `off past the grid's first step (error ${chosenAt.i + 1}, latency ${chosenAt.j + 1}): this service's history holds one-signal episodes longer than the hold; one signal decides alone only past its critical level`
  const ovr = override as ContractOverride & { signals: NonNullable<ContractOverride['signals']> }
  if (enforce.kind === 'observe') {
    ovr.signals.errorRate = { ...ovr.signals.errorRate, mode: 'observe' }
    ovr.signals.latency = { ...ovr.signals.latency, mode: 'observe' }
    ovr.signals.resource = { mode: 'observe' }
    evidence['signals.errorRate.mode'] = enforce.reason
    evidence['signals.latency.mode'] = enforce.reason
    evidence['signals.resource.mode'] = enforce.reason
  } else {
    const low = resources.filter((r) => r.below && contract.signals.resource.kinds.includes(r.resource))
    if (low.length > 0) {
      ovr.signals.resource = { mode: 'observe' }
      evidence['signals.resource.mode'] = low.map((r) => `${r.resource} request ${unit(r.request, r.resource)} below the p70 of usage ${unit(r.p70, r.resource)} (p95 ${unit(r.p95, r.resource)}): the slope signal would fire on every deploy`).join('; ')
    }
  }
  return {
    kind: pick !== undefined ? 'calibrated' : 'no-candidate',
    service: key,
    historyDays,
    traffic,
    current,
    chosen: chosenAt.tally,
    heldOut,
    override: ovr,
    contract: mergeContract(base, ovr),
    power: { errorStep, latencyFactor },
    enforce,
    resources,
    evidence,
    elapsedMs: performance.now() - began,
  }
}
