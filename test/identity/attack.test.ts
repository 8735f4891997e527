/**
 * Issue 13 item 4, the attack as reported, end to end through the real OTLP receivers: healthy
 * "shop/checkout 1.4.0" spans, then "1.5.0" spans with 33 % errors, sent to the OTLP port by a pod
 * of namespace "other". Without identity binding it produces a real rollback of shop/checkout (the
 * control case: this test fails when the binding does nothing). With identity.mode enforce every
 * span is rejected (OTLP partial success naming the reason) and nothing is decided; flag lets it
 * through, counted and marked; the same spans from checkout's own pod are accepted and filled.
 *
 * Senders are told apart by their source address on loopback (127.0.0.2 is checkout's pod,
 * 127.0.0.3 the attacker's), served by the fake Kubernetes API's pod list and watch.
 */
import http from 'node:http'
import * as grpc from '@grpc/grpc-js'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { IdentityStage } from '../../src/identity/index.js'
import type { ConsumeResult, TelemetryConsumer } from '../../src/receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'
import { OtlpGrpcReceiver, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { alignDown } from '../../src/signals/view.js'
import { eventually } from '../receivers/helpers.js'
import { TraceResp, encodeTraces } from '../receivers/oracle.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { DEFAULT_START, generate, type VersionLoad } from '../support/otlp-fixtures.js'

const cfg = parseConfig({})
const CHECKOUT_IP = '127.0.0.2'
const ATTACKER_IP = '127.0.0.3'
const T0 = 320 // more than the 5 min baseline window of 1.4.0 before the "deploy"
const load = (version: string, errorRate: number): VersionLoad => ({ version, rps: 40, errorRate, medianMs: 40 })
// shop/checkout (the fixture's default identity), as the attacker sent it
const attackLines = generate({ seed: 13, durationS: T0 + 120, load: (t) => (t < T0 ? [load('1.4.0', 0.005)] : [load('1.5.0', 0.33)]) }).filter((l) => l.includes('"resourceSpans"'))

/** Spans into a pipeline ticked on the spans' own clock (as test/interop/collector-rollback.test.ts). */
class TelemetryTimePipeline implements TelemetryConsumer {
  readonly pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
  readonly verdicts: Verdict[] = []
  readonly resources: Array<Record<string, unknown>> = []
  private now = -Infinity
  private lastTickBucket = -Infinity

  consumeTraces(req: TracesRequest): ConsumeResult {
    for (const rs of req.resourceSpans) {
      if (this.resources.length < 3) this.resources.push(rs.resource)
      for (const s of rs.spans) this.now = Math.max(this.now, s.endTimeMs)
    }
    const result = this.pipeline.consumeTraces(req)
    const bucket = alignDown(this.now - cfg.engine.lateness, this.pipeline.store.bucketMs)
    if (bucket > this.lastTickBucket) {
      this.lastTickBucket = bucket
      this.verdicts.push(...this.pipeline.tick(Math.floor(this.now), this.now - cfg.engine.lateness).verdicts)
    }
    return result
  }

  consumeMetrics(req: MetricsRequest): ConsumeResult {
    return this.pipeline.consumeMetrics(req)
  }
}

function post(port: number, body: string, localAddress: string): Promise<{ status: number; body: { partialSuccess?: { rejectedSpans?: string | number; errorMessage?: string } } }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/traces', method: 'POST', localAddress, headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

let fake: FakeK8s
let apiServer: string
let stage: IdentityStage | undefined
let receiver: OtlpHttpReceiver | undefined
let consumer: TelemetryTimePipeline

beforeEach(async () => {
  fake = new FakeK8s({ history: ['registry.example/unused:1'] })
  fake.pods.add({ name: 'checkout-7d9-abc', namespace: 'shop', ip: CHECKOUT_IP, labels: { 'app.kubernetes.io/name': 'checkout' } })
  fake.pods.add({ name: 'attacker-1', namespace: 'other', ip: ATTACKER_IP, labels: { 'app.kubernetes.io/name': 'checkout' } })
  apiServer = await fake.start()
  consumer = new TelemetryTimePipeline()
})

afterEach(async () => {
  await receiver?.shutdown()
  await stage?.shutdown()
  consumer.pipeline.shutdown()
  await fake.stop()
  receiver = undefined
  stage = undefined
})

async function run(mode: 'off' | 'flag' | 'enforce', from: string): Promise<{ rejectedSpans: number; messages: Set<string> }> {
  stage = new IdentityStage({ config: parseConfig({ identity: { mode, apiServer } }).identity, env: { NODE_NAME: 'node-a' } })
  await stage.start()
  receiver = new OtlpHttpReceiver({ consumer: stage.wrap(consumer), endpoint: '127.0.0.1:0' })
  await receiver.start()
  let rejectedSpans = 0
  const messages = new Set<string>()
  for (const line of attackLines) {
    const r = await post(receiver.port, line, from)
    expect(r.status).toBe(200)
    rejectedSpans += Number(r.body.partialSuccess?.rejectedSpans ?? 0)
    if (r.body.partialSuccess?.errorMessage) messages.add(r.body.partialSuccess.errorMessage)
  }
  return { rejectedSpans, messages }
}

const rollbacks = () => consumer.verdicts.filter((v) => v.kind === 'rollback').map((v) => `${v.namespace}/${v.service} ${v.version} -> ${v.baselineVersion}`)

describe('issue 13 item 4: spoofed telemetry', () => {
  it('control: without identity binding the attacker rolls back shop/checkout', async () => {
    const r = await run('off', ATTACKER_IP)
    expect(r.rejectedSpans).toBe(0)
    expect(rollbacks()).toEqual(['shop/checkout 1.5.0 -> 1.4.0'])
  })

  it('enforce: every span of the pod in namespace "other" is rejected with partial success; no rollback', async () => {
    const r = await run('enforce', ATTACKER_IP)
    const sent = receiver!.stats()
    expect(sent.acceptedSpans).toBe(0)
    expect(r.rejectedSpans).toBe(sent.partial)
    expect(r.rejectedSpans).toBeGreaterThan(10_000)
    expect([...r.messages]).toEqual([`identity: 1 resource(s) rejected (identity.mode enforce): namespace "shop" claimed but the sending pod is other/attacker-1`])
    expect(stage!.stats().check?.rejected.namespace).toBe(attackLines.length)
    expect(consumer.verdicts).toEqual([])
    expect(consumer.pipeline.store.versions('shop', 'checkout')).toEqual([])
  })

  it('flag: the spans are kept, counted and marked (flag observes; it does not protect)', async () => {
    const r = await run('flag', ATTACKER_IP)
    expect(r.rejectedSpans).toBe(0)
    expect(stage!.stats().check?.flagged.namespace).toBe(attackLines.length)
    expect(consumer.resources[0]).toMatchObject({ 'pullback.identity.contradiction': 'namespace', 'k8s.pod.name': 'attacker-1' })
    expect(rollbacks()).toEqual(['shop/checkout 1.5.0 -> 1.4.0'])
  })

  it('enforce: the same deployment sent by checkout\'s own pod is accepted, filled, and still rolled back', async () => {
    const r = await run('enforce', CHECKOUT_IP)
    expect(r.rejectedSpans).toBe(0)
    expect(stage!.stats().check?.filled).toBe(attackLines.length)
    expect(consumer.resources[0]).toMatchObject({ 'k8s.pod.name': 'checkout-7d9-abc', 'k8s.pod.uid': 'uid-shop-checkout-7d9-abc' })
    expect(rollbacks()).toEqual(['shop/checkout 1.5.0 -> 1.4.0'])
  })
})

describe('identity on the gRPC receiver', () => {
  type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
  const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')
  const body = encodeTraces({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }, { key: 'service.namespace', value: { stringValue: 'shop' } }] },
        scopeSpans: [{ spans: Array.from({ length: 5 }, () => ({ kind: 2, startTimeUnixNano: `${DEFAULT_START}000000`, endTimeUnixNano: `${DEFAULT_START + 20}000000` })) }],
      },
    ],
  })

  it('associates call.getPeer() with the pod; a pod that appears later is picked up from the watch', async () => {
    stage = new IdentityStage({ config: parseConfig({ identity: { mode: 'enforce', apiServer } }).identity, env: { NODE_NAME: 'node-a' } })
    await stage.start()
    const grpcReceiver = new OtlpGrpcReceiver({ consumer: stage.wrap(consumer), endpoint: '127.0.0.1:0' })
    await grpcReceiver.start()
    const client = new TraceClient(`127.0.0.1:${grpcReceiver.port}`, grpc.credentials.createInsecure()) as unknown as Raw
    const call = () =>
      new Promise<{ rejected: number; message: string }>((resolve, reject) =>
        client.Export(body, new grpc.Metadata(), (err, res) => {
          if (err) return reject(err)
          const r = TraceResp.toObject(TraceResp.decode(res!), { longs: Number }) as { partialSuccess?: { rejectedSpans?: number; errorMessage?: string } }
          resolve({ rejected: r.partialSuccess?.rejectedSpans ?? 0, message: r.partialSuccess?.errorMessage ?? '' })
        }),
      )
    try {
      // 127.0.0.1 is no pod yet
      expect(await call()).toEqual({ rejected: 5, message: 'identity: 1 resource(s) rejected (identity.mode enforce): peer 127.0.0.1 is not a pod on this node' })
      // then it is a pod of namespace other
      fake.pods.add({ name: 'intruder', namespace: 'other', ip: '127.0.0.1' })
      await eventually(() => stage!.pods!.byIp('127.0.0.1').length === 1)
      expect(await call()).toMatchObject({ rejected: 5, message: expect.stringContaining('namespace "shop" claimed but the sending pod is other/intruder') })
      // and then checkout's (the IP reused by a new pod)
      fake.pods.remove('uid-other-intruder')
      fake.pods.add({ name: 'checkout-2', namespace: 'shop', ip: '127.0.0.1', labels: { 'app.kubernetes.io/name': 'checkout' } })
      await eventually(() => stage!.pods!.byIp('127.0.0.1')[0]?.name === 'checkout-2')
      expect(await call()).toEqual({ rejected: 0, message: '' })
      expect(grpcReceiver.stats()).toMatchObject({ acceptedSpans: 5, partial: 10 })
      expect(stage.stats().check).toMatchObject({ rejected: { unknown_peer: 1, namespace: 1 }, filled: 1 })
    } finally {
      client.close()
      await grpcReceiver.shutdown()
    }
  })

  it('enforce before the first pod list answers UNAVAILABLE (the exporter retries), not a silent drop', async () => {
    fake.pods.unavailable = true
    stage = new IdentityStage({ config: parseConfig({ identity: { mode: 'enforce', apiServer, syncTimeout: '200ms', backoff: { min: '50ms', max: '100ms' } } }).identity, env: { NODE_NAME: 'node-a' } })
    await stage.start()
    expect(stage.readiness().ok).toBe(false)
    receiver = new OtlpHttpReceiver({ consumer: stage.wrap(consumer), endpoint: '127.0.0.1:0' })
    await receiver.start()
    const r = await post(receiver.port, attackLines[0]!, CHECKOUT_IP)
    expect(r.status).toBe(503)
    fake.pods.unavailable = false
    await eventually(() => stage!.readiness().ok, 5000)
    expect((await post(receiver.port, attackLines[0]!, CHECKOUT_IP)).status).toBe(200)
    expect(stage.stats().check?.notSynced).toBe(1)
  })
})
