import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Normalizer } from '../../src/normalize/normalizer.js'
import { SignalStore } from '../../src/signals/store.js'
import type { DecodedSpan, HistogramPoint, MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'

const T0 = 1_700_000_040_000
const RES = [
  { 'service.name': 'a', 'service.version': '1', 'k8s.pod.name': 'p1' },
  { 'service.name': 'a', 'service.version': '2', 'k8s.pod.name': 'p2' },
]
/**
 * Metric points go to other service-versions than spans: which source counts a service-version
 * that sends both depends on arrival order by design (src/normalize/README.md, one source per
 * service-version), so batches could legitimately change it there.
 */
const RES_METRICS = [
  { 'service.name': 'a', 'service.version': '3', 'k8s.pod.name': 'p3' },
  { 'service.name': 'a', 'service.version': '4', 'k8s.pod.name': 'p4' },
]
const stores: SignalStore[] = []
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

type Item = { r: number; span: DecodedSpan } | { r: number; point: HistogramPoint }

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  fc.record({
    r: fc.nat(1),
    span: fc.record({
      kind: fc.constantFrom(1, 2, 2, 2, 3),
      endTimeMs: fc.integer({ min: T0, max: T0 + 240_000 }),
      durationUs: fc.integer({ min: 0, max: 3_000_000 }),
      statusCode: fc.nat(2),
      httpStatus: fc.constantFrom(0, 200, 404, 500, 503),
    }),
  }),
  fc.record({
    r: fc.nat(1),
    point: fc.record({
      startTimeMs: fc.constant<number>(T0),
      timeMs: fc.integer({ min: T0, max: T0 + 240_000 }),
      count: fc.constant(0),
      sum: fc.constant(undefined),
      bounds: fc.constant<number[]>([0.01, 0.1, 1]),
      bucketCounts: fc.array(fc.nat(20), { minLength: 4, maxLength: 4 }),
      attributes: fc.record({ 'http.response.status_code': fc.constantFrom(200, 500) }),
    }).map((p) => ({ ...p, count: p.bucketCounts.reduce((x, y) => x + y, 0) })),
  }),
)

function run(items: Item[], cuts: number[]): unknown {
  const store = new SignalStore({ maxFutureSkew: '1h' })
  stores.push(store)
  const n = new Normalizer({}, store)
  const points = [...new Set(cuts.map((c) => c % (items.length + 1)))].sort((a, b) => a - b)
  let start = 0
  for (const end of [...points, items.length]) {
    const batch = items.slice(start, end)
    start = end
    const traces: TracesRequest = { resourceSpans: [] }
    const metrics: MetricsRequest = { resourceMetrics: [] }
    for (const it of batch) {
      if ('span' in it) traces.resourceSpans.push({ resource: RES[it.r]!, spans: [it.span] })
      else metrics.resourceMetrics.push({ resource: RES_METRICS[it.r]!, metrics: [{ name: 'http.server.request.duration', unit: 's', type: 'histogram', temporality: 1, points: [it.point] }] })
    }
    n.traces(traces)
    n.metrics(metrics)
  }
  return [...RES, ...RES_METRICS].map((r) =>
    [0, 60_000, 120_000, 180_000].map((from) => {
      const w = store.window({ namespace: '', service: 'a', version: r['service.version'] }, T0 + from, T0 + from + 60_000)
      return [w.requests, w.errors, w.latency.count, w.latency.valueAtQuantile(0.99), w.buckets.map((b) => [b.requests, b.errors, b.latencyAtQuantile(0.5)])]
    }),
  )
}

describe('normalize -> signals', () => {
  it('the same telemetry split into any batches gives identical window stats', () => {
    fc.assert(
      fc.property(fc.array(itemArb, { minLength: 1, maxLength: 80 }), fc.array(fc.nat(), { maxLength: 8 }), (items, cuts) => {
        expect(run(items, cuts)).toEqual(run(items, []))
      }),
      { numRuns: 100 },
    )
  })
})
