/**
 * Incremental evaluation (EngineInput.evaluation = 'incremental') must decide exactly as full
 * evaluation: every scenario of the library, recorded once, replayed both ways, gives the same
 * verdict list (every field, decision times included). Incremental evaluation only skips the readings
 * of evaluations that cannot decide; this is the check that it never skips one that could.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { SCENARIOS, recordToLines } from '../../src/sim/index.js'

const quiet = { out: () => undefined, err: () => undefined }

/**
 * One scenario of each kind of decision path (the whole library, 32 scenarios, takes ~4 min on the
 * 2-core dev machine; PULLBACK_TEST_ALL_SCENARIOS=1 runs it all): rollback then recovered, resource,
 * probe, incident (pre-existing and mild pre-existing), live canary baseline, 60 s metrics, a
 * single-cause fault, a flapping signal that must not decide, a benign deployment.
 */
const SUBSET = [
  'error-spike',
  'memory-leak-leads-errors',
  'probe-failure',
  'pre-existing-breach',
  'mild-pre-existing-breach',
  'canary-bad-10pct',
  'metrics-60s-bad-deploy',
  'fast-failures-no-latency',
  'flapping-single-signal',
  'benign-deploy',
]
const PICKED = process.env.PULLBACK_TEST_ALL_SCENARIOS === '1' ? SCENARIOS : SCENARIOS.filter((s) => SUBSET.includes(s.name))

describe('incremental evaluation decides as full evaluation', () => {
  it('covers the subset', () => expect(PICKED.length).toBeGreaterThanOrEqual(SUBSET.length))

  it.each(PICKED.map((s) => [s.name, s] as const))('%s', async (_name, scenario) => {
    const lines = await recordToLines(scenario)
    const cfg = parseConfig({})
    const full = await replayLines(lines, cfg, quiet, { evaluation: 'full' })
    const inc = await replayLines(lines, cfg, quiet, { evaluation: 'incremental' })
    expect(inc.verdicts).toEqual(full.verdicts)
  }, 120_000)
})
