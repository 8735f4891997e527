/**
 * `pullback replay FILE --nodes N` over the scenario library: the recording split by pod over N
 * simulated DaemonSet nodes, each pre-aggregating into partials that go through the wire encoding to
 * one decider, must give the verdicts of plain `replay`: same kinds, deployments (version, baseline,
 * deployedAt, id) and count; decision times within one bucket (5 s).
 *
 * Runtime: each scenario is recorded once (the recording dominates, ~3 min for the library on the
 * 2-core dev machine); N = 1, 3 and 8 run over the whole library. No partial may arrive late (the
 * nodes advance together on telemetry time; a decider that judged a node silent against another
 * node of the same instant would tick early and count the rest as late).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { command, replayLines, replayLinesOnNodes, type ReplaySummary } from '../../src/cli/commands/replay.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { SCENARIOS, findScenario, recordToLines } from '../../src/sim/index.js'

const quiet = { out: () => undefined, err: () => undefined }
const BUCKET_MS = 5000
function deployments(vs: readonly Verdict[]) {
  return vs.map((v) => ({ kind: v.kind, dryRun: v.dryRun, version: v.version, baselineVersion: v.baselineVersion, deployedAt: v.deployedAt, deploymentId: v.deploymentId }))
}

describe.each(SCENARIOS.map((s) => s.name))('replay --nodes: %s', (name) => {
  let lines: string[]
  let base: ReplaySummary
  beforeAll(async () => {
    lines = await recordToLines(findScenario(name)!)
    base = await replayLines(lines, parseConfig({}), quiet)
  }, 120_000)

  it.each([1, 3, 8])('N=%i decides as one process', async (n) => {
    const r = await replayLinesOnNodes(lines, parseConfig({}), quiet, { nodes: n })
    expect(deployments(r.verdicts)).toEqual(deployments(base.verdicts))
    r.verdicts.forEach((v, i) => expect(Math.abs(v.decidedAt - (base.verdicts[i] as Verdict).decidedAt), `${v.kind} decidedAt`).toBeLessThanOrEqual(BUCKET_MS))
    expect(r.nodes.partials).toBeGreaterThan(0)
    expect(r.nodes.overflowObservations).toBe(0)
    // nodes advance together on telemetry time: nothing reaches the decider after its bucket was judged
    expect(r.nodes.latePartials).toBe(0)
  }, 120_000)
})

describe('pullback replay --nodes (command)', () => {
  let dir: string
  let file: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pullback-nodes-'))
    file = join(dir, 'rec.jsonl')
    writeFileSync(file, `${(await recordToLines(findScenario('low-traffic-60s-bad-deploy')!)).join('\n')}\n`)
  }, 120_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  async function run(argv: string[]) {
    const out: string[] = []
    const err: string[] = []
    const code = await command.run(argv, { out: (s) => out.push(s), err: (s) => err.push(s) }, new AbortController().signal)
    return { code, out: out.join(''), err: err.join('') }
  }

  it('prints the verdict lines plain replay prints, and the partial traffic on stderr', async () => {
    const plain = await run([file])
    const nodes = await run([file, '--nodes', '3'])
    expect(plain.code).toBe(0)
    expect(nodes.code).toBe(0)
    expect(plain.out).toMatch(/"kind":"rollback"/)
    expect(nodes.out).toBe(plain.out)
    expect(nodes.err).toMatch(/ nodes=3 batches=\d+ partials=\d+ bytes=\d+ bytesPerPartial=[\d.]+ reopened=\d+ latePartials=\d+ overflow=0\n$/)
    expect(plain.err).not.toMatch(/nodes=/)
  })

  it('refuses a --nodes that is not a positive integer', async () => {
    for (const bad of ['0', '-1', '2.5', 'x', '2000']) await expect(run([file, `--nodes=${bad}`])).rejects.toThrow(/--nodes expects an integer/)
  })
})
