/**
 * The actuator scenarios of issue 5, written once and run over a transport: the real broker
 * (actuator.test.ts) and the embedded bus (embedded.test.ts).
 */
import { readFileSync, existsSync, writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { main } from '../../src/cli/main.js'
import type { ActuatorConfig } from '../../src/actuator/config.js'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { parseAudit, type AuditRecord } from '../../src/actuator/audit.js'
import { readTopic } from '../../src/actuator/log.js'
import { silentLogger } from '../../src/common/logger.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import type { KafkaConfig } from '../../src/kafka/config.js'
import type { Consumer, KafkaTransport } from '../../src/kafka/types.js'
import { sealDecision } from '../../src/publish/envelope.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { IMG, actuatorConfig, buildActuator, buildPublisher, kafkaConfig, makeKeys, promote, until, verdict, webhookReceiver, type Keys, type WebhookReceiver } from './helpers.js'
import type { Actuator } from '../../src/actuator/actuator.js'
import type { DecisionPublisher } from '../../src/publish/publisher.js'

export function actuatorScenarios(transportFor: () => Promise<{ transport: KafkaTransport; brokers: string[] }>): void {
  let keys: Keys
  let k8s: FakeK8s
  let hook: WebhookReceiver
  let kafka: KafkaConfig
  let transport: KafkaTransport
  let actuator: Actuator | undefined
  let publisher: DecisionPublisher
  let events: DeploymentEvent[]
  let eventsConsumer: Consumer
  let auditFile: string
  let cfg: ActuatorConfig
  let brokers: string[]

  const audits = (): AuditRecord[] =>
    existsSync(auditFile)
      ? readFileSync(auditFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => parseAudit(l)!)
      : []

  async function setup(history: string[], promoted: [string, 'valid' | 'rogue'][], over: Record<string, unknown> = {}, k8sOver: Partial<ConstructorParameters<typeof FakeK8s>[0]> = {}) {
    k8s = new FakeK8s({ history: history.map(IMG), readyAfterMs: 100, ...k8sOver })
    const server = await k8s.start()
    await promote(
      transport,
      kafka,
      promoted.map(([v, who]) => [v, who === 'valid' ? keys.artifact.signer : keys.rogue.signer]),
    )
    cfg = actuatorConfig(keys, {
      driver: { type: 'kubernetes', server, pollInterval: '50ms' },
      paging: [
        { type: 'generic', url: hook.url },
        { type: 'pagerduty', url: hook.url, routingKey: 'R0UT1NG' },
      ],
      auditFile,
      ...over,
    })
    actuator = buildActuator(transport, kafka, cfg)
    await actuator.start()
  }

  beforeEach(async () => {
    const t = await transportFor()
    transport = t.transport
    brokers = t.brokers
    kafka = kafkaConfig(t.brokers)
    keys = makeKeys()
    hook = await webhookReceiver()
    auditFile = join(keys.dir, 'audit.jsonl')
    publisher = buildPublisher(transport, kafka, keys.decision.signer)
    await publisher.start()
    events = []
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([kafka.topics.decisions, kafka.topics.deployments, kafka.topics.audit].map((topic) => ({ topic })))
    await admin.disconnect()
    eventsConsumer = transport.consumer({ groupId: `${kafka.groupPrefix}.test-events`, topics: [kafka.topics.deployments], fromBeginning: true })
    await eventsConsumer.start(async (b) => void events.push(...b.messages.map((m) => JSON.parse(m.value!.toString()) as DeploymentEvent)))
  })

  afterEach(async () => {
    await actuator?.shutdown()
    actuator = undefined
    await publisher.shutdown()
    await eventsConsumer.stop()
    await k8s?.stop()
    await hook.close()
  })

  it('happy path: rollback -> patch to the verified artifact -> rollback event -> recovered -> audit recovered', async () => {
    await setup(['1.1.0', '1.2.0', '1.3.0'], [['1.1.0', 'valid'], ['1.2.0', 'valid'], ['1.3.0', 'valid']])
    const rb = verdict('rollback')
    expect(publisher.publish(rb).kind).toBe('queued')
    await until(() => events.length > 0, 30_000, 'rollback event')
    expect(events[0]).toMatchObject({ kind: 'rollback', source: 'pullback-actuator', decisionId: rb.id, version: '1.2.0', artifact: IMG('1.2.0'), namespace: 'default', service: 'web' })
    const patches = k8s.patches()
    expect(patches).toHaveLength(1)
    expect(patches[0]!.contentType).toBe('application/json-patch+json')
    const ops = patches[0]!.body as { op: string; path: string; value: any }[] // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(ops[0]).toMatchObject({ op: 'test', path: '/metadata/resourceVersion' })
    expect(ops[1]!.path).toBe('/spec/template')
    expect(ops[1]!.value.metadata.labels['pod-template-hash']).toBeUndefined()
    expect(k8s.currentImage()).toBe(IMG('1.2.0'))
    expect(k8s.requests.some((r) => r.path.startsWith('/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dweb'))).toBe(true)

    publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => audits().length === 1, 30_000, 'audit record')
    const a = audits()[0]!
    expect(a).toMatchObject({ decisionId: rb.id, outcome: 'recovered', failedArtifact: IMG('1.3.0'), restoredArtifact: IMG('1.2.0'), patched: true, escalated: false })
    expect(a.breach.map((b) => b.signal)).toEqual(['error_rate'])
    expect(a.breach[0]!.samples).toBe(4200)
    expect(a.recovery?.kind).toBe('recovered')
    expect(a.phases.map((p) => p.phase)).toEqual(['received', 'verified', 'gate-passed', 'artifact-selected', 'cutover-started', 'cutover-applied', 'ready', 'rollback-announced', 'recovered'])
    expect(hook.bodies).toHaveLength(0)
    // the audit topic has it too, keyed by service
    const onTopic = (await readTopic(transport, kafka.topics.audit, { groupPrefix: kafka.groupPrefix, markerKey: 'default/web', logger: silentLogger })).map((e) => parseAudit(e.value)!)
    expect(onTopic.map((r) => r.outcome)).toEqual(['recovered'])
  })

  it('no verified artifact: halts and pages, nothing patched', async () => {
    await setup(['1.2.0', '1.3.0'], [['1.2.0', 'rogue'], ['1.3.0', 'valid']])
    const rb = verdict('rollback')
    publisher.publish(rb)
    await until(() => audits().length === 1, 30_000, 'audit record')
    expect(audits()[0]).toMatchObject({ decisionId: rb.id, outcome: 'halted', escalated: true })
    expect(audits()[0]!.reason).toMatch(/no verified artifact/)
    expect(k8s.patches()).toHaveLength(0)
    await until(() => hook.bodies.length === 2, 10_000, 'pages')
    const pd = hook.bodies.find((b) => (b as { routing_key?: string }).routing_key === 'R0UT1NG') as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(pd).toMatchObject({ event_action: 'trigger', dedup_key: rb.id, payload: { source: 'pullback-actuator', severity: 'critical' } })
    expect(events).toHaveLength(0)
  })

  it('forged decision: rejected, nothing patched', async () => {
    await setup(['1.2.0', '1.3.0'], [['1.2.0', 'valid'], ['1.3.0', 'valid']])
    const forged = sealDecision(verdict('rollback'), keys.rogue.signer, Date.now())
    const tampered = sealDecision(verdict('rollback'), keys.decision.signer, Date.now())
    tampered.payload.version = '0.0.1'
    const unsigned = { ...sealDecision(verdict('rollback'), keys.decision.signer, Date.now()), signature: undefined }
    const p = transport.producer()
    await p.connect()
    await p.send(kafka.topics.decisions, [forged, tampered, unsigned].map((e) => ({ key: 'default/web', value: JSON.stringify(e) })))
    await p.disconnect()
    await until(() => audits().length === 3, 30_000, 'audit records')
    expect(audits().map((a) => a.outcome)).toEqual(['rejected', 'rejected', 'rejected'])
    expect(actuator!.counters.rejected).toBe(3)
    expect(k8s.requests).toHaveLength(0)
  })

  it('readiness gates never pass: halts, escalates, freezes', async () => {
    await setup(['1.2.0', '1.3.0'], [['1.2.0', 'valid'], ['1.3.0', 'valid']], { readinessTimeout: '600ms' }, { ready: 'never' })
    const rb = verdict('rollback')
    publisher.publish(rb)
    await until(() => audits().length === 1, 30_000, 'audit record')
    expect(audits()[0]).toMatchObject({ outcome: 'halted', escalated: true, patched: true })
    expect(audits()[0]!.reason).toMatch(/readiness gates failed/)
    expect(k8s.patches()).toHaveLength(1)
    expect(actuator!.state.frozen('default/web')).toBeDefined()
    await until(() => hook.bodies.length === 2, 10_000, 'pages')
    expect(events).toHaveLength(0)
  })

  it('not-recovered: escalates and freezes; a second rollback is not executed until rearm', async () => {
    await setup(['1.1.0', '1.2.0', '1.3.0'], [['1.1.0', 'valid'], ['1.2.0', 'valid'], ['1.3.0', 'valid']])
    const rb = verdict('rollback')
    publisher.publish(rb)
    await until(() => events.length === 1, 30_000, 'rollback event')
    publisher.publish(verdict('not-recovered', { restoredVersion: '1.2.0' }))
    await until(() => audits().length === 1, 30_000, 'audit')
    expect(audits()[0]).toMatchObject({ outcome: 'escalated', escalated: true })
    expect(actuator!.state.frozen('default/web')).toBeDefined()
    await until(() => hook.bodies.length === 2, 10_000, 'pages')

    // a new rollback decision (the restored version regressed too) is refused while frozen
    const second = verdict('rollback', { id: 'second-rollback', version: '1.2.0', artifact: IMG('1.2.0'), deploymentId: 'dep-web-1.2.0' })
    publisher.publish(second)
    await until(() => audits().length === 2, 30_000, 'second audit')
    expect(audits()[1]).toMatchObject({ decisionId: 'second-rollback', outcome: 'halted', escalated: false })
    expect(audits()[1]!.reason).toMatch(/frozen/)
    expect(k8s.patches()).toHaveLength(1)

    // a person re-arms; the next decision acts again
    // the freeze is durable: a restarted actuator still refuses
    await actuator!.shutdown()
    actuator = buildActuator(transport, kafka, cfg)
    await actuator.start()
    expect(actuator.state.frozen('default/web')?.decisionId).toBe(rb.id)

    // a person re-arms (through the CLI when there is a broker to write to)
    if (brokers.length > 0) {
      const cfgFile = join(keys.dir, 'pullback.yaml')
      writeFileSync(cfgFile, stringify({ kafka, actuator: { stateTopic: cfg.stateTopic, stateKey: cfg.stateKey } }))
      let out = ''
      const code = await main(['actuator', 'rearm', '--service', 'default/web', '--config', cfgFile], { out: (x) => void (out += x), err: (x) => void (out += x) })
      expect(code, out).toBe(0)
      expect(out).toMatch(/re-armed default\/web \(was frozen/)
      await until(() => actuator!.state.frozen('default/web') === undefined, 30_000, 'rearm seen by the running actuator')
    } else {
      await actuator.state.setFreeze({ service: 'default/web', frozen: false, at: Date.now(), reason: 'rearmed by test' })
    }
    const third = verdict('rollback', { id: 'third-rollback', version: '1.2.0', artifact: IMG('1.2.0'), deploymentId: 'dep-web-1.2.0b' })
    publisher.publish(third)
    await until(() => k8s.patches().length === 2, 30_000, 'second patch')
    expect(k8s.currentImage()).toBe(IMG('1.1.0'))
  })

  it('a second rollback decision for a service whose rollback is still in flight is not executed', async () => {
    await setup(['1.1.0', '1.2.0', '1.3.0'], [['1.1.0', 'valid'], ['1.2.0', 'valid'], ['1.3.0', 'valid']])
    const rb = verdict('rollback')
    publisher.publish(rb)
    await until(() => events.length === 1, 30_000, 'rollback event')
    publisher.publish(verdict('rollback', { id: 'interloper', deploymentId: 'dep-other' }))
    await until(() => audits().length === 1, 30_000, 'audit of the interloper')
    expect(audits()[0]).toMatchObject({ decisionId: 'interloper', outcome: 'halted', escalated: false })
    expect(audits()[0]!.reason).toMatch(/still awaiting-recovery/)
    publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => audits().length === 2, 30_000, 'audit of the first')
    expect(audits()[1]).toMatchObject({ decisionId: rb.id, outcome: 'recovered' })
    expect(k8s.patches()).toHaveLength(1)
    expect(actuator!.state.frozen('default/web')).toBeUndefined()
  })

  it('an old decision (a new group replaying the topic) is not acted on', async () => {
    await setup(['1.2.0', '1.3.0'], [['1.2.0', 'valid'], ['1.3.0', 'valid']])
    const old = sealDecision(verdict('rollback'), keys.decision.signer, Date.now() - 3_600_000)
    const p = transport.producer()
    await p.connect()
    await p.send(kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(old) }])
    await p.disconnect()
    await until(() => actuator!.counters.stale === 1, 30_000, 'stale decision')
    expect(k8s.requests).toHaveLength(0)
  })

  it('the same decision delivered three times is executed once', async () => {
    await setup(['1.2.0', '1.3.0'], [['1.2.0', 'valid'], ['1.3.0', 'valid']])
    const rb = verdict('rollback')
    const env = JSON.stringify(sealDecision(rb, keys.decision.signer, Date.now()))
    const p = transport.producer()
    await p.connect()
    await p.send(kafka.topics.decisions, [1, 2, 3].map(() => ({ key: 'default/web', value: env })))
    await until(() => actuator!.counters.duplicates === 2, 30_000, 'duplicates')
    publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => audits().length === 1, 30_000, 'audit')
    await p.send(kafka.topics.decisions, [{ key: 'default/web', value: env }])
    await until(() => actuator!.counters.duplicates === 3, 30_000, 'late duplicate')
    await p.disconnect()
    expect(k8s.patches()).toHaveLength(1)
    expect(events).toHaveLength(1)
    expect(audits()).toHaveLength(1)
  })
}
