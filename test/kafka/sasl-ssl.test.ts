/**
 * kafka.tls + kafka.auth.sasl against a real broker in SASL_SSL mode (tools/kafka/broker.sh,
 * KAFKA_SECURITY=sasl_ssl) on its own ports, with mTLS required: a CA, a broker certificate and a
 * client certificate are generated here with openssl into a temp dir (never committed). Every
 * client goes through createTransport, as in production. Needs java, mvn and openssl: skipped
 * (loudly) without them, never under CI.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Actuator } from '../../src/actuator/actuator.js'
import { PermanentError } from '../../src/common/errors.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import { kafkaSchema, type KafkaConfig } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import type { ConsumedMessage, Consumer, KafkaTransport } from '../../src/kafka/types.js'
import type { DecisionPublisher } from '../../src/publish/publisher.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { IMG, actuatorConfig, buildActuator, buildPublisher, kafkaConfig, makeKeys, promote, until, verdict } from '../actuator/helpers.js'
import { uniqueName } from '../setup/kafka.js'

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0
const tools = ['java', 'mvn', 'openssl'].filter((b) => !has(b))
if (tools.length > 0) {
  if (process.env.CI) throw new Error(`sasl-ssl.test.ts needs ${tools.join(', ')} (CI must not skip it)`)
  process.stderr.write(`\n*** KAFKA SASL_SSL TESTS SKIPPED: ${tools.join(', ')} missing ***\n\n`)
}

const script = fileURLToPath(new URL('../../tools/kafka/broker.sh', import.meta.url))
const PORT = Number(process.env.SASL_KAFKA_PORT ?? 19520)
const dir = mkdtempSync(join(tmpdir(), 'pullback-sasl-ssl-'))
const pki = join(dir, 'pki')
const USER = 'pullback'
const PASSWORD = `pw-${uniqueName('x')}`
const brokerEnv = {
  ...process.env,
  KAFKA_SECURITY: 'sasl_ssl',
  KAFKA_PORT: String(PORT),
  KAFKA_CONTROLLER_PORT: String(PORT + 1),
  KAFKA_DIR: join(dir, 'broker'),
  KAFKA_SSL_DIR: pki,
  KAFKA_SASL_USERS: `${USER}:${PASSWORD}`,
  KAFKA_SSL_CLIENT_AUTH: 'required',
}
const brokers = [`127.0.0.1:${PORT}`]

/** CA, broker certificate (IP SAN 127.0.0.1, server+client auth), client certificate, and a second CA nobody uses. */
function generatePki(): void {
  execFileSync('mkdir', ['-p', pki])
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'ignore', 'pipe'] })
  const leaf = (name: string, cn: string, ext: string) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`)
    writeFileSync(join(pki, `${name}.ext`), ext)
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`)
  }
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=pullback-test-ca')
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '1', '-subj', '/CN=someone-else')
  leaf('broker', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n')
  leaf('client', 'pullback', 'extendedKeyUsage=clientAuth\n')
  writeFileSync(join(pki, 'password'), `${PASSWORD}\n`, { mode: 0o600 })
  writeFileSync(join(pki, 'wrong-password'), 'not-the-password\n', { mode: 0o600 })
}

/** the kafka section for these brokers: mTLS with our CA, SASL with `mechanism` */
function secure(base: KafkaConfig, over: { mechanism?: string; passwordFile?: string; caFile?: string } = {}): KafkaConfig {
  return kafkaSchema.parse({
    ...base,
    tls: { caFile: over.caFile ?? join(pki, 'ca.crt'), certFile: join(pki, 'client.crt'), keyFile: join(pki, 'client.key') },
    auth: { sasl: { mechanism: over.mechanism ?? 'SCRAM-SHA-512', username: USER, passwordFile: over.passwordFile ?? join(pki, 'password') } },
  })
}

describe.skipIf(tools.length > 0)('Kafka over SASL_SSL (mTLS)', () => {
  let started = false
  beforeAll(() => {
    generatePki()
    execFileSync('bash', [script, 'start'], { env: brokerEnv, stdio: ['ignore', 'pipe', 'inherit'] })
    started = true
  }, 120_000)

  afterAll(() => {
    if (started) execFileSync('bash', [script, 'stop'], { env: brokerEnv, stdio: 'inherit' })
    rmSync(dir, { recursive: true, force: true })
  })

  /** one record produced and consumed back through a transport built from `kafka` */
  async function roundTrip(kafka: KafkaConfig, budget: { maxBufferedBytes?: number } = {}): Promise<ConsumedMessage[]> {
    const transport = await createTransport(kafka)
    const topic = uniqueName('sasl')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([{ topic, numPartitions: 1 }])
    await admin.disconnect()
    const producer = transport.producer()
    await producer.send(topic, [{ key: 'k', value: `hello over ${kafka.auth?.sasl?.mechanism}` }])
    await producer.disconnect()
    const got: ConsumedMessage[] = []
    const consumer = transport.consumer({ groupId: uniqueName('sasl-g'), topics: [topic], fromBeginning: true, ...budget })
    await consumer.start(async (b) => void got.push(...b.messages))
    try {
      await until(() => got.length > 0, 20_000, 'the record back')
    } finally {
      await consumer.stop()
    }
    return got
  }

  it('PLAIN over TLS: produce and consume, with both consumers (KafkaJS API; byte budget, the span receiver\'s)', async () => {
    const got = await roundTrip(secure(kafkaConfig(brokers), { mechanism: 'PLAIN' }))
    expect(got.map((m) => m.value?.toString())).toEqual(['hello over PLAIN'])
    const budgeted = await roundTrip(secure(kafkaConfig(brokers), { mechanism: 'PLAIN' }), { maxBufferedBytes: 4 * 1024 * 1024 })
    expect(budgeted.map((m) => m.value?.toString())).toEqual(['hello over PLAIN'])
  })

  it('SCRAM-SHA-512 over TLS: produce and consume; SCRAM-SHA-256 connects', async () => {
    const got = await roundTrip(secure(kafkaConfig(brokers), { mechanism: 'SCRAM-SHA-512' }))
    expect(got.map((m) => m.value?.toString())).toEqual(['hello over SCRAM-SHA-512'])
    const t = await createTransport(secure(kafkaConfig(brokers), { mechanism: 'SCRAM-SHA-256' }))
    const admin = t.admin()
    await admin.connect()
    expect(Array.isArray(await admin.listTopics())).toBe(true)
    await admin.disconnect()
  })

  /** the permanent error a connect rejects with, within `ms` (librdkafka alone would take 30 s and say "broker transport failure") */
  async function refusal(connect: () => Promise<void>, ms: number): Promise<PermanentError> {
    const t0 = Date.now()
    const err = await connect().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(Date.now() - t0).toBeLessThan(ms)
    expect(err).toBeInstanceOf(PermanentError)
    return err as PermanentError
  }

  it('wrong password: a permanent KAFKA_AUTH error naming the settings, in seconds, for producer, consumer and admin', async () => {
    const kafka = secure(kafkaConfig(brokers), { mechanism: 'SCRAM-SHA-512', passwordFile: join(pki, 'wrong-password') })
    const t = await createTransport(kafka)
    const p = await refusal(() => t.producer().connect(), 15_000)
    expect(p.code).toBe('KAFKA_AUTH')
    expect(p.message).toMatch(/SASL authentication failed \(SCRAM-SHA-512, user pullback\).*kafka\.auth\.sasl\.passwordFile/)
    expect(p.message).not.toContain('not-the-password')
    const c = await refusal(() => t.consumer({ groupId: uniqueName('g'), topics: ['x'] }).start(async () => undefined), 15_000)
    expect(c.code).toBe('KAFKA_AUTH')
    const b = await refusal(() => t.consumer({ groupId: uniqueName('g'), topics: ['x'], maxBufferedBytes: 4 * 1024 * 1024 }).start(async () => undefined), 15_000)
    expect(b.code).toBe('KAFKA_AUTH')
    // the library's admin connect sends nothing: its first request is refused the same way
    const a = await refusal(() => t.admin().ensureTopics([{ topic: uniqueName('never') }]), 15_000)
    expect(a.code).toBe('KAFKA_AUTH')
  })

  it('a CA that did not sign the broker: a permanent KAFKA_TLS error naming kafka.tls.caFile', async () => {
    const other = join(pki, 'other-ca.crt')
    const t = await createTransport(secure(kafkaConfig(brokers), { caFile: other }))
    const e = await refusal(() => t.producer().connect(), 15_000)
    expect(e.code).toBe('KAFKA_TLS')
    expect(e.message).toContain(`kafka.tls.caFile (${other})`)
    expect(e.message).toMatch(/certificate verify failed/)
  })

  it('end to end: a signed rollback published by the decision publisher, executed by the actuator, announced on the deployments topic', async () => {
    const kafka = secure(kafkaConfig(brokers))
    const transport: KafkaTransport = await createTransport(kafka)
    const keys = makeKeys()
    const k8s = new FakeK8s({ history: ['1.2.0', '1.3.0'].map(IMG), readyAfterMs: 50 })
    const server = await k8s.start()
    let actuator: Actuator | undefined
    let publisher: DecisionPublisher | undefined
    let events: Consumer | undefined
    try {
      const admin = transport.admin()
      await admin.connect()
      await admin.ensureTopics([kafka.topics.decisions, kafka.topics.deployments, kafka.topics.audit].map((topic) => ({ topic })))
      await admin.disconnect()
      await promote(transport, kafka, [
        ['1.2.0', keys.artifact.signer],
        ['1.3.0', keys.artifact.signer],
      ])
      const seen: DeploymentEvent[] = []
      events = transport.consumer({ groupId: `${kafka.groupPrefix}.test-events`, topics: [kafka.topics.deployments], fromBeginning: true })
      await events.start(async (b) => void seen.push(...b.messages.map((m) => JSON.parse(m.value!.toString()) as DeploymentEvent)))
      actuator = buildActuator(transport, kafka, actuatorConfig(keys, { driver: { type: 'kubernetes', server, pollInterval: '50ms' }, auditFile: join(keys.dir, 'audit.jsonl') }))
      await actuator.start()
      publisher = buildPublisher(transport, kafka, keys.decision.signer)
      await publisher.start()
      const rb = verdict('rollback')
      expect(publisher.publish(rb).kind).toBe('queued')
      await until(() => seen.length > 0, 30_000, 'the rollback event')
      expect(seen[0]).toMatchObject({ kind: 'rollback', decisionId: rb.id, version: '1.2.0', artifact: IMG('1.2.0') })
      expect(k8s.currentImage()).toBe(IMG('1.2.0'))
    } finally {
      await actuator?.shutdown()
      await publisher?.shutdown()
      await events?.stop()
      await k8s.stop()
      rmSync(keys.dir, { recursive: true, force: true })
    }
  }, 60_000)
})
