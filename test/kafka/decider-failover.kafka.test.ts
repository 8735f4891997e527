/**
 * Decider failover on the real broker: 3 deciders in one group, 2 ingest nodes; in the middle of the
 * bad deployment's watch, the decider owning the service's partition is stopped without writing
 * anything (`abandon`: no state flush, no revoke work; its partitions move on). The new owner
 * restores the persisted watch, refills its windows from the partials on the topic and decides.
 * Exactly one rollback decision id reaches the decisions topic (the actuator deduplicates by id,
 * src/actuator/actuator.ts `duplicates`), and it is the id plain replay gives.
 */
import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines, replayLinesOnTopic, type ReplaySummary } from '../../src/cli/commands/replay.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import type { ConsumedMessage } from '../../src/kafka/types.js'
import { DecisionPublisher } from '../../src/publish/publisher.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { silentLogger } from '../../src/common/logger.js'
import { servicePartition } from '../../src/partials/publisher.js'
import type { DeciderService } from '../../src/decider/service.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { waitFor } from '../support/wait.js'

const quiet = { out: () => undefined, err: () => undefined }

describeKafka('decider failover (real broker)', () => {
  let transport: ConfluentTransport
  let lines: string[]
  let base: ReplaySummary
  const prefix = uniqueName('it-failover')

  beforeAll(async () => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    lines = await recordToLines(findScenario('canary-bad-10pct')!)
    base = await replayLines(lines, parseConfig({}), quiet)
  }, 120_000)

  afterAll(async () => {
    const admin = transport.admin()
    await admin.deleteTopics([`${prefix}.partials`, `${prefix}.decider.state`, `${prefix}.decisions`, `${prefix}.incidents`]).catch(() => undefined)
    await admin.disconnect()
  })

  it('a decider stopped mid-watch: the new owner decides the one rollback, under the same id', async () => {
    const rollback = base.verdicts.find((v) => v.kind === 'rollback') as Verdict
    expect(rollback).toBeDefined()
    const cfg = parseConfig({
      kafka: { groupPrefix: prefix, topics: { partials: `${prefix}.partials`, decisions: `${prefix}.decisions`, incidents: `${prefix}.incidents` } },
      decider: { partitions: 4 },
      publish: { wal: { enabled: false } },
      runtime: { state: { minWriteInterval: '1s', restoreTimeout: '60s' } },
    })
    const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey)
    const publishers = [0, 1, 2].map(
      () => new DecisionPublisher({ producer: transport.producer(), signer, config: cfg.publish, topics: { decisions: cfg.kafka.topics.decisions, incidents: cfg.kafka.topics.incidents }, logger: silentLogger }),
    )
    for (const p of publishers) await p.start()
    const partition = servicePartition(rollback.namespace, rollback.service, cfg.decider.partitions)
    const killAt = rollback.deployedAt + (rollback.decidedAt - rollback.deployedAt) / 2
    let killed = -1
    let heir: DeciderService | undefined
    let issued: Verdict[] = []
    try {
      const r = await replayLinesOnTopic(lines, cfg, quiet, {
        nodes: 2,
        deciders: 3,
        transport,
        state: true,
        timeoutMs: 90_000,
        onVerdict: (v, i) => void publishers[i]!.publish(v),
        afterLine: async (now, deciders) => {
          if (killed >= 0 || now < killAt) return
          // the owner must be watching the deployment when it is stopped
          killed = deciders.findIndex((d) => d.stats().partitions.includes(partition))
          expect(killed).toBeGreaterThanOrEqual(0)
          expect(deciders[killed]!.pipeline()!.stats().watched).toBeGreaterThan(0)
          await deciders[killed]!.abandon()
          // the others take its partitions over (restore + refill) before more telemetry comes
          await waitFor(() => deciders.filter((_, i) => i !== killed).reduce((a, d) => a + d.stats().partitions.length, 0) === cfg.decider.partitions, 'the rebalance')
          heir = deciders.find((d) => d.stats().partitions.includes(partition))
          // the new owner restored the watch the old one persisted
          expect(heir!.pipeline()!.stats().watched).toBeGreaterThan(0)
          expect(heir!.stats().restoredRecords).toBeGreaterThan(0)
        },
      })
      issued = r.verdicts
    } finally {
      for (const p of publishers) await p.drain()
    }
    expect(killed).toBeGreaterThanOrEqual(0)
    // it refilled its windows from the partials on the topic before judging
    expect(heir!.stats().refilledRuns).toBeGreaterThan(0)
    expect(heir!.stats().lastRefillMs).toBeDefined()
    // what the deciders issued: the one rollback, under plain replay's ids
    const rollbacks = issued.filter((v) => v.kind === 'rollback')
    expect(new Set(rollbacks.map((v) => v.id))).toEqual(new Set([rollback.id]))
    expect(rollbacks.every((v) => v.deploymentId === rollback.deploymentId)).toBe(true)
    // and on the decisions topic
    const got: ConsumedMessage[] = []
    const consumer = transport.consumer({ groupId: uniqueName('it-failover-read'), topics: [cfg.kafka.topics.decisions], fromBeginning: true, onError: () => undefined })
    await consumer.start(async (b) => void got.push(...b.messages))
    try {
      await waitFor(() => got.length >= rollbacks.length, 'the decisions on the topic')
    } finally {
      await consumer.stop()
    }
    const onTopic = got.map((m) => JSON.parse((m.value as Buffer).toString()) as { id: string; kind: string })
    expect(new Set(onTopic.filter((e) => e.kind === 'rollback').map((e) => e.id))).toEqual(new Set([rollback.id]))
  }, 240_000)
})
