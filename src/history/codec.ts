/**
 * The wire encoding of one hourly summary on `kafka.topics.history` (key "namespace/service").
 *
 * Version 1, binary:
 *   "PH" (2 bytes), version (u8 = 1), flags (u8; bit 0: the body is raw-deflated)
 *   header (never deflated, so a reader filters without inflating):
 *     string namespace, string service, varint hour (hour start / 1 h)
 *   body:
 *     varint stepSeconds, varint steps, varint bounds, bounds as varint deltas (microseconds)
 *     per step: varint 0 = no data (a gap), else count + 1; with a count > 0: varint errors, varint
 *       non-empty latency buckets, then per bucket varint (index - previous index - 1) and varint count
 *     varint resources; per resource: string pod, u8 kind (0 memory, 1 cpu), u8 hasRequest,
 *       [f64 request], varint zero readings, varint buckets, [zigzag varint first bucket index,
 *       then per bucket (consecutive indexes from the first) varint count]
 * Strings are a varint byte length and UTF-8. Counts are whole numbers (rounded when encoding).
 * A decoder refuses another magic or version (an outcome, not an exception).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import type { Resource } from '../calibrate/history.js'

export const HISTORY_VERSION = 1
const MAGIC0 = 0x50 // P
const MAGIC1 = 0x48 // H
const FLAG_DEFLATE = 1
export const HOUR_MS = 3_600_000

/** one pod's readings of one resource over the hour, as a 2 % log-bucket sketch (src/calibrate/quantile.ts) */
export interface PodUsage {
  pod: string
  resource: Resource
  /** NaN when unknown */
  request: number
  zeros: number
  /** [bucket index, readings], ascending by index */
  buckets: [number, number][]
}

export interface HourSummary {
  namespace: string
  service: string
  hourStartMs: number
  stepMs: number
  /** latency bucket upper bounds, microseconds, ascending, without +Inf */
  boundsUs: number[]
  /** per step: requests, NaN for a step without data; step k covers [hourStart + k step, hourStart + (k+1) step) */
  counts: Float64Array
  errors: Float64Array
  /** steps x (boundsUs.length + 1), row-major, non-cumulative */
  latency: Float64Array
  resources: PodUsage[]
}

class Writer {
  private buf = Buffer.alloc(1024)
  len = 0

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n))
    this.buf.copy(next, 0, 0, this.len)
    this.buf = next
  }

  u8(v: number): void {
    this.ensure(1)
    this.buf[this.len++] = v
  }

  varint(v: number): void {
    let x = Math.max(0, Math.round(v))
    this.ensure(10)
    while (x >= 0x80) {
      this.buf[this.len++] = (x % 0x80) | 0x80
      x = Math.floor(x / 0x80)
    }
    this.buf[this.len++] = x
  }

  zigzag(v: number): void {
    this.varint(v >= 0 ? 2 * v : -2 * v - 1)
  }

  f64(v: number): void {
    this.ensure(8)
    this.buf.writeDoubleLE(v, this.len)
    this.len += 8
  }

  str(s: string): void {
    const b = Buffer.from(s, 'utf8')
    this.varint(b.length)
    this.ensure(b.length)
    b.copy(this.buf, this.len)
    this.len += b.length
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.len)
  }
}

class Reader {
  pos = 0
  constructor(private readonly buf: Buffer) {}

  u8(): number {
    if (this.pos >= this.buf.length) throw new RangeError('truncated')
    return this.buf[this.pos++] as number
  }

  varint(): number {
    let x = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      const b = this.u8()
      x += (b & 0x7f) * mul
      if (b < 0x80) return x
      mul *= 0x80
    }
    throw new RangeError('varint too long')
  }

  zigzag(): number {
    const v = this.varint()
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2
  }

  f64(): number {
    if (this.pos + 8 > this.buf.length) throw new RangeError('truncated')
    const v = this.buf.readDoubleLE(this.pos)
    this.pos += 8
    return v
  }

  str(): string {
    const n = this.varint()
    if (this.pos + n > this.buf.length) throw new RangeError('truncated')
    const s = this.buf.toString('utf8', this.pos, this.pos + n)
    this.pos += n
    return s
  }

  rest(): Buffer {
    return this.buf.subarray(this.pos)
  }
}

/** Encodes a summary; the body is deflated when that makes the record smaller. */
export function encodeSummary(s: HourSummary): Buffer {
  const head = new Writer()
  head.u8(MAGIC0)
  head.u8(MAGIC1)
  head.u8(HISTORY_VERSION)
  const body = new Writer()
  body.varint(s.stepMs / 1000)
  const steps = s.counts.length
  body.varint(steps)
  body.varint(s.boundsUs.length)
  let prev = 0
  for (const b of s.boundsUs) {
    body.varint(b - prev)
    prev = b
  }
  const width = s.boundsUs.length + 1
  for (let i = 0; i < steps; i++) {
    const c = s.counts[i] as number
    if (Number.isNaN(c)) {
      body.varint(0)
      continue
    }
    body.varint(c + 1)
    if (Math.round(c) === 0) continue
    body.varint(s.errors[i] as number)
    let nz = 0
    for (let j = 0; j < width; j++) if (Math.round(s.latency[i * width + j] as number) > 0) nz++
    body.varint(nz)
    let last = -1
    for (let j = 0; j < width; j++) {
      const n = Math.round(s.latency[i * width + j] as number)
      if (n <= 0) continue
      body.varint(j - last - 1)
      body.varint(n)
      last = j
    }
  }
  body.varint(s.resources.length)
  for (const r of s.resources) {
    body.str(r.pod)
    body.u8(r.resource === 'memory' ? 0 : 1)
    const known = Number.isFinite(r.request)
    body.u8(known ? 1 : 0)
    if (known) body.f64(r.request)
    body.varint(r.zeros)
    const first = r.buckets[0]?.[0] ?? 0
    const lastK = r.buckets[r.buckets.length - 1]?.[0] ?? first - 1
    const run = r.buckets.length === 0 ? 0 : lastK - first + 1
    body.varint(run)
    if (run > 0) {
      body.zigzag(first)
      const byK = new Map(r.buckets)
      for (let k = first; k <= lastK; k++) body.varint(byK.get(k) ?? 0)
    }
  }
  const header = new Writer()
  header.str(s.namespace)
  header.str(s.service)
  header.varint(s.hourStartMs / HOUR_MS)
  const raw = body.bytes()
  const deflated = deflateRawSync(raw, { level: 6 })
  const useDeflate = deflated.length < raw.length
  head.u8(useDeflate ? FLAG_DEFLATE : 0)
  return Buffer.concat([head.bytes(), header.bytes(), useDeflate ? deflated : raw])
}

export type HeaderOutcome = { kind: 'ok'; namespace: string; service: string; hourStartMs: number } | { kind: 'invalid'; reason: string }
export type DecodeOutcome = { kind: 'ok'; summary: HourSummary } | { kind: 'invalid'; reason: string }

function headerOf(r: Reader): HeaderOutcome & { flags?: number } {
  if (r.u8() !== MAGIC0 || r.u8() !== MAGIC1) return { kind: 'invalid', reason: 'not a pullback history record (magic)' }
  const v = r.u8()
  if (v !== HISTORY_VERSION) return { kind: 'invalid', reason: `history encoding version ${v}, this build reads ${HISTORY_VERSION}` }
  const flags = r.u8()
  const namespace = r.str()
  const service = r.str()
  const hourStartMs = r.varint() * HOUR_MS
  return { kind: 'ok', namespace, service, hourStartMs, flags }
}

/** Only the header: which service and hour a record holds (no inflating). */
export function decodeHeader(buf: Buffer): HeaderOutcome {
  try {
    const h = headerOf(new Reader(buf))
    return h.kind === 'ok' ? { kind: 'ok', namespace: h.namespace, service: h.service, hourStartMs: h.hourStartMs } : h
  } catch (err) {
    return { kind: 'invalid', reason: `undecodable header: ${(err as Error).message}` }
  }
}

export function decodeSummary(buf: Buffer): DecodeOutcome {
  try {
    const r0 = new Reader(buf)
    const h = headerOf(r0)
    if (h.kind !== 'ok') return h
    const r = new Reader(((h.flags ?? 0) & FLAG_DEFLATE) !== 0 ? inflateRawSync(r0.rest()) : r0.rest())
    const stepMs = r.varint() * 1000
    const steps = r.varint()
    if (stepMs <= 0 || steps * stepMs > HOUR_MS) return { kind: 'invalid', reason: `${steps} steps of ${stepMs} ms do not fit an hour` }
    const nb = r.varint()
    if (nb > 1000) return { kind: 'invalid', reason: `${nb} latency bounds` }
    const boundsUs: number[] = []
    let prev = 0
    for (let j = 0; j < nb; j++) {
      prev += r.varint()
      boundsUs.push(prev)
    }
    const width = nb + 1
    const counts = new Float64Array(steps).fill(Number.NaN)
    const errors = new Float64Array(steps)
    const latency = new Float64Array(steps * width)
    for (let i = 0; i < steps; i++) {
      const c1 = r.varint()
      if (c1 === 0) continue
      counts[i] = c1 - 1
      if (c1 === 1) continue
      errors[i] = r.varint()
      const nz = r.varint()
      let j = -1
      for (let x = 0; x < nz; x++) {
        j += r.varint() + 1
        if (j >= width) return { kind: 'invalid', reason: `latency bucket ${j} of ${width}` }
        latency[i * width + j] = r.varint()
      }
    }
    const nr = r.varint()
    const resources: PodUsage[] = []
    for (let x = 0; x < nr; x++) {
      const pod = r.str()
      const kind = r.u8()
      const request = r.u8() === 1 ? r.f64() : Number.NaN
      const zeros = r.varint()
      const run = r.varint()
      const buckets: [number, number][] = []
      if (run > 0) {
        const first = r.zigzag()
        for (let k = 0; k < run; k++) {
          const n = r.varint()
          if (n > 0) buckets.push([first + k, n])
        }
      }
      resources.push({ pod, resource: kind === 0 ? 'memory' : 'cpu', request, zeros, buckets })
    }
    return { kind: 'ok', summary: { namespace: h.namespace, service: h.service, hourStartMs: h.hourStartMs, stepMs, boundsUs, counts, errors, latency, resources } }
  } catch (err) {
    return { kind: 'invalid', reason: `undecodable history record: ${(err as Error).message}` }
  }
}
