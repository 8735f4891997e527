import { describe, expect, it } from 'vitest'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { Observation, ObservationSink, RequestObservation } from '../../src/normalize/observations.js'
import type { Attributes, DecodedMetric, HistogramPoint, MetricsRequest } from '../../src/receivers/otlp/model.js'

const T = 1_700_000_000_000
const RES: Attributes = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'cart-abc' }
const DELTA = 1

function setup() {
  const obs: Observation[] = []
  const sink: ObservationSink = { record: (o) => obs.push(o) }
  return { n: new Normalizer({}, sink), requests: () => obs.filter((o): o is RequestObservation => o.kind === 'request') }
}

function point(attributes: Attributes, boundsInUnit: number[], counts: number[], t = T): HistogramPoint {
  return { startTimeMs: t - 10_000, timeMs: t, count: counts.reduce((a, b) => a + b, 0), sum: undefined, bounds: boundsInUnit, bucketCounts: counts, attributes }
}

function metric(name: string, unit: string, points: HistogramPoint[]): DecodedMetric {
  return { name, unit, type: 'histogram', temporality: DELTA, points }
}

const req = (...ms: DecodedMetric[]): MetricsRequest => ({ resourceMetrics: [{ resource: RES, metrics: ms }] })

describe('request metrics of every semantic-conventions generation', () => {
  it('reads the legacy http.server.duration in milliseconds (its unit when unset) as the stable one in seconds', () => {
    const stable = setup()
    stable.n.metrics(req(metric('http.server.request.duration', 's', [point({ 'http.response.status_code': 200 }, [0.01, 0.1], [5, 3, 2])])))
    for (const unit of ['ms', '']) {
      const legacy = setup()
      const r = legacy.n.metrics(req(metric('http.server.duration', unit, [point({ 'http.status_code': 200 }, [10, 100], [5, 3, 2])])))
      expect(r).toEqual({ accepted: 1, rejected: 0 })
      expect(legacy.requests().map((o) => [o.count, o.latenciesUs, o.latencyCounts])).toEqual(stable.requests().map((o) => [o.count, o.latenciesUs, o.latencyCounts]))
    }
  })

  it('counts HTTP errors by status >= 500, or by error.type when no status was sent', () => {
    const { n, requests } = setup()
    n.metrics(
      req(
        metric('http.server.duration', 'ms', [
          point({ 'http.status_code': 503 }, [10], [1, 1]),
          point({ 'http.status_code': 404 }, [10], [3, 0]),
          point({ 'error.type': 'java.net.SocketTimeoutException' }, [10], [0, 4]),
        ]),
      ),
    )
    expect(requests().map((o) => [o.count, o.errors])).toEqual([
      [2, 2],
      [3, 0],
      [4, 4],
    ])
  })

  it('reads rpc.server.duration (ms) with gRPC server-side failures as errors, by code or by name', () => {
    const { n, requests } = setup()
    n.metrics(
      req(
        metric('rpc.server.duration', '', [
          point({ 'rpc.system': 'grpc', 'rpc.grpc.status_code': 0 }, [5], [7, 1]),
          point({ 'rpc.system': 'grpc', 'rpc.grpc.status_code': 14 }, [5], [0, 2]),
          point({ 'rpc.system': 'grpc', 'rpc.grpc.status_code': 5 }, [5], [3, 0]),
          point({ 'rpc.system': 'connect_rpc', 'rpc.connect_rpc.error_code': 'deadline_exceeded' }, [5], [0, 1]),
        ]),
      ),
    )
    expect(requests().map((o) => [o.count, o.errors])).toEqual([
      [8, 0],
      [2, 2],
      [3, 0],
      [1, 1],
    ])
    // 5 ms bound: first bucket's representative 2.5 ms
    expect(requests()[0]!.latenciesUs[0]).toBe(2500)
  })

  it('counts a request once when the instrumentation exports both HTTP names (semconv opt-in http/dup), whatever their order', () => {
    const { n, requests } = setup()
    const legacy = metric('http.server.duration', 'ms', [point({ 'http.status_code': 200 }, [10], [6, 4])])
    const stable = metric('http.server.request.duration', 's', [point({ 'http.response.status_code': 200 }, [0.01], [6, 4])])
    const r = n.metrics(req(legacy, stable))
    expect(r).toEqual({ accepted: 2, rejected: 0 })
    expect(requests().map((o) => o.count)).toEqual([10])
    expect(n.stats().legacyDuplicates).toBe(1)
  })

  it('counts the legacy name alone when the stable one is absent (the test can fail: it is not always dropped)', () => {
    const { n, requests } = setup()
    n.metrics(req(metric('http.server.duration', 'ms', [point({ 'http.status_code': 200 }, [10], [6, 4])])))
    expect(requests().map((o) => o.count)).toEqual([10])
    expect(n.stats().legacyDuplicates).toBe(0)
  })

  it('rejects a duration in an unknown unit, naming it', () => {
    const { n } = setup()
    const r = n.metrics(req(metric('rpc.server.duration', 'By', [point({}, [5], [1, 1])])))
    expect(r.rejected).toBe(1)
    expect(r.rejectReason).toContain('"By"')
  })
})
