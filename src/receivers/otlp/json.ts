/**
 * OTLP/JSON -> the decoded model (model.ts). Used by `pullback replay` (Collector file exporter
 * lines), the OTLP/HTTP receiver (`application/json`) and the Kafka `otlp_json` path.
 *
 * Accepted encoding (opentelemetry-proto docs/specification.md, "JSON Protobuf Encoding"):
 * - lowerCamelCase keys (snake_case is tolerated, as protojson parsers accept it);
 * - trace/span ids are hex (not needed downstream, so not decoded);
 * - int64/uint64 (times, counts) as decimal strings or JSON numbers;
 * - enums as integers (enum names such as "SPAN_KIND_SERVER" are tolerated);
 * - unknown fields are ignored; absent fields take the proto3 default.
 * Anything structurally wrong (a non-object where an object is required, a non-numeric timestamp)
 * throws OtlpJsonError (a PermanentError: retrying the same bytes fails again) naming the path.
 * More than `maxAttributes` attributes on one resource, span or data point is refused the same way,
 * with the protobuf decoder's wording ("more than N span attributes"): both formats take the same
 * requests.
 */
import { PermanentError } from '../../common/errors.js'
import type {
  Attributes,
  AttrValue,
  DecodedMetric,
  DecodedSpan,
  ExpBuckets,
  ExpHistogramPoint,
  HistogramPoint,
  MetricsRequest,
  NumberPoint,
  ResourceMetricsLite,
  ResourceSpansLite,
  SummaryPoint,
  TracesRequest,
} from './model.js'

export class OtlpJsonError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTLP_JSON_INVALID', message, options)
  }
}

type Obj = Record<string, unknown>

export interface JsonDecodeOptions {
  /** upper bound on the attributes of one resource, span or data point; above it the request is invalid. Default 1024 (as protobuf). */
  maxAttributes?: number
}

const DEFAULT_MAX_ATTRIBUTES = 1024

// Decoding is synchronous and not re-entrant (like the protobuf decoder): the limit of the call in progress.
let maxAttrs = DEFAULT_MAX_ATTRIBUTES

function withLimits<T>(opts: JsonDecodeOptions | undefined, decode: () => T): T {
  const saved = maxAttrs
  maxAttrs = opts?.maxAttributes ?? DEFAULT_MAX_ATTRIBUTES
  try {
    return decode()
  } finally {
    maxAttrs = saved
  }
}

/** An attribute list, refused above maxAttributes; `what` as in the protobuf decoder's message. */
function attrList(v: unknown, path: string, what: 'resource' | 'span' | 'data point'): unknown[] {
  const list = arr(v, path)
  if (list.length > maxAttrs) fail(path, `more than ${maxAttrs} ${what} attributes`)
  return list
}

function fail(path: string, what: string): never {
  throw new OtlpJsonError(`invalid OTLP/JSON at ${path}: ${what}`)
}

function parseInput(input: string | object, what: string): Obj {
  let v: unknown = input
  if (typeof input === 'string') {
    try {
      v = JSON.parse(input)
    } catch (err) {
      throw new OtlpJsonError(`invalid OTLP/JSON ${what}: ${(err as Error).message}`, { cause: err })
    }
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail('(root)', `expected an ${what} object`)
  return v as Obj
}

function field(o: Obj, camel: string, snake: string): unknown {
  const v = o[camel]
  return v === undefined ? o[snake] : v
}

function obj(v: unknown, path: string): Obj | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'object' || Array.isArray(v)) fail(path, 'expected an object')
  return v as Obj
}

function arr(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) fail(path, 'expected an array')
  return v
}

const DEC = /^-?\d+$/

/** int64/uint64 as a JS number (precision beyond 2^53 is lost; fine for counts). */
function int(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0
  if (typeof v === 'number' && Number.isFinite(v)) return Math.trunc(v)
  if (typeof v === 'string' && DEC.test(v)) return Number(v)
  return fail(path, `expected an integer (number or decimal string), got ${JSON.stringify(v)}`)
}

function dbl(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0
  if (typeof v === 'number') return v
  // proto3 JSON writes non-finite doubles as strings
  if (typeof v === 'string') {
    if (v === 'NaN') return NaN
    if (v === 'Infinity') return Infinity
    if (v === '-Infinity') return -Infinity
    const n = Number(v)
    if (v.trim() !== '' && Number.isFinite(n)) return n
  }
  return fail(path, `expected a number, got ${JSON.stringify(v)}`)
}

/** Epoch nanoseconds as an exact BigInt (from a decimal string or a safe number). */
function nanos(v: unknown, path: string): bigint {
  if (v === undefined || v === null) return 0n
  if (typeof v === 'string' && DEC.test(v)) return BigInt(v)
  if (typeof v === 'number' && Number.isFinite(v)) return BigInt(Math.trunc(v))
  return fail(path, `expected a unix-nano timestamp (decimal string or number), got ${JSON.stringify(v)}`)
}

/**
 * Epoch nanoseconds -> unix ms float. Same arithmetic as the protobuf decoder (high and low 32-bit
 * halves, one float step each), so both decoders give identical times for the same data.
 */
function nsToMs(v: unknown, path: string): number {
  return bigNsToMs(nanos(v, path))
}

function bigNsToMs(b: bigint): number {
  if (b === 0n) return 0
  return Number(b >> 32n) * (4294967296 / 1e6) + Number(b & 0xffffffffn) / 1e6
}

function enumValue(v: unknown, names: readonly string[], path: string): number {
  if (v === undefined || v === null) return 0
  if (typeof v === 'number' && Number.isInteger(v)) return v
  if (typeof v === 'string') {
    const i = names.indexOf(v)
    if (i >= 0) return i
    if (DEC.test(v)) return Number(v)
  }
  return fail(path, `expected an enum integer, got ${JSON.stringify(v)}`)
}

const SPAN_KINDS = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'] as const
const STATUS_CODES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'] as const
const TEMPORALITIES = ['AGGREGATION_TEMPORALITY_UNSPECIFIED', 'AGGREGATION_TEMPORALITY_DELTA', 'AGGREGATION_TEMPORALITY_CUMULATIVE'] as const

/** AnyValue -> scalar; arrays, kvlists and bytes are dropped (undefined), per the model contract. */
function anyValue(v: unknown, path: string): AttrValue | undefined {
  const o = obj(v, path)
  if (o === undefined) return undefined
  if ('stringValue' in o || 'string_value' in o) {
    const s = field(o, 'stringValue', 'string_value')
    return typeof s === 'string' ? s : String(s)
  }
  if ('boolValue' in o || 'bool_value' in o) return field(o, 'boolValue', 'bool_value') === true
  if ('intValue' in o || 'int_value' in o) return int(field(o, 'intValue', 'int_value'), `${path}.intValue`)
  if ('doubleValue' in o || 'double_value' in o) return dbl(field(o, 'doubleValue', 'double_value'), `${path}.doubleValue`)
  return undefined
}

function attributes(v: unknown, path: string, what: 'resource' | 'data point'): Attributes {
  const out: Attributes = {}
  const list = attrList(v, path, what)
  for (let i = 0; i < list.length; i++) {
    const kv = obj(list[i], `${path}[${i}]`)
    if (kv === undefined) continue
    // proto3 JSON omits empty strings: a missing key is ""
    const key = kv.key ?? ''
    if (typeof key !== 'string') fail(`${path}[${i}].key`, 'expected a string')
    const val = anyValue(kv.value, `${path}[${i}].value`)
    if (val !== undefined) out[key] = val
  }
  return out
}

function resourceAttrs(o: Obj, path: string): Attributes {
  const r = obj(o.resource, `${path}.resource`)
  return r === undefined ? {} : attributes(r.attributes, `${path}.resource.attributes`, 'resource')
}

/** An HTTP status: an integer 1..999 (or such a decimal string); anything else counts as absent (0). */
function statusValue(v: AttrValue | undefined): number {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 && v < 1000 ? v : 0
  if (typeof v === 'string' && /^\d{1,3}$/.test(v)) return Number(v)
  return 0
}

function decodeSpan(v: unknown, path: string): DecodedSpan {
  const s = obj(v, path) ?? {}
  const kind = enumValue(s.kind, SPAN_KINDS, `${path}.kind`)
  const startRaw = field(s, 'startTimeUnixNano', 'start_time_unix_nano')
  const endRaw = field(s, 'endTimeUnixNano', 'end_time_unix_nano')
  const endNs = nanos(endRaw, `${path}.endTimeUnixNano`)
  const endTimeMs = bigNsToMs(endNs)
  const diffNs = endNs - nanos(startRaw, `${path}.startTimeUnixNano`)
  const durationUs = diffNs > 0n ? Number(diffNs) / 1000 : 0
  const st = obj(s.status, `${path}.status`)
  const statusCode = st === undefined ? 0 : enumValue(st.code, STATUS_CODES, `${path}.status.code`)
  let httpStatus = 0
  const attrs = attrList(s.attributes, `${path}.attributes`, 'span')
  if (kind === 2) {
    // only the two status attributes matter; avoid building the whole attribute map per span
    const list = attrs
    let legacy = 0
    for (let i = 0; i < list.length; i++) {
      const kv = list[i] as Obj | null
      if (kv === null || typeof kv !== 'object') continue
      if (kv.key === 'http.response.status_code') httpStatus = statusValue(anyValue(kv.value, `${path}.attributes[${i}].value`))
      else if (kv.key === 'http.status_code') legacy = statusValue(anyValue(kv.value, `${path}.attributes[${i}].value`))
    }
    if (httpStatus === 0) httpStatus = legacy
  }
  return { kind, endTimeMs, durationUs, statusCode, httpStatus }
}

/** Decodes one ExportTraceServiceRequest (object or JSON text). */
export function decodeTracesJson(input: string | object, opts?: JsonDecodeOptions): TracesRequest {
  return withLimits(opts, () => tracesJson(input))
}

function tracesJson(input: string | object): TracesRequest {
  const root = parseInput(input, 'ExportTraceServiceRequest')
  const out: ResourceSpansLite[] = []
  const rss = arr(field(root, 'resourceSpans', 'resource_spans'), 'resourceSpans')
  for (let i = 0; i < rss.length; i++) {
    const p = `resourceSpans[${i}]`
    const rs = obj(rss[i], p)
    if (rs === undefined) continue
    const spans: DecodedSpan[] = []
    // `instrumentationLibrarySpans` is the pre-1.0 name some old exporters still write
    const scopes = arr(field(rs, 'scopeSpans', 'scope_spans') ?? rs.instrumentationLibrarySpans, `${p}.scopeSpans`)
    for (let j = 0; j < scopes.length; j++) {
      const sp = obj(scopes[j], `${p}.scopeSpans[${j}]`)
      if (sp === undefined) continue
      const list = arr(sp.spans, `${p}.scopeSpans[${j}].spans`)
      for (let k = 0; k < list.length; k++) spans.push(decodeSpan(list[k], `${p}.scopeSpans[${j}].spans[${k}]`))
    }
    out.push({ resource: resourceAttrs(rs, p), spans })
  }
  return { resourceSpans: out }
}

function numberPoint(v: unknown, path: string): NumberPoint {
  const d = obj(v, path) ?? {}
  const asInt = field(d, 'asInt', 'as_int')
  const value = asInt !== undefined ? int(asInt, `${path}.asInt`) : dbl(field(d, 'asDouble', 'as_double'), `${path}.asDouble`)
  return {
    startTimeMs: nsToMs(field(d, 'startTimeUnixNano', 'start_time_unix_nano'), `${path}.startTimeUnixNano`),
    timeMs: nsToMs(field(d, 'timeUnixNano', 'time_unix_nano'), `${path}.timeUnixNano`),
    value,
    attributes: attributes(d.attributes, `${path}.attributes`, 'data point'),
  }
}

function optionalDouble(v: unknown, path: string): number | undefined {
  return v === undefined || v === null ? undefined : dbl(v, path)
}

function histogramPoint(v: unknown, path: string): HistogramPoint {
  const d = obj(v, path) ?? {}
  const bounds = arr(field(d, 'explicitBounds', 'explicit_bounds'), `${path}.explicitBounds`).map((b, i) => dbl(b, `${path}.explicitBounds[${i}]`))
  const bucketCounts = arr(field(d, 'bucketCounts', 'bucket_counts'), `${path}.bucketCounts`).map((b, i) => int(b, `${path}.bucketCounts[${i}]`))
  // a bucketCounts/explicitBounds length mismatch is decoded as is (like the protobuf decoder); normalize rejects the point
  return {
    ...counted(d, path),
    bounds,
    bucketCounts,
    attributes: attributes(d.attributes, `${path}.attributes`, 'data point'),
  }
}

function expBuckets(v: unknown, path: string): ExpBuckets {
  const b = obj(v, path) ?? {}
  return {
    offset: int(b.offset, `${path}.offset`),
    bucketCounts: arr(field(b, 'bucketCounts', 'bucket_counts'), `${path}.bucketCounts`).map((c, i) => int(c, `${path}.bucketCounts[${i}]`)),
  }
}

function expHistogramPoint(v: unknown, path: string): ExpHistogramPoint {
  const d = obj(v, path) ?? {}
  return {
    ...counted(d, path),
    scale: int(d.scale, `${path}.scale`),
    zeroCount: int(field(d, 'zeroCount', 'zero_count'), `${path}.zeroCount`),
    positive: expBuckets(d.positive, `${path}.positive`),
    negative: expBuckets(d.negative, `${path}.negative`),
    attributes: attributes(d.attributes, `${path}.attributes`, 'data point'),
  }
}

/** The fields every histogram-like point shares: its times, count and sum. */
function counted(d: Obj, path: string): Pick<SummaryPoint, 'startTimeMs' | 'timeMs' | 'count' | 'sum'> {
  return {
    startTimeMs: nsToMs(field(d, 'startTimeUnixNano', 'start_time_unix_nano'), `${path}.startTimeUnixNano`),
    timeMs: nsToMs(field(d, 'timeUnixNano', 'time_unix_nano'), `${path}.timeUnixNano`),
    count: int(d.count, `${path}.count`),
    sum: optionalDouble(d.sum, `${path}.sum`),
  }
}

function summaryPoint(v: unknown, path: string): SummaryPoint {
  const d = obj(v, path) ?? {}
  return {
    ...counted(d, path),
    attributes: attributes(d.attributes, `${path}.attributes`, 'data point'),
  }
}

function dataPoints<T>(body: Obj, path: string, fn: (v: unknown, p: string) => T): T[] {
  const list = arr(field(body, 'dataPoints', 'data_points'), `${path}.dataPoints`)
  return list.map((v, i) => fn(v, `${path}.dataPoints[${i}]`))
}

/** One Metric message; one without a data type this model carries is dropped (undefined). */
function decodeMetric(v: unknown, path: string): DecodedMetric | undefined {
  const m = obj(v, path)
  if (m === undefined) return undefined
  const name = m.name === undefined ? '' : typeof m.name === 'string' ? m.name : fail(`${path}.name`, 'expected a string')
  const unit = typeof m.unit === 'string' ? m.unit : ''
  const temporality = (b: Obj, p: string) => enumValue(field(b, 'aggregationTemporality', 'aggregation_temporality'), TEMPORALITIES, `${p}.aggregationTemporality`)
  let b: Obj | undefined
  if ((b = obj(m.gauge, `${path}.gauge`)) !== undefined) {
    return { name, unit, type: 'gauge', points: dataPoints(b, `${path}.gauge`, numberPoint) }
  }
  if ((b = obj(m.sum, `${path}.sum`)) !== undefined) {
    const monotonic = field(b, 'isMonotonic', 'is_monotonic') === true
    return { name, unit, type: 'sum', temporality: temporality(b, `${path}.sum`), monotonic, points: dataPoints(b, `${path}.sum`, numberPoint) }
  }
  if ((b = obj(m.histogram, `${path}.histogram`)) !== undefined) {
    return { name, unit, type: 'histogram', temporality: temporality(b, `${path}.histogram`), points: dataPoints(b, `${path}.histogram`, histogramPoint) }
  }
  const eh = field(m, 'exponentialHistogram', 'exponential_histogram')
  if ((b = obj(eh, `${path}.exponentialHistogram`)) !== undefined) {
    return {
      name,
      unit,
      type: 'exponential_histogram',
      temporality: temporality(b, `${path}.exponentialHistogram`),
      points: dataPoints(b, `${path}.exponentialHistogram`, expHistogramPoint),
    }
  }
  if ((b = obj(m.summary, `${path}.summary`)) !== undefined) {
    return { name, unit, type: 'summary', points: dataPoints(b, `${path}.summary`, summaryPoint) }
  }
  return undefined
}

/** Decodes one ExportMetricsServiceRequest (object or JSON text). */
export function decodeMetricsJson(input: string | object, opts?: JsonDecodeOptions): MetricsRequest {
  return withLimits(opts, () => metricsJson(input))
}

function metricsJson(input: string | object): MetricsRequest {
  const root = parseInput(input, 'ExportMetricsServiceRequest')
  const out: ResourceMetricsLite[] = []
  const rms = arr(field(root, 'resourceMetrics', 'resource_metrics'), 'resourceMetrics')
  for (let i = 0; i < rms.length; i++) {
    const p = `resourceMetrics[${i}]`
    const rm = obj(rms[i], p)
    if (rm === undefined) continue
    const metrics: DecodedMetric[] = []
    const scopes = arr(field(rm, 'scopeMetrics', 'scope_metrics') ?? rm.instrumentationLibraryMetrics, `${p}.scopeMetrics`)
    for (let j = 0; j < scopes.length; j++) {
      const sm = obj(scopes[j], `${p}.scopeMetrics[${j}]`)
      if (sm === undefined) continue
      const list = arr(sm.metrics, `${p}.scopeMetrics[${j}].metrics`)
      for (let k = 0; k < list.length; k++) {
        const m = decodeMetric(list[k], `${p}.scopeMetrics[${j}].metrics[${k}]`)
        if (m !== undefined) metrics.push(m)
      }
    }
    out.push({ resource: resourceAttrs(rm, p), metrics })
  }
  return { resourceMetrics: out }
}

/** What one line of a Collector file-exporter recording holds. */
export type OtlpJsonLine = { type: 'traces'; request: TracesRequest } | { type: 'metrics'; request: MetricsRequest } | { type: 'empty' }

/** Decodes one recorded line, telling traces from metrics by the top-level key. */
export function decodeOtlpJsonLine(line: string, opts?: JsonDecodeOptions): OtlpJsonLine {
  const root = parseInput(line, 'OTLP export request')
  if (field(root, 'resourceSpans', 'resource_spans') !== undefined) return { type: 'traces', request: decodeTracesJson(root, opts) }
  if (field(root, 'resourceMetrics', 'resource_metrics') !== undefined) return { type: 'metrics', request: decodeMetricsJson(root, opts) }
  if (field(root, 'resourceLogs', 'resource_logs') !== undefined) return { type: 'empty' }
  const keys = Object.keys(root)
  if (keys.length === 0) return { type: 'empty' }
  return fail('(root)', `neither resourceSpans nor resourceMetrics (keys: ${keys.slice(0, 5).join(', ')})`)
}
