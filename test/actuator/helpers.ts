/** Shared fixtures for the actuator tests: keys, verdicts, config, a webhook receiver, an actuator wired to a transport. */
import { mkdtempSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Actuator } from '../../src/actuator/actuator.js'
import { TopicArtifactStore, signArtifact, artifactTopicSpec } from '../../src/actuator/artifacts.js'
import { stateAuthOf } from '../../src/actuator/authentic.js'
import { actuatorSchema, type ActuatorConfig } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import { silentLogger } from '../../src/common/logger.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { kafkaSchema, type KafkaConfig } from '../../src/kafka/config.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import { publishSchema } from '../../src/publish/config.js'
import { DecisionPublisher } from '../../src/publish/publisher.js'
import { Verifier, generateKeyPairFiles, loadSigner, type Signer } from '../../src/publish/signing.js'
import { uniqueName } from '../setup/kafka.js'

export interface Keys {
  dir: string
  decision: { key: string; pub: string; signer: Signer }
  artifact: { key: string; pub: string; signer: Signer }
  /** the actuator's state key (actuator.stateKey) */
  state: { key: string; pub: string; signer: Signer }
  rogue: { signer: Signer }
}

export function makeKeys(): Keys {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-keys-'))
  const d = generateKeyPairFiles(dir, 'decisions')
  const a = generateKeyPairFiles(dir, 'artifacts')
  const r = generateKeyPairFiles(dir, 'rogue')
  const s = generateKeyPairFiles(dir, 'state')
  return {
    dir,
    decision: { key: d.privateKeyFile, pub: d.publicKeyFile, signer: loadSigner(d.privateKeyFile) },
    artifact: { key: a.privateKeyFile, pub: a.publicKeyFile, signer: loadSigner(a.privateKeyFile) },
    state: { key: s.privateKeyFile, pub: s.publicKeyFile, signer: loadSigner(s.privateKeyFile) },
    rogue: { signer: loadSigner(r.privateKeyFile) },
  }
}

export const IMG = (v: string) => `registry.local/shop/web:${v}`

export function verdict(kind: Verdict['kind'], over: Partial<Verdict> = {}): Verdict {
  const now = Date.now()
  return {
    kind,
    dryRun: false,
    id: over.id ?? `dec-${kind}-${uniqueName('x')}`,
    deploymentId: 'dep-web-1.3.0',
    namespace: 'default',
    service: 'web',
    version: '1.3.0',
    baselineVersion: '1.2.0',
    baselineSource: 'snapshot',
    deployedAt: now - 120_000,
    decidedAt: now,
    artifact: IMG('1.3.0'),
    reason: kind === 'rollback' ? 'error_rate breach 0.12 > 0.02' : 'all signals within baseline',
    signals: [
      { signal: 'error_rate', state: kind === 'rollback' ? 'breach' : 'healthy', mode: 'enforce', value: kind === 'rollback' ? 0.12 : 0.004, baseline: 0.005, threshold: 0.02, samples: 4200, critical: false },
      { signal: 'latency', state: 'healthy', mode: 'enforce', value: 180, baseline: 170, threshold: 340, samples: 4200, critical: false },
    ],
    ...over,
  }
}

export interface WebhookReceiver {
  url: string
  bodies: unknown[]
  close(): Promise<void>
}

export async function webhookReceiver(): Promise<WebhookReceiver> {
  const bodies: unknown[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString()))
      res.writeHead(202).end('{}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

export function kafkaConfig(brokers: string[]): KafkaConfig {
  const u = uniqueName('t')
  return kafkaSchema.parse({
    brokers,
    groupPrefix: `pb-${u}`,
    topics: { decisions: `${u}.decisions`, incidents: `${u}.incidents`, audit: `${u}.audit`, deployments: `${u}.deployments`, artifacts: `${u}.artifacts`, spans: `${u}.spans` },
  })
}

export function actuatorConfig(keys: Keys, over: Record<string, unknown>): ActuatorConfig {
  return actuatorSchema.parse({
    verifyKeys: [keys.decision.pub],
    artifactKeys: [keys.artifact.pub],
    stateKey: keys.state.key,
    stateTopic: uniqueName('state'),
    escalationsTopic: uniqueName('esc'),
    readinessTimeout: '3s',
    recoveryTimeout: '20s',
    pageRetry: { attempts: 2, initial: '50ms' },
    ...over,
  })
}

/** promotes artifacts: [version, signer] oldest first */
export async function promote(transport: KafkaTransport, kafka: KafkaConfig, items: [string, Signer][]): Promise<void> {
  const admin = transport.admin()
  await admin.connect()
  await admin.ensureTopics([artifactTopicSpec(kafka.topics.artifacts)])
  await admin.disconnect()
  const p = transport.producer()
  await p.connect()
  const base = Date.now() - 86_400_000
  for (const [i, [v, signer]] of items.entries()) {
    const rec = signArtifact({ service: 'default/web', artifact: IMG(v), promotedAt: base + i * 60_000 }, signer)
    await p.send(kafka.topics.artifacts, [{ key: `default/web|${IMG(v)}`, value: JSON.stringify(rec) }])
  }
  await p.disconnect()
}

export function buildActuator(transport: KafkaTransport, kafka: KafkaConfig, cfg: ActuatorConfig, onTransition?: (id: string, from: string, to: string) => void): Actuator {
  const verifier = Verifier.fromFiles(cfg.verifyKeys)
  return new Actuator({
    transport,
    kafka,
    config: cfg,
    verifier,
    artifacts: new TopicArtifactStore({ transport, topic: kafka.topics.artifacts, groupPrefix: kafka.groupPrefix, verifier: Verifier.fromFiles(cfg.artifactKeys), logger: silentLogger }),
    driver: createDriver(cfg.driver),
    logger: silentLogger,
    stateAuth: stateAuthOf(cfg),
    ...(onTransition ? { onTransition } : {}),
  })
}

export function buildPublisher(transport: KafkaTransport, kafka: KafkaConfig, signer: Signer): DecisionPublisher {
  return new DecisionPublisher({
    producer: transport.producer(),
    signer,
    config: publishSchema.parse({}),
    topics: { decisions: kafka.topics.decisions, incidents: kafka.topics.incidents },
    logger: silentLogger,
  })
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
