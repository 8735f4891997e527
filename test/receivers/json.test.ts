/**
 * The OTLP/JSON decoder: hand-written Collector-file-exporter lines, error cases with paths, and a
 * differential property test against the protobufjs oracle (the same random request as protobuf
 * bytes through the oracle, and as proto3 JSON through decodeTracesJson / decodeMetricsJson).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { PermanentError } from '../../src/common/errors.js'
import { decodeMetricsJson, decodeOtlpJsonLine, decodeTracesJson, OtlpJsonError } from '../../src/receivers/otlp/json.js'
import { decodeRequest } from '../../src/receivers/otlp/ingest.js'
import { decodeMetricsProto, decodeTracesProto } from '../../src/receivers/otlp/proto.js'
import { protocolError } from '../../src/receivers/status.js'
import { metricsRequest, tracesRequest } from './arbitraries.js'
import { encodeMetrics, encodeTraces, MetricsReq, oracleMetrics, oracleTraces, TraceReq } from './oracle.js'

// one line as the Collector file exporter writes it (hex ids, int64 strings, enum integers)
const COLLECTOR_LINE = JSON.stringify({
  resourceSpans: [
    {
      resource: {
        attributes: [
          { key: 'service.name', value: { stringValue: 'checkout' } },
          { key: 'service.version', value: { stringValue: '1.4.2' } },
          { key: 'k8s.pod.restarts', value: { intValue: '3' } },
          { key: 'sampled', value: { boolValue: true } },
          { key: 'ratio', value: { doubleValue: 0.25 } },
          { key: 'tags', value: { arrayValue: { values: [{ stringValue: 'a' }] } } },
        ],
      },
      scopeSpans: [
        {
          scope: { name: 'io.opentelemetry.http', version: '1.0' },
          spans: [
            {
              traceId: '5b8efff798038103d269b633813fc60c',
              spanId: 'eee19b7ec3c1b174',
              name: 'POST /pay',
              kind: 2,
              startTimeUnixNano: '1767225600123456789',
              endTimeUnixNano: '1767225600373457790',
              attributes: [{ key: 'http.response.status_code', value: { intValue: '503' } }],
              status: { code: 2, message: 'upstream' },
              droppedEventsCount: 0,
              someFutureField: { x: 1 },
            },
            { kind: 3, startTimeUnixNano: '1767225600000000000', endTimeUnixNano: '1767225600001000000', attributes: [{ key: 'http.response.status_code', value: { intValue: '500' } }] },
            { kind: 2, startTimeUnixNano: 1.7672256e18, endTimeUnixNano: '1767225599000000000', attributes: [{ key: 'http.status_code', value: { stringValue: '404' } }] },
          ],
        },
      ],
    },
  ],
})

describe('decodeTracesJson', () => {
  it('decodes a Collector file-exporter line', () => {
    const r = decodeTracesJson(COLLECTOR_LINE)
    expect(r.resourceSpans).toHaveLength(1)
    const rs = r.resourceSpans[0]!
    expect(rs.resource).toEqual({ 'service.name': 'checkout', 'service.version': '1.4.2', 'k8s.pod.restarts': 3, sampled: true, ratio: 0.25 })
    const [a, b, c] = rs.spans
    // exact: 250_001_001 ns = 250001.001 us, beyond what two rounded epoch doubles could give
    expect(a).toEqual({ kind: 2, endTimeMs: expect.closeTo(1767225600373.4578, 3), durationUs: 250001.001, statusCode: 2, httpStatus: 503 })
    expect(b?.httpStatus).toBe(0) // only SERVER spans carry the status
    expect(c).toMatchObject({ durationUs: 0, httpStatus: 404 }) // negative duration clamped; legacy attribute
  })

  it('accepts an object, enum names and snake_case keys', () => {
    const r = decodeTracesJson({ resource_spans: [{ scope_spans: [{ spans: [{ kind: 'SPAN_KIND_SERVER', start_time_unix_nano: '0', end_time_unix_nano: '1000', status: { code: 'STATUS_CODE_ERROR' } }] }] }] })
    expect(r.resourceSpans[0]?.spans[0]).toEqual({ kind: 2, endTimeMs: 0.001, durationUs: 1, statusCode: 2, httpStatus: 0 })
  })

  it.each([
    ['not JSON', '{"resourceSpans": ['],
    ['an array', '[]'],
    ['resourceSpans not an array', '{"resourceSpans": {}}'],
    ['a bad timestamp', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":"12:00"}]}]}]}'],
    ['a bad enum', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SERVER-ish"}]}]}]}'],
  ])('rejects %s with a PermanentError naming the problem', (_what, text) => {
    let err: unknown
    try {
      decodeTracesJson(text)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(OtlpJsonError)
    expect(err).toBeInstanceOf(PermanentError)
    expect((err as Error).message).toMatch(/invalid OTLP\/JSON/)
  })

  it('names the path of a bad field', () => {
    expect(() => decodeTracesJson('{"resourceSpans":[{"scopeSpans":[{"spans":[{},{"startTimeUnixNano":true}]}]}]}')).toThrow(
      /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[1\]\.startTimeUnixNano/,
    )
  })
})

describe('decodeMetricsJson', () => {
  it('decodes gauges, sums, histograms and exponential histograms; drops summaries', () => {
    const line = JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'cart' } }] },
          scopeMetrics: [
            {
              metrics: [
                { name: 'k8s.pod.memory.working_set', unit: 'By', gauge: { dataPoints: [{ timeUnixNano: '1767225600000000000', asInt: '209715200' }] } },
                { name: 'c', sum: { aggregationTemporality: 2, isMonotonic: true, dataPoints: [{ startTimeUnixNano: '1', timeUnixNano: '2000000', asDouble: 'NaN' }] } },
                {
                  name: 'http.server.request.duration',
                  unit: 's',
                  histogram: { aggregationTemporality: 1, dataPoints: [{ timeUnixNano: '1000000', count: '7', sum: 1.5, bucketCounts: ['1', '2', '4'], explicitBounds: [0.1, 0.5], attributes: [{ key: 'http.response.status_code', value: { intValue: 500 } }] }] },
                },
                { name: 'e', exponentialHistogram: { aggregationTemporality: 2, dataPoints: [{ timeUnixNano: '1000000', count: '3', scale: -2, zeroCount: '1', positive: { offset: -3, bucketCounts: ['2'] } }] } },
                { name: 's', summary: { dataPoints: [{ timeUnixNano: '3000000', count: '4', sum: 0.8, quantileValues: [{ quantile: 0.99, value: 0.5 }], attributes: [{ key: 'status', value: { stringValue: '200' } }] }] } },
              ],
            },
          ],
        },
      ],
    })
    const ms = decodeMetricsJson(line).resourceMetrics[0]!.metrics
    expect(ms.map((m) => m.type)).toEqual(['gauge', 'sum', 'histogram', 'exponential_histogram', 'summary'])
    expect(ms[0]).toEqual({ name: 'k8s.pod.memory.working_set', unit: 'By', type: 'gauge', points: [{ startTimeMs: 0, timeMs: 1767225600000, value: 209715200, attributes: {} }] })
    expect(ms[1]).toMatchObject({ type: 'sum', temporality: 2, monotonic: true, points: [{ value: NaN, startTimeMs: 0.000001, timeMs: 2 }] })
    expect(ms[2]).toMatchObject({ type: 'histogram', temporality: 1, points: [{ count: 7, sum: 1.5, bounds: [0.1, 0.5], bucketCounts: [1, 2, 4], attributes: { 'http.response.status_code': 500 } }] })
    expect(ms[3]).toMatchObject({ points: [{ count: 3, scale: -2, zeroCount: 1, positive: { offset: -3, bucketCounts: [2] }, negative: { offset: 0, bucketCounts: [] }, sum: undefined }] })
    // a summary's count and sum; its quantiles are not carried (they cannot be combined)
    expect(ms[4]).toEqual({ name: 's', unit: '', type: 'summary', points: [{ startTimeMs: 0, timeMs: 3, count: 4, sum: 0.8, attributes: { status: '200' } }] })
  })

  it('tells traces from metrics in a recorded line', () => {
    expect(decodeOtlpJsonLine('{"resourceMetrics":[]}').type).toBe('metrics')
    expect(decodeOtlpJsonLine(COLLECTOR_LINE).type).toBe('traces')
    expect(decodeOtlpJsonLine('{}').type).toBe('empty')
    expect(() => decodeOtlpJsonLine('{"hello":1}')).toThrow(/neither resourceSpans nor resourceMetrics/)
  })
})

/** protobufjs object -> proto3 JSON text: int64 as strings, enums as numbers, non-finite doubles as strings. */
function toJson(type: typeof TraceReq, bytes: Uint8Array): string {
  const o = type.toObject(type.decode(bytes), { longs: String, enums: Number, bytes: String, defaults: false })
  return JSON.stringify(o, (_k, v: unknown) => {
    if (typeof v === 'number') {
      if (Number.isNaN(v)) return 'NaN'
      if (v === Infinity) return 'Infinity'
      if (v === -Infinity) return '-Infinity'
      if (Object.is(v, -0)) return '-0'
    }
    return v
  })
}

describe('differential against the protobufjs oracle', () => {
  it('traces: JSON decode equals the oracle on the same request', () => {
    fc.assert(
      fc.property(tracesRequest, (req) => {
        const bytes = encodeTraces(req)
        expect(decodeTracesJson(toJson(TraceReq, bytes))).toEqual(oracleTraces(bytes))
      }),
      { numRuns: 300 },
    )
  })

  it('metrics: JSON decode equals the oracle on the same request', () => {
    fc.assert(
      fc.property(metricsRequest, (req) => {
        const bytes = encodeMetrics(req)
        expect(decodeMetricsJson(toJson(MetricsReq, bytes))).toEqual(oracleMetrics(bytes))
      }),
      { numRuns: 300 },
    )
  })
})

describe('maxAttributes (issue 11 item 5: JSON ignored it, protobuf enforced it)', () => {
  const kvs = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: { intValue: String(i) } }))
  const traces = (res: number, span: number) => ({
    resourceSpans: [{ resource: { attributes: kvs(res) }, scopeSpans: [{ spans: [{ kind: 1, startTimeUnixNano: '1', endTimeUnixNano: '2', attributes: kvs(span) }] }] }],
  })
  const metrics = (n: number) => ({
    resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'g', gauge: { dataPoints: [{ asDouble: 1, attributes: kvs(n) }] } }] }] }],
  })
  /** the outcome of the protobuf decoder on the same request: 'ok' or the message's tail */
  const protoOutcome = (f: () => unknown): string => {
    try {
      f()
      return 'ok'
    } catch (err) {
      return /more than \d+ [a-z ]+ attributes/.exec((err as Error).message)?.[0] ?? (err as Error).message
    }
  }
  const jsonOutcome = protoOutcome

  it('refuses more than maxAttributes on a resource, a span or a data point, like protobuf, with the same words', () => {
    for (const [res, span] of [
      [4, 4],
      [5, 0],
      [0, 5],
    ] as const) {
      const req = traces(res, span)
      const p = protoOutcome(() => decodeTracesProto(encodeTraces(req), { maxAttributes: 4 }))
      const j = jsonOutcome(() => decodeTracesJson(JSON.stringify(req), { maxAttributes: 4 }))
      expect(j).toBe(p)
    }
    // both over: each decoder names the list it meets first (protobuf decodes the resource lazily)
    expect(jsonOutcome(() => decodeTracesJson(traces(5, 5), { maxAttributes: 4 }))).toMatch(/^more than 4 (resource|span) attributes$/)
    expect(protoOutcome(() => decodeTracesProto(encodeTraces(traces(5, 5)), { maxAttributes: 4 }))).toMatch(/^more than 4 (resource|span) attributes$/)
    expect(jsonOutcome(() => decodeTracesJson(traces(0, 5), { maxAttributes: 4 }))).toBe('more than 4 span attributes')
    expect(jsonOutcome(() => decodeTracesJson(traces(5, 0), { maxAttributes: 4 }))).toBe('more than 4 resource attributes')
    for (const n of [4, 5]) {
      const p = protoOutcome(() => decodeMetricsProto(encodeMetrics(metrics(n)), { maxAttributes: 4 }))
      expect(jsonOutcome(() => decodeMetricsJson(metrics(n), { maxAttributes: 4 }))).toBe(p)
    }
    expect(jsonOutcome(() => decodeMetricsJson(metrics(5), { maxAttributes: 4 }))).toBe('more than 4 data point attributes')
  })

  it('defaults to 1024 like protobuf, and the error is permanent (HTTP 400 / INVALID_ARGUMENT)', () => {
    expect(() => decodeTracesJson(traces(1024, 1024))).not.toThrow()
    let err: unknown
    try {
      decodeTracesJson(traces(0, 1025))
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(OtlpJsonError)
    expect(err).toBeInstanceOf(PermanentError)
    expect(protocolError(err, 1000).reason).toBe('decode')
    // through the receivers' shared request path, with the configured limit
    expect(() => decodeRequest('traces', 'json', Buffer.from(JSON.stringify(traces(0, 3))), 2)).toThrow(/more than 2 span attributes/)
    expect(() => decodeRequest('metrics', 'json', Buffer.from(JSON.stringify(metrics(3))), 2)).toThrow(/more than 2 data point attributes/)
  })
})
