import { describe, expect, it } from 'vitest'
import { Normalizer, imageTag, seriesKeyOf, podOf } from '../../src/normalize/normalizer.js'
import type { Observation, ObservationSink, RequestObservation } from '../../src/normalize/observations.js'
import type { Attributes, DecodedMetric, DecodedSpan, ExpHistogramPoint, HistogramPoint, MetricsRequest } from '../../src/receivers/otlp/model.js'

const T = 1_700_000_000_000
const RES: Attributes = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'cart-abc' }

class Collect implements ObservationSink {
  obs: Observation[] = []
  record(o: Observation): void {
    this.obs.push(o)
  }
  get requests(): RequestObservation[] {
    return this.obs.filter((o): o is RequestObservation => o.kind === 'request')
  }
}

function setup(cfg = {}) {
  const sink = new Collect()
  return { sink, n: new Normalizer(cfg, sink) }
}

function span(p: Partial<DecodedSpan> = {}): DecodedSpan {
  return { kind: 2, endTimeMs: T, durationUs: 1500, statusCode: 0, httpStatus: 200, ...p }
}

function hp(p: Partial<HistogramPoint> = {}): HistogramPoint {
  return { startTimeMs: T - 60_000, timeMs: T, count: 0, sum: undefined, bounds: [], bucketCounts: [], attributes: {}, ...p }
}

function metrics(resource: Attributes, ...ms: DecodedMetric[]): MetricsRequest {
  return { resourceMetrics: [{ resource, metrics: ms }] }
}

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1]
function hist(temporality: number, points: HistogramPoint[], unit = 's'): DecodedMetric {
  return { name: 'http.server.request.duration', unit, type: 'histogram', temporality, points }
}

describe('service key', () => {
  it('namespace, service, version and pod by semantic conventions, with fallbacks', () => {
    expect(seriesKeyOf(RES)).toEqual({ namespace: 'shop', service: 'cart', version: 'v2' })
    expect(seriesKeyOf({ 'service.name': 'a', 'service.namespace': 'ns' })).toEqual({ namespace: 'ns', service: 'a', version: 'unknown' })
    expect(seriesKeyOf({ 'service.name': 'a', 'container.image.tag': '1.2' })?.version).toBe('1.2')
    expect(seriesKeyOf({ 'service.name': 'a', 'container.image.name': 'reg:5000/team/a:2.0.1' })?.version).toBe('2.0.1')
    expect(seriesKeyOf({ 'service.name': 'a', 'container.image.name': 'reg:5000/team/a' })?.version).toBe('unknown')
    expect(seriesKeyOf({ 'k8s.namespace.name': 'x' })).toBeUndefined()
    expect(imageTag('a:1@sha256:abc')).toBe('1')
    expect(podOf({ 'k8s.pod.uid': 'u' })).toBe('u')
    expect(podOf({ 'service.instance.id': 'i', 'host.name': 'h' })).toBe('i')
    expect(podOf({ 'host.name': 'h' })).toBe('h')
    expect(podOf({})).toBe('unknown')
  })
})

describe('traces', () => {
  it('SERVER spans become requests; 5xx or status ERROR are errors; other kinds are ignored; no service is rejected', () => {
    const { sink, n } = setup()
    const r = n.traces({
      resourceSpans: [
        { resource: RES, spans: [span(), span({ httpStatus: 503 }), span({ statusCode: 2 }), span({ httpStatus: 404 }), span({ kind: 3 })] },
        { resource: { 'k8s.pod.name': 'x' }, spans: [span(), span()] },
        { resource: RES, spans: [span({ durationUs: NaN })] },
      ],
    })
    expect(r.accepted).toBe(5)
    expect(r.rejected).toBe(3)
    expect(r.rejectReason).toContain('service.name')
    expect(sink.requests.map((o) => o.errors)).toEqual([0, 1, 1, 0])
    expect(sink.requests[0]).toEqual({ kind: 'request', key: { namespace: 'shop', service: 'cart', version: 'v2' }, timeMs: T, count: 1, errors: 0, latenciesUs: [1500], latencyCounts: undefined })
    expect(n.stats()).toMatchObject({ ignored: 1, missingService: 2, invalidValues: 1 })
  })

  it('uses the fast path of a sink that offers series()', () => {
    const calls: unknown[] = []
    let lookups = 0
    const sink = {
      record: () => calls.push('record'),
      series: () => {
        lookups++
        return { recordRequest: (t: number, l: number, e: boolean) => calls.push([t, l, e]) }
      },
    }
    new Normalizer({}, sink).traces({ resourceSpans: [{ resource: RES, spans: [span(), span({ httpStatus: 500 })] }] })
    expect(lookups).toBe(1)
    expect(calls).toEqual([[T, 1500, false], [T, 1500, true]])
  })
})

describe('http.server.request.duration histograms', () => {
  it('delta explicit buckets: bucket midpoints in microseconds, last bucket = last bound, 5xx points are errors', () => {
    const { sink, n } = setup()
    const r = n.metrics(
      metrics(
        RES,
        hist(1, [
          hp({ count: 6, bounds: BOUNDS, bucketCounts: [1, 2, 0, 0, 1, 2], attributes: { 'http.response.status_code': 200 } }),
          hp({ count: 3, bounds: BOUNDS, bucketCounts: [0, 0, 3, 0, 0, 0], attributes: { 'http.status_code': '502' } }),
        ]),
      ),
    )
    expect(r).toEqual({ accepted: 2, rejected: 0 })
    const [a, b] = sink.requests
    expect(a!.count).toBe(6)
    expect(a!.errors).toBe(0)
    expect(a!.latenciesUs.map(Math.round)).toEqual([2500, 7500, 75_000, 100_000])
    expect(a!.latencyCounts).toEqual([1, 2, 1, 2])
    expect(b!.errors).toBe(3)
    expect(b!.latenciesUs.map(Math.round)).toEqual([17_500])
    // the layout the representatives came from, in microseconds, one shared object for one layout
    expect(a!.latencyBuckets).toEqual({ kind: 'explicit', boundsUs: [5000, 10_000, 25_000, 50_000, 100_000] })
    expect(b!.latencyBuckets).toBe(a!.latencyBuckets)
  })

  it('accepts ms, rejects unknown units and unspecified temporality', () => {
    const { sink, n } = setup()
    n.metrics(metrics(RES, hist(1, [hp({ count: 1, bounds: [10, 20], bucketCounts: [0, 1, 0] })], 'ms')))
    expect(sink.requests[0]!.latenciesUs).toEqual([15_000])
    expect(n.metrics(metrics(RES, hist(1, [hp({ count: 1, bounds: [10], bucketCounts: [1, 0] })], 'By'))).rejected).toBe(1)
    expect(n.metrics(metrics(RES, hist(0, [hp({ count: 1, bounds: [10], bucketCounts: [1, 0] })]))).rejected).toBe(1)
  })

  it('cumulative -> delta: first point primes, then deltas, reset on start-time change or decrease, duplicates dropped', () => {
    const { sink, n } = setup()
    const start = T - 3_600_000 // a long-running process: the first point only primes
    const pt = (t: number, counts: number[], s = start) => hp({ startTimeMs: s, timeMs: t, count: counts.reduce((x, y) => x + y, 0), bounds: [0.1], bucketCounts: counts })
    const send = (p: HistogramPoint) => n.metrics(metrics(RES, hist(2, [p])))
    send(pt(T, [10, 1]))
    expect(sink.requests).toHaveLength(0)
    send(pt(T + 60_000, [15, 2]))
    expect(sink.requests.at(-1)).toMatchObject({ timeMs: T + 60_000, count: 6, latencyCounts: [5, 1] })
    send(pt(T + 60_000, [15, 2])) // duplicate
    send(pt(T + 30_000, [12, 2])) // out of order
    expect(sink.requests).toHaveLength(1)
    // restart: start time moves; the new value is the delta from zero
    send(pt(T + 120_000, [3, 0], T + 100_000))
    expect(sink.requests.at(-1)).toMatchObject({ count: 3, latencyCounts: [3] })
    // a decrease without a start-time change is a reset too
    send(pt(T + 180_000, [1, 0], T + 100_000))
    expect(sink.requests.at(-1)).toMatchObject({ count: 1 })
    send(pt(T + 240_000, [1, 0], T + 100_000)) // no new requests: nothing emitted
    expect(sink.requests).toHaveLength(3)
    expect(n.stats()).toMatchObject({ primed: 1, resets: 2, outOfOrder: 2 })
    expect(sink.requests.every((o) => o.count >= 0 && (o.latencyCounts ?? []).every((c) => c >= 0))).toBe(true)
  })

  it('cumulative: the first point of a freshly started process is emitted whole', () => {
    const { sink, n } = setup()
    n.metrics(metrics(RES, hist(2, [hp({ startTimeMs: T - 30_000, timeMs: T, count: 4, bounds: [0.1], bucketCounts: [4, 0] })])))
    expect(sink.requests[0]).toMatchObject({ count: 4 })
  })

  it('cumulative: a stream that first appears after its process exported the metric without it is counted whole since that export', () => {
    // the OTel SDK exports every attribute set it has seen at every collection: a 503 stream absent at
    // T and present at T + 60 s holds only requests of (T, T + 60 s], however long the process has run
    const { sink, n } = setup()
    const start = T - 3_600_000
    const pt = (t: number, count: number, code: number) => hp({ startTimeMs: start, timeMs: t, count, bounds: [0.1], bucketCounts: [count, 0], attributes: { 'http.response.status_code': code } })
    n.metrics(metrics(RES, hist(2, [pt(T, 1000, 200)])))
    expect(sink.requests).toHaveLength(0) // first export seen: everything primes
    n.metrics(metrics(RES, hist(2, [pt(T + 60_000, 1090, 200), pt(T + 60_000, 2, 503)])))
    expect(sink.requests.map((o) => [o.count, o.errors, o.startMs])).toEqual([
      [90, 0, T],
      [2, 2, T],
    ])
    // the next point of that stream is an ordinary delta
    n.metrics(metrics(RES, hist(2, [pt(T + 120_000, 1180, 200), pt(T + 120_000, 3, 503)])))
    expect(sink.requests.slice(2).map((o) => [o.count, o.errors])).toEqual([
      [90, 0],
      [1, 1],
    ])
    expect(n.stats()).toMatchObject({ primed: 1, newSinceSiblings: 1 })
  })

  it('cumulative: siblings are the same process (start time) and metric: a stream of another process or metric still primes', () => {
    const { sink, n } = setup()
    const pt = (start: number, t: number, count: number, route: string) => hp({ startTimeMs: start, timeMs: t, count, bounds: [0.1], bucketCounts: [count, 0], attributes: { 'http.route': route } })
    n.metrics(metrics(RES, hist(2, [pt(T - 3_600_000, T, 1000, '/a')])))
    // same resource, another start time (a restarted process 30 min ago): nothing known of its exports
    n.metrics(metrics(RES, hist(2, [pt(T - 1_800_000, T + 60_000, 500, '/b')])))
    // same process, another metric (the legacy name): its own group, first seen now
    n.metrics(metrics(RES, { ...hist(2, [pt(T - 3_600_000, T + 60_000, 700, '/c')]), name: 'http.server.duration' }))
    expect(sink.requests).toHaveLength(0)
    expect(n.stats()).toMatchObject({ primed: 3, newSinceSiblings: 0 })
  })

  it('cumulative stream map is bounded: overflow rejected and counted, idle streams expire', () => {
    const { n } = setup({ cumulative: { maxStreams: 2, idleTtl: '5m' } })
    const p = (route: string, t: number) => hp({ startTimeMs: 1, timeMs: t, count: 1, bounds: [1], bucketCounts: [1, 0], attributes: { 'http.route': route } })
    n.metrics(metrics(RES, hist(2, [p('/a', T), p('/b', T)])))
    expect(n.metrics(metrics(RES, hist(2, [p('/c', T)]))).rejected).toBe(1)
    expect(n.metrics(metrics(RES, hist(2, [p('/c', T + 600_000)]))).rejected).toBe(0)
    expect(n.stats()).toMatchObject({ streamOverflow: 1, streamsExpired: 2 })
  })

  it('exponential buckets: geometric midpoints, zero bucket, delta and cumulative with a scale change', () => {
    const { sink, n } = setup()
    const ep = (p: Partial<ExpHistogramPoint>): ExpHistogramPoint => ({
      startTimeMs: T - 3_600_000, timeMs: T, count: 0, sum: undefined, scale: 0, zeroCount: 0,
      positive: { offset: 0, bucketCounts: [] }, negative: { offset: 0, bucketCounts: [] }, attributes: {}, ...p,
    })
    const m = (temporality: number, p: ExpHistogramPoint): DecodedMetric => ({ name: 'http.server.request.duration', unit: 'ms', type: 'exponential_histogram', temporality, points: [p] })
    // scale 0: bucket i covers (2^i, 2^(i+1)] ms; midpoint 2^(i+0.5)
    n.metrics(metrics(RES, m(1, ep({ count: 4, zeroCount: 1, positive: { offset: 3, bucketCounts: [2, 1] } }))))
    const a = sink.requests[0]!
    expect(a.latenciesUs[0]).toBe(0)
    expect(a.latenciesUs[1]).toBeCloseTo(Math.pow(2, 3.5) * 1000, 6)
    expect(a.latenciesUs[2]).toBeCloseTo(Math.pow(2, 4.5) * 1000, 6)
    expect(a.latencyCounts).toEqual([1, 2, 1])
    expect(a.latencyBuckets).toEqual({ kind: 'exponential', scale: 0, factor: 1000 })
    // cumulative at scale 1, then the SDK lowers the scale to 0
    n.metrics(metrics(RES, m(2, ep({ scale: 1, count: 3, positive: { offset: 6, bucketCounts: [1, 1, 1] } })))) // idx 6,7,8 at scale 1
    expect(sink.requests).toHaveLength(1)
    n.metrics(metrics(RES, m(2, ep({ timeMs: T + 60_000, scale: 0, count: 5, positive: { offset: 3, bucketCounts: [3, 2] } }))))
    // previous at scale 0: idx 3 -> 2, idx 4 -> 1; delta: idx 3 +1, idx 4 +1
    const b = sink.requests[1]!
    expect(b.count).toBe(2)
    expect(b.latencyCounts).toEqual([1, 1])
    expect(b.latenciesUs[0]).toBeCloseTo(Math.pow(2, 3.5) * 1000, 6)
  })

  it('rejects NaN/Inf/negative counts', () => {
    const { n } = setup()
    const r = n.metrics(metrics(RES, hist(1, [hp({ count: NaN }), hp({ count: 1, bounds: [1], bucketCounts: [-1, 2] }), hp({ count: 1, bounds: [1], bucketCounts: [Infinity, 2] })])))
    expect(r.rejected).toBe(3)
  })
})

describe('resources and probes', () => {
  const g = (name: string, value: number, attributes: Attributes = {}, t = T): DecodedMetric => ({ name, unit: '', type: 'gauge', points: [{ startTimeMs: 0, timeMs: t, value, attributes }] })

  it('memory and cpu readings with the pod request summed over containers', () => {
    const { sink, n } = setup()
    const kres = { 'k8s.namespace.name': 'shop', 'k8s.pod.name': 'cart-abc' } // cluster metrics carry no service.name
    n.metrics({
      resourceMetrics: [
        { resource: { ...kres, 'k8s.container.name': 'app' }, metrics: [g('k8s.container.memory_request', 200e6), g('k8s.container.cpu_request', 0.5)] },
        { resource: { ...kres, 'k8s.container.name': 'proxy' }, metrics: [g('k8s.container.memory_request', 56e6), g('k8s.container.cpu_request', 0.1)] },
      ],
    })
    const r = n.metrics(metrics(RES, g('k8s.pod.memory.working_set', 128e6), g('k8s.pod.cpu.usage', 0.3), g('process.cpu.utilization', 0.5), g('container.memory.working_set', 100e6, { 'k8s.container.name': 'app' })))
    expect(r).toEqual({ accepted: 4, rejected: 0 })
    expect(sink.obs).toEqual([
      { kind: 'resource', key: { namespace: 'shop', service: 'cart', version: 'v2' }, pod: 'cart-abc', resource: 'memory', timeMs: T, value: 128e6, request: 256e6 },
      { kind: 'resource', key: { namespace: 'shop', service: 'cart', version: 'v2' }, pod: 'cart-abc', resource: 'cpu', timeMs: T, value: 0.3, request: 0.6 },
      { kind: 'resource', key: { namespace: 'shop', service: 'cart', version: 'v2' }, pod: 'cart-abc', resource: 'cpu', timeMs: T, value: 0.3, request: 0.6 },
      { kind: 'resource', key: { namespace: 'shop', service: 'cart', version: 'v2' }, pod: 'cart-abc/app', resource: 'memory', timeMs: T, value: 100e6, request: 200e6 },
    ])
  })

  it('utilization without a known request is reported as-is; cpu time sums are ignored; bad values rejected', () => {
    const { sink, n } = setup()
    const cpuTime: DecodedMetric = { name: 'container.cpu.usage', unit: 's', type: 'sum', temporality: 2, monotonic: true, points: [{ startTimeMs: 0, timeMs: T, value: 1234, attributes: {} }] }
    const r = n.metrics(metrics({ ...RES, 'k8s.pod.name': 'other' }, g('process.cpu.utilization', 0.25), cpuTime, g('process.memory.usage', NaN), g('process.memory.usage', -1), g('container.cpu.time', 5)))
    expect(r.rejected).toBe(2)
    expect(sink.obs).toEqual([{ kind: 'resource', key: { namespace: 'shop', service: 'cart', version: 'v2' }, pod: 'other', resource: 'cpu', timeMs: T, value: 0.25, request: undefined }])
  })

  it('k8s.container.ready and pullback.probe.status become probe readings', () => {
    const { sink, n } = setup()
    const r = n.metrics(
      metrics(
        RES,
        g('k8s.container.ready', 0, { 'k8s.container.name': 'app' }),
        g('k8s.container.ready', 1, { 'k8s.container.name': 'proxy' }),
        g('pullback.probe.status', 0, { 'probe.type': 'readiness', 'probe.name': 'db' }),
        g('pullback.probe.status', 1, { 'probe.type': 'bogus' }),
        g('k8s.container.ready', 0.5, { 'k8s.container.name': 'app' }),
      ),
    )
    expect(r.rejected).toBe(2)
    expect(sink.obs.map((o) => (o.kind === 'probe' ? [o.pod, o.container, o.ready] : o.kind))).toEqual([
      ['cart-abc', 'app', false],
      ['cart-abc', 'proxy', true],
      ['cart-abc', 'readiness:db', false],
    ])
  })
})

describe('the interval a metric point covers (startMs)', () => {
  const LONG = T - 3_600_000 // a long-running process: its first cumulative point only primes
  const cum = (start: number, t: number, counts: number[]) => hp({ startTimeMs: start, timeMs: t, count: counts.reduce((x, y) => x + y, 0), bounds: [0.1], bucketCounts: counts })

  it('a cumulative delta covers (previous point, this point]; a fresh first point covers (its start time, its time]', () => {
    const { sink, n } = setup()
    n.metrics(metrics(RES, hist(2, [cum(LONG, T, [10, 0])])))
    n.metrics(metrics(RES, hist(2, [cum(LONG, T + 60_000, [14, 0])])))
    expect(sink.requests.at(-1)).toMatchObject({ timeMs: T + 60_000, startMs: T, count: 4 })
    const fresh = setup()
    fresh.n.metrics(metrics(RES, hist(2, [cum(T - 30_000, T, [4, 0])])))
    expect(fresh.sink.requests[0]).toMatchObject({ timeMs: T, startMs: T - 30_000, count: 4 })
  })

  it('a DELTA point covers its own (start, time] when the start is usable; spans carry no start', () => {
    const { sink, n } = setup()
    n.metrics(metrics(RES, hist(1, [hp({ startTimeMs: T - 15_000, count: 1, bounds: [1], bucketCounts: [1, 0] }), hp({ startTimeMs: 0, count: 1, bounds: [1], bucketCounts: [1, 0] }), hp({ startTimeMs: T, count: 1, bounds: [1], bucketCounts: [1, 0] })])))
    expect(sink.requests.map((o) => o.startMs)).toEqual([T - 15_000, undefined, undefined])
    expect(sink.requests.map((o) => 'startMs' in o)).toEqual([true, false, false])
    n.traces({ resourceSpans: [{ resource: { ...RES, 'service.version': 'other' }, spans: [span()] }] })
    expect('startMs' in sink.requests.at(-1)!).toBe(false)
  })

  it("DELTA from a Collector's cumulativetodelta: a stream's first point starting at the stream's start covers only the time since the previous export", () => {
    const { sink, n } = setup()
    const P0 = T - 600_000 // the process started 10 min ago
    const d = (start: number, t: number, code: number, c: number) => hp({ startTimeMs: start, timeMs: t, count: c, bounds: [1], bucketCounts: [c, 0], attributes: { 'http.response.status_code': code } })
    // the first export of the process: its own interval, provisional (it may be the process's age)
    n.metrics(metrics(RES, hist(1, [d(P0, T - 15_000, 200, 5)])))
    expect(sink.requests[0]).toMatchObject({ startMs: P0, timeMs: T - 15_000, streamStart: true })
    // a known stream: (previous point, this point]
    n.metrics(metrics(RES, hist(1, [d(T - 15_000, T, 200, 5)])))
    expect(sink.requests[1]).toMatchObject({ startMs: T - 15_000, timeMs: T })
    expect(sink.requests[1]!.streamStart).toBeUndefined()
    // a 5xx stream appears: emitted whole from the process start, it accrued since the last export
    n.metrics(metrics(RES, hist(1, [d(T, T + 15_000, 200, 5), d(P0, T + 15_000, 503, 2)])))
    expect(sink.requests.slice(2).map((o) => [o.startMs, o.errors, o.streamStart])).toEqual([
      [T, 0, undefined],
      [T, 2, undefined],
    ])
    expect(n.stats().newSinceSiblings).toBe(1)
    // then it is known: its own start again
    n.metrics(metrics(RES, hist(1, [d(T + 15_000, T + 30_000, 503, 1)])))
    expect(sink.requests.at(-1)).toMatchObject({ startMs: T + 15_000, errors: 1 })
    expect(sink.requests.at(-1)!.streamStart).toBeUndefined()
    // a start before the stream's previous point (a second process under the same identity, or a
    // value from its stream's start): counted over its own interval, as a provisional one
    n.metrics(metrics(RES, hist(1, [d(T + 5_000, T + 35_000, 503, 3)])))
    expect(sink.requests.at(-1)).toMatchObject({ startMs: T + 5_000, timeMs: T + 35_000, errors: 3, streamStart: true })
  })

  it('exponential cumulative deltas carry the previous point time too', () => {
    const { sink, n } = setup()
    const ep = (t: number, c: number): ExpHistogramPoint => ({ startTimeMs: LONG, timeMs: t, count: c, sum: undefined, scale: 0, zeroCount: 0, positive: { offset: 3, bucketCounts: [c] }, negative: { offset: 0, bucketCounts: [] }, attributes: {} })
    const m = (p: ExpHistogramPoint): DecodedMetric => ({ name: 'http.server.request.duration', unit: 'ms', type: 'exponential_histogram', temporality: 2, points: [p] })
    n.metrics(metrics(RES, m(ep(T, 5))))
    n.metrics(metrics(RES, m(ep(T + 15_000, 8))))
    expect(sink.requests).toHaveLength(1)
    expect(sink.requests[0]).toMatchObject({ startMs: T, timeMs: T + 15_000, count: 3 })
  })
})

describe('cumulative resets and replicas without identity', () => {
  const ANON: Attributes = { 'service.name': 'cart', 'service.version': 'v2' } // no pod, instance, host or container
  const cum = (start: number, t: number, count: number) => hp({ startTimeMs: start, timeMs: t, count, bounds: [0.1], bucketCounts: [count, 0] })

  /** Two replicas at 5 req/s each, started 1 h and 58 min ago, exporting every 60 s (7 s apart) for 10 min. */
  function twoReplicas(resA: Attributes, resB: Attributes): { total: number; n: Normalizer } {
    const { sink, n } = setup()
    const startA = T - 3_600_000
    const startB = T - 3_480_000
    for (let k = 0; k <= 10; k++) {
      const ta = T + k * 60_000
      const tb = ta + 7_000
      n.metrics(metrics(resA, hist(2, [cum(startA, ta, ((ta - startA) / 1000) * 5)])))
      n.metrics(metrics(resB, hist(2, [cum(startB, tb, ((tb - startB) / 1000) * 5)])))
    }
    return { total: sink.requests.reduce((s, o) => s + o.count, 0), n }
  }

  it('two replicas with identical resource attributes are two streams (told apart by start time), not one that resets every point', () => {
    // 2 replicas x 10 intervals x 60 s x 5 req/s after the priming points; a shared stream counted ~400,000
    const { total, n } = twoReplicas(ANON, ANON)
    expect(total).toBe(6_000)
    expect(n.stats()).toMatchObject({ resets: 0, primed: 2 })
    // the same replicas with pod identity: the same count
    expect(twoReplicas({ ...ANON, 'k8s.pod.name': 'a' }, { ...ANON, 'k8s.pod.name': 'b' }).total).toBe(6_000)
  })

  it('a restart of a process without identity is a new stream: emitted whole only when fresh', () => {
    const { sink, n } = setup()
    n.metrics(metrics(ANON, hist(2, [cum(T - 3_600_000, T, 1000)])))
    n.metrics(metrics(ANON, hist(2, [cum(T + 50_000, T + 60_000, 30)]))) // restarted 10 s before: fresh
    expect(sink.requests.map((o) => [o.count, o.startMs])).toEqual([[30, T + 50_000]])
    n.metrics(metrics(ANON, hist(2, [cum(T - 600_000, T + 60_000, 5000)]))) // a sibling up for 11 min: primes
    n.metrics(metrics(ANON, hist(2, [cum(T - 600_000, T + 120_000, 5100)])))
    expect(sink.requests.map((o) => o.count)).toEqual([30, 100])
    expect(n.stats()).toMatchObject({ resets: 0, primed: 2 })
  })

  it('a reset emits the new point whole only when its start is within freshStart, else it re-primes', () => {
    const { sink, n } = setup()
    const long = T - 3_600_000
    n.metrics(metrics(RES, hist(2, [cum(long, T, 10_000)])))
    // the counter decreased without a start-time change on a process up for an hour: not a fresh start
    n.metrics(metrics(RES, hist(2, [cum(long, T + 60_000, 9_000)])))
    expect(sink.requests).toHaveLength(0)
    n.metrics(metrics(RES, hist(2, [cum(long, T + 120_000, 9_050)])))
    expect(sink.requests.map((o) => [o.count, o.startMs])).toEqual([[50, T + 60_000]])
    // restarted 10 min before its first point (exports were lost meanwhile): re-primes, not 7,000 at once
    n.metrics(metrics(RES, hist(2, [cum(T + 130_000, T + 730_000, 7_000)])))
    expect(sink.requests).toHaveLength(1)
    n.metrics(metrics(RES, hist(2, [cum(T + 130_000, T + 790_000, 7_300)])))
    expect(sink.requests.map((o) => o.count)).toEqual([50, 300])
    // restarted 20 s before its first point: fresh, emitted whole over (start, time]
    n.metrics(metrics(RES, hist(2, [cum(T + 830_000, T + 850_000, 40)])))
    expect(sink.requests.at(-1)).toMatchObject({ count: 40, startMs: T + 830_000, timeMs: T + 850_000 })
    expect(n.stats()).toMatchObject({ resets: 3, primed: 3 })
  })

  it('exponential histograms: a stale reset re-primes too', () => {
    const { sink, n } = setup()
    const ep = (t: number, c: number): ExpHistogramPoint => ({ startTimeMs: T - 3_600_000, timeMs: t, count: c, sum: undefined, scale: 0, zeroCount: 0, positive: { offset: 3, bucketCounts: [c] }, negative: { offset: 0, bucketCounts: [] }, attributes: {} })
    const m = (p: ExpHistogramPoint): DecodedMetric => ({ name: 'http.server.request.duration', unit: 'ms', type: 'exponential_histogram', temporality: 2, points: [p] })
    n.metrics(metrics(RES, m(ep(T, 500))))
    n.metrics(metrics(RES, m(ep(T + 60_000, 400))))
    expect(sink.requests).toHaveLength(0)
    expect(n.stats()).toMatchObject({ resets: 1, primed: 2 })
  })

  it('a late point of a process that has since restarted is dropped, not a reset', () => {
    const { sink, n } = setup()
    n.metrics(metrics(RES, hist(2, [cum(T - 3_600_000, T, 1000)])))
    n.metrics(metrics(RES, hist(2, [cum(T + 50_000, T + 60_000, 30)])))
    n.metrics(metrics(RES, hist(2, [cum(T - 3_600_000, T + 30_000, 1100)]))) // the old process, late
    n.metrics(metrics(RES, hist(2, [cum(T + 50_000, T + 120_000, 80)])))
    expect(sink.requests.map((o) => o.count)).toEqual([30, 50])
    expect(n.stats()).toMatchObject({ outOfOrder: 1, resets: 1 })
  })
})

describe('one source per service-version', () => {
  const delta = (t: number, count: number, res: Attributes = RES) => metrics(res, hist(1, [hp({ startTimeMs: t - 60_000, timeMs: t, count, bounds: [0.1], bucketCounts: [count, 0] })]))

  it('request metrics of a service-version with recent SERVER spans are accepted but not counted; after spanRecency they count again', () => {
    const { sink, n } = setup({ sourcePreference: { spanRecency: '2m' } })
    n.traces({ resourceSpans: [{ resource: RES, spans: [span({ endTimeMs: T - 1_000 }), span({ endTimeMs: T }), span({ kind: 3, endTimeMs: T + 500_000 })] }] })
    expect(n.metrics(delta(T + 60_000, 7))).toEqual({ accepted: 1, rejected: 0 })
    expect(n.metrics(delta(T + 120_000, 7))).toEqual({ accepted: 1, rejected: 0 })
    expect(sink.requests.filter((o) => o.latencyCounts !== undefined)).toHaveLength(0)
    // a non-SERVER span does not count as the span source; past T + 2m metrics count again
    n.metrics(delta(T + 180_000, 9))
    expect(sink.requests.at(-1)).toMatchObject({ count: 9, timeMs: T + 180_000 })
    // another version of the same service has no spans: its metrics count
    n.metrics(delta(T + 60_000, 3, { ...RES, 'service.version': 'v3' }))
    expect(sink.requests.at(-1)).toMatchObject({ count: 3, key: { version: 'v3' } })
    expect(n.stats()).toMatchObject({ deduplicatedPoints: 2, rejected: 0 })
  })

  it('cumulative state advances while points are dropped: when metrics count again they hold only their own interval', () => {
    const { sink, n } = setup({ sourcePreference: { spanRecency: '1m' } })
    const long = T - 3_600_000
    const c = (t: number, count: number) => metrics(RES, hist(2, [hp({ startTimeMs: long, timeMs: t, count, bounds: [0.1], bucketCounts: [count, 0] })]))
    n.metrics(c(T, 1000)) // primes
    n.traces({ resourceSpans: [{ resource: RES, spans: [span({ endTimeMs: T + 30_000 })] }] })
    n.metrics(c(T + 60_000, 1100)) // spans seen 30 s before: dropped
    n.metrics(c(T + 120_000, 1200)) // 90 s after the last span: counted, only its own interval
    expect(sink.requests.filter((o) => o.latencyCounts !== undefined).map((o) => [o.count, o.startMs])).toEqual([[100, T + 60_000]])
    expect(n.stats().deduplicatedPoints).toBe(1)
  })

  it('metrics first, then spans: metrics counted before the first span stay counted, afterwards they are dropped', () => {
    const { sink, n } = setup()
    n.metrics(delta(T, 10)) // no span seen yet: counted
    n.traces({ resourceSpans: [{ resource: RES, spans: Array.from({ length: 10 }, (_, i) => span({ endTimeMs: T - 50_000 + i * 1000 })) }] })
    n.traces({ resourceSpans: [{ resource: RES, spans: Array.from({ length: 10 }, (_, i) => span({ endTimeMs: T + 10_000 + i * 1000 })) }] })
    n.metrics(delta(T + 60_000, 10))
    // the documented risk: the first interval (T - 60 s, T] counted by both sources (20), later intervals once
    expect(sink.requests.reduce((s, o) => s + o.count, 0)).toBe(30)
    expect(n.stats().deduplicatedPoints).toBe(1)
  })

  it('the span-recency map is bounded: the least recently updated service-version is forgotten and counted', () => {
    const { sink, n } = setup({ sourcePreference: { maxServiceVersions: 1 } })
    n.traces({ resourceSpans: [{ resource: RES, spans: [span()] }] })
    n.traces({ resourceSpans: [{ resource: { ...RES, 'service.version': 'v3' }, spans: [span()] }] })
    expect(n.stats().spanSourcesEvicted).toBe(1)
    n.metrics(delta(T + 10_000, 4)) // v2 forgotten: its metrics count again
    n.metrics(delta(T + 10_000, 4, { ...RES, 'service.version': 'v3' }))
    expect(sink.requests.filter((o) => o.latencyCounts !== undefined).map((o) => o.key.version)).toEqual(['v2'])
  })
})
