/**
 * The sidecar with `decider.distributed: true` on the embedded bus: two sidecars (two nodes) ingest
 * OTLP into partials on the partials topic; the one with `decider.enabled` runs a decider group
 * member that merges both nodes' partials into its engine. The default (distributed: false) keeps
 * the single-process path (test/runtime/sidecar.test.ts).
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { SpanKind } from '@opentelemetry/api'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import { parseConfig } from '../../src/config/load.js'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { waitFor } from '../support/wait.js'

function config(instanceId: string, enabled: boolean) {
  return parseConfig({
    kafka: { instanceId },
    decider: { distributed: true, enabled, partitions: 3 },
    receivers: { otlp: { grpc: { enabled: false }, http: { endpoint: '127.0.0.1:0' } } },
    runtime: { admin: { enabled: false }, telemetry: { enabled: false }, tickInterval: '100ms', state: { enabled: false } },
  })
}

function spans(n: number, pod: string): ReadableSpan[] {
  const collected: ReadableSpan[] = []
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'web', 'service.namespace': 'shop', 'service.version': '1.0.0', 'k8s.pod.name': pod }),
    spanProcessors: [{ onStart: () => undefined, onEnd: (s) => void collected.push(s), forceFlush: async () => undefined, shutdown: async () => undefined }],
  })
  const tracer = provider.getTracer('test')
  for (let i = 0; i < n; i++) tracer.startSpan('GET /', { kind: SpanKind.SERVER, attributes: { 'http.response.status_code': 200 } }).end()
  return collected
}

function send(url: string, batch: ReadableSpan[]): Promise<number> {
  const exp: SpanExporter = new OTLPTraceExporter({ url, timeoutMillis: 3000 })
  return new Promise((resolve) => exp.export(batch, (r) => resolve(r.code)))
}

describe('sidecar, decider.distributed', () => {
  it('two ingest nodes, one in-process decider: both nodes’ requests reach the decider’s engine, none is judged by a node', async () => {
    const bus = new MemoryBus({ defaultPartitions: 3 })
    const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey)
    const a = new Sidecar({ config: config('node-a', true), transport: bus, logger: silentLogger, signer })
    const b = new Sidecar({ config: config('node-b', false), transport: bus, logger: silentLogger, signer })
    await a.start()
    await b.start()
    try {
      expect(a.decider).toBeDefined()
      expect(b.decider).toBeUndefined()
      // only the node that decides consumes deployment events; an ingest-only node would drop them
      expect(a.receivers.deployments).toBeDefined()
      expect(b.receivers.deployments).toBeUndefined()
      expect(await send(`http://127.0.0.1:${a.receivers.http?.port}/v1/traces`, spans(30, 'web-1'))).toBe(0)
      expect(await send(`http://127.0.0.1:${b.receivers.http?.port}/v1/traces`, spans(20, 'web-2'))).toBe(0)
      // the nodes' own pipelines hold nothing: their telemetry became partials
      expect(a.pipeline.store.versions('shop', 'web')).toEqual([])
      await waitFor(() => (a.decider?.stats().decider?.observations ?? 0) > 0 && (a.partials?.stats().partials ?? 0) > 0 && (b.partials?.stats().partials ?? 0) > 0, 'partials from both nodes')
      await waitFor(() => {
        const s = a.decider?.pipeline()?.store.series({ namespace: 'shop', service: 'web', version: '1.0.0' })
        return s !== undefined && a.decider!.stats().decider!.partials >= 2
      }, 'both nodes merged')
      expect(a.decider!.stats().decider!.nodes).toBe(2 * 3) // 2 nodes heard on each of 3 partitions
      expect(a.decider!.stats().partitions).toEqual([0, 1, 2])
    } finally {
      await b.drain()
      await a.drain()
    }
  }, 60_000)

  it('a draining node sends its open buckets and leaves: the decider counts the leave on every partition, and the restarted node returns', async () => {
    const bus = new MemoryBus({ defaultPartitions: 3 })
    const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey)
    const a = new Sidecar({ config: config('node-a', true), transport: bus, logger: silentLogger, signer })
    const b = new Sidecar({ config: config('node-b', false), transport: bus, logger: silentLogger, signer })
    let b2: Sidecar | undefined
    await a.start()
    await b.start()
    const key = { namespace: 'shop', service: 'web', version: '1.0.0' }
    const requests = () => a.decider?.pipeline()?.store.window(key, 0, Date.now() + 60_000).requests ?? 0
    try {
      expect(await send(`http://127.0.0.1:${a.receivers.http?.port}/v1/traces`, spans(30, 'web-1'))).toBe(0)
      expect(await send(`http://127.0.0.1:${b.receivers.http?.port}/v1/traces`, spans(20, 'web-2'))).toBe(0)
      // b drains right after answering: what its open bucket holds goes out with the leave
      const drained = await b.drain()
      expect(drained.result).toBe('clean')
      expect(b.partials?.stats()).toMatchObject({ leaves: 1, droppedBatches: 0 })
      await waitFor(() => (a.decider?.stats().decider?.leaves ?? 0) === 3, 'the leave on the 3 partitions')
      await waitFor(() => requests() === 50, 'every request of both nodes in the decider')
      expect(a.decider!.stats().decider).toMatchObject({ leaves: 3, returns: 0, timeouts: 0 })
      // the DaemonSet's new pod under the same node name, within the grace
      b2 = new Sidecar({ config: config('node-b', false), transport: bus, logger: silentLogger, signer })
      await b2.start()
      await waitFor(() => (a.decider?.stats().decider?.returns ?? 0) === 3, 'node-b back on the 3 partitions')
      expect(a.decider!.stats().decider).toMatchObject({ leaves: 3, returns: 3, leavesExpired: 0, rejoins: 0, nodes: 2 * 3 })
    } finally {
      await b2?.drain()
      await b.drain()
      await a.drain()
    }
  }, 60_000)
})
