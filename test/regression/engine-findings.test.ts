/**
 * Regressions found by the scenario library (bench/quality.ts over seeds 1-5), replayed through the
 * real pipeline from simulator recordings.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'

async function replay(name: string, seed: number) {
  const sc = findScenario(name)
  if (!sc) throw new Error(name)
  const lines = await recordToLines(sc, { seed })
  const s = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined })
  return s.verdicts
}

describe('engine regressions', () => {
  it('cold-start-spike, seed 3: the last draining old pod is no live baseline (was a false critical latency rollback)', async () => {
    expect((await replay('cold-start-spike', 3)).map((v) => v.kind)).toEqual([])
  })

  it('a restored version whose data vanishes before the end of verification is not-recovered, not recovered', async () => {
    // error-spike has no scripted rollback: the old version's pods are gone after the rollout, so the
    // replay's actuator stand-in restores a version that serves nothing by the end of the window.
    const vs = await replay('error-spike', 1)
    expect(vs.map((v) => v.kind)).toEqual(['rollback', 'not-recovered'])
    expect(vs[1]?.reason).toMatch(/insufficient data/)
  })

  it('a rollback that really restores the old version is recovered', async () => {
    expect((await replay('error-spike-rolled-back', 1)).map((v) => v.kind)).toEqual(['rollback', 'recovered'])
  })
})
