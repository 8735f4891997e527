/**
 * The broker path on the real broker: 3 ingest nodes publish partials to a partials topic, deciders
 * in one consumer group (through librdkafka's rebalance callback) merge them on per-partition
 * watermarks. Verdicts must be those of plain `replay`: same kinds, deployments and ids, one per
 * deployment, decision times within one bucket. Small scenarios keep it short.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines, replayLinesOnTopic, type ReplaySummary } from '../../src/cli/commands/replay.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import type { Verdict } from '../../src/engine/verdict.js'

const quiet = { out: () => undefined, err: () => undefined }
const BUCKET_MS = 5000
const ids = (vs: readonly Verdict[]) => vs.map((v) => `${v.kind}:${v.id}:${v.deploymentId}`).sort()

describeKafka('partials over the real broker', () => {
  let transport: ConfluentTransport
  let lines: string[]
  let base: ReplaySummary
  const topics: string[] = []

  beforeAll(async () => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    lines = await recordToLines(findScenario('canary-bad-10pct')!)
    base = await replayLines(lines, parseConfig({}), quiet)
    expect(base.verdicts.map((v) => v.kind)).toContain('rollback')
  }, 120_000)

  afterAll(async () => {
    const admin = transport.admin()
    await admin.deleteTopics(topics).catch(() => undefined)
    await admin.disconnect()
  })

  it.each([
    [3, 1],
    [3, 2],
  ])('N=%i ingest nodes, K=%i deciders decide as one process', async (n, k) => {
    const prefix = uniqueName('it-partials')
    const cfg = parseConfig({ kafka: { groupPrefix: prefix, topics: { partials: `${prefix}.partials` } }, decider: { partitions: 4 } })
    topics.push(`${prefix}.partials`)
    const r = await replayLinesOnTopic(lines, cfg, quiet, { nodes: n, deciders: k, transport })
    expect(ids(r.verdicts)).toEqual(ids(base.verdicts))
    const byId = new Map(base.verdicts.map((v) => [v.id, v]))
    for (const v of r.verdicts) expect(Math.abs(v.decidedAt - byId.get(v.id)!.decidedAt), `${v.kind} decidedAt`).toBeLessThanOrEqual(BUCKET_MS)
    expect(r.topic.latePartials).toBe(0)
    expect(r.topic.partials).toBeGreaterThan(0)
  }, 180_000)
})
