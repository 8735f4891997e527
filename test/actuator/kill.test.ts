/**
 * Exactly-once effect across a real crash: the actuator runs in a child process (real broker, fake
 * Kubernetes API), receives the same decision three times, and is SIGKILLed the moment its cutover
 * PATCH has been applied by the API server and before it sees the answer, i.e. between cutover and
 * audit. A second actuator process then takes over the group: one PATCH in total, one audit record.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { build } from 'rolldown'
import { parseAudit } from '../../src/actuator/audit.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import { sealDecision } from '../../src/publish/envelope.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { IMG, buildPublisher, kafkaConfig, makeKeys, promote, until, verdict } from './helpers.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
let childEntry: string
let bundleDir: string

beforeAll(async () => {
  // inside the repo so that the bundle resolves packages from ./node_modules
  const dir = join(root, 'node_modules', '.cache', 'pullback-test', uniqueName('child'))
  mkdirSync(dir, { recursive: true })
  childEntry = join(dir, 'actuator-child.mjs')
  bundleDir = dir
  await build({
    input: join(root, 'test/support/actuator-child.ts'),
    platform: 'node',
    external: (id) => !id.startsWith('.') && !id.startsWith('/'),
    output: { dir, entryFileNames: 'actuator-child.mjs', format: 'esm' },
    logLevel: 'silent',
  })
})

function startChild(env: string): { child: ChildProcess; ready: Promise<void>; out: string[] } {
  const child = spawn(process.execPath, [childEntry], { env: { ...process.env, PULLBACK_CHILD: env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const out: string[] = []
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out.push(...c.toString().split('\n').filter(Boolean))
      if (out.includes('ready')) resolve()
    })
    child.on('exit', (code, sig) => reject(new Error(`child exited ${code ?? sig} before ready`)))
  })
  return { child, ready, out }
}

describeKafka('actuator killed mid-path', () => {
  const children: ChildProcess[] = []
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    rmSync(bundleDir, { recursive: true, force: true })
  })

  it('the same decision three times + SIGKILL between cutover and audit: one patch, one complete audit record', async () => {
    const brokers = kafkaBrokers().split(',')
    const transport = await createTransport(kafkaSchema.parse({ brokers }))
    const kafka = kafkaConfig(brokers)
    const keys = makeKeys()
    const auditFile = join(keys.dir, 'audit.jsonl')
    const k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')], readyAfterMs: 100 })
    const server = await k8s.start()
    await promote(transport, kafka, [
      ['1.2.0', keys.artifact.signer],
      ['1.3.0', keys.artifact.signer],
    ])
    const env = JSON.stringify({
      kafka,
      actuator: {
        driver: { type: 'kubernetes', server, pollInterval: '50ms' },
        verifyKeys: [keys.decision.pub],
        artifactKeys: [keys.artifact.pub],
        stateTopic: uniqueName('state'),
        escalationsTopic: uniqueName('esc'),
        auditFile,
        recoveryTimeout: '60s',
      },
    })

    const first = startChild(env)
    children.push(first.child)
    await first.ready
    const firstExit = new Promise<void>((r) => first.child.on('exit', () => r()))
    k8s.afterPatch = async () => {
      first.child.kill('SIGKILL')
      await firstExit
    }

    const rb = verdict('rollback')
    const value = JSON.stringify(sealDecision(rb, keys.decision.signer, Date.now()))
    const p = transport.producer()
    await p.connect()
    await p.send(kafka.topics.decisions, [1, 2, 3].map(() => ({ key: 'default/web', value })))
    await firstExit
    expect(first.child.signalCode).toBe('SIGKILL')
    expect(k8s.patches()).toHaveLength(1)
    expect(k8s.currentImage()).toBe(IMG('1.2.0'))
    expect(existsSync(auditFile)).toBe(false)
    k8s.afterPatch = undefined

    const second = startChild(env)
    children.push(second.child)
    await second.ready
    await until(() => second.out.some((l) => l.startsWith(`transition ${rb.id} announce recovery`)), 60_000, 'resumed decision announced')
    const publisher = buildPublisher(transport, kafka, keys.decision.signer)
    await publisher.start()
    publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => existsSync(auditFile) && readFileSync(auditFile, 'utf8').trim().split('\n').length >= 1, 60_000, 'audit record')
    // let the two duplicate deliveries play out too
    await until(() => second.out.filter((l) => l.startsWith(`transition ${rb.id} verify gate`)).length >= 1, 10_000, 'transitions')
    await new Promise((r) => setTimeout(r, 1000))
    await publisher.shutdown()
    await p.disconnect()
    second.child.kill('SIGTERM')
    await new Promise<void>((r) => second.child.on('exit', () => r()))
    await k8s.stop()

    expect(k8s.patches()).toHaveLength(1)
    const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => parseAudit(l)!)
    expect(records).toHaveLength(1)
    // the resumed attempt found the target template in place (level-triggered) and did not patch
    expect(records[0]).toMatchObject({ decisionId: rb.id, outcome: 'recovered', restoredArtifact: IMG('1.2.0'), patched: false })
    const phases = records[0]!.phases.map((x) => x.phase)
    expect(phases).toContain('resumed')
    expect(phases).toContain('cutover-already-in-place')
    expect(phases.filter((x) => x === 'cutover-started').length).toBeGreaterThanOrEqual(1)
  }, 120_000)
})
