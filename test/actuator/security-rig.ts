/**
 * The attacker's bench for issue 13's regression tests (security-*.test.ts): a real actuator on the
 * real broker (the embedded bus without one) with the kubernetes driver against the fake API
 * server, a recording wrapper around the driver (what each cutover request asked for), the signed
 * decision publisher, and a raw producer for what an attacker with write access to the topics sends.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Actuator } from '../../src/actuator/actuator.js'
import { TopicArtifactStore } from '../../src/actuator/artifacts.js'
import { parseAudit, type AuditRecord } from '../../src/actuator/audit.js'
import { stateAuthOf } from '../../src/actuator/authentic.js'
import type { ActuatorConfig } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import type { CutoverRequest, Driver } from '../../src/actuator/drivers/types.js'
import { stateTopicSpec } from '../../src/actuator/state.js'
import { silentLogger } from '../../src/common/logger.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import type { KafkaConfig } from '../../src/kafka/config.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { Consumer, KafkaTransport, Producer } from '../../src/kafka/types.js'
import type { DecisionPublisher } from '../../src/publish/publisher.js'
import { Verifier } from '../../src/publish/signing.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { kafkaBrokers } from '../setup/kafka.js'
import { IMG, actuatorConfig, buildPublisher, kafkaConfig, makeKeys, promote, webhookReceiver, type Keys, type WebhookReceiver } from './helpers.js'

export interface Rig {
  transport: KafkaTransport
  kafka: KafkaConfig
  keys: Keys
  cfg: ActuatorConfig
  k8s: FakeK8s
  hook: WebhookReceiver
  publisher: DecisionPublisher
  /** raw producer: what an attacker with write access to a topic sends */
  raw: Producer
  /** the cutover requests the driver received, in order */
  cutovers: CutoverRequest[]
  events: DeploymentEvent[]
  actuator: Actuator
  audits(): AuditRecord[]
  /** starts the actuator (after the test planted what it wants the actuator to read at start) */
  start(): Promise<void>
  stop(): Promise<void>
}

export interface RigOptions {
  promoted?: [string, 'valid' | 'rogue'][]
  /** actuator config overrides; `stateKey: undefined` runs without state authentication */
  over?: Record<string, unknown> | ((keys: Keys) => Record<string, unknown>)
}

export async function rig(o: RigOptions = {}): Promise<Rig> {
  const brokers = kafkaBrokers() === '' ? [] : kafkaBrokers().split(',')
  const transport: KafkaTransport = brokers.length > 0 ? await createTransport(kafkaSchema.parse({ brokers })) : new MemoryBus({ redeliveryBackoffMs: 20 })
  const kafka = kafkaConfig(brokers)
  const keys = makeKeys()
  const hook = await webhookReceiver()
  const k8s = new FakeK8s({ history: ['1.1.0', '1.2.0', '1.3.0'].map(IMG), readyAfterMs: 50 })
  const server = await k8s.start()
  const auditFile = join(keys.dir, 'audit.jsonl')
  const cfg = actuatorConfig(keys, {
    driver: { type: 'kubernetes', server, pollInterval: '50ms' },
    paging: [{ type: 'generic', url: hook.url }],
    pageRetry: { attempts: 1, initial: '50ms' },
    auditFile,
    ...(typeof o.over === 'function' ? o.over(keys) : o.over),
  })
  const admin = transport.admin()
  await admin.connect()
  await admin.ensureTopics([stateTopicSpec(cfg.stateTopic), ...[kafka.topics.decisions, kafka.topics.deployments, kafka.topics.audit].map((topic) => ({ topic }))])
  await admin.disconnect()
  await promote(
    transport,
    kafka,
    (o.promoted ?? [['1.1.0', 'valid'], ['1.2.0', 'valid'], ['1.3.0', 'valid']]).map(([v, who]) => [v, who === 'valid' ? keys.artifact.signer : keys.rogue.signer]),
  )
  const cutovers: CutoverRequest[] = []
  const real = createDriver(cfg.driver)
  const driver: Driver = {
    name: real.name,
    apply: (req, signal, hooks) => {
      cutovers.push(req)
      return real.apply(req, signal, hooks)
    },
    awaitReady: (req, ms, signal) => real.awaitReady(req, ms, signal),
  }
  const actuator = new Actuator({
    transport,
    kafka,
    config: cfg,
    verifier: Verifier.fromFiles(cfg.verifyKeys),
    artifacts: new TopicArtifactStore({ transport, topic: kafka.topics.artifacts, groupPrefix: kafka.groupPrefix, verifier: Verifier.fromFiles(cfg.artifactKeys), logger: silentLogger }),
    driver,
    logger: silentLogger,
    stateAuth: stateAuthOf(cfg),
  })
  const publisher = buildPublisher(transport, kafka, keys.decision.signer)
  await publisher.start()
  const raw = transport.producer()
  await raw.connect()
  const events: DeploymentEvent[] = []
  const eventsConsumer: Consumer = transport.consumer({ groupId: `${kafka.groupPrefix}.test-events`, topics: [kafka.topics.deployments], fromBeginning: true })
  await eventsConsumer.start(async (b) => void events.push(...b.messages.map((m) => JSON.parse(m.value!.toString()) as DeploymentEvent)))
  return {
    transport,
    kafka,
    keys,
    cfg,
    k8s,
    hook,
    publisher,
    raw,
    cutovers,
    events,
    actuator,
    audits: () =>
      existsSync(auditFile)
        ? readFileSync(auditFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => parseAudit(l)!)
        : [],
    start: () => actuator.start(),
    stop: async () => {
      await actuator.shutdown()
      await publisher.shutdown()
      await eventsConsumer.stop()
      await raw.disconnect()
      await k8s.stop()
      await hook.close()
    },
  }
}

/** waits `ms` and then checks that `cond` still does not hold (what must NOT happen) */
export async function never(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) throw new Error(`happened: ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
