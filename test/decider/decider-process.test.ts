/**
 * `pullback decider` assembled (DeciderProcess) on the embedded bus: ingest nodes publish a bad
 * deployment's partials; the process's decider restores nothing, decides, and its signed rollback
 * reaches the decisions topic under plain replay's id. Plus the command's usage.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { silentLogger } from '../../src/common/logger.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { main } from '../../src/cli/main.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { ConsumedMessage } from '../../src/kafka/types.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { IngestNode } from '../../src/partials/ingest.js'
import { PartialsPublisher } from '../../src/partials/publisher.js'
import { DeciderProcess } from '../../src/runtime/decider-process.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { feedNode } from '../support/node-feed.js'
import { waitFor } from '../support/wait.js'

describe('pullback decider', () => {
  it('decides from the partials topic and publishes the signed rollback', async () => {
    const lines = await recordToLines(findScenario('low-traffic-60s-bad-deploy')!)
    const base = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })
    const rollback = base.verdicts.find((v) => v.kind === 'rollback')!
    const cfg = parseConfig({ decider: { partitions: 3 }, runtime: { admin: { enabled: false } } })
    const bus = new MemoryBus({ defaultPartitions: 3 })
    const proc = new DeciderProcess({ config: cfg, transport: bus, logger: silentLogger, headless: true, clock: null, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
    await proc.start()
    const pub = new PartialsPublisher({ producer: bus.producer(), topic: cfg.kafka.topics.partials, partitions: 3, logger: silentLogger })
    await pub.start()
    pub.hello('n0')
    const node = new IngestNode({ node: 'n0', bucketMs: 5000, lateness: cfg.engine.lateness, emit: (b) => pub.publish(b) })
    const decisions: ConsumedMessage[] = []
    const reader = bus.consumer({ groupId: 'reader', topics: [cfg.kafka.topics.decisions] })
    await reader.start(async (b) => void decisions.push(...b.messages))
    try {
      await waitFor(() => proc.service.stats().partitions.length === 3, 'the assignment')
      feedNode(node, lines)
      node.flush()
      await pub.flush(10_000)
      await waitFor(() => decisions.some((m) => (JSON.parse(m.value!.toString()) as { kind: string }).kind === 'rollback'), 'the rollback on the decisions topic')
      const env = decisions.map((m) => JSON.parse(m.value!.toString()) as { id: string; kind: string; keyId: string })
      expect(env.filter((e) => e.kind === 'rollback').map((e) => e.id)).toEqual([rollback.id])
      expect(proc.service.stats().decider?.latePartials).toBe(0)
      // what the dashboard shows in the distributed layout comes from the decider: the watch and its verdict
      const snap = proc.tracker.snapshot()
      expect(snap.decisions.find((d) => d.kind === 'rollback' && d.outcome === 'decided')?.count).toBe(1)
      expect(snap.services.some((w) => w.service === rollback.service && w.version === rollback.version)).toBe(true)
      expect(proc.tracker.status().lastVerdicts.map((v) => v.id)).toContain(rollback.id)
    } finally {
      await reader.stop()
      await pub.shutdown()
      await proc.shutdown()
    }
  }, 120_000)

  it('usage: --help prints it, an argument is a usage error', async () => {
    const out: string[] = []
    const err: string[] = []
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) }
    expect(await main(['decider', '--help'], io)).toBe(0)
    expect(out.join('')).toMatch(/usage: pullback decider \[--config FILE\]/)
    expect(await main(['decider', 'extra'], io)).toBe(2)
    expect(err.join('')).toMatch(/unexpected argument extra/)
    expect(await main(['--help'], io)).toBe(0)
    expect(out.join('')).toMatch(/\n {2}decider +decide from every ingest node/)
  })
})
