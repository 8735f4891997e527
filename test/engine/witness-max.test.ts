/**
 * A second witness counts the largest evidence its test has shown in the watch (readings.ts
 * witnessMax), not only its value at the leader's confirmation: Ville's inequality bounds the chance
 * that a test supermartingale EVER reaches 1/sqrt(alpha), so the largest value is as far from chance
 * as the current one. The case it was built on: `low-traffic-60s-bad-deploy` seed 2 (1.5 req/s on
 * two pods, 60 s metrics), whose error evidence against the baseline's counts was 58 a report before
 * its latency reached 1/alpha and 23 when it did; the witness then waited one more report.
 */
import { describe, expect, it } from 'vitest'
import { replayLines } from '../../src/cli/commands/replay.js'
import { loadConfig } from '../../src/config/load.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'

const sink = { out: () => undefined, err: () => undefined }

describe('a corroborating witness at its largest evidence in the watch', () => {
  it('low-traffic-60s-bad-deploy seed 2: rolled back on the report where latency reached 1/alpha', async () => {
    const s = findScenario('low-traffic-60s-bad-deploy')
    if (s === undefined) throw new Error('no scenario low-traffic-60s-bad-deploy')
    const r = await replayLines(await recordToLines(s, { seed: 2 }), loadConfig(undefined), sink, { actuator: false }, 'witness')
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    const v = r.verdicts[0]
    if (v === undefined) throw new Error('no verdict')
    const er = v.signals.find((x) => x.signal === 'error_rate')
    const lat = v.signals.find((x) => x.signal === 'latency')
    expect(lat?.state).toBe('breach')
    expect(lat?.evidence as number).toBeGreaterThanOrEqual(1000)
    // the error rate is the witness, beyond its threshold now, at the evidence it showed a report before
    expect(er?.state).toBe('breach')
    expect(er?.value as number).toBeGreaterThanOrEqual(er?.threshold as number)
    expect(er?.evidence as number).toBeGreaterThanOrEqual(Math.sqrt(1000))
    expect(er?.evidence as number).toBeLessThan(1000)
    expect(v.reason).toContain('(its largest in this watch)')
    // the current value alone decided one report later, at +320 s
    expect((v.decidedAt - v.deployedAt) / 1000).toBeLessThan(300)
  }, 60_000)
})
