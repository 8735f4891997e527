/**
 * The decider's ticks as bounded passes (DeciderOptions.turns, runtime.evaluation as the sidecar's
 * EvaluationScheduler) must decide exactly as its ticks of one engine call: scenarios of the library
 * recorded once, pre-aggregated by one ingest node into partials, received by a decider ticking in
 * one call and by deciders running each tick in turns of 1/8 (one item per engine call), 1 and 7
 * evaluations, each round awaited until its pass is done: the same ticks (watermarks), the same
 * verdicts (every field, decision times included) and the same statuses. Rounds not awaited (the
 * next batches arriving between a pass's turns, passes of one item per turn: far slower than the
 * data) are held by the decider until the pass ends and recorded after it (src/decider/README.md):
 * the same ticks and verdicts again, nothing coalesced, nothing failed.
 */
import { setImmediate as turn } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import type { PullbackConfig } from '../../src/config/schema.js'
import { ReplayClock } from '../../src/cli/commands/replay.js'
import { Decider } from '../../src/decider/decider.js'
import type { WatchStatus } from '../../src/engine/evaluate.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { IngestNode } from '../../src/partials/ingest.js'
import type { PartialBatch } from '../../src/partials/types.js'
import { decodeOtlpJsonLine } from '../../src/receivers/otlp/json.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { SCENARIOS, recordToLines } from '../../src/sim/index.js'

const SUBSET = ['error-spike', 'probe-failure', 'pre-existing-breach', 'metrics-60s-bad-deploy', 'benign-deploy']
const PICKED = SCENARIOS.filter((s) => SUBSET.includes(s.name))

function actuatorEvent(v: Verdict): DeploymentEvent | undefined {
  if (v.kind !== 'rollback' || v.dryRun || v.baselineVersion === '') return undefined
  return { namespace: v.namespace, service: v.service, version: v.baselineVersion, time: v.decidedAt, kind: 'rollback', previousVersion: v.version, source: 'test', decisionId: v.id }
}

interface Decided {
  verdicts: Verdict[]
  statuses: WatchStatus[]
  watermarks: number[]
  passes: number
  turns: number
  late: number
  failed: number
  /** the most batches held at once */
  held: number
}

/** `turns`: undefined = one engine call per tick; else passes of that many evaluations per turn. `await`: each round's pass awaited. */
async function decide(lines: readonly string[], cfg: PullbackConfig, turns: number | undefined, awaitRounds = true): Promise<Decided> {
  const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals })
  const r: Decided = { verdicts: [], statuses: [], watermarks: [], passes: 0, turns: 0, late: 0, failed: 0, held: 0 }
  const decider = new Decider({
    pipeline,
    // only the work bound: a loaded test machine must not change where turns end
    ...(turns !== undefined ? { turns: { maxWatchesPerTurn: turns, turnBudget: 1e9 } } : {}),
    onTick: (res, _now, watermark) => {
      r.watermarks.push(watermark)
      r.statuses.push(...res.statuses)
      for (const v of res.verdicts) {
        r.verdicts.push(v)
        const ev = actuatorEvent(v)
        if (ev !== undefined) pipeline.deployment(ev)
      }
    },
  })
  let round: PartialBatch[] = []
  const node = new IngestNode({ node: 'node-0', bucketMs: pipeline.store.bucketMs, lateness: cfg.engine.lateness, emit: (b) => round.push(b) })
  const clock = new ReplayClock(pipeline.store.config.maxFutureSkew)
  const deliver = async () => {
    const b = round
    round = []
    if (b.length > 0) decider.receiveAll(b)
    r.held = Math.max(r.held, decider.stats().held)
    if (awaitRounds) while (decider.evaluating) await turn()
    else await turn() // one event-loop turn per round: the next batches arrive between a pass's turns
  }
  try {
    for (const line of lines) {
      if (line.trim() === '') continue
      const d = decodeOtlpJsonLine(line)
      let maxMs = -Infinity
      if (d.type === 'traces') {
        for (const rs of d.request.resourceSpans) for (const s of rs.spans) maxMs = Math.max(maxMs, s.endTimeMs)
        node.consumeTraces(d.request)
      } else if (d.type === 'metrics') {
        for (const rm of d.request.resourceMetrics) for (const m of rm.metrics) for (const pt of m.points) maxMs = Math.max(maxMs, pt.timeMs)
        node.consumeMetrics(d.request)
      }
      clock.see(maxMs)
      if (Number.isFinite(clock.now)) node.advance(clock.now)
      await deliver()
    }
    node.flush()
    await deliver()
    decider.finish()
    expect(decider.evaluating).toBe(false)
    const ps = decider.passStats()
    r.passes = ps?.passes ?? 0
    r.turns = ps?.turns ?? 0
    r.late = ps?.late ?? 0
    r.failed = decider.stats().failedPasses
    decider.shutdown()
    decider.shutdown() // idempotent
    return r
  } finally {
    pipeline.shutdown()
  }
}

describe('the decider\'s ticks as bounded passes decide as ticks of one engine call', () => {
  it('covers the subset', () => expect(PICKED.length).toBe(SUBSET.length))

  it.each(PICKED.map((s) => [s.name, s] as const))('%s', async (_name, scenario) => {
    const lines = await recordToLines(scenario)
    const cfg = parseConfig({})
    const one = await decide(lines, cfg, undefined)
    expect(one.statuses.length).toBeGreaterThan(0)
    expect(one.passes).toBe(0)
    for (const t of [1 / 8, 1, 7]) {
      const sliced = await decide(lines, cfg, t)
      expect(sliced.failed).toBe(0)
      expect(sliced.watermarks).toEqual(one.watermarks)
      expect(sliced.verdicts).toEqual(one.verdicts)
      expect(sliced.statuses).toEqual(one.statuses)
      // every tick but finish()'s two was a pass; below 7 evaluations per turn they spread over several turns
      expect(sliced.passes).toBe(one.watermarks.length - 2)
      if (t < 7) expect(sliced.turns).toBeGreaterThan(sliced.passes)
    }
    // batches arriving while a pass runs: held until it ends, then recorded; nothing coalesces
    const busy = await decide(lines, cfg, 1 / 8, false)
    expect(busy.failed).toBe(0)
    expect(busy.held).toBeGreaterThan(0)
    expect(busy.late).toBe(0)
    expect(busy.watermarks).toEqual(one.watermarks)
    expect(busy.verdicts).toEqual(one.verdicts)
  }, 180_000)
})
