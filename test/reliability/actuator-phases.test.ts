/**
 * Reliability suite, actuator (issue 11): kill -9 and SIGTERM of the actuator at each phase of a
 * rollback, on the real broker with the fake Kubernetes API. Each case runs one rollback decision
 * through an actuator child process stopped at the phase (test/actuator/phase-child.ts), signals
 * it, starts a second actuator on the same group and state, sends the engine's `recovered`
 * verdict, and counts:
 *   lost     decisions without their terminal audit record (outcome `recovered`)
 *   twice    rollbacks executed twice: PATCHes of the Deployment beyond one, rollback events beyond one
 *   audit    audit records of the decision beyond or below one, in the file and on the topic
 *   pages    pages sent (the rollback recovered: none is due; not recovered: exactly one, the
 *            escalation, is due; a resumed escalation must not page again)
 * Every case asserts all of them 0. Cases run concurrently (separate topics and groups); a case
 * with kill -9 lasts ~20 s because the second actuator gets the partition only once the killed
 * member's session (10 s) expired.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAudit } from '../../src/actuator/audit.js'
import { readTopic } from '../../src/actuator/log.js'
import { silentLogger } from '../../src/common/logger.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import { sealDecision } from '../../src/publish/envelope.js'
import { ChildBundle, precreateTopics, type ChildActuator } from '../actuator/children.js'
import { IMG, kafkaConfig, makeKeys, promote, until, verdict, webhookReceiver } from '../actuator/helpers.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'

type Phase = 'retrieval' | 'cutover' | 'awaiting-recovery' | 'audit'
type Sig = 'SIGKILL' | 'SIGTERM'
interface Observed {
  lost: number
  patches: number
  events: number
  auditFile: number
  auditTopic: number
  pages: number
  outcome: string
}

const bundle = new ChildBundle()
const table: string[] = []

async function runCase(transport: KafkaTransport, phase: Phase, sig: Sig, engine: 'recovered' | 'not-recovered'): Promise<Observed> {
  const kafka = kafkaConfig(kafkaBrokers().split(','))
  const keys = makeKeys()
  const auditFile = join(keys.dir, 'audit.jsonl')
  const k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')], readyAfterMs: 100 })
  const server = await k8s.start()
  const hook = await webhookReceiver()
  const children: ChildActuator[] = []
  const p = transport.producer()
  try {
    await promote(transport, kafka, [
      ['1.2.0', keys.artifact.signer],
      ['1.3.0', keys.artifact.signer],
    ])
    const actuator = {
      driver: { type: 'kubernetes', server, pollInterval: '50ms' },
      verifyKeys: [keys.decision.pub],
      artifactKeys: [keys.artifact.pub],
      stateTopic: uniqueName('state'),
      escalationsTopic: uniqueName('esc'),
      auditFile,
      recoveryTimeout: '90s',
      paging: [{ type: 'generic', url: hook.url }],
      pageRetry: { attempts: 2, initial: '50ms' },
    }
    await precreateTopics(transport, kafka, actuator)
    await p.connect()
    const send = (v: ReturnType<typeof verdict>) => p.send(kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(sealDecision(v, keys.decision.signer, Date.now())) }])

    const first = bundle.start({ kafka, actuator, ...(phase === 'cutover' ? {} : { pauseAt: phase }) })
    children.push(first)
    await first.ready
    const rb = verdict('rollback')
    const announced = (c: ChildActuator) => c.out.some((l) => l.startsWith(`transition ${rb.id} announce recovery`))
    if (phase === 'cutover') {
      // the PATCH is applied by the API server; the signal arrives before the actuator sees the answer
      k8s.afterPatch = () => {
        k8s.afterPatch = undefined
        first.child.kill(sig)
        return sig === 'SIGKILL' ? first.exited : undefined
      }
    }
    await send(rb)
    if (phase === 'audit') {
      await first.line((l) => l.startsWith(`transition ${rb.id} announce recovery`))
      await send(verdict(engine, { restoredVersion: '1.2.0' }))
    }
    if (phase === 'cutover') await first.exited
    else {
      await first.line((l) => l === `paused ${phase}`)
      first.child.kill(sig)
      await first.exited
    }

    const second = bundle.start({ kafka, actuator })
    children.push(second)
    await second.ready
    if (phase !== 'audit') {
      await until(() => announced(first) || announced(second), 60_000, 'rollback announced')
      await send(verdict(engine, { restoredVersion: '1.2.0' }))
    }
    await until(() => existsSync(auditFile), 60_000, 'audit record')
    // a barrier: a dry-run decision on the same partition, handled after every redelivery before it
    const barrier = verdict('rollback', { dryRun: true })
    await send(barrier)
    await second.line((l) => l === `transition ${barrier.id} gate ignored`, 60_000)
    await new Promise((r) => setTimeout(r, 500))
    second.child.kill('SIGTERM')
    await second.exited

    const file = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => parseAudit(l)!).filter((r) => r.decisionId === rb.id)
    const topic = (await readTopic(transport, kafka.topics.audit, { groupPrefix: kafka.groupPrefix, markerKey: 'default/web', logger: silentLogger })).map((e) => parseAudit(e.value)).filter((r) => r?.decisionId === rb.id)
    const events = (await readTopic(transport, kafka.topics.deployments, { groupPrefix: kafka.groupPrefix, markerKey: 'default/web', logger: silentLogger })).filter((e) => (JSON.parse(e.value.toString()) as { decisionId?: string }).decisionId === rb.id)
    return {
      lost: file.some((r) => r.outcome === (engine === 'recovered' ? 'recovered' : 'escalated')) ? 0 : 1,
      patches: k8s.patches().length,
      events: events.length,
      auditFile: file.length,
      auditTopic: topic.length,
      pages: hook.bodies.length,
      outcome: file.map((r) => r.outcome).join(',') || 'none',
    }
  } finally {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
    await p.disconnect()
    await k8s.stop()
    await hook.close()
  }
}

describeKafka('actuator: kill -9 and SIGTERM at each phase of a rollback', () => {
  let transport: KafkaTransport
  beforeAll(async () => {
    await bundle.build()
    transport = await createTransport(kafkaSchema.parse({ brokers: kafkaBrokers().split(',') }))
  })
  afterAll(() => {
    bundle.cleanup()
    if (table.length > 0) process.stdout.write(`\n| case | decisions lost | PATCHes / rollback events | audit records file / topic | pages (due) | outcome |\n|---|---|---|---|---|---|\n${table.sort().join('\n')}\n`)
  })

  describe.concurrent('cases', () => {
    const cases: [Phase, 'recovered' | 'not-recovered'][] = [
      ['retrieval', 'recovered'],
      ['cutover', 'recovered'],
      ['awaiting-recovery', 'recovered'],
      ['audit', 'recovered'],
      // the escalation path: the page is due once, and a resumed escalation must not send it again
      ['audit', 'not-recovered'],
    ]
    for (const [phase, engine] of cases) {
      for (const sig of ['SIGKILL', 'SIGTERM'] as const) {
        const due = engine === 'recovered' ? 0 : 1
        it(`${sig} at ${phase} (${engine}): 0 lost, executed once, audit once, ${due} page`, async () => {
          const o = await runCase(transport, phase, sig, engine)
          table.push(`| ${sig} at ${phase}, engine says ${engine} | ${o.lost} | ${o.patches} / ${o.events} | ${o.auditFile} / ${o.auditTopic} | ${o.pages} (${due}) | ${o.outcome} |`)
          expect(o).toEqual({ lost: 0, patches: 1, events: 1, auditFile: 1, auditTopic: 1, pages: due, outcome: engine === 'recovered' ? 'recovered' : 'escalated' })
        }, 120_000)
      }
    }
  })
})
