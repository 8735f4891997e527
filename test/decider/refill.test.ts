/**
 * A new partition owner's refill ends when it has read what is on the partition, not when the next
 * record arrives: the partials of a watch are published before any decider is up (they are all
 * history: produced before the assignment), then one decider joins. It judges once the batches reach
 * the partitions' ends, with no record produced after its assignment, up to the watermark the
 * refilled partials reached; records published later are judged as usual. The ends are the ones the
 * broker reported at the assignment (a batch's lag may never reach 0 while ingest nodes keep
 * publishing: the second case hides it), or, when the broker does not give them, lag 0 (the third).
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { silentLogger } from '../../src/common/logger.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { DeciderService } from '../../src/decider/service.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import { IngestNode } from '../../src/partials/ingest.js'
import { PartialsPublisher } from '../../src/partials/publisher.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { feedNode } from '../support/node-feed.js'
import { waitFor } from '../support/wait.js'

type Variant = 'as-is' | 'no-lag' | 'no-ends'

/** the embedded bus, its batches without `lag` ('no-lag') or its admin without partition ends ('no-ends') */
function transportOf(bus: MemoryBus, variant: Variant): KafkaTransport {
  if (variant === 'as-is') return bus
  return {
    kind: 'embedded',
    producer: () => bus.producer(),
    consumer: (o) => {
      const c = bus.consumer(o)
      if (variant !== 'no-lag') return c
      return { start: (h) => c.start(({ lag: _lag, ...b }) => h(b)), stop: () => c.stop(), stats: () => c.stats() }
    },
    reader: (o) => bus.reader(o),
    admin: () => {
      const a = bus.admin()
      return variant === 'no-ends' ? { ...a, partitionRanges: () => Promise.reject(new Error('not answering')) } : a
    },
  }
}

describe('decider refill', () => {
  for (const [variant, what] of [
    ['as-is', 'judges once the assigned partitions are read to their end, before any new record'],
    ['no-lag', 'ends at the partition ends the broker gave at the assignment, with no batch fetched at lag 0'],
    ['no-ends', 'ends at lag 0 when the broker gives no partition ends'],
  ] as const) {
    it(what, () => refill(variant), 60_000)
  }
})

async function refill(variant: Variant): Promise<void> {
  const lines = await recordToLines(findScenario('canary-bad-10pct')!)
  const base = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })
  const rollback = base.verdicts.find((v) => v.kind === 'rollback')!
  // the first half of the watch is on the topic before the decider starts
  const half = rollback.deployedAt + (rollback.decidedAt - rollback.deployedAt) / 2
  const cut = lines.findIndex((l) => /"(timeUnixNano|endTimeUnixNano)":"(\d+)"/.test(l) && Number(/"(?:timeUnixNano|endTimeUnixNano)":"(\d+)"/.exec(l)![1]!.slice(0, -6)) > half)
  expect(cut).toBeGreaterThan(0)

  const cfg = parseConfig({ decider: { partitions: 3 }, runtime: { admin: { enabled: false } } })
  const bus = new MemoryBus({ defaultPartitions: 3 })
  const pub = new PartialsPublisher({ producer: bus.producer(), topic: cfg.kafka.topics.partials, partitions: 3, logger: silentLogger })
  await pub.start()
  pub.hello('n0')
  const node = new IngestNode({ node: 'n0', bucketMs: 5000, lateness: cfg.engine.lateness, emit: (b) => pub.publish(b) })
  feedNode(node, lines.slice(0, cut))
  await pub.flush(10_000)

  const ticks: { now: number; watermark: number }[] = []
  const svc = new DeciderService({ config: cfg, transport: transportOf(bus, variant), logger: silentLogger, state: false, onTick: (_r, now, watermark) => ticks.push({ now, watermark }) })
  await svc.start()
  try {
    await waitFor(() => svc.stats().partitions.length === 3, 'the assignment')
    // nothing is published after the assignment: only reading to the end can end the refill
    await waitFor(() => ticks.length > 0, 'a judgement after the refill')
    expect(svc.stats().refilling).toBe(false)
    expect(svc.stats().lastRefillMs).toBeDefined()
    expect(svc.stats().refilledRuns).toBeGreaterThan(0)
    expect(svc.stats().endsUnknown).toBe(variant === 'no-ends' ? 1 : 0)
    // at most one judgement per owned partition read to its end (the aligner hands their last runs
    // on in clock order), each at a watermark further on: nothing judged twice, nothing late
    expect(ticks.length).toBeLessThanOrEqual(3)
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]!.watermark).toBeGreaterThan(ticks[i - 1]!.watermark)
    expect(ticks[ticks.length - 1]!.watermark).toBe(svc.stats().decider!.judgedWatermarkMs)
    expect(svc.stats().decider?.latePartials).toBe(0)
    // later records are judged as they come
    const before = ticks.length
    feedNode(node, lines.slice(cut))
    node.flush()
    await pub.flush(10_000)
    await waitFor(() => ticks.length > before, 'the next judgement')
  } finally {
    await svc.shutdown()
    await pub.shutdown()
  }
}
