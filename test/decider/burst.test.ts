/**
 * A burst of partials (a poll of minutes of them, a lagging consumer, the test publishing a whole
 * recording at once) reaches a decider whose ticks are bounded passes. What arrives while a pass
 * runs is held and recorded after it, so the engine judges every bucket as replay does, on the
 * same fine windows; recorded at once, the store's newest time would run minutes past the pass and
 * the deployment would be judged in one jump (on the store's coarse buckets, or not at all: the
 * CI failure of decider-process.test.ts under load). Deterministic: the whole recording is handed
 * over in one synchronous loop, one node batch at a time, as DeciderService hands a poll to the aligner.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { Decider, MAX_HELD_BATCHES } from '../../src/decider/decider.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { IngestNode } from '../../src/partials/ingest.js'
import type { PartialBatch } from '../../src/partials/types.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { feedNode } from '../support/node-feed.js'

const quiet = { out: () => undefined, err: () => undefined }

function nodeBatches(lines: string[], lateness: number): PartialBatch[] {
  const out: PartialBatch[] = []
  const node = new IngestNode({ node: 'n0', bucketMs: 5000, lateness, emit: (b) => out.push(b) })
  feedNode(node, lines)
  node.flush()
  return out
}

const settled = async (d: Decider) => {
  while (d.evaluating) await new Promise((r) => setImmediate(r))
}

describe('a burst of partials is judged bucket by bucket', () => {
  it.each(['low-traffic-60s-bad-deploy', 'error-spike', 'pre-existing-breach', 'benign-deploy'])('%s: the decisions of replay', async (name) => {
    const lines = await recordToLines(findScenario(name)!)
    const cfg = parseConfig({})
    const base = await replayLines(lines, cfg, quiet, { actuator: false })
    const batches = nodeBatches(lines, cfg.engine.lateness)
    const verdicts: Verdict[] = []
    // every pass takes at least two event-loop turns, as on a loaded loop: its first step does no
    // work and, with no time budget, ends the turn
    const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals })
    const begin = pipeline.beginPass.bind(pipeline)
    const step = pipeline.stepPass.bind(pipeline)
    let fresh = false
    pipeline.beginPass = (now, watermark) => ((fresh = true), begin(now, watermark))
    pipeline.stepPass = (n) => (fresh ? ((fresh = false), { kind: 'more' }) : step(n))
    const d = new Decider({
      pipeline,
      turns: { maxWatchesPerTurn: 2_000, turnBudget: 0 },
      onTick: (res) => verdicts.push(...res.verdicts),
    })
    d.assign([0])
    let maxHeld = 0
    for (const b of batches) {
      d.receiveAll([b], 0)
      maxHeld = Math.max(maxHeld, d.stats().held)
    }
    // the burst was held, not recorded ahead of the passes, and within the bound
    expect(maxHeld).toBeGreaterThan(batches.length / 2)
    expect(batches.length).toBeLessThan(MAX_HELD_BATCHES)
    await settled(d)
    d.shutdown()
    expect(d.stats()).toMatchObject({ held: 0, heldOverflow: 0, failedPasses: 0 })
    const ids = (vs: Verdict[]) => vs.filter((v) => v.kind === 'rollback' || v.kind === 'incident').map((v) => `${v.kind} ${v.id}`)
    expect(ids(verdicts)).toEqual(ids(base.verdicts))
    if (name !== 'benign-deploy') expect(ids(verdicts).length).toBe(1)
  }, 120_000)
})
