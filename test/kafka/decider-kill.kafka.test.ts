/**
 * Decider failover with kill -9, on the real broker: 3 `pullback decider` child processes in one
 * group, 2 ingest nodes in this process. Mid-watch of a bad deployment the child owning the
 * service's partition is killed with SIGKILL (no revoke, no state flush, no leave: the group notices
 * by session timeout). The survivors take its partitions over (restore + refill), and exactly one
 * rollback decision id reaches the decisions topic: plain replay's.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines, type ReplaySummary } from '../../src/cli/commands/replay.js'
import { silentLogger } from '../../src/common/logger.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import type { ConsumedMessage } from '../../src/kafka/types.js'
import { IngestNode } from '../../src/partials/ingest.js'
import { PartialsPublisher, servicePartition } from '../../src/partials/publisher.js'
import { decodeOtlpJsonLine } from '../../src/receivers/otlp/json.js'
import { splitMetrics, splitTraces } from '../../src/decider/daemonset.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { bundleChild, type BundledChild } from '../support/bundle-child.js'
import { waitFor } from '../support/wait.js'


interface Child {
  proc: ChildProcess
  out: string[]
  last(prefix: string): string | undefined
}

describeKafka('decider kill -9 (real broker, child processes)', () => {
  let transport: ConfluentTransport
  let lines: string[]
  let base: ReplaySummary
  let bundle: BundledChild | undefined
  const children: Child[] = []
  const prefix = uniqueName('it-kill')

  beforeAll(async () => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    lines = await recordToLines(findScenario('canary-bad-10pct')!)
    base = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })
    bundle = await bundleChild('decider-child')
  }, 120_000)

  afterAll(async () => {
    for (const c of children) c.proc.kill('SIGKILL')
    bundle?.remove()
    const admin = transport.admin()
    await admin.deleteTopics([`${prefix}.partials`, `${prefix}.decider.state`, `${prefix}.decisions`, `${prefix}.incidents`]).catch(() => undefined)
    await admin.disconnect()
  })

  it('the owner killed mid-watch: one rollback id on the decisions topic', async () => {
    const rollback = base.verdicts.find((v) => v.kind === 'rollback')!
    const raw = {
      kafka: { brokers: kafkaBrokers().split(','), groupPrefix: prefix, topics: { partials: `${prefix}.partials`, decisions: `${prefix}.decisions`, incidents: `${prefix}.incidents` } },
      decider: { partitions: 4 },
      publish: { wal: { enabled: false } },
      receivers: { deployments: { enabled: false } },
      runtime: { admin: { enabled: false }, state: { minWriteInterval: '1s', restoreTimeout: '60s' } },
    }
    const cfg = parseConfig(raw)
    const start = (): Child => {
      const proc = spawn(process.execPath, [bundle!.file], { env: { ...process.env, PULLBACK_CHILD: JSON.stringify(raw) }, stdio: ['ignore', 'pipe', 'inherit'] })
      const out: string[] = []
      proc.stdout!.on('data', (c: Buffer) => out.push(...c.toString().split('\n').filter(Boolean)))
      return { proc, out, last: (p) => [...out].reverse().find((l) => l.startsWith(p)) }
    }
    for (let i = 0; i < 3; i++) children.push(start())
    await waitFor(() => children.every((c) => c.out.includes('ready')), 'the children to start')
    const owned = (c: Child) => (c.last('partitions ')?.slice('partitions '.length) ?? '').split(',').filter(Boolean).map(Number)
    const alive = () => children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null)
    await waitFor(() => alive().reduce((a, c) => a + owned(c).length, 0) === 4 && alive().every((c) => owned(c).length > 0), 'the group to settle', 90_000)

    const pubs = [0, 1].map(() => new PartialsPublisher({ producer: transport.producer(), topic: cfg.kafka.topics.partials, partitions: 4, logger: silentLogger }))
    const nodes = pubs.map((p, i) => new IngestNode({ node: `node-${i}`, bucketMs: 5000, lateness: cfg.engine.lateness, emit: (b) => p.publish(b) }))
    for (const p of pubs) await p.start()
    pubs.forEach((p, i) => p.hello(`node-${i}`))
    const partition = servicePartition(rollback.namespace, rollback.service, 4)
    const killAt = rollback.deployedAt + (rollback.decidedAt - rollback.deployedAt) / 2
    let victim: Child | undefined
    let now = -Infinity
    let sent = -Infinity
    try {
      for (const line of lines) {
        const d = decodeOtlpJsonLine(line)
        if (d.type === 'traces') {
          splitTraces(d.request, 2).forEach((r, i) => r !== undefined && nodes[i]!.consumeTraces(r))
          for (const rs of d.request.resourceSpans) for (const s of rs.spans) now = Math.max(now, s.endTimeMs)
        } else if (d.type === 'metrics') {
          splitMetrics(d.request, 2).forEach((r, i) => r !== undefined && nodes[i]!.consumeMetrics(r))
          for (const rm of d.request.resourceMetrics) for (const m of rm.metrics) for (const p of m.points) now = Math.max(now, p.timeMs)
        }
        if (!Number.isFinite(now)) continue
        for (const n of nodes) n.advance(now)
        if (Math.floor(now / 5000) > sent) {
          sent = Math.floor(now / 5000)
          for (const p of pubs) await p.flush(30_000)
        }
        if (victim === undefined && now >= killAt) {
          victim = alive().find((c) => owned(c).includes(partition))!
          expect(victim).toBeDefined()
          // the owner is watching the deployment
          await waitFor(() => Number(victim!.last('watched ')?.split(' ')[1] ?? 0) > 0, 'the owner to watch the deployment')
          expect(victim.out.some((l) => l.startsWith('published '))).toBe(false)
          victim.proc.kill('SIGKILL')
          const before = new Map(alive().filter((c) => c !== victim).map((c) => [c, c.out.length]))
          // the survivors were reassigned (after the session timeout) and own every partition
          await waitFor(
            () => alive().every((c) => c.out.slice(before.get(c) ?? 0).some((l) => l.startsWith('partitions '))) && alive().reduce((a, c) => a + owned(c).length, 0) === 4,
            'the survivors to take the partitions over',
            90_000,
          )
        }
      }
      for (const n of nodes) n.flush()
      for (const p of pubs) await p.flush(30_000)
    } finally {
      for (const p of pubs) await p.shutdown()
    }
    expect(victim).toBeDefined()
    const got: ConsumedMessage[] = []
    const reader = transport.consumer({ groupId: uniqueName('it-kill-read'), topics: [cfg.kafka.topics.decisions], fromBeginning: true, onError: () => undefined })
    await reader.start(async (b) => void got.push(...b.messages))
    const rollbacks = () => got.map((m) => JSON.parse((m.value as Buffer).toString()) as { id: string; kind: string }).filter((e) => e.kind === 'rollback')
    try {
      await waitFor(() => rollbacks().length > 0, 'the rollback on the decisions topic', 60_000)
      // duplicates would follow within moments
      await new Promise((r) => setTimeout(r, 3000))
    } finally {
      await reader.stop()
    }
    expect(new Set(rollbacks().map((e) => e.id))).toEqual(new Set([rollback.id]))
  }, 300_000)
})
