/**
 * The broker path on the embedded bus: N ingest nodes publish partials to the partials topic, K
 * deciders in one consumer group merge them on per-partition watermarks; verdicts must be those of
 * plain `replay` (kinds, deployments, one per deployment, decision times within one bucket).
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines, replayLinesOnTopic, type ReplaySummary } from '../../src/cli/commands/replay.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'

const quiet = { out: () => undefined, err: () => undefined }
const BUCKET_MS = 5000
function deployments(vs: readonly Verdict[]) {
  return [...vs]
    .sort((a, b) => a.decidedAt - b.decidedAt || (a.deploymentId < b.deploymentId ? -1 : 1))
    .map((v) => ({ kind: v.kind, dryRun: v.dryRun, version: v.version, baselineVersion: v.baselineVersion, deployedAt: v.deployedAt, deploymentId: v.deploymentId, id: v.id }))
}

describe.each(['canary-bad-10pct', 'low-traffic-60s-bad-deploy'])('partials topic (embedded bus): %s', (name) => {
  let lines: string[]
  let base: ReplaySummary
  beforeAll(async () => {
    lines = await recordToLines(findScenario(name)!)
    base = await replayLines(lines, parseConfig({}), quiet)
  }, 120_000)

  it.each([
    [1, 1],
    [3, 1],
    [3, 2],
  ])('N=%i nodes, K=%i deciders decide as one process', async (n, k) => {
    const cfg = parseConfig({ decider: { partitions: 4 } })
    const r = await replayLinesOnTopic(lines, cfg, quiet, { nodes: n, deciders: k, transport: new MemoryBus({ defaultPartitions: 4 }) })
    expect(deployments(r.verdicts).map(({ kind, deploymentId, id }) => ({ kind, deploymentId, id }))).toEqual(
      deployments(base.verdicts).map(({ kind, deploymentId, id }) => ({ kind, deploymentId, id })),
    )
    const byId = new Map(base.verdicts.map((v) => [v.id, v]))
    for (const v of r.verdicts) expect(Math.abs(v.decidedAt - byId.get(v.id)!.decidedAt), `${v.kind} decidedAt`).toBeLessThanOrEqual(BUCKET_MS)
    expect(r.topic.partials).toBeGreaterThan(0)
    expect(r.topic.latePartials).toBe(0)
  }, 120_000)
})

describe('pullback replay --nodes N --deciders K (command, embedded bus)', () => {
  it('prints the verdict lines plain replay prints, and the topic traffic on stderr', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { command } = await import('../../src/cli/commands/replay.js')
    const dir = mkdtempSync(join(tmpdir(), 'pullback-topic-'))
    try {
      const file = join(dir, 'rec.jsonl')
      writeFileSync(file, `${(await recordToLines(findScenario('low-traffic-60s-bad-deploy')!)).join('\n')}\n`)
      const run = async (argv: string[]) => {
        const out: string[] = []
        const err: string[] = []
        const code = await command.run(argv, { out: (s) => out.push(s), err: (s) => err.push(s) }, new AbortController().signal)
        return { code, out: out.sort().join(''), err: err.join('') }
      }
      const plain = await run([file])
      const topic = await run([file, '--nodes', '3', '--deciders', '2'])
      expect(topic.code).toBe(0)
      expect(plain.out).toMatch(/"kind":"rollback"/)
      expect(topic.out).toBe(plain.out)
      expect(topic.err).toMatch(/ nodes=3 deciders=2 partitions=12 partials=\d+ dataRecords=\d+ dataBytes=\d+ bytesPerPartial=[\d.]+ heartbeats=\d+ heartbeatBytes=\d+ latePartials=0 wall=\d+ms\n$/)
      await expect(run([file, '--deciders', '0'])).rejects.toThrow(/--deciders expects an integer/)
      await expect(run([file, '--kafka', 'nohost'])).rejects.toThrow(/--kafka expects HOST:PORT/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
