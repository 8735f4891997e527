/**
 * telemetrygen (the Collector project's load generator: grpc-go and the OTel Go OTLP exporters) into
 * BOTH gRPC transports (receivers.otlp.grpc.server grpc-js and http2), traces and metrics, gzip off
 * and on: every span and point counted exactly once, nothing refused, and gzip really on the wire.
 * The Go client is the second compatibility proof next to the OTel JS SDK exporters
 * (otlp-grpc.test.ts). Needs TELEMETRYGEN_BIN (tools/peers/build.sh); skipped with a note without it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { OtlpGrpcReceiver } from '../../src/receivers/otlp-grpc/receiver.js'
import type { ReceiverStats } from '../../src/receivers/stats.js'
import { CountingRelay, describePeers, peerPath, runPeer } from '../interop/peers.js'
import { CountingConsumer } from './helpers.js'
import { GRPC_SERVERS } from './grpc-servers.js'

const WORKERS = 2
const TRACES_PER_WORKER = 60
const CHILD_SPANS = 4
const METRICS_PER_WORKER = 150

for (const server of GRPC_SERVERS)
  describePeers(`interop: telemetrygen -> OTLP/gRPC receiver (${server})`, ['TELEMETRYGEN_BIN'], () => {
    const consumer = new CountingConsumer()
    const receiver = new OtlpGrpcReceiver({ server, consumer, endpoint: '127.0.0.1:0' })
    beforeAll(() => receiver.start())
    afterAll(() => receiver.shutdown())

    const refused = (s: ReceiverStats) => Object.values(s.rejected).reduce((a, b) => a + b, 0) + s.partial

    async function run(compression: 'none' | 'gzip', signal: 'traces' | 'metrics', extra: string[]) {
      const relay = new CountingRelay(receiver.port)
      const port = await relay.listen()
      const service = `tg-${server}-${compression}-${signal}`
      const before = { stats: receiver.stats(), spans: consumer.spans, points: consumer.points }
      try {
        const args = [signal, '--otlp-endpoint', `127.0.0.1:${port}`, '--otlp-insecure', '--workers', String(WORKERS), '--rate', '0', '--service', service, ...extra]
        const res = await runPeer(peerPath('TELEMETRYGEN_BIN'), args, { env: { OTEL_EXPORTER_OTLP_COMPRESSION: compression }, timeoutMs: 60_000 })
        expect(res.code, `telemetrygen ${args.join(' ')} failed:\n${res.stderr}`).toBe(0)
        const after = receiver.stats()
        return {
          spans: consumer.spans - before.spans,
          points: consumer.points - before.points,
          acceptedSpans: after.acceptedSpans - before.stats.acceptedSpans,
          acceptedPoints: after.acceptedPoints - before.stats.acceptedPoints,
          refused: refused(after) - refused(before.stats),
          bytes: relay.clientBytes,
        }
      } finally {
        await relay.close()
      }
    }

    it('traces: every span counted exactly, gzip off and on', async () => {
      const expected = WORKERS * TRACES_PER_WORKER * (1 + CHILD_SPANS)
      const bytes = { none: 0, gzip: 0 }
      for (const compression of ['none', 'gzip'] as const) {
        const r = await run(compression, 'traces', ['--traces', String(TRACES_PER_WORKER), '--child-spans', String(CHILD_SPANS)])
        expect({ spans: r.spans, acceptedSpans: r.acceptedSpans, refused: r.refused }, compression).toEqual({ spans: expected, acceptedSpans: expected, refused: 0 })
        bytes[compression] = r.bytes
      }
      expect(bytes.gzip).toBeGreaterThan(0)
      expect(bytes.gzip, `gzip sent ${bytes.gzip} bytes, plain ${bytes.none}`).toBeLessThan(bytes.none / 2)
    })

    it('metrics: every data point counted exactly (Sum and Histogram), gzip off and on', async () => {
      const expected = WORKERS * METRICS_PER_WORKER
      for (const compression of ['none', 'gzip'] as const) {
        for (const type of ['Sum', 'Histogram']) {
          const r = await run(compression, 'metrics', ['--metrics', String(METRICS_PER_WORKER), '--metric-type', type])
          expect({ points: r.points, acceptedPoints: r.acceptedPoints, refused: r.refused }, `${type} ${compression}`).toEqual({ points: expected, acceptedPoints: expected, refused: 0 })
        }
      }
    })
  })
