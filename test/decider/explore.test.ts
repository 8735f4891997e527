import { it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines, replayLinesOnNodes } from '../../src/cli/commands/replay.js'
import { SCENARIOS, recordToLines } from '../../src/sim/index.js'

const quiet = { out: () => undefined, err: () => undefined }

it('explore', async () => {
  const only = process.env.SCEN?.split(',')
  for (const s of SCENARIOS) {
    if (only !== undefined && !only.includes(s.name)) continue
    const t0 = performance.now()
    const lines = await recordToLines(s)
    const t1 = performance.now()
    const base = await replayLines(lines, parseConfig({}), quiet)
    const t2 = performance.now()
    const row = [s.name, `rec=${(t1 - t0).toFixed(0)} rep=${(t2 - t1).toFixed(0)}`, base.verdicts.map((v) => `${v.kind}:${v.version}<-${v.baselineVersion}@${v.decidedAt - v.deployedAt}`).join(' ')]
    for (const n of (process.env.NODES ?? '1,3,8').split(',').map(Number)) {
      const t3 = performance.now()
      const r = await replayLinesOnNodes(lines, parseConfig({}), quiet, { nodes: n, flushOpen: process.env.OPEN !== '0' })
      const same = r.verdicts.length === base.verdicts.length && r.verdicts.every((v, i) => v.kind === base.verdicts[i]!.kind && v.version === base.verdicts[i]!.version && v.deploymentId === base.verdicts[i]!.deploymentId)
      row.push(`N=${n} ${(performance.now() - t3).toFixed(0)}ms ${same ? 'SAME' : 'DIFF'} ${r.verdicts.map((v, i) => `${v.kind}:${v.version}@${v.decidedAt - v.deployedAt}(${v.decidedAt - (base.verdicts[i]?.decidedAt ?? NaN)})`).join(' ')} bpp=${r.nodes.bytesPerPartial.toFixed(0)} parts=${r.nodes.partials} late=${r.nodes.latePartials} reop=${r.nodes.reopened}`)
    }
    console.log(row.join(' | '))
  }
}, 1_200_000)
