import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DecodeError } from '../../src/receivers/errors.js'
import { decodeMetricsProto, decodeTracesProto, protoDataKind } from '../../src/receivers/otlp/proto.js'
import { metricsRequest, tracesRequest } from './arbitraries.js'
import { encodeMetrics, encodeTraces, loadRoot, oracleMetrics, oracleTraces } from './oracle.js'

describe('lazy protobuf decoder vs protobufjs (proto/ schema)', () => {
  it('decodes random valid ExportTraceServiceRequests identically', () => {
    fc.assert(
      fc.property(tracesRequest, (obj) => {
        const bytes = encodeTraces(obj)
        expect(decodeTracesProto(bytes)).toEqual(oracleTraces(bytes))
      }),
      { numRuns: 400 },
    )
  })

  it('decodes random valid ExportMetricsServiceRequests identically', () => {
    fc.assert(
      fc.property(metricsRequest, (obj) => {
        const bytes = encodeMetrics(obj)
        expect(decodeMetricsProto(bytes)).toEqual(oracleMetrics(bytes))
      }),
      { numRuns: 400 },
    )
  })

  it('accepts unpacked repeated scalars (bucket counts, bounds) as proto3 parsers must', () => {
    const unpacked = loadRoot()
    unpacked.lookupType('opentelemetry.proto.metrics.v1.HistogramDataPoint').fields['bucketCounts']!.setOption('packed', false)
    unpacked.lookupType('opentelemetry.proto.metrics.v1.HistogramDataPoint').fields['explicitBounds']!.setOption('packed', false)
    unpacked.lookupType('opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint.Buckets').fields['bucketCounts']!.setOption('packed', false)
    const T = unpacked.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest')
    fc.assert(
      fc.property(metricsRequest, (obj) => {
        const bytes = Buffer.from(T.encode(T.fromObject(obj)).finish())
        expect(decodeMetricsProto(bytes)).toEqual(oracleMetrics(bytes))
      }),
      { numRuns: 150 },
    )
  })

  it('finds the status attribute when the value precedes the key on the wire', () => {
    const key = Buffer.from('http.response.status_code')
    const anyValue = Buffer.from([0x18, 0xf7, 0x03]) // int_value = 503
    const kv = Buffer.concat([Buffer.from([0x12, anyValue.length]), anyValue, Buffer.from([0x0a, key.length]), key])
    const span = Buffer.concat([Buffer.from([0x30, 0x02, 0x4a, kv.length]), kv])
    const scope = Buffer.concat([Buffer.from([0x12, span.length]), span])
    const rs = Buffer.concat([Buffer.from([0x12, scope.length]), scope])
    const req = Buffer.concat([Buffer.from([0x0a, rs.length]), rs])
    expect(decodeTracesProto(req).resourceSpans[0]!.spans[0]!.httpStatus).toBe(503)
    expect(oracleTraces(req).resourceSpans[0]!.spans[0]!.httpStatus).toBe(503)
  })

  // the decoder has a fast path for "key, then value, one-byte lengths, nothing else"; every other
  // layout of a KeyValue must read the same status
  it('finds the status attribute in KeyValues off the fast path (extra fields, multi-byte lengths, empty value)', () => {
    const varint = (n: number) => (n < 0x80 ? Buffer.from([n]) : Buffer.from([(n & 0x7f) | 0x80, n >> 7]))
    const field = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), varint(body.length), body])
    const key = (k: string) => field(0x0a, Buffer.from(k))
    const int503 = field(0x12, Buffer.from([0x18, 0xf7, 0x03]))
    const decodeStatus = (kv: Buffer) => {
      const span = Buffer.concat([Buffer.from([0x30, 0x02]), field(0x4a, kv)])
      const req = field(0x0a, field(0x12, field(0x12, span)))
      return [decodeTracesProto(req).resourceSpans[0]!.spans[0]!.httpStatus, oracleTraces(req).resourceSpans[0]!.spans[0]!.httpStatus]
    }
    // the fast path itself, both keys
    expect(decodeStatus(Buffer.concat([key('http.response.status_code'), int503]))).toEqual([503, 503])
    expect(decodeStatus(Buffer.concat([key('http.status_code'), int503]))).toEqual([503, 503])
    // unknown fields after the value (the KeyValue does not end with the value); the second one is
    // KeyValue field 3 as a varint, whose bytes would read as AnyValue.int_value = 500 if taken for the value
    expect(decodeStatus(Buffer.concat([key('http.response.status_code'), int503, field(0x1a, Buffer.alloc(200, 7))]))).toEqual([503, 503])
    expect(decodeStatus(Buffer.concat([key('http.response.status_code'), int503, Buffer.from([0x18, 0xf4, 0x03])]))).toEqual([503, 503])
    // a value whose length takes two bytes (a 150-byte string is not a status: 0)
    expect(decodeStatus(Buffer.concat([key('http.response.status_code'), field(0x12, field(0x0a, Buffer.alloc(150, 0x31)))]))).toEqual([0, 0])
    // an empty AnyValue, and a key alone
    expect(decodeStatus(Buffer.concat([key('http.response.status_code'), field(0x12, Buffer.alloc(0))]))).toEqual([0, 0])
    expect(decodeStatus(key('http.response.status_code'))).toEqual([0, 0])
    // another key with a status-like value is ignored
    expect(decodeStatus(Buffer.concat([key('http.response.status_cod'), int503]))).toEqual([0, 0])
  })

  it('computes span durations from the exact nanosecond difference', () => {
    const start = 1_764_000_000_123_456_789n
    const bytes = encodeTraces({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
          scopeSpans: [
            {
              spans: [
                { kind: 2, startTimeUnixNano: start.toString(), endTimeUnixNano: (start + 1_000_000n).toString(), status: { code: 2 }, attributes: [{ key: 'http.status_code', value: { intValue: 500 } }, { key: 'http.response.status_code', value: { intValue: 503 } }] },
                { kind: 3, startTimeUnixNano: (start + 1n).toString(), endTimeUnixNano: start.toString(), attributes: [{ key: 'http.response.status_code', value: { intValue: 503 } }] },
              ],
            },
          ],
        },
      ],
    })
    const req = decodeTracesProto(bytes)
    expect(req.resourceSpans[0]!.resource).toEqual({ 'service.name': 'checkout' })
    const [server, client] = req.resourceSpans[0]!.spans
    expect(server).toMatchObject({ kind: 2, durationUs: 1000, statusCode: 2, httpStatus: 503 })
    expect(Math.abs(server!.endTimeMs - Number(start + 1_000_000n) / 1e6)).toBeLessThan(1e-3)
    // a naive Number(end) - Number(start) gives 999.936 µs here; negative durations clamp to 0; only SERVER spans carry httpStatus
    expect(client).toMatchObject({ kind: 3, durationUs: 0, httpStatus: 0 })
  })
})

describe('lazy protobuf decoder on malformed input', () => {
  const onlyDecodeErrors = (f: () => unknown) => {
    try {
      f()
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err
    }
  }

  it('random bytes throw nothing but DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        onlyDecodeErrors(() => decodeTracesProto(b))
        onlyDecodeErrors(() => decodeMetricsProto(b))
      }),
      { numRuns: 5000 },
    )
  })

  it('truncations and byte flips of valid messages throw nothing but DecodeError', () => {
    fc.assert(
      fc.property(tracesRequest, metricsRequest, fc.nat(), fc.nat(255), (t, m, at, byte) => {
        for (const [bytes, decode] of [
          [encodeTraces(t), decodeTracesProto],
          [encodeMetrics(m), decodeMetricsProto],
        ] as const) {
          if (bytes.length === 0) continue
          const cut = at % bytes.length
          onlyDecodeErrors(() => decode(bytes.subarray(0, cut)))
          const flipped = Buffer.from(bytes)
          flipped[cut] = byte
          onlyDecodeErrors(() => decode(flipped))
          onlyDecodeErrors(() => protoDataKind(bytes.subarray(0, cut)))
          onlyDecodeErrors(() => protoDataKind(flipped))
        }
      }),
      { numRuns: 1500 },
    )
  })

  it('rejects known-bad shapes with DecodeError', () => {
    const cases: Array<[string, Buffer]> = [
      ['truncated varint', Buffer.from([0x0a, 0x80])],
      ['length past end', Buffer.from([0x0a, 0x05, 0x0a])],
      ['11-byte varint', Buffer.from([0x08, ...Array(10).fill(0xff), 0x01])],
      ['group wire type', Buffer.from([0x0b])],
      ['wire type 7', Buffer.from([0x0f])],
      ['field number 0', Buffer.from([0x02, 0x00])],
    ]
    for (const [name, bytes] of cases) {
      expect(() => decodeTracesProto(bytes), name).toThrow(DecodeError)
      expect(() => decodeMetricsProto(bytes), name).toThrow(DecodeError)
    }
    expect(() => decodeTracesProto('nope' as unknown as Uint8Array)).toThrow(DecodeError)
  })

  it('rejects 100,000 attributes quickly (bounded attribute lists)', () => {
    const attributes = Array.from({ length: 100_000 }, (_, i) => ({ key: `k${i}`, value: { intValue: i } }))
    const bytes = encodeTraces({ resourceSpans: [{ resource: { attributes } }] })
    const t0 = performance.now()
    expect(() => decodeTracesProto(bytes)).toThrow(/more than 1024 resource attributes/)
    expect(performance.now() - t0).toBeLessThan(500)
    const m = encodeMetrics({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'x', gauge: { dataPoints: [{ asDouble: 1, attributes }] } }] }] }] })
    expect(() => decodeMetricsProto(m)).toThrow(DecodeError)
    expect(decodeMetricsProto(m, { maxAttributes: 200_000 }).resourceMetrics[0]!.metrics[0]!.points).toHaveLength(1)
  })

  it('empty input is an empty request', () => {
    expect(decodeTracesProto(new Uint8Array(0))).toEqual({ resourceSpans: [] })
    expect(decodeMetricsProto(new Uint8Array(0))).toEqual({ resourceMetrics: [] })
  })
})
