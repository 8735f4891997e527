/**
 * telemetrygen (the OpenTelemetry Collector project's OTLP load generator, built by
 * tools/peers/build.sh) into pullback's OTLP receivers, over gRPC and HTTP/protobuf, with and without
 * gzip. Every span and data point telemetrygen sends must be counted exactly once, both by the
 * pipeline behind the receiver and by the receiver's own stats, with nothing refused.
 *
 * telemetrygen has no compression flag; its Go OTLP exporters take OTEL_EXPORTER_OTLP_COMPRESSION
 * from the environment. A byte-counting relay between the two shows that gzip really was on the wire
 * (the compressed run must send less than half the bytes of the plain one for the same items).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { OtlpGrpcReceiver } from '../../src/receivers/otlp-grpc/receiver.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import type { ReceiverStats } from '../../src/receivers/stats.js'
import { CountingConsumer } from '../receivers/helpers.js'
import { CountingRelay, describePeers, peerPath, runPeer } from './peers.js'

type Transport = 'grpc' | 'http'
type Compression = 'none' | 'gzip'

const WORKERS = 2
const TRACES_PER_WORKER = 60
const CHILD_SPANS = 4
const METRICS_PER_WORKER = 150

describePeers('interop: telemetrygen -> pullback OTLP receivers', ['TELEMETRYGEN_BIN'], () => {
  const consumer = new CountingConsumer()
  const receivers = {
    grpc: new OtlpGrpcReceiver({ consumer, endpoint: '127.0.0.1:0' }),
    http: new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0' }),
  }

  beforeAll(async () => {
    await receivers.grpc.start()
    await receivers.http.start()
  })
  afterAll(async () => {
    await receivers.grpc.shutdown()
    await receivers.http.shutdown()
  })

  const refused = (s: ReceiverStats) => Object.values(s.rejected).reduce((a, b) => a + b, 0) + s.partial

  /** One telemetrygen run through a fresh relay; returns what pullback counted and the bytes sent. */
  async function run(transport: Transport, compression: Compression, signal: 'traces' | 'metrics', extra: string[]) {
    const receiver = receivers[transport]
    const relay = new CountingRelay(receiver.port)
    const port = await relay.listen()
    const service = `tg-${transport}-${compression}-${signal}`
    const before = { stats: receiver.stats(), spans: consumer.spans, points: consumer.points }
    try {
      const args = [signal, '--otlp-endpoint', `127.0.0.1:${port}`, '--otlp-insecure', '--workers', String(WORKERS), '--rate', '0', '--service', service, ...extra]
      if (transport === 'http') args.push('--otlp-http')
      const res = await runPeer(peerPath('TELEMETRYGEN_BIN'), args, { env: { OTEL_EXPORTER_OTLP_COMPRESSION: compression }, timeoutMs: 60_000 })
      expect(res.code, `telemetrygen ${args.join(' ')} failed:\n${res.stderr}`).toBe(0)
      const after = receiver.stats()
      return {
        spans: consumer.spans - before.spans,
        points: consumer.points - before.points,
        acceptedSpans: after.acceptedSpans - before.stats.acceptedSpans,
        acceptedPoints: after.acceptedPoints - before.stats.acceptedPoints,
        refused: refused(after) - refused(before.stats),
        sawService: consumer.services.has(service),
        bytes: relay.clientBytes,
      }
    } finally {
      await relay.close()
    }
  }

  for (const transport of ['grpc', 'http'] as const) {
    it(`traces over ${transport}: every span counted exactly, gzip off and on`, async () => {
      const expected = WORKERS * TRACES_PER_WORKER * (1 + CHILD_SPANS)
      const bytes: Record<Compression, number> = { none: 0, gzip: 0 }
      for (const compression of ['none', 'gzip'] as const) {
        const r = await run(transport, compression, 'traces', ['--traces', String(TRACES_PER_WORKER), '--child-spans', String(CHILD_SPANS)])
        expect({ spans: r.spans, acceptedSpans: r.acceptedSpans, refused: r.refused, sawService: r.sawService }, compression).toEqual({
          spans: expected,
          acceptedSpans: expected,
          refused: 0,
          sawService: true,
        })
        bytes[compression] = r.bytes
      }
      expect(bytes.gzip).toBeGreaterThan(0)
      expect(bytes.gzip, `gzip sent ${bytes.gzip} bytes, plain ${bytes.none}`).toBeLessThan(bytes.none / 2)
    })

    it(`metrics over ${transport}: every data point counted exactly (Sum and Histogram), gzip off and on`, async () => {
      const expected = WORKERS * METRICS_PER_WORKER
      const bytes: Record<Compression, number> = { none: 0, gzip: 0 }
      for (const compression of ['none', 'gzip'] as const) {
        for (const type of ['Sum', 'Histogram']) {
          const r = await run(transport, compression, 'metrics', ['--metrics', String(METRICS_PER_WORKER), '--metric-type', type])
          expect({ points: r.points, acceptedPoints: r.acceptedPoints, refused: r.refused, sawService: r.sawService }, `${type} ${compression}`).toEqual({
            points: expected,
            acceptedPoints: expected,
            refused: 0,
            sawService: true,
          })
          bytes[compression] += r.bytes
        }
      }
      expect(bytes.gzip).toBeGreaterThan(0)
      expect(bytes.gzip, `gzip sent ${bytes.gzip} bytes, plain ${bytes.none}`).toBeLessThan(bytes.none / 2)
    })
  }
})
