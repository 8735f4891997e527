/**
 * The test oracle: protobufjs loading the hand-written proto/ schema, plus converters from protobufjs'
 * decoded objects to the model shapes (src/receivers/otlp/model.ts), written independently of the
 * hand decoder.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import type { Attributes, AttrValue, DecodedMetric, MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'

const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto')

export function loadRoot(): protobuf.Root {
  const root = new protobuf.Root()
  root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target)
  root.loadSync(
    [
      'opentelemetry/proto/collector/trace/v1/trace_service.proto',
      'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
      'google/rpc/status.proto',
    ],
    { keepCase: false },
  )
  root.resolveAll()
  return root
}

export const root = loadRoot()
export const TraceReq = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
export const TraceResp = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse')
export const MetricsReq = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest')
export const MetricsResp = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse')
export const RpcStatus = root.lookupType('google.rpc.Status')
export const RetryInfo = root.lookupType('google.rpc.RetryInfo')

export function encodeTraces(obj: object): Buffer {
  return Buffer.from(TraceReq.encode(TraceReq.fromObject(obj)).finish())
}
/**
 * An otlp_proto span record for the Kafka tests: `spans` SERVER spans of service `checkout`, padded
 * by a resource attribute of `pad` bytes (record size is what those tests vary), span j of record i
 * ending at `endMs(j)` (a test that checks identities puts them there) and lasting 2 ms.
 */
export function paddedSpanRecord(i: number, pad: number, spans: number, endMs: (j: number) => number): Buffer {
  return encodeTraces({
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'checkout' } },
            { key: 'pad', value: { stringValue: 'x'.repeat(pad) } },
          ],
        },
        scopeSpans: [
          {
            spans: Array.from({ length: spans }, (_, j) => {
              const end = BigInt(endMs(j))
              return {
                traceId: Buffer.alloc(16, (i + j + 1) & 0xff),
                spanId: Buffer.alloc(8, j + 1),
                name: 'GET /',
                kind: 2,
                startTimeUnixNano: ((end - 2n) * 1_000_000n).toString(),
                endTimeUnixNano: (end * 1_000_000n).toString(),
              }
            }),
          },
        ],
      },
    ],
  })
}

export function encodeMetrics(obj: object): Buffer {
  return Buffer.from(MetricsReq.encode(MetricsReq.fromObject(obj)).finish())
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, oneofs: true, defaults: false }

/* eslint-disable @typescript-eslint/no-explicit-any */
const big = (s: string | undefined): bigint => (s === undefined ? 0n : BigInt(s))
/** ns (decimal string) -> ms, same arithmetic contract as the decoder: hi/lo halves, then one float step each */
export function nsToMs(s: string | undefined): number {
  const b = big(s)
  return Number(b >> 32n) * (4294967296 / 1e6) + Number(b & 0xffffffffn) / 1e6
}

function attrOf(v: any): { has: true; v: AttrValue } | { has: false } {
  if (v === undefined || v === null) return { has: false }
  switch (v.value) {
    case 'stringValue':
      return { has: true, v: v.stringValue }
    case 'boolValue':
      return { has: true, v: v.boolValue }
    case 'intValue':
      return { has: true, v: Number(BigInt(v.intValue)) }
    case 'doubleValue':
      return { has: true, v: v.doubleValue }
    default:
      return { has: false }
  }
}

export function attrs(kvs: any[] | undefined): Attributes {
  const out: Attributes = {}
  for (const kv of kvs ?? []) {
    const a = attrOf(kv.value)
    if (a.has) out[kv.key ?? ''] = a.v
  }
  return out
}

function statusValue(v: any): number {
  const a = attrOf(v)
  if (!a.has) return 0
  if (typeof a.v === 'number') return Number.isInteger(a.v) && a.v > 0 && a.v < 1000 ? a.v : 0
  if (typeof a.v === 'string' && /^\d{1,3}$/.test(a.v)) return Number(a.v)
  return 0
}

export function oracleTraces(bytes: Uint8Array): TracesRequest {
  const o: any = TraceReq.toObject(TraceReq.decode(bytes), TO_OBJECT)
  return {
    resourceSpans: (o.resourceSpans ?? []).map((rs: any) => ({
      resource: attrs(rs.resource?.attributes),
      spans: (rs.scopeSpans ?? []).flatMap((ss: any) =>
        (ss.spans ?? []).map((s: any) => {
          let newer = 0
          let older = 0
          for (const kv of s.attributes ?? []) {
            if (kv.key === 'http.response.status_code') newer = statusValue(kv.value)
            else if (kv.key === 'http.status_code') older = statusValue(kv.value)
          }
          const kind = s.kind ?? 0
          const ns = big(s.endTimeUnixNano) - big(s.startTimeUnixNano)
          return {
            kind,
            endTimeMs: nsToMs(s.endTimeUnixNano),
            durationUs: ns > 0n ? Number(ns) / 1000 : 0,
            statusCode: s.status?.code ?? 0,
            httpStatus: kind === 2 ? newer || older : 0,
          }
        }),
      ),
    })),
  }
}

function numberPoints(dps: any[] | undefined) {
  return (dps ?? []).map((p: any) => ({
    startTimeMs: nsToMs(p.startTimeUnixNano),
    timeMs: nsToMs(p.timeUnixNano),
    value: p.value === 'asDouble' ? p.asDouble : p.value === 'asInt' ? Number(BigInt(p.asInt)) : 0,
    attributes: attrs(p.attributes),
  }))
}

const u64s = (xs: string[] | undefined): number[] => (xs ?? []).map((x) => Number(BigInt(x)))

export function oracleMetrics(bytes: Uint8Array): MetricsRequest {
  const o: any = MetricsReq.toObject(MetricsReq.decode(bytes), TO_OBJECT)
  return {
    resourceMetrics: (o.resourceMetrics ?? []).map((rm: any) => ({
      resource: attrs(rm.resource?.attributes),
      metrics: (rm.scopeMetrics ?? []).flatMap((sm: any) =>
        (sm.metrics ?? []).flatMap((m: any): DecodedMetric[] => {
          const name = m.name ?? ''
          const unit = m.unit ?? ''
          switch (m.data) {
            case 'gauge':
              return [{ name, unit, type: 'gauge', points: numberPoints(m.gauge.dataPoints) }]
            case 'sum':
              return [
                {
                  name,
                  unit,
                  type: 'sum',
                  temporality: m.sum.aggregationTemporality ?? 0,
                  monotonic: m.sum.isMonotonic ?? false,
                  points: numberPoints(m.sum.dataPoints),
                },
              ]
            case 'histogram':
              return [
                {
                  name,
                  unit,
                  type: 'histogram',
                  temporality: m.histogram.aggregationTemporality ?? 0,
                  points: (m.histogram.dataPoints ?? []).map((p: any) => ({
                    startTimeMs: nsToMs(p.startTimeUnixNano),
                    timeMs: nsToMs(p.timeUnixNano),
                    count: Number(big(p.count)),
                    sum: p.sum ?? undefined,
                    bounds: p.explicitBounds ?? [],
                    bucketCounts: u64s(p.bucketCounts),
                    attributes: attrs(p.attributes),
                  })),
                },
              ]
            case 'exponentialHistogram':
              return [
                {
                  name,
                  unit,
                  type: 'exponential_histogram',
                  temporality: m.exponentialHistogram.aggregationTemporality ?? 0,
                  points: (m.exponentialHistogram.dataPoints ?? []).map((p: any) => ({
                    startTimeMs: nsToMs(p.startTimeUnixNano),
                    timeMs: nsToMs(p.timeUnixNano),
                    count: Number(big(p.count)),
                    sum: p.sum ?? undefined,
                    scale: p.scale ?? 0,
                    zeroCount: Number(big(p.zeroCount)),
                    positive: { offset: p.positive?.offset ?? 0, bucketCounts: u64s(p.positive?.bucketCounts) },
                    negative: { offset: p.negative?.offset ?? 0, bucketCounts: u64s(p.negative?.bucketCounts) },
                    attributes: attrs(p.attributes),
                  })),
                },
              ]
            case 'summary':
              return [
                {
                  name,
                  unit,
                  type: 'summary',
                  points: (m.summary.dataPoints ?? []).map((p: any) => ({
                    startTimeMs: nsToMs(p.startTimeUnixNano),
                    timeMs: nsToMs(p.timeUnixNano),
                    count: Number(big(p.count)),
                    sum: p.sum ?? undefined,
                    attributes: attrs(p.attributes),
                  })),
                },
              ]
            default:
              return []
          }
        }),
      ),
    })),
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */
