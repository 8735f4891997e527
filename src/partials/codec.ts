/**
 * The wire encoding of a PartialBatch, versions 1 and 2: a small hand-written binary format (README
 * "Encoding"). Times are written relative to the partial's bucket start; integers as varints
 * (zigzag for signed), anything that is not a safe integer as a tagged float64, so decoding gives
 * back exactly the numbers encoded.
 *
 * `decodeBatch` throws a PermanentError (code `partials.decode`) on a foreign magic, another
 * version or a truncated/corrupt buffer: retrying the same bytes cannot succeed.
 *
 * Version rules: the version byte changes only for a change a decoder of the previous version would
 * misread (and then refuse, counted as undecodable); an addition that older decoders read safely
 * keeps the version, so ingest nodes and deciders can be upgraded in any order. Such additions so
 * far: the batch's `end` field (was `final`: 0 live, 1 final) gained 2 = leaving. A decoder that
 * predates it reads 2 as "not final", i.e. a plain heartbeat: the node is then timed out after
 * `decider.nodeTimeout`, as before leaving existed. Values above 2 are read as live by this decoder,
 * so any future end value must be safe to read as a plain heartbeat.
 * Version 2: an interval's latency layout, which a version-1 decoder would misread (its flags byte
 * was a plain 0/1 streamStart). Only batches that carry a layout are written as version 2
 * (`encodeBatch`), so span-only nodes stay readable by a previous-release decider.
 */
import { PermanentError } from '../common/errors.js'
import type { LatencyBuckets, ResourceKind } from '../normalize/observations.js'
import { sameLayout } from '../normalize/buckets.js'
import { PARTIAL_VERSION, PARTIAL_VERSIONS_READ, type SeriesPartial, type PartialBatch } from './types.js'

const MAGIC0 = 0x50 // 'P'
const MAGIC1 = 0x42 // 'B'
/** integers of at most this magnitude are written as varints (zigzag x2 stays below 2^53) */
const MAX_VARINT_INT = 2 ** 50

class Writer {
  private buf = Buffer.allocUnsafe(256)
  len = 0

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n))
    this.buf.copy(next, 0, 0, this.len)
    this.buf = next
  }

  byte(b: number): void {
    this.room(1)
    this.buf[this.len++] = b
  }

  /** unsigned integer < 2^53 */
  uint(n: number): void {
    this.room(8)
    while (n >= 0x80) {
      this.buf[this.len++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.len++] = n
  }

  /** any number: an integer as varint(zigzag x 2), else tag 1 + float64 */
  num(n: number): void {
    if (Number.isInteger(n) && Math.abs(n) <= MAX_VARINT_INT && !Object.is(n, -0)) {
      const zz = n >= 0 ? n * 2 : -n * 2 - 1
      this.uint(zz * 2)
    } else {
      this.uint(1)
      this.room(8)
      this.buf.writeDoubleLE(n, this.len)
      this.len += 8
    }
  }

  str(s: string): void {
    const n = Buffer.byteLength(s)
    this.uint(n)
    this.room(n)
    this.buf.write(s, this.len, 'utf8')
    this.len += n
  }

  out(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len))
  }
}

class Reader {
  private pos = 0
  constructor(private readonly buf: Uint8Array) {}

  done(): boolean {
    return this.pos === this.buf.length
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw corrupt('truncated')
    return this.buf[this.pos++] as number
  }

  uint(): number {
    let n = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte()
      n += (b & 0x7f) * mul
      if (b < 0x80) return n
      mul *= 0x80
    }
    throw corrupt('varint too long')
  }

  num(): number {
    const t = this.uint()
    if (t === 1) {
      if (this.pos + 8 > this.buf.length) throw corrupt('truncated')
      const v = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, 8).readDoubleLE(0)
      this.pos += 8
      return v
    }
    if (t % 2 !== 0) throw corrupt('bad number tag')
    const zz = t / 2
    return zz % 2 === 0 ? zz / 2 : -(zz + 1) / 2
  }

  str(): string {
    const n = this.uint()
    if (this.pos + n > this.buf.length) throw corrupt('truncated')
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n).toString('utf8')
    this.pos += n
    return s
  }

  count(): number {
    const n = this.uint()
    // every item takes at least one byte: a larger count is corruption, not a huge allocation
    if (n > this.buf.length - this.pos) throw corrupt('count beyond buffer')
    return n
  }
}

function corrupt(why: string): PermanentError {
  return new PermanentError('partials.decode', `partial batch: ${why}`)
}

/** the batch's `end` field (see the version rules above) */
const END_LIVE = 0
const END_FINAL = 1
const END_LEAVING = 2

const P_REQUESTS = 1
const P_INTERVALS = 2
const P_RESOURCES = 4
const P_PROBES = 8
/** an interval's flags (version 1 wrote only 0 or 1: its streamStart) */
const I_STREAM_START = 1
const I_EXPLICIT = 2
const I_EXPONENTIAL = 4
/** the layout of the batch's previous interval that had one (an instrument exports one layout: written once per batch) */
const I_SAME = 8

interface LayoutMemo {
  last: LatencyBuckets | undefined
}

/** An interval's layout flag and, unless it repeats the batch's previous layout, the layout itself. */
function layoutFlag(b: LatencyBuckets | undefined, layouts: LayoutMemo): number {
  if (b === undefined) return 0
  const same = layouts.last !== undefined && sameLayout(b, layouts.last)
  layouts.last = b
  return same ? I_SAME : b.kind === 'explicit' ? I_EXPLICIT : I_EXPONENTIAL
}

function writeLayout(w: Writer, b: LatencyBuckets | undefined, flag: number): void {
  if (b === undefined || flag === I_SAME) return
  if (b.kind === 'explicit') {
    w.uint(b.boundsUs.length)
    for (const x of b.boundsUs) w.num(x)
  } else {
    w.num(b.scale)
    w.num(b.factor)
  }
}

function readLayout(r: Reader, f: number, layouts: LayoutMemo): LatencyBuckets | undefined {
  let b: LatencyBuckets | undefined
  if ((f & I_SAME) !== 0) b = layouts.last
  else if ((f & I_EXPLICIT) !== 0) {
    const n = r.count()
    const boundsUs: number[] = new Array<number>(n)
    for (let k = 0; k < n; k++) boundsUs[k] = r.num()
    b = { kind: 'explicit', boundsUs }
  } else if ((f & I_EXPONENTIAL) !== 0) {
    const scale = r.num()
    b = { kind: 'exponential', scale, factor: r.num() }
  }
  if (b !== undefined) layouts.last = b
  return b
}

function writeValues(w: Writer, values: readonly number[], counts: readonly number[] | undefined): void {
  w.uint(values.length)
  w.uint(counts === undefined ? 0 : 1)
  // ascending values delta-encode small; any order decodes back exactly
  let prev = 0
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number
    w.num(v - prev)
    prev = v
    if (counts !== undefined) w.num(counts[i] as number)
  }
}

function readValues(r: Reader): { values: number[]; counts: number[] | undefined } {
  const n = r.count()
  const hasCounts = r.uint() === 1
  const values: number[] = new Array<number>(n)
  const counts: number[] | undefined = hasCounts ? new Array<number>(n) : undefined
  let prev = 0
  for (let i = 0; i < n; i++) {
    prev += r.num()
    values[i] = prev
    if (counts !== undefined) counts[i] = r.num()
  }
  return { values, counts }
}

/** Float deltas are not exact: values that are not all safe integers are written absolute. */
function exactDeltas(values: readonly number[]): boolean {
  for (const v of values) if (!Number.isInteger(v) || Math.abs(v) > MAX_VARINT_INT / 2) return false
  return true
}

function writeLat(w: Writer, values: readonly number[], counts: readonly number[] | undefined): void {
  if (exactDeltas(values)) {
    w.uint(0)
    writeValues(w, values, counts)
  } else {
    w.uint(1)
    w.uint(values.length)
    w.uint(counts === undefined ? 0 : 1)
    for (let i = 0; i < values.length; i++) {
      w.num(values[i] as number)
      if (counts !== undefined) w.num(counts[i] as number)
    }
  }
}

function readLat(r: Reader): { values: number[]; counts: number[] | undefined } {
  if (r.uint() === 0) return readValues(r)
  const n = r.count()
  const hasCounts = r.uint() === 1
  const values: number[] = new Array<number>(n)
  const counts: number[] | undefined = hasCounts ? new Array<number>(n) : undefined
  for (let i = 0; i < n; i++) {
    values[i] = r.num()
    if (counts !== undefined) counts[i] = r.num()
  }
  return { values, counts }
}

/** A time relative to base, exact: integer offsets as varints, others as float64 (absolute). */
function writeTime(w: Writer, t: number, base: number): void {
  const d = t - base
  if (Number.isInteger(t) && Math.abs(d) <= MAX_VARINT_INT && d + base === t) w.num(d)
  else {
    w.uint(1)
    w.num(t)
  }
}

function readTime(r: Reader, base: number): number {
  // the tag of num() is even for integers; 1 marks an absolute time that follows
  const t = r.uint()
  if (t === 1) return r.num()
  if (t % 2 !== 0) throw corrupt('bad time tag')
  const zz = t / 2
  return base + (zz % 2 === 0 ? zz / 2 : -(zz + 1) / 2)
}

/**
 * A batch is written in the oldest version that carries it: version 1 (byte for byte as before)
 * unless an interval has a latency layout, so a decider of the previous release keeps reading
 * every span-only node during an upgrade.
 */
export function encodeBatch(b: PartialBatch): Buffer {
  const w = new Writer()
  w.byte(MAGIC0)
  w.byte(MAGIC1)
  w.byte(b.partials.some((p) => p.intervals.some((i) => i.latencyBuckets !== undefined)) ? PARTIAL_VERSION : 1)
  w.str(b.node)
  w.num(b.nowMs)
  w.num(b.watermarkMs)
  w.uint(b.final ? END_FINAL : b.leaving === true ? END_LEAVING : END_LIVE)
  w.uint(b.partials.length)
  const layouts: LayoutMemo = { last: undefined }
  for (const p of b.partials) encodePartialInto(w, p, layouts)
  return w.out()
}

function encodePartialInto(w: Writer, p: SeriesPartial, layouts: LayoutMemo): void {
  w.str(p.key.namespace)
  w.str(p.key.service)
  w.str(p.key.version)
  w.str(p.pod)
  const base = p.bucketStartMs
  w.num(base)
  const flags =
    (p.requests !== undefined ? P_REQUESTS : 0) |
    (p.intervals.length > 0 ? P_INTERVALS : 0) |
    (p.resources.length > 0 ? P_RESOURCES : 0) |
    (p.probes.length > 0 ? P_PROBES : 0)
  w.uint(flags)
  const r = p.requests
  if (r !== undefined) {
    w.num(r.count)
    w.num(r.errors)
    writeTime(w, r.firstMs, base)
    writeTime(w, r.lastMs, base)
    writeLat(w, r.latenciesUs, r.latencyCounts)
  }
  if (p.intervals.length > 0) {
    w.uint(p.intervals.length)
    for (const i of p.intervals) {
      writeTime(w, i.timeMs, base)
      writeTime(w, i.startMs, base)
      const lf = layoutFlag(i.latencyBuckets, layouts)
      w.uint((i.streamStart ? I_STREAM_START : 0) | lf)
      w.num(i.count)
      w.num(i.errors)
      writeLat(w, i.latenciesUs, i.latencyCounts)
      writeLayout(w, i.latencyBuckets, lf)
    }
  }
  if (p.resources.length > 0) {
    w.uint(p.resources.length)
    for (const x of p.resources) {
      w.uint((x.resource === 'memory' ? 0 : 1) | (x.request !== undefined ? 2 : 0))
      writeTime(w, x.timeMs, base)
      w.num(x.value)
      if (x.request !== undefined) w.num(x.request)
    }
  }
  if (p.probes.length > 0) {
    w.uint(p.probes.length)
    for (const x of p.probes) {
      w.str(x.container)
      writeTime(w, x.timeMs, base)
      w.uint(x.ready ? 1 : 0)
    }
  }
}

export function decodeBatch(buf: Uint8Array): PartialBatch {
  const r = new Reader(buf)
  if (r.byte() !== MAGIC0 || r.byte() !== MAGIC1) throw corrupt('not a partial batch')
  const v = r.byte()
  if (!PARTIAL_VERSIONS_READ.includes(v)) throw corrupt(`unsupported version ${v}`)
  const node = r.str()
  const nowMs = r.num()
  const watermarkMs = r.num()
  const end = r.uint()
  const n = r.count()
  const partials: SeriesPartial[] = []
  const layouts: LayoutMemo = { last: undefined }
  for (let i = 0; i < n; i++) partials.push(decodePartial(r, layouts))
  if (!r.done()) throw corrupt('trailing bytes')
  // `leaving` only when set: a batch without it decodes exactly as before the field existed
  if (end === END_LEAVING) return { node, nowMs, watermarkMs, final: false, leaving: true, partials }
  return { node, nowMs, watermarkMs, final: end === END_FINAL, partials }
}

function decodePartial(r: Reader, layouts: LayoutMemo): SeriesPartial {
  const namespace = r.str()
  const service = r.str()
  const version = r.str()
  const pod = r.str()
  const base = r.num()
  const flags = r.uint()
  const p: SeriesPartial = { key: { namespace, service, version }, pod, bucketStartMs: base, requests: undefined, intervals: [], resources: [], probes: [] }
  if ((flags & P_REQUESTS) !== 0) {
    const count = r.num()
    const errors = r.num()
    const firstMs = readTime(r, base)
    const lastMs = readTime(r, base)
    const l = readLat(r)
    p.requests = { count, errors, firstMs, lastMs, latenciesUs: l.values, latencyCounts: l.counts ?? l.values.map(() => 1) }
  }
  if ((flags & P_INTERVALS) !== 0) {
    const n = r.count()
    for (let i = 0; i < n; i++) {
      const timeMs = readTime(r, base)
      const startMs = readTime(r, base)
      const f = r.uint()
      const kinds = (f & I_EXPLICIT ? 1 : 0) + (f & I_EXPONENTIAL ? 1 : 0) + (f & I_SAME ? 1 : 0)
      if ((f & ~(I_STREAM_START | I_EXPLICIT | I_EXPONENTIAL | I_SAME)) !== 0 || kinds > 1) throw corrupt(`interval flags ${f}`)
      if ((f & I_SAME) !== 0 && layouts.last === undefined) throw corrupt('an interval refers to a layout before any')
      const count = r.num()
      const errors = r.num()
      const l = readLat(r)
      const latencyBuckets = readLayout(r, f, layouts)
      p.intervals.push({ timeMs, startMs, streamStart: (f & I_STREAM_START) !== 0, count, errors, latenciesUs: l.values, latencyCounts: l.counts, latencyBuckets })
    }
  }
  if ((flags & P_RESOURCES) !== 0) {
    const n = r.count()
    for (let i = 0; i < n; i++) {
      const f = r.uint()
      const resource: ResourceKind = (f & 1) === 0 ? 'memory' : 'cpu'
      const timeMs = readTime(r, base)
      const value = r.num()
      const request = (f & 2) !== 0 ? r.num() : undefined
      p.resources.push({ resource, timeMs, value, request })
    }
  }
  if ((flags & P_PROBES) !== 0) {
    const n = r.count()
    for (let i = 0; i < n; i++) {
      const container = r.str()
      const timeMs = readTime(r, base)
      const ready = r.uint() === 1
      p.probes.push({ container, timeMs, ready })
    }
  }
  return p
}
