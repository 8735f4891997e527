/**
 * Decision-path benchmark against a real broker. Build with `npm run build`, run with
 * `KAFKA_BROKERS=127.0.0.1:19092 node dist/bench/decisions.js [--n 300]`.
 *
 * (a) publish: a confirmed verdict handed to DecisionPublisher.publish() -> the broker's ack
 *     (signing, JSON, idempotent acks=all produce). Sequential. Target p99 < 250 ms.
 * (b) actuate: a signed rollback decision sent to the decisions topic (clock starts before the
 *     produce call, so it includes the produce) -> the first cutover request (GET deployment) at a
 *     fake Kubernetes API on loopback, through the real actuator (consumer group, signature
 *     check, gate, artifact selection, idempotency record written before the cutover).
 *     One decision at a time. Target p99 < 100 ms.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { createActuator } from '../src/actuator/index.js'
import { artifactTopicSpec, signArtifact, artifactKey } from '../src/actuator/artifacts.js'
import { silentLogger } from '../src/common/logger.js'
import { parseConfig } from '../src/config/load.js'
import type { Verdict } from '../src/engine/verdict.js'
import { createTransport } from '../src/kafka/index.js'
import { createPublisher } from '../src/publish/index.js'
import { sealDecision } from '../src/publish/envelope.js'
import { generateKeyPairFiles, loadSigner } from '../src/publish/signing.js'
import { FakeK8s } from '../test/support/fake-k8s.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : dflt
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

const IMG = (v: string) => `registry.local/shop/web:${v}`

function verdict(id: string, service = 'web'): Verdict {
  const now = Date.now()
  return {
    kind: 'rollback', dryRun: false, id, deploymentId: `dep-${id}`, namespace: 'default', service, version: '1.3.0', baselineVersion: '1.2.0',
    baselineSource: 'snapshot', deployedAt: now - 60_000, decidedAt: now, artifact: IMG('1.3.0'), reason: 'bench',
    signals: [{ signal: 'error_rate', state: 'breach', mode: 'enforce', value: 0.2, baseline: 0.01, threshold: 0.02, samples: 1000, critical: false }],
  }
}

async function main(): Promise<void> {
  const n = arg('--n', 300)
  const warmup = 20
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',')
  const run = randomUUID().slice(0, 8)
  const dir = mkdtempSync(join(tmpdir(), 'pb-bench-'))
  const dk = generateKeyPairFiles(dir, 'decisions')
  const ak = generateKeyPairFiles(dir, 'artifacts')
  const k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')], readyAfterMs: 1 })
  const server = await k8s.start()
  const cfg = parseConfig({
    kafka: { brokers, groupPrefix: `bench-${run}`, topics: { decisions: `bench-${run}.decisions`, incidents: `bench-${run}.incidents`, audit: `bench-${run}.audit`, deployments: `bench-${run}.deployments`, artifacts: `bench-${run}.artifacts` } },
    publish: { signingKey: dk.privateKeyFile },
    actuator: {
      driver: { type: 'kubernetes', server, pollInterval: '5ms', name: 'web' },
      verifyKeys: [dk.publicKeyFile],
      artifactKeys: [ak.publicKeyFile],
      stateTopic: `bench-${run}.state`,
      escalationsTopic: `bench-${run}.escalations`,
      recoveryTimeout: '1h',
    },
  })
  const transport = await createTransport(cfg.kafka)
  const admin = transport.admin()
  await admin.connect()
  await admin.ensureTopics([{ topic: cfg.kafka.topics.decisions }, { topic: cfg.kafka.topics.incidents }, artifactTopicSpec(cfg.kafka.topics.artifacts)])
  await admin.disconnect()

  // (a) publisher -> ack
  const publisher = createPublisher(cfg, transport, silentLogger)
  await publisher.start()
  const pubLat: number[] = []
  for (let i = 0; i < n + warmup; i++) {
    const out = publisher.publish({ ...verdict(`p-${run}-${i}`), kind: 'incident' })
    if (out.kind !== 'queued') throw new Error('refused')
    const ack = await out.acked
    if (ack.kind === 'acked' && i >= warmup) pubLat.push(ack.latencyMs)
  }
  await publisher.shutdown()

  // (b) decision on the topic -> first cutover request
  const p = transport.producer()
  await p.connect()
  const signer = loadSigner(ak.privateKeyFile)
  // one service per decision (all backed by the one fake Deployment): a service has one rollback in flight at a time
  for (let s = 0; s < n + warmup; s++) {
    const recs = ['1.2.0', '1.3.0'].map((v, i) => signArtifact({ service: `default/web${s}`, artifact: IMG(v), promotedAt: Date.now() - 10_000 + i }, signer))
    await p.send(cfg.kafka.topics.artifacts, recs.map((rec) => ({ key: artifactKey(rec.service, rec.artifact), value: JSON.stringify(rec) })))
  }
  let announced = 0
  const actuator = createActuator(cfg, transport, silentLogger, { onTransition: (_id, from) => void (from === 'announce' && announced++) })
  await actuator.start()
  const dsigner = loadSigner(dk.privateKeyFile)
  const actLat: number[] = []
  for (let i = 0; i < n + warmup; i++) {
    const before = k8s.requests.length
    const value = JSON.stringify(sealDecision(verdict(`a-${run}-${i}`, `web${i}`), dsigner, Date.now()))
    const t0 = performance.now()
    await p.send(cfg.kafka.topics.decisions, [{ key: `default/web${i}`, value }])
    const target = announced + 1
    while (announced < target) await new Promise((r) => setTimeout(r, 1))
    const first = k8s.requests[before]
    if (!first) throw new Error('no cutover request')
    if (i >= warmup) actLat.push(first.hr - t0)
  }
  await p.disconnect()
  await actuator.shutdown()
  await k8s.stop()

  const row = (name: string, xs: number[], target: number) =>
    `${name.padEnd(44)} ${String(xs.length).padStart(5)} ${pct(xs, 50).toFixed(1).padStart(8)} ${pct(xs, 99).toFixed(1).padStart(8)} ${Math.max(...xs).toFixed(1).padStart(8)} ${String(target).padStart(8)}  ${pct(xs, 99) < target ? 'PASS' : 'FAIL'}`
  console.log(`decision path, broker ${brokers.join(',')}, ${n} samples after ${warmup} warm-up (ms)`)
  console.log(`${'path'.padEnd(44)} ${'n'.padStart(5)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)} ${'target'.padStart(8)}`)
  console.log(row('verdict -> publisher -> broker ack', pubLat, 250))
  console.log(row('decision produced -> first cutover request', actLat, 100))
  process.exit(0)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
