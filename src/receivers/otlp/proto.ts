/**
 * Hand-written lazy protobuf decoder: ExportTraceServiceRequest / ExportMetricsServiceRequest bytes
 * straight into the shapes of ./model.ts, extracting only what normalize needs and skipping every
 * other field without materialising it (span ids, names, events, links, exemplars, scopes...).
 *
 * Contract:
 * - Any malformed input throws DecodeError, and nothing else: truncated varints/lengths, lengths past
 *   the enclosing message, wire types 3/4/6/7 (OTLP never uses groups), field number 0, more
 *   than `maxAttributes` attributes in one list. Every loop advances `pos`, so it always terminates;
 *   recursion depth is fixed by the schema (arrays/kvlists inside AnyValue are skipped, not walked).
 * - A field whose wire type differs from the schema's is skipped like an unknown field.
 * - Repeated scalar fields accept both packed and unpacked encodings (proto3 parsers must).
 * - Verified against protobufjs loading proto/ (test/receivers/proto.test.ts).
 */
import { DecodeError } from '../errors.js'
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

export interface DecodeOptions {
  /** upper bound on the attributes of one resource, span or data point; above it the request is invalid. Default 1024. */
  maxAttributes?: number
}

export const DEFAULT_MAX_ATTRIBUTES = 1024

const TWO_32 = 4294967296
const NS_PER_MS_HI = TWO_32 / 1e6

// Decoding is synchronous and not re-entrant, so the cursor lives in module state (measurably faster
// than passing a reader object through every call in V8).
let buf: Buffer = Buffer.alloc(0)
let pos = 0
let maxAttrs = DEFAULT_MAX_ATTRIBUTES
// results of varint64()/fixed64()
let vlo = 0
let vhi = 0

function fail(msg: string): never {
  throw new DecodeError(`invalid protobuf: ${msg} at byte ${pos}`)
}

function begin(input: Uint8Array, opts: DecodeOptions | undefined): void {
  if (!(input instanceof Uint8Array)) throw new DecodeError('invalid protobuf: input is not bytes')
  buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  pos = 0
  maxAttrs = opts?.maxAttributes ?? DEFAULT_MAX_ATTRIBUTES
}

function end(): void {
  // drop the reference so a large request can be collected
  buf = EMPTY
}
const EMPTY = Buffer.alloc(0)

/** Reads a varint of up to 10 bytes into vlo/vhi (unsigned 32-bit halves). */
function varint64(limit: number): void {
  const b = buf
  let p = pos
  let lo = 0
  let byte = 0
  for (let shift = 0; shift < 28; shift += 7) {
    if (p >= limit) fail('truncated varint')
    byte = b[p++] as number
    lo |= (byte & 0x7f) << shift
    if (byte < 0x80) {
      vlo = lo >>> 0
      vhi = 0
      pos = p
      return
    }
  }
  if (p >= limit) fail('truncated varint')
  byte = b[p++] as number
  lo |= (byte & 0x0f) << 28
  let hi = (byte & 0x7f) >> 4
  if (byte < 0x80) {
    vlo = lo >>> 0
    vhi = hi
    pos = p
    return
  }
  for (let shift = 3; shift < 32; shift += 7) {
    if (p >= limit) fail('truncated varint')
    byte = b[p++] as number
    hi |= (byte & 0x7f) << shift
    if (byte < 0x80) {
      vlo = lo >>> 0
      vhi = hi >>> 0
      pos = p
      return
    }
  }
  pos = p
  fail('varint longer than 10 bytes')
}

/** A varint that must fit in 32 bits unsigned: tags and lengths. */
function uint32(limit: number): number {
  if (pos < limit) {
    const byte = buf[pos] as number
    if (byte < 0x80) {
      pos++
      return byte
    }
  }
  varint64(limit)
  if (vhi !== 0) fail('varint out of 32-bit range')
  return vlo
}

/** Reads a length prefix and returns the end offset of the delimited bytes (checked against limit). */
function delimited(limit: number): number {
  const len = uint32(limit)
  const e = pos + len
  if (e > limit) fail('length past end of message')
  return e
}

function fixed64(limit: number): void {
  const p = pos
  if (p + 8 > limit) fail('truncated fixed64')
  const b = buf
  vlo = ((b[p] as number) | ((b[p + 1] as number) << 8) | ((b[p + 2] as number) << 16) | ((b[p + 3] as number) << 24)) >>> 0
  vhi = ((b[p + 4] as number) | ((b[p + 5] as number) << 8) | ((b[p + 6] as number) << 16) | ((b[p + 7] as number) << 24)) >>> 0
  pos = p + 8
}

function double(limit: number): number {
  if (pos + 8 > limit) fail('truncated double')
  const v = buf.readDoubleLE(pos)
  pos += 8
  return v
}

function string(limit: number): string {
  const e = delimited(limit)
  const s = e - pos < 1 ? '' : buf.toString('utf8', pos, e)
  pos = e
  return s
}

/** Reads a tag; returns field number * 8 + wire type, as on the wire (validated). */
function tag(limit: number): number {
  const t = uint32(limit)
  if (t >>> 3 === 0) fail('field number 0')
  return t
}

function skip(wt: number, limit: number): void {
  switch (wt) {
    case 0:
      varint64(limit)
      return
    case 1:
      if (pos + 8 > limit) fail('truncated fixed64')
      pos += 8
      return
    case 2:
      pos = delimited(limit)
      return
    case 5:
      if (pos + 4 > limit) fail('truncated fixed32')
      pos += 4
      return
    default:
      fail(`unsupported wire type ${wt}`)
  }
}

const u64 = (): number => vhi * TWO_32 + vlo
const i64 = (): number => (vhi | 0) * TWO_32 + vlo
const nsToMs = (): number => vhi * NS_PER_MS_HI + vlo / 1e6

// ---- attributes ----------------------------------------------------------------------------------

let anyHas = false
let anyVal: AttrValue = ''

/** AnyValue -> anyHas/anyVal. Arrays, kvlists and bytes are dropped (oneof: the last member wins). */
function anyValue(limit: number): void {
  anyHas = false
  while (pos < limit) {
    const t = tag(limit)
    switch (t) {
      case (1 << 3) | 2:
        anyVal = string(limit)
        anyHas = true
        break
      case (2 << 3) | 0:
        varint64(limit)
        anyVal = vlo !== 0 || vhi !== 0
        anyHas = true
        break
      case (3 << 3) | 0:
        varint64(limit)
        anyVal = i64()
        anyHas = true
        break
      case (4 << 3) | 1:
        anyVal = double(limit)
        anyHas = true
        break
      case (5 << 3) | 2:
      case (6 << 3) | 2:
      case (7 << 3) | 2:
        pos = delimited(limit)
        anyHas = false
        break
      default:
        skip(t & 7, limit)
    }
  }
}

/** One KeyValue into `into`; a later duplicate key overwrites an earlier one. */
function keyValue(limit: number, into: Attributes): void {
  let key = ''
  let has = false
  let val: AttrValue = ''
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((1 << 3) | 2)) {
      key = string(limit)
    } else if (t === ((2 << 3) | 2)) {
      const e = delimited(limit)
      anyValue(e)
      pos = e
      has = anyHas
      val = anyVal
    } else {
      skip(t & 7, limit)
    }
  }
  if (has) into[key] = val
}

function resource(limit: number, into: Attributes): number {
  let n = 0
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((1 << 3) | 2)) {
      if (++n > maxAttrs) fail(`more than ${maxAttrs} resource attributes`)
      const e = delimited(limit)
      keyValue(e, into)
      pos = e
    } else {
      skip(t & 7, limit)
    }
  }
  return n
}

// ---- traces --------------------------------------------------------------------------------------

/** Compares the key bytes of a KeyValue with an ASCII constant without decoding the string. */
function keyIs(start: number, len: number, ascii: Uint8Array): boolean {
  if (len !== ascii.length) return false
  const b = buf
  for (let i = 0; i < len; i++) if (b[start + i] !== ascii[i]) return false
  return true
}
const KEY_HTTP_RESPONSE_STATUS = Buffer.from('http.response.status_code', 'latin1')
const KEY_HTTP_STATUS = Buffer.from('http.status_code', 'latin1')

/** Status code from an AnyValue: int, integral double, or a decimal string; 0 when none. */
function statusFromAny(limit: number): number {
  anyValue(limit)
  if (!anyHas) return 0
  const v = anyVal
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 && v < 1000 ? v : 0
  if (typeof v === 'string' && /^\d{1,3}$/.test(v)) return Number(v)
  return 0
}

// span attribute scan result: 1 = http.response.status_code, 2 = http.status_code
let newStatus = 0
let oldStatus = 0

function spanAttribute(limit: number): void {
  // Fast path for the encoding SDKs write: key (field 1) then value (field 2), each with a one-byte
  // length, and nothing else. The key is compared in place and the value read only for a wanted key.
  // Anything else (longer lengths, other order, extra fields, malformed) takes the general loop below.
  const b = buf
  const p = pos
  if (p + 2 <= limit && b[p] === 0x0a) {
    const klen = b[p + 1] as number
    const ke = p + 2 + klen
    if (klen < 0x80 && ke + 2 <= limit && b[ke] === 0x12) {
      const vlen = b[ke + 1] as number
      if (vlen < 0x80 && ke + 2 + vlen === limit) {
        const w = keyIs(p + 2, klen, KEY_HTTP_RESPONSE_STATUS) ? 1 : keyIs(p + 2, klen, KEY_HTTP_STATUS) ? 2 : 0
        if (w !== 0) {
          pos = ke + 2
          const code = statusFromAny(limit)
          if (w === 1) newStatus = code
          else oldStatus = code
        }
        pos = limit
        return
      }
    }
  }
  let which = 0
  let valueStart = -1
  let valueEnd = -1
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((1 << 3) | 2)) {
      const e = delimited(limit)
      const len = e - pos
      which = keyIs(pos, len, KEY_HTTP_RESPONSE_STATUS) ? 1 : keyIs(pos, len, KEY_HTTP_STATUS) ? 2 : 0
      pos = e
    } else if (t === ((2 << 3) | 2)) {
      // the value is only looked at when the key is one we want (keys usually come first, but need not)
      valueEnd = delimited(limit)
      valueStart = pos
      pos = valueEnd
    } else {
      skip(t & 7, limit)
    }
  }
  if (which === 0) return
  let code = 0
  if (valueStart >= 0) {
    const after = pos
    pos = valueStart
    code = statusFromAny(valueEnd)
    pos = after
  }
  if (which === 1) newStatus = code
  else oldStatus = code
}

function spanStatus(limit: number): number {
  let code = 0
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((3 << 3) | 0)) {
      varint64(limit)
      code = vlo | 0
    } else {
      skip(t & 7, limit)
    }
  }
  return code
}

function span(limit: number): DecodedSpan {
  let kind = 0
  let sLo = 0
  let sHi = 0
  let eLo = 0
  let eHi = 0
  let endMs = 0
  let statusCode = 0
  let nAttrs = 0
  newStatus = 0
  oldStatus = 0
  while (pos < limit) {
    const t = tag(limit)
    switch (t) {
      case (6 << 3) | 0:
        varint64(limit)
        kind = vlo | 0
        break
      case (7 << 3) | 1:
        fixed64(limit)
        sLo = vlo
        sHi = vhi
        break
      case (8 << 3) | 1:
        fixed64(limit)
        eLo = vlo
        eHi = vhi
        endMs = nsToMs()
        break
      case (9 << 3) | 2: {
        if (++nAttrs > maxAttrs) fail(`more than ${maxAttrs} span attributes`)
        const e = delimited(limit)
        spanAttribute(e)
        pos = e
        break
      }
      case (15 << 3) | 2: {
        const e = delimited(limit)
        statusCode = spanStatus(e)
        pos = e
        break
      }
      default:
        skip(t & 7, limit)
    }
  }
  // exact: both halves are differenced before the only rounding step
  const ns = (eHi - sHi) * TWO_32 + (eLo - sLo)
  return {
    kind,
    endTimeMs: endMs,
    durationUs: ns > 0 ? ns / 1000 : 0,
    statusCode,
    httpStatus: kind === 2 ? newStatus || oldStatus : 0,
  }
}

function scopeSpans(limit: number, into: DecodedSpan[]): void {
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((2 << 3) | 2)) {
      const e = delimited(limit)
      into.push(span(e))
      pos = e
    } else {
      skip(t & 7, limit)
    }
  }
}

function resourceSpans(limit: number): ResourceSpansLite {
  const out: ResourceSpansLite = { resource: {}, spans: [] }
  let nRes = 0
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((1 << 3) | 2)) {
      const e = delimited(limit)
      nRes += resource(e, out.resource)
      if (nRes > maxAttrs) fail(`more than ${maxAttrs} resource attributes`)
      pos = e
    } else if (t === ((2 << 3) | 2)) {
      const e = delimited(limit)
      scopeSpans(e, out.spans)
      pos = e
    } else {
      skip(t & 7, limit)
    }
  }
  return out
}

/** Decodes ExportTraceServiceRequest (= TracesData) bytes. Throws DecodeError on malformed input. */
export function decodeTracesProto(input: Uint8Array, opts?: DecodeOptions): TracesRequest {
  begin(input, opts)
  try {
    const limit = buf.length
    const resourceSpansList: ResourceSpansLite[] = []
    while (pos < limit) {
      const t = tag(limit)
      if (t === ((1 << 3) | 2)) {
        const e = delimited(limit)
        resourceSpansList.push(resourceSpans(e))
        pos = e
      } else {
        skip(t & 7, limit)
      }
    }
    return { resourceSpans: resourceSpansList }
  } finally {
    end()
  }
}

/**
 * Which OTLP data a protobuf message holds when nothing else says (a file of length-prefixed
 * messages, src/receivers/otlp-file): TracesData, MetricsData and LogsData share their outer shape
 * (field 1: resource entries, whose field 2 holds scope entries, whose field 2 holds the items), so
 * the first telling item's own fields decide. A span carries its start and end times as fixed64
 * fields 7 and 8 (or, without times, a 16-byte trace id and an 8-byte span id), a log record its
 * times as fixed64 fields 1 and 11, a metric its data as message field 5, 7, 9, 10 or 11; a metric
 * without data (a name only) tells nothing and the next item is read. 'empty' when the message
 * holds no item. Throws DecodeError on malformed bytes, or when none of its items tells.
 */
export function protoDataKind(input: Uint8Array): 'traces' | 'metrics' | 'logs' | 'empty' {
  begin(input, undefined)
  try {
    const seen = { items: 0 }
    const kind = kindWithin(buf.length, 0, seen)
    if (kind !== undefined) return kind
    if (seen.items > 0) fail(`none of its ${seen.items} items is a span, a metric with data or a log record`)
    return 'empty'
  } finally {
    end()
  }
}

/** Depth 0: the message (its resource entries, field 1); 1: a resource entry (scope entries, field 2); 2: a scope entry (items, field 2). */
function kindWithin(limit: number, depth: number, seen: { items: number }): 'traces' | 'metrics' | 'logs' | undefined {
  const want = depth === 0 ? (1 << 3) | 2 : (2 << 3) | 2
  while (pos < limit) {
    const t = tag(limit)
    if (t !== want) {
      skip(t & 7, limit)
      continue
    }
    const e = delimited(limit)
    const kind = depth === 2 ? itemKind(e) : kindWithin(e, depth + 1, seen)
    if (kind !== undefined) return kind
    if (depth === 2) seen.items += 1
    pos = e
  }
  return undefined
}

function itemKind(limit: number): 'traces' | 'metrics' | 'logs' | undefined {
  let metricData = false
  let spanIds = 0
  while (pos < limit) {
    const t = tag(limit)
    const f = t >>> 3
    const wt = t & 7
    if (wt === 1 && (f === 7 || f === 8)) return 'traces'
    if (wt === 1 && (f === 1 || f === 11)) return 'logs'
    if (wt !== 2) {
      skip(wt, limit)
      continue
    }
    const e = delimited(limit)
    if (f === 5 || f === 7 || f === 9 || f === 10 || f === 11) metricData = true
    if ((f === 1 && e - pos === 16) || (f === 2 && e - pos === 8)) spanIds += 1
    pos = e
  }
  if (spanIds === 2) return 'traces'
  return metricData ? 'metrics' : undefined
}

/** Number of spans in a decoded request. */
export function countSpans(req: TracesRequest): number {
  let n = 0
  for (const rs of req.resourceSpans) n += rs.spans.length
  return n
}

// ---- metrics -------------------------------------------------------------------------------------

function pointAttribute(limit: number, into: Attributes, n: number): number {
  if (n + 1 > maxAttrs) fail(`more than ${maxAttrs} data point attributes`)
  const e = delimited(limit)
  keyValue(e, into)
  pos = e
  return n + 1
}

function numberPoint(limit: number): NumberPoint {
  const p: NumberPoint = { startTimeMs: 0, timeMs: 0, value: 0, attributes: {} }
  let n = 0
  while (pos < limit) {
    const t = tag(limit)
    switch (t) {
      case (7 << 3) | 2:
        n = pointAttribute(limit, p.attributes, n)
        break
      case (2 << 3) | 1:
        fixed64(limit)
        p.startTimeMs = nsToMs()
        break
      case (3 << 3) | 1:
        fixed64(limit)
        p.timeMs = nsToMs()
        break
      case (4 << 3) | 1:
        p.value = double(limit)
        break
      case (6 << 3) | 1:
        fixed64(limit)
        p.value = i64()
        break
      default:
        skip(t & 7, limit)
    }
  }
  return p
}

/** Repeated fixed64 counts, packed (wt 2) or one unpacked element (wt 1). */
function fixed64List(wt: number, limit: number, into: number[]): void {
  if (wt === 1) {
    fixed64(limit)
    into.push(u64())
    return
  }
  const e = delimited(limit)
  if ((e - pos) % 8 !== 0) fail('packed fixed64 length not a multiple of 8')
  while (pos < e) {
    fixed64(e)
    into.push(u64())
  }
}

function doubleList(wt: number, limit: number, into: number[]): void {
  if (wt === 1) {
    into.push(double(limit))
    return
  }
  const e = delimited(limit)
  if ((e - pos) % 8 !== 0) fail('packed double length not a multiple of 8')
  while (pos < e) into.push(double(e))
}

function varintList(wt: number, limit: number, into: number[]): void {
  if (wt === 0) {
    varint64(limit)
    into.push(u64())
    return
  }
  const e = delimited(limit)
  while (pos < e) {
    varint64(e)
    into.push(u64())
  }
}

function histogramPoint(limit: number): HistogramPoint {
  const p: HistogramPoint = { startTimeMs: 0, timeMs: 0, count: 0, sum: undefined, bounds: [], bucketCounts: [], attributes: {} }
  let n = 0
  while (pos < limit) {
    const t = tag(limit)
    const f = t >>> 3
    const wt = t & 7
    if (f === 9 && wt === 2) n = pointAttribute(limit, p.attributes, n)
    else if (f === 2 && wt === 1) {
      fixed64(limit)
      p.startTimeMs = nsToMs()
    } else if (f === 3 && wt === 1) {
      fixed64(limit)
      p.timeMs = nsToMs()
    } else if (f === 4 && wt === 1) {
      fixed64(limit)
      p.count = u64()
    } else if (f === 5 && wt === 1) p.sum = double(limit)
    else if (f === 6 && (wt === 2 || wt === 1)) fixed64List(wt, limit, p.bucketCounts)
    else if (f === 7 && (wt === 2 || wt === 1)) doubleList(wt, limit, p.bounds)
    else skip(wt, limit)
  }
  return p
}

const zigzag32 = (v: number): number => (v >>> 1) ^ -(v & 1)

function buckets(limit: number): ExpBuckets {
  const b: ExpBuckets = { offset: 0, bucketCounts: [] }
  while (pos < limit) {
    const t = tag(limit)
    const f = t >>> 3
    const wt = t & 7
    if (f === 1 && wt === 0) {
      varint64(limit)
      b.offset = zigzag32(vlo)
    } else if (f === 2 && (wt === 2 || wt === 0)) varintList(wt, limit, b.bucketCounts)
    else skip(wt, limit)
  }
  return b
}

function expHistogramPoint(limit: number): ExpHistogramPoint {
  const p: ExpHistogramPoint = {
    startTimeMs: 0,
    timeMs: 0,
    count: 0,
    sum: undefined,
    scale: 0,
    zeroCount: 0,
    positive: { offset: 0, bucketCounts: [] },
    negative: { offset: 0, bucketCounts: [] },
    attributes: {},
  }
  let n = 0
  while (pos < limit) {
    const t = tag(limit)
    switch (t) {
      case (1 << 3) | 2:
        n = pointAttribute(limit, p.attributes, n)
        break
      case (2 << 3) | 1:
        fixed64(limit)
        p.startTimeMs = nsToMs()
        break
      case (3 << 3) | 1:
        fixed64(limit)
        p.timeMs = nsToMs()
        break
      case (4 << 3) | 1:
        fixed64(limit)
        p.count = u64()
        break
      case (5 << 3) | 1:
        p.sum = double(limit)
        break
      case (6 << 3) | 0:
        varint64(limit)
        p.scale = zigzag32(vlo)
        break
      case (7 << 3) | 1:
        fixed64(limit)
        p.zeroCount = u64()
        break
      case (8 << 3) | 2: {
        const e = delimited(limit)
        p.positive = buckets(e)
        pos = e
        break
      }
      case (9 << 3) | 2: {
        const e = delimited(limit)
        p.negative = buckets(e)
        pos = e
        break
      }
      default:
        skip(t & 7, limit)
    }
  }
  return p
}

/** SummaryDataPoint: attributes 7, start 2, time 3, count 4, sum 5; quantile_values (6) skipped. */
function summaryPoint(limit: number): SummaryPoint {
  const p: SummaryPoint = { startTimeMs: 0, timeMs: 0, count: 0, sum: undefined, attributes: {} }
  let n = 0
  while (pos < limit) {
    const t = tag(limit)
    switch (t) {
      case (7 << 3) | 2:
        n = pointAttribute(limit, p.attributes, n)
        break
      case (2 << 3) | 1:
        fixed64(limit)
        p.startTimeMs = nsToMs()
        break
      case (3 << 3) | 1:
        fixed64(limit)
        p.timeMs = nsToMs()
        break
      case (4 << 3) | 1:
        fixed64(limit)
        p.count = u64()
        break
      case (5 << 3) | 1:
        p.sum = double(limit)
        break
      default:
        skip(t & 7, limit)
    }
  }
  return p
}

const enum Kind {
  None = 0,
  Gauge = 1,
  Sum = 2,
  Histogram = 3,
  Exp = 4,
  Summary = 5,
}

/** Gauge / Sum / Histogram / ExponentialHistogram / Summary body: points (field 1), temporality (2), monotonic (3); a Summary has points only. */
function metricData(kind: Kind, limit: number, points: unknown[]): { temporality: number; monotonic: boolean } {
  let temporality = 0
  let monotonic = false
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((1 << 3) | 2)) {
      const e = delimited(limit)
      points.push(kind === Kind.Histogram ? histogramPoint(e) : kind === Kind.Exp ? expHistogramPoint(e) : kind === Kind.Summary ? summaryPoint(e) : numberPoint(e))
      pos = e
    } else if (t === ((2 << 3) | 0) && kind !== Kind.Gauge && kind !== Kind.Summary) {
      varint64(limit)
      temporality = vlo | 0
    } else if (t === ((3 << 3) | 0) && kind === Kind.Sum) {
      varint64(limit)
      monotonic = vlo !== 0 || vhi !== 0
    } else {
      skip(t & 7, limit)
    }
  }
  return { temporality, monotonic }
}

/** A Metric; undefined for a metric without data (normalize has no use for it). */
function metric(limit: number): DecodedMetric | undefined {
  let name = ''
  let unit = ''
  let kind = Kind.None
  let points: unknown[] = []
  let temporality = 0
  let monotonic = false
  while (pos < limit) {
    const t = tag(limit)
    const f = t >>> 3
    if (t === ((1 << 3) | 2)) name = string(limit)
    else if (t === ((3 << 3) | 2)) unit = string(limit)
    else if ((f === 5 || f === 7 || f === 9 || f === 10 || f === 11) && (t & 7) === 2) {
      const e = delimited(limit)
      // oneof: the last member on the wire wins
      kind = f === 5 ? Kind.Gauge : f === 7 ? Kind.Sum : f === 9 ? Kind.Histogram : f === 10 ? Kind.Exp : Kind.Summary
      points = []
      const d = metricData(kind, e, points)
      temporality = d.temporality
      monotonic = d.monotonic
      pos = e
    } else skip(t & 7, limit)
  }
  switch (kind) {
    case Kind.Gauge:
      return { name, unit, type: 'gauge', points: points as NumberPoint[] }
    case Kind.Sum:
      return { name, unit, type: 'sum', temporality, monotonic, points: points as NumberPoint[] }
    case Kind.Histogram:
      return { name, unit, type: 'histogram', temporality, points: points as HistogramPoint[] }
    case Kind.Exp:
      return { name, unit, type: 'exponential_histogram', temporality, points: points as ExpHistogramPoint[] }
    case Kind.Summary:
      return { name, unit, type: 'summary', points: points as SummaryPoint[] }
    default:
      return undefined
  }
}

function scopeMetrics(limit: number, into: DecodedMetric[]): void {
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((2 << 3) | 2)) {
      const e = delimited(limit)
      const m = metric(e)
      if (m !== undefined) into.push(m)
      pos = e
    } else {
      skip(t & 7, limit)
    }
  }
}

function resourceMetrics(limit: number): ResourceMetricsLite {
  const out: ResourceMetricsLite = { resource: {}, metrics: [] }
  let nRes = 0
  while (pos < limit) {
    const t = tag(limit)
    if (t === ((1 << 3) | 2)) {
      const e = delimited(limit)
      nRes += resource(e, out.resource)
      if (nRes > maxAttrs) fail(`more than ${maxAttrs} resource attributes`)
      pos = e
    } else if (t === ((2 << 3) | 2)) {
      const e = delimited(limit)
      scopeMetrics(e, out.metrics)
      pos = e
    } else {
      skip(t & 7, limit)
    }
  }
  return out
}

/** Decodes ExportMetricsServiceRequest (= MetricsData) bytes. Summaries are skipped. Throws DecodeError. */
export function decodeMetricsProto(input: Uint8Array, opts?: DecodeOptions): MetricsRequest {
  begin(input, opts)
  try {
    const limit = buf.length
    const list: ResourceMetricsLite[] = []
    while (pos < limit) {
      const t = tag(limit)
      if (t === ((1 << 3) | 2)) {
        const e = delimited(limit)
        list.push(resourceMetrics(e))
        pos = e
      } else {
        skip(t & 7, limit)
      }
    }
    return { resourceMetrics: list }
  } finally {
    end()
  }
}

/** Number of data points in a decoded request (what partial_success.rejected_data_points counts). */
export function countPoints(req: MetricsRequest): number {
  let n = 0
  for (const rm of req.resourceMetrics) for (const m of rm.metrics) n += m.points.length
  return n
}
