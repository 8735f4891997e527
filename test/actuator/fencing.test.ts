/**
 * Two actuators at once (issue 11): the state topic's claims (src/actuator/state.ts, "Fencing") make
 * each decision execute once however many actuators receive it.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Actuator } from '../../src/actuator/actuator.js'
import { parseAudit, type AuditRecord } from '../../src/actuator/audit.js'
import { readTopic } from '../../src/actuator/log.js'
import { ActuatorState, supersedes, type DecisionProgress, type Owner } from '../../src/actuator/state.js'
import { silentLogger } from '../../src/common/logger.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import { sealDecision } from '../../src/publish/envelope.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { precreateTopics } from './children.js'
import { IMG, actuatorConfig, buildActuator, kafkaConfig, makeKeys, promote, until, verdict, webhookReceiver, type Keys } from './helpers.js'

const owner = (id: string): Owner => ({ id, host: 'h', pid: 1, startTime: '1' })
const rec = (over: Partial<DecisionProgress>): DecisionProgress => ({
  decisionId: 'd1',
  service: 'default/web',
  phase: 'cutover',
  verdict: verdict('rollback'),
  failed: { artifact: IMG('1.3.0'), version: '1.3.0' },
  phases: [],
  driver: 'exec',
  updatedAt: 1,
  ...over,
})

describe('claim rule', () => {
  it('a higher epoch wins, the same epoch only from its owner, phases never go back', () => {
    const a1 = rec({ epoch: 1, owner: owner('a') })
    expect(supersedes(a1, rec({ epoch: 1, owner: owner('b') }))).toBe(false)
    expect(supersedes(a1, rec({ epoch: 2, owner: owner('b') }))).toBe(true)
    expect(supersedes(a1, rec({ epoch: 1, owner: owner('a'), phase: 'awaiting-recovery', updatedAt: 2 }))).toBe(true)
    expect(supersedes(rec({ epoch: 2, owner: owner('b') }), rec({ epoch: 1, owner: owner('a'), phase: 'done', updatedAt: 9 }))).toBe(false)
    expect(supersedes(rec({ epoch: 1, owner: owner('a'), phase: 'done' }), rec({ epoch: 5, owner: owner('b') }))).toBe(false)
    // records of older versions (no epoch, no owner) still advance
    expect(supersedes(rec({}), rec({ phase: 'awaiting-recovery', updatedAt: 2 }))).toBe(true)
  })

  it('concurrent claims of one decision by two state readers: exactly one wins and both agree', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 20 })
    const topic = uniqueName('state')
    const mk = () => new ActuatorState({ transport: bus, topic, groupPrefix: uniqueName('g'), producer: bus.producer(), logger: silentLogger })
    const [s1, s2] = [mk(), mk()]
    await Promise.all([s1.start(), s2.start()])
    try {
      for (let i = 0; i < 20; i++) {
        const p = rec({ decisionId: `d-${i}` })
        const [c1, c2] = await Promise.all([s1.claim(p, owner('a')), s2.claim(p, owner('b'))])
        expect([c1.kind, c2.kind].sort()).toEqual(['lost', 'won'])
        await s1.sync()
        await s2.sync()
        expect(s1.decisions.get(p.decisionId)?.owner?.id).toBe(s2.decisions.get(p.decisionId)?.owner?.id)
        // the loser's late write under its old view is refused
        const loser = c1.kind === 'lost' ? s1 : s2
        const lostOwner = c1.kind === 'lost' ? owner('a') : owner('b')
        expect((await loser.put(rec({ decisionId: p.decisionId, epoch: 1, owner: lostOwner, phase: 'awaiting-recovery', updatedAt: 5 }))).kind).toBe('fenced')
      }
    } finally {
      await Promise.all([s1.shutdown(), s2.shutdown()])
    }
  })
})

describeKafka('two actuators on the real broker', () => {
  let transport: KafkaTransport
  let keys: Keys
  const actuators: Actuator[] = []
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const a of actuators.splice(0)) await a.shutdown()
    for (const c of cleanups.splice(0)) await c()
  })

  async function setup() {
    const brokers = kafkaBrokers().split(',')
    transport = await createTransport(kafkaSchema.parse({ brokers }))
    keys = makeKeys()
    const kafka = kafkaConfig(brokers)
    await promote(transport, kafka, [
      ['1.2.0', keys.artifact.signer],
      ['1.3.0', keys.artifact.signer],
    ])
    const p = transport.producer()
    await p.connect()
    cleanups.push(() => p.disconnect())
    const send = (v: ReturnType<typeof verdict>) => p.send(kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(sealDecision(v, keys.decision.signer, Date.now())) }])
    const auditFile = join(keys.dir, 'audit.jsonl')
    const fileAudits = (): AuditRecord[] => (existsSync(auditFile) ? readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => parseAudit(l)!) : [])
    const topicAudits = async () => (await readTopic(transport, kafka.topics.audit, { groupPrefix: kafka.groupPrefix, markerKey: 'default/web', logger: silentLogger })).map((e) => parseAudit(e.value)!)
    const events = async () => (await readTopic(transport, kafka.topics.deployments, { groupPrefix: kafka.groupPrefix, markerKey: 'default/web', logger: silentLogger })).length
    return { kafka, send, auditFile, fileAudits, topicAudits, events }
  }

  it('the same decision reaching two actuators at once (two groups: a zombie or a second deployment) runs its cutover once', async () => {
    const { kafka, send, auditFile, fileAudits, topicAudits, events } = await setup()
    const log = join(keys.dir, 'runs.log')
    const script = join(keys.dir, 'cutover.sh')
    writeFileSync(script, `#!/bin/sh\necho "start $$" >> "${log}"\nsleep 1.5\necho "end $$" >> "${log}"\n`)
    chmodSync(script, 0o755)
    const cfg = actuatorConfig(keys, { driver: { type: 'exec', command: [script] }, auditFile })
    await precreateTopics(transport, kafka, cfg)
    const a = buildActuator(transport, kafka, cfg)
    const b = buildActuator(transport, { ...kafka, groupPrefix: `${kafka.groupPrefix}-b` }, cfg)
    actuators.push(a, b)
    await Promise.all([a.start(), b.start()])
    const rb = verdict('rollback')
    await send(rb)
    await until(() => a.state.decisions.get(rb.id)?.phase === 'awaiting-recovery' && b.state.decisions.get(rb.id)?.phase === 'awaiting-recovery', 30_000, 'awaiting recovery')
    // both received it; one ran it
    await until(() => a.counters.received + b.counters.received >= 2, 10_000, 'both received')
    await send(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => fileAudits().length >= 1, 30_000, 'audit record')
    await until(() => a.counters.received + b.counters.received >= 4, 10_000, 'both received the verdict')
    await new Promise((r) => setTimeout(r, 1500))
    const runs = readFileSync(log, 'utf8').trim().split('\n')
    expect(runs.filter((l) => l.startsWith('start'))).toHaveLength(1)
    expect(fileAudits()).toHaveLength(1)
    expect((await topicAudits()).filter((r) => r.decisionId === rb.id)).toHaveLength(1)
    expect(await events()).toBe(1)
    expect(a.counters.executed + b.counters.executed).toBe(1)
    // the other one waited for the holder or lost a claim
    expect(a.counters.heldElsewhere + b.counters.heldElsewhere + a.counters.fenced + b.counters.fenced + a.counters.duplicates + b.counters.duplicates).toBeGreaterThanOrEqual(2)
  }, 90_000)

  it('recovery deadlines fire in both members of the group: one escalation, one page, one audit record', async () => {
    const { kafka, send, auditFile, fileAudits, topicAudits } = await setup()
    const k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')], readyAfterMs: 50 })
    const server = await k8s.start()
    const hook = await webhookReceiver()
    cleanups.push(() => k8s.stop(), () => hook.close())
    const cfg = actuatorConfig(keys, { driver: { type: 'kubernetes', server, pollInterval: '50ms' }, auditFile, recoveryTimeout: '6s', paging: [{ type: 'generic', url: hook.url }] })
    await precreateTopics(transport, kafka, cfg)
    const a = buildActuator(transport, kafka, cfg)
    actuators.push(a)
    await a.start()
    const rb = verdict('rollback')
    await send(rb)
    await until(() => a.state.decisions.get(rb.id)?.phase === 'awaiting-recovery', 30_000, 'awaiting recovery')
    // a second member joins the same group while the decision awaits its verdict; none comes
    const b = buildActuator(transport, kafka, cfg)
    actuators.push(b)
    await b.start()
    await until(() => fileAudits().length >= 1, 30_000, 'audit record')
    await until(() => a.state.decisions.get(rb.id)?.phase === 'done' && b.state.decisions.get(rb.id)?.phase === 'done', 10_000, 'done in both')
    await new Promise((r) => setTimeout(r, 1500))
    expect(k8s.patches()).toHaveLength(1)
    expect(fileAudits()).toHaveLength(1)
    expect(fileAudits()[0]).toMatchObject({ decisionId: rb.id, outcome: 'escalated', escalated: true })
    expect((await topicAudits()).filter((r) => r.decisionId === rb.id)).toHaveLength(1)
    expect(hook.bodies).toHaveLength(1)
    expect(a.counters.escalated + b.counters.escalated).toBe(1)
  }, 90_000)
})
