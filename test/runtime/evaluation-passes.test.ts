/**
 * A tick run as bounded event-loop turns (EvaluationScheduler over the Pipeline's passes) must decide
 * exactly as one engine call: scenarios of the library, recorded once, replayed with turns of 1/8
 * (one item per engine call), 1 and 7 evaluations and with the single-call `Pipeline.tick()`, give
 * the same verdicts (every field,
 * decision times included) and the same statuses. The replay loop is replay's (ReplayClock, a tick
 * at each bucket the watermark enters, the actuator's rollback event after a rollback verdict),
 * with each tick awaited through the scheduler's real setImmediate turns. The scenarios deploy one
 * service each, so a fleet of 40 through the same pipeline and scheduler checks that every engine
 * call's verdicts and statuses reach the pass's result.
 *
 * And the scheduler's own contract: never two passes at once (late / skipped counted), bounded
 * turns, failures counted and survived, an idempotent shutdown that delivers an open pass.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import type { PullbackConfig } from '../../src/config/schema.js'
import { ReplayClock } from '../../src/cli/commands/replay.js'
import { SCENARIOS, recordToLines } from '../../src/sim/index.js'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { decodeOtlpJsonLine } from '../../src/receivers/otlp/json.js'
import { Pipeline, type PassRunner, type PassStep, type TickResult } from '../../src/runtime/pipeline.js'
import { EvaluationScheduler, SLICE_EVALUATIONS, type PassReport } from '../../src/runtime/evaluation-scheduler.js'
import { alignDown } from '../../src/signals/view.js'
import type { Verdict } from '../../src/engine/verdict.js'
import type { WatchStatus } from '../../src/engine/evaluate.js'
import type { DeploymentEvent } from '../../src/engine/events.js'

/** rollback then recovered, probe, incident, live canary baseline, 60 s metrics, benign (PULLBACK_TEST_ALL_SCENARIOS=1: all) */
const SUBSET = ['error-spike', 'probe-failure', 'pre-existing-breach', 'canary-bad-10pct', 'metrics-60s-bad-deploy', 'benign-deploy']
const PICKED = process.env.PULLBACK_TEST_ALL_SCENARIOS === '1' ? SCENARIOS : SCENARIOS.filter((s) => SUBSET.includes(s.name))

/** replay's actuator stand-in: the rollback event after a non-dry rollback verdict */
function actuatorEvent(v: Verdict): DeploymentEvent | undefined {
  if (v.kind !== 'rollback' || v.dryRun || v.baselineVersion === '') return undefined
  return { namespace: v.namespace, service: v.service, version: v.baselineVersion, time: v.decidedAt, kind: 'rollback', previousVersion: v.version, source: 'test', decisionId: v.id }
}

function newestMs(line: string): { maxMs: number; consume: (p: Pipeline) => void } {
  const d = decodeOtlpJsonLine(line)
  let maxMs = -Infinity
  if (d.type === 'traces') {
    for (const rs of d.request.resourceSpans) for (const s of rs.spans) maxMs = Math.max(maxMs, s.endTimeMs)
    return { maxMs, consume: (p) => p.consumeTraces(d.request) }
  }
  if (d.type === 'metrics') {
    for (const rm of d.request.resourceMetrics) for (const m of rm.metrics) for (const pt of m.points) maxMs = Math.max(maxMs, pt.timeMs)
    return { maxMs, consume: (p) => p.consumeMetrics(d.request) }
  }
  return { maxMs, consume: () => undefined }
}

interface Replayed {
  verdicts: Verdict[]
  statuses: WatchStatus[]
  ticks: number
  turns: number
  passesWithSeveralTurns: number
}

/** `turn`: undefined = Pipeline.tick() (one engine call); else the scheduler with that many evaluations per turn. */
async function replay(lines: readonly string[], cfg: PullbackConfig, turn: number | undefined): Promise<Replayed> {
  const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
  const rclock = new ReplayClock(pipeline.store.config.maxFutureSkew)
  const r: Replayed = { verdicts: [], statuses: [], ticks: 0, turns: 0, passesWithSeveralTurns: 0 }
  let now = -Infinity
  let watermark = -Infinity
  let done: (() => void) | undefined
  let failure: unknown
  const deliver = (res: TickResult) => {
    r.ticks += 1
    r.statuses.push(...res.statuses)
    for (const v of res.verdicts) {
      r.verdicts.push(v)
      const ev = actuatorEvent(v)
      if (ev !== undefined) pipeline.deployment(ev)
    }
  }
  const sched =
    turn === undefined
      ? undefined
      : new EvaluationScheduler({
          runner: pipeline,
          clock: { now: () => Math.floor(now) },
          intervalMs: 3_600_000,
          watermark: () => watermark,
          // only the work bound: a loaded test machine must not change where turns end
          turns: { maxWatchesPerTurn: turn, turnBudget: 1e9 },
          onPass: (res, _now, p: PassReport) => {
            deliver(res)
            r.turns += p.turns
            if (p.turns > 1) r.passesWithSeveralTurns += 1
            done?.()
          },
          onFailure: (err) => {
            failure = err
            done?.()
          },
        })
  const tick = async (wm: number) => {
    if (sched === undefined) return deliver(pipeline.tick(Math.floor(now), wm))
    watermark = wm
    const passed = new Promise<void>((res) => (done = res))
    sched.fire()
    await passed
    if (failure !== undefined) throw failure
  }
  const lateness = cfg.engine.lateness
  const bucketMs = pipeline.store.bucketMs
  let last = -Infinity
  try {
    for (const line of lines) {
      if (line.trim() === '') continue
      const { maxMs, consume } = newestMs(line)
      consume(pipeline)
      if (rclock.see(maxMs) === 'back') last = -Infinity
      now = rclock.now
      const wb = alignDown(now - lateness, bucketMs)
      if (wb > last) {
        last = wb
        await tick(now - lateness)
      }
    }
    // the end: everything arrived; once more so that the actuator's rollback event is registered
    await tick(now)
    await tick(now)
    await sched?.shutdown()
    return r
  } finally {
    pipeline.shutdown()
  }
}

describe('a tick as bounded turns decides as one engine call', () => {
  it('covers the subset', () => expect(PICKED.length).toBeGreaterThanOrEqual(SUBSET.length))

  it.each(PICKED.map((s) => [s.name, s] as const))('%s', async (_name, scenario) => {
    const lines = await recordToLines(scenario)
    const cfg = parseConfig({})
    const one = await replay(lines, cfg, undefined)
    expect(one.statuses.length).toBeGreaterThan(0)
    for (const turn of [1 / 8, 1, 7]) {
      const sliced = await replay(lines, cfg, turn)
      expect(sliced.ticks).toBe(one.ticks)
      expect(sliced.verdicts).toEqual(one.verdicts)
      expect(sliced.statuses).toEqual(one.statuses)
      // the passes were in fact spread over turns (7 evaluations hold a one-watch scenario's whole pass)
      if (turn < 7) expect(sliced.passesWithSeveralTurns).toBeGreaterThan(0)
    }
  }, 180_000)
})

/**
 * The pipeline over a fleet (the scenarios deploy one service each): 40 services from 2 req/s of a
 * baseline to a new version, 5 of them bad, ticked every 5 s; each pass's result delivered by the
 * scheduler in turns of `turn` evaluations (1/8: one item per engine call) or by Pipeline.tick().
 */
async function fleetThroughPipeline(turn: number | undefined): Promise<{ verdicts: Verdict[]; statuses: WatchStatus[][]; turns: number }> {
  const D = 1_767_225_600_000
  const n = 40
  const d = defaultEngineConfig()
  const pipeline = new Pipeline({ engine: { ...d, defaults: { ...d.defaults, window: 30_000, slices: 3 } } })
  const store = pipeline.store
  let x = 7
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
  for (let i = 0; i < n; i++) {
    const r = store.series({ namespace: 'ns', service: `svc${i}`, version: 'v1' })
    for (let s = -360; s < 0; s++) for (let j = 0; j < 2; j++) r.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
  }
  store.drainNewVersions()
  const out = { verdicts: [] as Verdict[], statuses: [] as WatchStatus[][], turns: 0 }
  let done: (() => void) | undefined
  let now = 0
  const sched =
    turn === undefined
      ? undefined
      : new EvaluationScheduler({
          runner: pipeline,
          clock: { now: () => now },
          intervalMs: 3_600_000,
          watermark: (t) => t,
          turns: { maxWatchesPerTurn: turn, turnBudget: 1e9 },
          onPass: (res, _n, p) => {
            out.verdicts.push(...res.verdicts)
            out.statuses.push(res.statuses)
            out.turns += p.turns
            done?.()
          },
        })
  for (let t = 0; t < 30; t++) {
    for (let i = 0; i < n; i++) {
      const h = store.series({ namespace: 'ns', service: `svc${i}`, version: 'v2' })
      for (let s = t * 5; s < t * 5 + 5; s++) for (let j = 0; j < 2; j++) h.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < (i < 5 ? 0.3 : 0.005))
    }
    now = D + (t + 1) * 5000 - d.lateness
    if (sched === undefined) {
      const res = pipeline.tick(now, now)
      out.verdicts.push(...res.verdicts)
      out.statuses.push(res.statuses)
      continue
    }
    const passed = new Promise<void>((r) => (done = r))
    sched.fire()
    await passed
  }
  await sched?.shutdown()
  pipeline.shutdown()
  return out
}

describe('the pipeline’s passes through the scheduler', () => {
  it.each([1 / 8, 1, 7])('a fleet in turns of %d evaluations: the verdicts and statuses of Pipeline.tick()', async (turn) => {
    const one = await fleetThroughPipeline(undefined)
    expect(one.verdicts.map((v) => v.service).sort()).toEqual(['svc0', 'svc1', 'svc2', 'svc3', 'svc4'])
    const sliced = await fleetThroughPipeline(turn)
    expect(sliced.turns).toBeGreaterThan(30 * (turn < 7 ? 20 : 4))
    expect(sliced.verdicts).toEqual(one.verdicts)
    expect(sliced.statuses).toEqual(one.statuses)
  }, 120_000)
})

/** A runner whose passes take `calls` engine calls each, recording every call's bound. */
class FakeRunner implements PassRunner {
  open = false
  begun = 0
  steps: number[] = []
  left = 0
  failNext = false
  constructor(private readonly calls: number) {}
  get passOpen(): boolean {
    return this.open
  }
  beginPass(): 'started' | 'busy' {
    if (this.open) return 'busy'
    this.open = true
    this.begun += 1
    this.left = this.calls
    return 'started'
  }
  stepPass(max: number): PassStep {
    this.steps.push(max)
    if (this.failNext) {
      this.failNext = false
      this.open = false
      throw new Error('engine failed')
    }
    this.left = max === Infinity ? 0 : this.left - 1
    if (this.left > 0) return { kind: 'more' }
    this.open = false
    return { kind: 'done', result: { verdicts: [], statuses: [] }, now: 0, watermark: 0, calls: this.calls }
  }
}

const turnOnce = () => new Promise<void>((r) => setImmediate(r))

function scheduler(runner: FakeRunner, turns = { maxWatchesPerTurn: 7, turnBudget: 1e9 }, mono?: () => number) {
  const passes: PassReport[] = []
  const failures: unknown[] = []
  const s = new EvaluationScheduler({
    runner,
    clock: { now: () => 1000 },
    intervalMs: 3_600_000,
    watermark: (n) => n - 5,
    turns,
    onPass: (_r, _n, p) => passes.push(p),
    onFailure: (e) => failures.push(e),
    ...(mono !== undefined ? { monotonic: mono } : {}),
  })
  return { s, passes, failures }
}

describe('EvaluationScheduler', () => {
  it('runs a pass as one bounded engine call per turn and never two passes at once', async () => {
    const runner = new FakeRunner(3)
    const { s, passes } = scheduler(runner)
    s.fire()
    // the first turn ran inside fire(): one call of 7 evaluations, the pass still open
    expect(runner.steps).toEqual([7])
    s.fire() // during the pass: owed (late)
    s.fire() // one already owed: skipped
    expect(runner.begun).toBe(1)
    for (let i = 0; i < 10 && passes.length < 2; i++) await turnOnce()
    expect(passes.map((p) => p.turns)).toEqual([3, 3])
    expect(runner.begun).toBe(2)
    expect(runner.steps.every((n) => n === 7)).toBe(true)
    expect(s.stats()).toMatchObject({ passes: 2, late: 1, skipped: 1, failed: 0, turns: 6 })
    await s.shutdown()
  })

  it('a turn with a larger bound makes several engine calls of at most SLICE_EVALUATIONS (16) evaluations', async () => {
    expect(SLICE_EVALUATIONS).toBe(16)
    const runner = new FakeRunner(14)
    const { s, passes } = scheduler(runner, { maxWatchesPerTurn: 200, turnBudget: 1e9 })
    s.fire()
    // 200 = 12 x 16 + 8: thirteen calls in the first turn
    expect(runner.steps).toEqual([...Array<number>(12).fill(16), 8])
    await turnOnce()
    expect(passes).toHaveLength(1)
    expect(passes[0]?.turns).toBe(2)
    await s.shutdown()
  })

  it('ends a turn once its wall-time budget is spent (measured between engine calls)', async () => {
    const runner = new FakeRunner(6)
    let t = 0
    const { s, passes } = scheduler(runner, { maxWatchesPerTurn: 10_000, turnBudget: 10 }, () => (t += 4))
    s.fire()
    // t0 = 4; after each call the clock reads 8, 12, 16: the third call ends the turn (12 >= 10)
    expect(runner.steps).toHaveLength(3)
    await turnOnce()
    expect(passes).toHaveLength(1)
    await s.shutdown()
  })

  it('counts a failed pass, reports it, and begins the next one at the next interval', async () => {
    const runner = new FakeRunner(2)
    runner.failNext = true
    const { s, passes, failures } = scheduler(runner)
    s.fire()
    expect(failures).toHaveLength(1)
    expect(s.busy).toBe(false)
    s.fire()
    await turnOnce()
    expect(passes).toHaveLength(1)
    expect(s.stats()).toMatchObject({ passes: 1, failed: 1 })
    await s.shutdown()
  })

  it('shutdown is idempotent and runs an open pass to its end, delivering it', async () => {
    const runner = new FakeRunner(50)
    const { s, passes } = scheduler(runner)
    s.fire()
    expect(passes).toHaveLength(0)
    await s.shutdown()
    expect(passes).toHaveLength(1)
    expect(runner.steps[runner.steps.length - 1]).toBe(Infinity)
    await s.shutdown()
    s.fire()
    await turnOnce()
    expect(runner.begun).toBe(1)
    expect(passes).toHaveLength(1)
  })
})
