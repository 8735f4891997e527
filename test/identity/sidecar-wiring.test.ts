/**
 * The identity stage as the sidecar assembles it: in front of the pipeline, started before the
 * receivers, a readiness check, and shut down with the receivers.
 */
import { generateKeyPairSync } from 'node:crypto'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { eventually } from '../receivers/helpers.js'

let fake: FakeK8s
let apiServer: string

beforeEach(async () => {
  fake = new FakeK8s({ history: ['registry.example/unused:1'] })
  apiServer = await fake.start()
})

afterEach(async () => {
  await fake.stop()
})

// the sidecar runs on the wall clock: spans of now
const spans = (namespace: string, now = Date.now()) =>
  JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }, { key: 'k8s.namespace.name', value: { stringValue: namespace } }] },
        scopeSpans: [{ spans: [1, 2, 3].map((i) => ({ traceId: '0'.repeat(31) + i, spanId: '0'.repeat(15) + i, name: 'GET', kind: 2, startTimeUnixNano: `${now - 5}000000`, endTimeUnixNano: `${now}000000` })) }],
      },
    ],
  })

it('a sidecar with identity.mode enforce rejects what contradicts the sending pod and accepts the rest', async () => {
  fake.pods.add({ name: 'app-1', namespace: 'other', ip: '127.0.0.1', node: 'node-w' })
  const config = parseConfig({
    receivers: { otlp: { grpc: { enabled: false }, http: { endpoint: '127.0.0.1:0' } }, deployments: { enabled: false } },
    runtime: { admin: { endpoint: '127.0.0.1:0' }, telemetry: { enabled: false } },
    identity: { mode: 'enforce', apiServer, nodeName: 'node-w' },
  })
  const sidecar = new Sidecar({ config, transport: new MemoryBus(), logger: silentLogger, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
  await sidecar.start()
  try {
    const url = `http://127.0.0.1:${sidecar.receivers.http?.port}/v1/traces`
    const post = async (body: string) => (await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } })).json() as Promise<{ partialSuccess?: { rejectedSpans?: string; errorMessage?: string } }>
    const bad = await post(spans('shop'))
    expect(Number(bad.partialSuccess?.rejectedSpans)).toBe(3)
    expect(bad.partialSuccess?.errorMessage).toContain('the sending pod is other/app-1')
    const good = await post(spans('other'))
    expect(Number(good.partialSuccess?.rejectedSpans ?? 0)).toBe(0)
    expect(sidecar.pipeline.store.versions('shop', 'checkout')).toEqual([])
    expect(sidecar.pipeline.store.versions('other', 'checkout').length).toBe(1)
    expect(sidecar.identity.events()).toMatchObject({ 'rejected.namespace': 1, filled: 1, 'pods.lists': 1 })
    const admin = sidecar['admin' as keyof Sidecar] as unknown as { address(): { port: number } }
    const ready = (await (await fetch(`http://127.0.0.1:${admin.address().port}/readyz`)).json()) as Record<string, unknown>
    expect(JSON.stringify(ready)).toContain('identity')
  } finally {
    await sidecar.shutdown()
  }
  // the pod watch ended with the sidecar
  await eventually(() => fake.pods.openWatches() === 0)
})
