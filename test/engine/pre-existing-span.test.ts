/**
 * The freeze's pre-existing scan (freeze.ts) looks at the old version's last stretches
 * before the deployment; each is the old series' shortest confirmation span (two of its reports, at
 * least the contract's window), the duration a breach after the deployment must hold. Scanned in
 * 15 s windows, a 45 s exporter's last third of a report was one look at a tail's chance swing, and
 * a bad deploy after it became an incident instead of a rollback.
 */
import { describe, expect, it } from 'vitest'
import { replayLines } from '../../src/cli/commands/replay.js'
import { loadConfig } from '../../src/config/load.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { benignDeployment, paramsOf } from '../../bench/false-rollbacks.js'

const sink = { out: () => undefined, err: () => undefined }

describe('a pre-existing breach holds for two reports of the old series', () => {
  // drawn bad deploys #394 (72 req/s, 6 pods) and #776 (31 req/s, 2 pods) of `false-rollbacks.js
  // --intervals 20,30,45 --histograms exponential --errors 0.05 --slower 2`: 45 s metrics whose old
  // version's last 15 s before the deployment held more slow requests than the rest of its baseline
  for (const run of [394, 776]) {
    it(`drawn #${run} on 45 s exponential metrics: rolled back, not an incident`, async () => {
      const p = { ...paramsOf(1, run, [1, 500], [20, 30, 45]), histograms: 'exponential' as const, slower: 2, errors: 0.05 }
      expect(p.intervalS).toBe(45)
      expect(p.telemetry).toBe('metrics')
      const r = await replayLines(benignDeployment(p, 1), loadConfig(undefined), sink, { actuator: false }, 'drawn')
      expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    }, 60_000)
  }

  // the library's pre-existing breaches (spans by default) exported as metrics only, per pod
  for (const name of ['pre-existing-breach', 'mild-pre-existing-breach']) {
    for (const metricExportS of [15, 45, 60]) {
      it(`${name} on ${metricExportS} s metrics: still an incident`, async () => {
        const s = findScenario(name)
        if (s === undefined) throw new Error(`no scenario ${name}`)
        const v = { ...s, build: (seed: number) => ({ ...s.build(seed), spans: false, histograms: true, metricExportS, metricSchedule: 'per-pod' as const }) }
        const r = await replayLines(await recordToLines(v), loadConfig(undefined), sink, { actuator: false }, name)
        expect(r.verdicts.map((x) => x.kind)).toEqual(['incident'])
      }, 120_000)
    }
  }
})
