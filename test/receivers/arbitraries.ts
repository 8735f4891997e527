/** fast-check arbitraries for random valid OTLP requests, in protobufjs `fromObject` form. */
import fc from 'fast-check'

const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  // realistic epoch ns (> 2^53, where double arithmetic would lose the microseconds)
  fc.bigInt({ min: 1_600_000_000_000_000_000n, max: 1_900_000_000_000_000_000n }),
  fc.bigInt({ min: 0n, max: 1000n }),
).map((b) => b.toString())
const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((b) => b.toString())

const leafValue = fc.oneof(
  fc.record({ stringValue: fc.string({ maxLength: 12 }) }),
  fc.record({ boolValue: fc.boolean() }),
  fc.record({ intValue: fc.oneof(i64, fc.integer({ min: 100, max: 599 }).map(String)) }),
  fc.record({ doubleValue: fc.double() }),
  fc.record({ bytesValue: fc.uint8Array({ maxLength: 6 }) }),
  fc.record({ stringValue: fc.constantFrom('200', '503', 'abc', '1000') }),
  fc.constant({}),
)
const anyValue = fc.oneof(
  { weight: 6, arbitrary: leafValue },
  { weight: 1, arbitrary: fc.record({ arrayValue: fc.record({ values: fc.array(leafValue, { maxLength: 3 }) }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kvlistValue: fc.record({ values: fc.array(fc.record({ key: fc.string({ maxLength: 4 }), value: leafValue }), { maxLength: 3 }) }),
    }),
  },
)
const key = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.constantFrom('service.name', 'service.version', 'http.response.status_code', 'http.status_code', 'http.route'),
)
export const keyValue = fc.record({ key, value: anyValue }, { requiredKeys: ['key'] })
const attributes = fc.array(keyValue, { maxLength: 6 })
const resource = fc.record({ attributes, droppedAttributesCount: fc.nat(5) }, { requiredKeys: [] })
const scope = fc.record({ name: fc.string({ maxLength: 6 }), version: fc.string({ maxLength: 4 }), attributes }, { requiredKeys: [] })

const httpStatusKv = fc.record({
  key: fc.constantFrom('http.response.status_code', 'http.status_code'),
  value: fc.oneof(
    fc.record({ intValue: fc.integer({ min: 100, max: 599 }) }),
    fc.record({ stringValue: fc.constantFrom('404', '500', 'x') }),
    fc.record({ doubleValue: fc.constantFrom(200, 502.5) }),
  ),
})
const spanAttributes = fc.array(fc.oneof(keyValue, httpStatusKv), { maxLength: 8 })

export const span = fc.record(
  {
    traceId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    spanId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    parentSpanId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    traceState: fc.string({ maxLength: 5 }),
    flags: fc.nat(),
    name: fc.string({ maxLength: 16 }),
    kind: fc.integer({ min: 0, max: 5 }),
    startTimeUnixNano: u64,
    endTimeUnixNano: u64,
    attributes: spanAttributes,
    droppedAttributesCount: fc.nat(3),
    events: fc.array(fc.record({ timeUnixNano: u64, name: fc.string({ maxLength: 5 }), attributes }, { requiredKeys: [] }), { maxLength: 2 }),
    links: fc.array(
      fc.record({ traceId: fc.uint8Array({ minLength: 16, maxLength: 16 }), spanId: fc.uint8Array({ minLength: 8, maxLength: 8 }), attributes }, { requiredKeys: [] }),
      { maxLength: 1 },
    ),
    status: fc.record({ message: fc.string({ maxLength: 5 }), code: fc.integer({ min: 0, max: 2 }) }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
)

export const tracesRequest = fc.record({
  resourceSpans: fc.array(
    fc.record(
      {
        resource,
        scopeSpans: fc.array(fc.record({ scope, spans: fc.array(span, { maxLength: 4 }), schemaUrl: fc.string({ maxLength: 4 }) }, { requiredKeys: [] }), {
          maxLength: 3,
        }),
        schemaUrl: fc.string({ maxLength: 4 }),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 3 },
  ),
})

const exemplar = fc.record({ timeUnixNano: u64, asDouble: fc.double(), spanId: fc.uint8Array({ maxLength: 8 }) }, { requiredKeys: [] })
const times = { startTimeUnixNano: u64, timeUnixNano: u64, attributes, flags: fc.nat(1) }
const numberPoint = fc.oneof(
  fc.record({ ...times, asDouble: fc.double(), exemplars: fc.array(exemplar, { maxLength: 1 }) }, { requiredKeys: [] }),
  fc.record({ ...times, asInt: i64 }, { requiredKeys: [] }),
)
const histogramPoint = fc.record(
  {
    ...times,
    count: u64,
    sum: fc.double(),
    bucketCounts: fc.array(u64, { maxLength: 6 }),
    explicitBounds: fc.array(fc.double(), { maxLength: 5 }),
    exemplars: fc.array(exemplar, { maxLength: 1 }),
    min: fc.double(),
    max: fc.double(),
  },
  { requiredKeys: [] },
)
const buckets = fc.record({ offset: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), bucketCounts: fc.array(u64, { maxLength: 6 }) }, { requiredKeys: [] })
const expPoint = fc.record(
  {
    ...times,
    count: u64,
    sum: fc.double(),
    scale: fc.integer({ min: -10, max: 20 }),
    zeroCount: u64,
    positive: buckets,
    negative: buckets,
    zeroThreshold: fc.double(),
  },
  { requiredKeys: [] },
)
const temporality = fc.integer({ min: 0, max: 2 })
const metricData = fc.oneof(
  fc.record({ gauge: fc.record({ dataPoints: fc.array(numberPoint, { maxLength: 3 }) }) }),
  fc.record({ sum: fc.record({ dataPoints: fc.array(numberPoint, { maxLength: 3 }), aggregationTemporality: temporality, isMonotonic: fc.boolean() }, { requiredKeys: [] }) }),
  fc.record({ histogram: fc.record({ dataPoints: fc.array(histogramPoint, { maxLength: 3 }), aggregationTemporality: temporality }, { requiredKeys: [] }) }),
  fc.record({
    exponentialHistogram: fc.record({ dataPoints: fc.array(expPoint, { maxLength: 2 }), aggregationTemporality: temporality }, { requiredKeys: [] }),
  }),
  fc.record({
    summary: fc.record({
      dataPoints: fc.array(fc.record({ ...times, count: u64, sum: fc.double(), quantileValues: fc.array(fc.record({ quantile: fc.double(), value: fc.double() }), { maxLength: 2 }) }), {
        maxLength: 2,
      }),
    }),
  }),
  fc.constant({}),
)
export const metric = fc
  .tuple(fc.record({ name: fc.string({ maxLength: 10 }), description: fc.string({ maxLength: 5 }), unit: fc.string({ maxLength: 3 }) }, { requiredKeys: [] }), metricData)
  .map(([m, d]) => ({ ...m, ...d }))

export const metricsRequest = fc.record({
  resourceMetrics: fc.array(
    fc.record(
      {
        resource,
        scopeMetrics: fc.array(fc.record({ scope, metrics: fc.array(metric, { maxLength: 4 }) }, { requiredKeys: [] }), { maxLength: 2 }),
        schemaUrl: fc.string({ maxLength: 3 }),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 3 },
  ),
})
