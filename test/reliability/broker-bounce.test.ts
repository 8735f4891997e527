/**
 * A Kafka broker bounce (issue 11, item 0). The built sidecar and actuator run as child processes
 * against a broker of this test's own (other ports, its own data directory: the shared broker other
 * tests use is never stopped). The broker is stopped for about 8 s and started again with its data;
 * meanwhile the sidecar signs a rollback decision from telemetry it receives.
 *
 * Asserts:
 * - both processes are still running afterwards and answer /livez (before the fix librdkafka
 *   aborted both, `rd_kafka_enq_once_del_source_return: Assertion 'eonce->refcnt > 0'`, 4 of 4);
 * - the decision signed while the broker was down was written ahead to the WAL file before the
 *   sidecar logged it, reaches the decisions topic once the broker is back, and the actuator acts
 *   on it (its audit record names the decision id);
 * - the WAL is emptied once the broker acknowledged the decision.
 *
 * Needs `npm run build` first (it runs dist/src/cli/main.js, as an operator would), and java + mvn
 * for tools/kafka/broker.sh. Budget: about 60-90 s.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import type { Consumer } from '../../src/kafka/types.js'
import { generateKeyPairFiles } from '../../src/publish/signing.js'
import { generate } from '../support/otlp-fixtures.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const main = join(process.env.PULLBACK_DIST ?? join(root, 'dist'), 'src/cli/main.js')
const brokerScript = join(root, 'tools/kafka/broker.sh')
const PORT = Number(process.env.BOUNCE_KAFKA_PORT ?? 19392)
const brokerEnv = { ...process.env, KAFKA_PORT: String(PORT), KAFKA_CONTROLLER_PORT: String(PORT + 1), KAFKA_DIR: join(tmpdir(), `pullback-kafka-bounce-${PORT}`) }
const OUTAGE_MS = 8_000

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0
const canRun = has('java') && has('mvn')
if (!canRun && process.env.CI) throw new Error('broker-bounce: java and mvn are required under CI')

async function broker(cmd: 'start' | 'stop' | 'resume'): Promise<string> {
  const { stdout } = await run('bash', [brokerScript, cmd], { env: brokerEnv, timeout: 90_000 })
  return stdout.trim()
}

interface Child {
  name: string
  proc: ChildProcess
  lines: Record<string, unknown>[]
  raw: string[]
}

function startChild(name: string, args: string[]): Child {
  const proc = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OTEL_SDK_DISABLED: 'true' } })
  const c: Child = { name, proc, lines: [], raw: [] }
  let buf = ''
  const take = (chunk: Buffer) => {
    buf += chunk.toString()
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      c.raw.push(line)
      if (c.raw.length > 2000) c.raw.shift()
      try {
        c.lines.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        // not a log line (an abort message): kept in raw
      }
    }
  }
  proc.stdout!.on('data', take)
  proc.stderr!.on('data', take)
  return c
}

const alive = (c: Child) => c.proc.exitCode === null && c.proc.signalCode === null

async function until<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>, children: Child[] = []): Promise<T> {
  const t0 = Date.now()
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    for (const c of children) {
      if (!alive(c)) throw new Error(`${c.name} died (${c.proc.exitCode ?? c.proc.signalCode}) waiting for ${what}:\n${c.raw.slice(-15).join('\n')}`)
    }
    if (Date.now() - t0 > ms) {
      const tails = children.map((c) => `--- ${c.name}:\n${c.raw.filter((l) => !l.includes('librdkafka')).slice(-12).join('\n')}`).join('\n')
      throw new Error(`timed out after ${ms} ms waiting for ${what}\n${tails}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

const logged = (c: Child, pred: (l: Record<string, unknown>) => boolean) => c.lines.find(pred)

async function livez(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/livez`, { signal: AbortSignal.timeout(2000) })).status
  } catch {
    return 0
  }
}

/** 40 s of a healthy 1.0.0, then 20 s of a failing 1.1.0, ending now: enough for the fast contract below to decide a rollback at once. */
async function sendBadDeployment(httpPort: number): Promise<void> {
  const start = Math.floor(Date.now() / 1000) * 1000 - 60_000
  const lines = generate({
    seed: 7,
    start,
    durationS: 60,
    namespace: 'shop',
    service: 'checkout',
    metricsEveryS: 1000,
    // the error rate alone is critical (60 % > 30 %): one witness suffices
    load: (t) => (t < 40 ? [{ version: '1.0.0', rps: 30, errorRate: 0.01, medianMs: 20 }] : [{ version: '1.1.0', rps: 30, errorRate: 0.6, medianMs: 20 }]),
  })
  for (const body of lines) {
    if (!body.includes('resourceSpans')) continue
    const r = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(r.status).toBe(200)
  }
}

describe.skipIf(!canRun)('broker bounce (own broker, built processes)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-bounce-'))
  const children: Child[] = []
  let brokers = ''
  let transport: ConfluentTransport | undefined
  let reader: Consumer | undefined

  beforeAll(async () => {
    if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`)
    brokers = await broker('start')
  }, 120_000)

  afterAll(async () => {
    await reader?.stop()
    for (const c of children) if (alive(c)) c.proc.kill('SIGKILL')
    await broker('stop').catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  it('both processes survive an 8 s outage; a rollback signed during it is published and acted on afterwards', async () => {
    const keys = generateKeyPairFiles(dir, 'decisions')
    const walFile = join(dir, 'wal', 'decisions.wal')
    const auditFile = join(dir, 'audit.jsonl')
    const kafka = { brokers: [brokers], groupPrefix: 'bounce' }
    const sidecarCfg = {
      kafka,
      engine: {
        lateness: '1s',
        defaults: {
          window: '3s',
          slices: 3,
          baselineWindow: '10s',
          watch: '2m',
          verificationWindow: '10s',
          minSamples: 20,
          signals: { resource: { window: '20s', warmup: '5s' }, probe: { startupGrace: '10s' } },
        },
      },
      signals: { bucket: '1s', fineRetention: '30s', coarseBucket: '5s', retention: '3m' },
      receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } }, kafkaSpans: { enabled: true } },
      publish: { signingKey: keys.privateKeyFile, retry: { max: '1s' }, drainTimeout: '2s', wal: { file: walFile } },
      runtime: { admin: { endpoint: '127.0.0.1:0' }, telemetry: { enabled: false } },
    }
    const actuatorCfg = {
      kafka,
      actuator: { driver: { type: 'simulated' }, verifyKeys: [keys.publicKeyFile], artifactKeys: [keys.publicKeyFile], auditFile },
      runtime: { admin: { endpoint: '127.0.0.1:0' }, telemetry: { enabled: false } },
    }
    writeFileSync(join(dir, 'sidecar.yaml'), JSON.stringify(sidecarCfg))
    writeFileSync(join(dir, 'actuator.yaml'), JSON.stringify(actuatorCfg))

    const T0 = Date.now()
    const mark = (what: string) => process.stderr.write(`[bounce +${Date.now() - T0} ms] ${what}\n`)
    const sidecar = startChild('sidecar', ['sidecar', '--config', join(dir, 'sidecar.yaml')])
    const actuator = startChild('actuator', ['actuator', '--config', join(dir, 'actuator.yaml')])
    children.push(sidecar, actuator)
    const both = [sidecar, actuator]
    const started = await until('sidecar started', 45_000, () => logged(sidecar, (l) => l.msg === 'sidecar started'), both)
    const httpPort = started.http as number
    const sidecarAdmin = (started.admin as { port: number }).port
    await until('actuator started', 45_000, () => logged(actuator, (l) => l.msg === 'actuator started'), both)
    const actuatorAdmin = (await until('actuator admin', 10_000, () => logged(actuator, (l) => l.msg === 'admin server listening'), both)).port as number
    mark('both up')
    expect(await livez(sidecarAdmin)).toBe(200)
    expect(await livez(actuatorAdmin)).toBe(200)
    // as the kubelet does: readiness every 2 s throughout (the sidecar's readiness includes a Kafka round trip)
    const readiness = setInterval(() => {
      for (const port of [sidecarAdmin, actuatorAdmin]) void fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1500) }).catch(() => undefined)
    }, 2_000)
    onTestFinished(() => clearInterval(readiness))
    // let the consumers settle into their groups (and the old progress probe run at least once)
    await new Promise((r) => setTimeout(r, 3_000))

    await broker('stop')
    mark('broker stopped')
    const downAt = Date.now()
    await sendBadDeployment(httpPort)
    const decision = await until('a rollback decision', 20_000, () => logged(sidecar, (l) => l.msg === 'decision' && l.verdict === 'rollback'), both)
    const id = decision.id as string
    mark('decision signed')
    expect(decision.publish).toBe('queued')
    // signed while the broker was down, and on disk before the sidecar logged it
    expect(readFileSync(walFile, 'utf8')).toContain(id)
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - downAt))))
    mark('resuming')
    await broker('resume')
    mark('broker back')

    transport = new ConfluentTransport({ brokers: [brokers], clientId: 'bounce-test' })
    const onTopic: string[] = []
    reader = transport.consumer({ groupId: `bounce-reader-${Date.now()}`, topics: ['pullback.decisions'], fromBeginning: true, onError: () => undefined })
    await reader.start(async (b) => {
      for (const m of b.messages) onTopic.push(String(m.headers['pullback-id']))
    })
    await until('the decision on the topic', 60_000, () => onTopic.includes(id) || undefined, both)
    mark('on the topic')
    await until('the actuator acting on it', 30_000, () => existsSync(auditFile) && readFileSync(auditFile, 'utf8').includes(id), both)
    await until('the WAL emptied after the ack', 10_000, () => statSync(walFile).size === 0, both)

    mark('acted on')
    expect(alive(sidecar)).toBe(true)
    expect(alive(actuator)).toBe(true)
    expect(await livez(sidecarAdmin)).toBe(200)
    expect(await livez(actuatorAdmin)).toBe(200)
    expect(both.flatMap((c) => c.raw).filter((l) => l.includes('Assertion'))).toEqual([])
    expect(onTopic.filter((x) => x === id)).toHaveLength(1)

    for (const c of both) c.proc.kill('SIGTERM')
    mark('stopping')
    await until('both exited', 30_000, () => both.every((c) => !alive(c)) || undefined)
    mark('exited')
  }, 150_000)
})
