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

  describe("Micrometer's http.server.requests (Spring Boot, Quarkus, Micronaut)", () => {
    const CUMULATIVE = 2
    // the shape Micrometer's OTLP registry writes for a Timer without a configured histogram: one
    // bucket, its count and sum, a cumulative stream from the process's start, unit `milliseconds`
    const timer = (tags: Attributes, count: number, sumMs: number, t: number, start = T - 30_000): HistogramPoint => ({ startTimeMs: start, timeMs: t, count, sum: sumMs, bounds: [], bucketCounts: [count], attributes: tags })
    const micrometer = (unit: string, points: HistogramPoint[]): DecodedMetric => ({ name: 'http.server.requests', unit, type: 'histogram', temporality: CUMULATIVE, points })
    const ok = { method: 'GET', uri: '/cart', status: '200', outcome: 'SUCCESS', exception: 'none' }
    const failed = { method: 'GET', uri: '/cart', status: '500', outcome: 'SERVER_ERROR', exception: 'IllegalStateException' }

    it('counts the interval of each cumulative point, its errors by the status tag, its latency as the interval mean (not the lifetime mean)', () => {
      const { n, requests } = setup()
      // first points: a process 30 s old (within freshStart), emitted whole
      let r = n.metrics(req(micrometer('milliseconds', [timer(ok, 100, 2_000, T), timer(failed, 4, 40, T)])))
      expect(r).toEqual({ accepted: 2, rejected: 0 })
      // next export: 50 more requests that took 300 ms each, 6 more failures of 5 ms
      r = n.metrics(req(micrometer('milliseconds', [timer(ok, 150, 17_000, T + 60_000), timer(failed, 10, 70, T + 60_000)])))
      expect(r).toEqual({ accepted: 2, rejected: 0 })
      expect(requests().map((o) => [o.count, o.errors, o.latenciesUs])).toEqual([
        [100, 0, [20_000]],
        [4, 4, [10_000]],
        [50, 0, [300_000]],
        [6, 6, [5_000]],
      ])
      expect(requests()[2]!.startMs).toBe(T)
      // a mean stands for every request it averages, with no bucket layout (its latency is unbounded)
      expect(requests().map((o) => [o.latencyCounts, o.latencyBuckets])).toEqual([
        [[100], undefined],
        [[4], undefined],
        [[50], undefined],
        [[6], undefined],
      ])
    })

    it('reads the errors Spring and others tag without a numeric status: outcome SERVER_ERROR, an exception', () => {
      const { n, requests } = setup()
      n.metrics(
        req(
          micrometer('seconds', [
            timer({ status: 'UNKNOWN', outcome: 'SERVER_ERROR', exception: 'none' }, 3, 0.3, T),
            timer({ status: 'UNKNOWN', outcome: 'UNKNOWN', exception: 'TimeoutException' }, 2, 0.2, T),
            timer({ status: '404', outcome: 'CLIENT_ERROR', exception: 'none' }, 5, 0.5, T),
            timer({ status: '503', outcome: 'SERVER_ERROR', exception: 'none' }, 1, 0.1, T),
          ]),
        ),
      )
      expect(requests().map((o) => [o.count, o.errors, o.latenciesUs.map(Math.round)])).toEqual([
        [3, 3, [100_000]],
        [2, 2, [100_000]],
        [5, 0, [100_000]],
        [1, 1, [100_000]],
      ])
    })

    it("reads Micrometer's base-unit words, and is a duplicate where the OpenTelemetry Java agent's stable metric counts the same requests", () => {
      for (const [unit, us] of [['milliseconds', 10_000], ['seconds', 10_000_000], ['nanoseconds', 0.01], ['microseconds', 10], ['', 10_000]] as const) {
        const { n, requests } = setup()
        expect(n.metrics(req(micrometer(unit, [timer(ok, 1, 10, T)])))).toEqual({ accepted: 1, rejected: 0 })
        expect(requests()[0]!.latenciesUs[0]).toBeCloseTo(us, 9)
      }
      const { n, requests } = setup()
      const stable = metric('http.server.request.duration', 's', [point({ 'http.response.status_code': 200 }, [0.01], [6, 4])])
      n.metrics(req(micrometer('s', [timer(ok, 10, 100, T)]), stable))
      expect(requests().map((o) => o.count)).toEqual([10])
      expect(n.stats().legacyDuplicates).toBe(1)
    })

    it('reads an OTLP Summary (client-side percentiles) by its count and sum, cumulative or as Micrometer\'s delta registry sends it', () => {
      const summary = (points: HistogramPoint[]): DecodedMetric => ({
        name: 'http.server.requests',
        unit: 'milliseconds',
        type: 'summary',
        points: points.map((p) => ({ startTimeMs: p.startTimeMs, timeMs: p.timeMs, count: p.count, sum: p.sum, attributes: p.attributes })),
      })
      const cumulative = setup()
      cumulative.n.metrics(req(summary([timer(ok, 100, 2_000, T)])))
      cumulative.n.metrics(req(summary([timer(ok, 150, 17_000, T + 60_000)])))
      expect(cumulative.requests().map((o) => [o.count, o.latenciesUs])).toEqual([
        [100, [20_000]],
        [50, [300_000]],
      ])
      // delta steps of 3 minutes, each starting at the previous point: longer than freshStart, so
      // read as resets they would only prime the stream; each is counted whole over its own step
      const STEP = 180_000
      const delta = setup()
      for (let i = 1; i <= 3; i++) delta.n.metrics(req(summary([timer(failed, 10 * i, 50 * i, T + i * STEP, T + (i - 1) * STEP)])))
      expect(delta.requests().map((o) => [o.count, o.errors, o.startMs, o.latenciesUs])).toEqual([
        [20, 20, T + STEP, [5_000]],
        [30, 30, T + 2 * STEP, [5_000]],
      ])
      expect(delta.n.stats().resets).toBe(0)
    })
  })

  describe("the Collector's spanmetrics connector (traces.span.metrics.duration)", () => {
    // the connector's dimensions: service.name, span.name, span.kind, status.code (its defaults)
    const dims = (kind: string, status: string): Attributes => ({ 'service.name': 'cart', 'span.name': 'GET /cart', 'span.kind': kind, 'status.code': status })
    const spanmetrics = (points: HistogramPoint[], unit = 'ms', name = 'traces.span.metrics.duration'): DecodedMetric => metric(name, unit, points)

    it('counts SERVER points only, errors by status.code ERROR; client and internal points are accepted, not requests', () => {
      const { n, requests } = setup()
      const r = n.metrics(
        req(
          spanmetrics([
            point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_UNSET'), [10, 100], [5, 3, 2]),
            point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_ERROR'), [10, 100], [0, 1, 3]),
            point(dims('SPAN_KIND_CLIENT', 'STATUS_CODE_ERROR'), [10, 100], [4, 0, 0]),
            point(dims('SPAN_KIND_INTERNAL', 'STATUS_CODE_UNSET'), [10, 100], [9, 0, 0]),
          ]),
        ),
      )
      expect(r).toEqual({ accepted: 4, rejected: 0 })
      expect(requests().map((o) => [o.count, o.errors])).toEqual([
        [10, 0],
        [4, 4],
      ])
      // ms, the metric's unit: the 10 ms bound's first bucket at 5 ms
      expect(requests()[0]!.latenciesUs[0]).toBe(5_000)
      expect(n.stats()).toMatchObject({ nonServerPoints: 2, derivedDuplicates: 0, ignored: 0 })
    })

    it("counts nothing twice: not beside the service-version's own request metric, whatever the order, nor beside its spans", () => {
      for (const order of ['own first', 'spanmetrics first'] as const) {
        const { n, requests } = setup()
        const own = metric('http.server.request.duration', 's', [point({ 'http.response.status_code': 200 }, [0.01], [6, 4])])
        const derived = spanmetrics([point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_UNSET'), [10], [6, 4])])
        n.metrics(req(...(order === 'own first' ? [own, derived] : [derived, own])))
        // the next export of the connector alone (another request): still the app's own metric counts
        n.metrics(req(spanmetrics([point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_UNSET'), [10], [6, 4], T + 10_000)])))
        expect(requests().map((o) => o.count)).toEqual([10])
        expect(n.stats().derivedDuplicates).toBe(2)
      }
      const { n, requests } = setup()
      n.traces({ resourceSpans: [{ resource: RES, spans: [{ kind: 2, endTimeMs: T - 1_000, durationUs: 1500, statusCode: 0, httpStatus: 200 }] }] })
      n.metrics(req(spanmetrics([point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_UNSET'), [10], [6, 4])])))
      expect(requests().map((o) => o.count)).toEqual([1])
      expect(n.stats().deduplicatedPoints).toBe(1)
    })

    it('counts alone where nothing else counts the requests (the test can fail: it is not always dropped)', () => {
      const { n, requests } = setup()
      n.metrics(req(spanmetrics([point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_OK'), [0.01], [6, 4])], 's')))
      expect(requests().map((o) => [o.count, o.errors, o.latenciesUs[0]])).toEqual([[10, 0, 5_000]])
    })

    it('under another name (the legacy `duration`), configured with errors: spanmetrics, reads the same way; an HTTP status dimension without status.code', () => {
      const obs: Observation[] = []
      const n = new Normalizer({ requestMetrics: [{ name: 'duration', unit: 'ms', errors: 'spanmetrics' }] } as never, { record: (o) => obs.push(o) })
      n.metrics(
        req(
          spanmetrics(
            [
              point(dims('SPAN_KIND_SERVER', 'STATUS_CODE_ERROR'), [10], [1, 1]),
              point(dims('SPAN_KIND_CLIENT', 'STATUS_CODE_UNSET'), [10], [3, 0]),
              point({ 'span.kind': 'SPAN_KIND_SERVER', 'http.response.status_code': 503 }, [10], [0, 2]),
              point({ 'span.kind': 'SPAN_KIND_SERVER', 'http.response.status_code': 200 }, [10], [5, 0]),
            ],
            '',
            'duration',
          ),
        ),
      )
      const requests = obs.filter((o): o is RequestObservation => o.kind === 'request')
      expect(requests.map((o) => [o.count, o.errors])).toEqual([
        [2, 2],
        [2, 2],
        [5, 0],
      ])
      expect(n.stats().nonServerPoints).toBe(1)
    })
  })

  describe('normalize.requestMetrics: request histograms under names the conventions do not give', () => {
    const custom = (requestMetrics: unknown[]) => {
      const obs: Observation[] = []
      const n = new Normalizer({ requestMetrics } as never, { record: (o) => obs.push(o) })
      return { n, requests: () => obs.filter((o): o is RequestObservation => o.kind === 'request') }
    }

    it('reads a configured name with its unit and its status attribute; unlisted names stay ignored', () => {
      const { n, requests } = custom([{ name: 'shop.checkout.latency', unit: 'ms', statusAttribute: 'code' }])
      const r = n.metrics(
        req(
          metric('shop.checkout.latency', '', [point({ code: '503' }, [10], [1, 2]), point({ code: 200 }, [10], [4, 0])]),
          metric('shop.checkout.other', 'ms', [point({ code: '503' }, [10], [1, 2])]),
        ),
      )
      expect(r).toEqual({ accepted: 3, rejected: 0 })
      // 10 ms bound in ms (the configured unit: the metric's own is unset): first bucket at 5 ms
      expect(requests().map((o) => [o.count, o.errors, o.latenciesUs[0]])).toEqual([
        [3, 3, 5_000],
        [4, 0, 5_000],
      ])
      expect(n.stats().ignored).toBe(1)
    })

    it('reads errors by the rules named: gRPC codes from a renamed attribute, Micrometer tags', () => {
      const { n, requests } = custom([
        { name: 'grpc.server.latency', errors: 'rpc', statusAttribute: 'grpc_code' },
        { name: 'http_server_requests_seconds', errors: 'micrometer' },
      ])
      n.metrics(
        req(
          metric('grpc.server.latency', 's', [point({ grpc_code: 'UNAVAILABLE' }, [0.1], [1, 0]), point({ grpc_code: 'NOT_FOUND' }, [0.1], [1, 0])]),
          metric('http_server_requests_seconds', 's', [point({ status: '500', outcome: 'SERVER_ERROR' }, [0.1], [1, 0]), point({ status: '200', outcome: 'SUCCESS' }, [0.1], [1, 0])]),
        ),
      )
      expect(requests().map((o) => o.errors)).toEqual([1, 0, 1, 0])
    })

    it('refuses a built-in name or a duplicate, naming the path', async () => {
      const { parseConfig } = await import('../../src/config/load.js')
      expect(() => parseConfig({ normalize: { requestMetrics: [{ name: 'http.server.duration' }] } })).toThrow(/normalize\.requestMetrics\[0\]\.name.*read already/s)
      expect(() => parseConfig({ normalize: { requestMetrics: [{ name: 'a' }, { name: 'a' }] } })).toThrow(/normalize\.requestMetrics\[1\]\.name.*twice/s)
      expect(() => parseConfig({ normalize: { requestMetrics: [{ name: 'a', unit: 'minutes' }] } })).toThrow(/normalize\.requestMetrics\[0\]\.unit/)
    })
  })

  it('names the histograms it does not read, at most 32, a server-like name before the rest even when it comes last', () => {
    const { n } = setup()
    for (let i = 0; i < 40; i++) n.metrics(req(metric(`jvm.pool${i}.duration`, 's', [point({}, [1], [1, 0])])))
    n.metrics(req(metric('http_server_requests_seconds', 's', [point({ status: '200' }, [1], [1, 0])])))
    const u = n.unreadHistograms()
    expect(u.names).toHaveLength(32)
    expect(u.names[0]).toEqual({ name: 'http_server_requests_seconds', type: 'histogram', unit: 's', points: 1 })
    // the points of 8 names past the limit, and of the one the server-like name replaced
    expect(u.droppedPoints).toBe(9)
    // a client's durations are not server-like: counted, not put first
    n.metrics(req(metric('http.client.request.duration', 's', [point({}, [1], [1, 0])])))
    expect(n.unreadHistograms().names.map((x) => x.name)).not.toContain('http.client.request.duration')
  })
})

