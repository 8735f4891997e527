import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConsumeResult, TelemetryConsumer } from '../../src/receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'
import { OtlpGrpcReceiver } from '../../src/receivers/otlp-grpc/receiver.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { findScenario, runLive } from '../../src/sim/index.js'

/** Counts what the real receivers decoded, per service version. */
class Tally implements TelemetryConsumer {
  spans = new Map<string, number>()
  errors = 0
  metricNames = new Set<string>()
  newestEndMs = 0
  consumeTraces(req: TracesRequest): ConsumeResult {
    let n = 0
    for (const rs of req.resourceSpans) {
      const key = `${String(rs.resource['service.name'])}@${String(rs.resource['service.version'])}`
      this.spans.set(key, (this.spans.get(key) ?? 0) + rs.spans.length)
      for (const s of rs.spans) {
        if (s.httpStatus >= 500) this.errors++
        if (s.endTimeMs > this.newestEndMs) this.newestEndMs = s.endTimeMs
      }
      n += rs.spans.length
    }
    return { accepted: n, rejected: 0 }
  }
  consumeMetrics(req: MetricsRequest): ConsumeResult {
    let n = 0
    for (const rm of req.resourceMetrics) {
      for (const m of rm.metrics) {
        this.metricNames.add(m.name)
        n++
      }
    }
    return { accepted: n, rejected: 0 }
  }
}

const scenario = findScenario('canary-bad-10pct')!

describe('sim live: the SDK exporters against the real OTLP receivers', () => {
  const grpcTally = new Tally()
  const httpTally = new Tally()
  const grpcRx = new OtlpGrpcReceiver({ consumer: grpcTally, endpoint: '127.0.0.1:0' })
  const httpRx = new OtlpHttpReceiver({ consumer: httpTally, endpoint: '127.0.0.1:0' })
  beforeAll(async () => {
    await grpcRx.start()
    await httpRx.start()
  })
  afterAll(async () => {
    await grpcRx.shutdown()
    await httpRx.shutdown()
  })

  for (const protocol of ['grpc', 'http'] as const) {
    it(`plays the deployment in compressed real time over ${protocol}`, async () => {
      const tally = protocol === 'grpc' ? grpcTally : httpTally
      const port = protocol === 'grpc' ? grpcRx.port : httpRx.port
      const began = Date.now()
      const out = await runLive(scenario, { endpoint: `http://127.0.0.1:${port}`, protocol, speed: 10, fromS: 230, untilS: 270 })
      const wallMs = Date.now() - began
      expect(out.kind).toBe('completed')
      if (out.kind !== 'completed') return
      expect(out.exportFailures).toBe(0)
      // 40 scenario seconds at speed 10: about 4 s of wall time
      expect(wallMs).toBeGreaterThan(3500)
      expect(wallMs).toBeLessThan(15_000)
      const received = [...tally.spans.values()].reduce((a, b) => a + b, 0)
      expect(received).toBe(out.spans)
      expect(tally.spans.get('checkout@v1.4.0')).toBeGreaterThan(500)
      expect(tally.spans.get('checkout@v1.5.0')).toBeGreaterThan(30) // the canary deployed at 240 s
      expect(tally.errors).toBeGreaterThan(5)
      for (const name of ['k8s.pod.memory.working_set', 'k8s.pod.cpu.usage', 'k8s.container.ready']) expect(tally.metricNames).toContain(name)
      // telemetry carries wall-clock time in live mode
      expect(Math.abs(tally.newestEndMs - Date.now())).toBeLessThan(5000)
    })
  }

  it('stops promptly when aborted', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 500)
    const began = Date.now()
    const out = await runLive(scenario, { endpoint: `http://127.0.0.1:${grpcRx.port}`, protocol: 'grpc', speed: 1, fromS: 0, signal: ac.signal })
    expect(out.kind).toBe('aborted')
    expect(Date.now() - began).toBeLessThan(5000)
  })
})
