/**
 * The columnar span batch a decode worker posts back: what a decoded `TracesRequest` holds, in
 * typed arrays that move between threads without a copy (their ArrayBuffers are transferred), plus
 * the resources' attribute maps (one small object per ResourceSpans, structured-cloned: the series
 * identity the normalizer reads, never per span).
 *
 * Layout (n spans, r resources):
 * - `columns`: one Float64Array of 5 x n, column-major: kind | endTimeMs | durationUs | statusCode |
 *   httpStatus. Float64 for all five, so every value the decoders produce (JSON enums are any
 *   integer) comes back bit for bit (NaN, -0 and out-of-range values included);
 * - `ends`: Uint32Array of r: the spans of resource i are [ends[i-1] (0 for i = 0), ends[i]).
 *
 * `batchRequest()` turns a batch back into a `TracesRequest` WITHOUT building span objects: each
 * resource's `spans` is a read-only view (SpanColumns) that supports exactly what the consumers of a
 * TracesRequest do with it, `length` and in-order iteration (`for...of`). Iteration yields ONE
 * reused object, refilled at each step: a reader must not keep a span past its step (normalize
 * reads its fields and records numbers; test/workers/replay-equivalence.test.ts checks the whole
 * path against the inline one). Indexing (`spans[i]`) and array methods are NOT supported.
 */
import type { Attributes, DecodedSpan, ResourceSpansLite, TracesRequest } from '../receivers/otlp/model.js'

export const SPAN_COLUMNS = 5

export interface TraceBatch {
  resources: Attributes[]
  ends: Uint32Array
  columns: Float64Array
}

/** Packs a decoded request into columns (in the worker). */
export function encodeTraceBatch(req: TracesRequest): TraceBatch {
  const rs = req.resourceSpans
  let n = 0
  for (const r of rs) n += r.spans.length
  const columns = new Float64Array(SPAN_COLUMNS * n)
  const ends = new Uint32Array(rs.length)
  const resources: Attributes[] = new Array<Attributes>(rs.length)
  let i = 0
  for (let k = 0; k < rs.length; k++) {
    const r = rs[k] as ResourceSpansLite
    resources[k] = r.resource
    for (const s of r.spans) {
      columns[i] = s.kind
      columns[n + i] = s.endTimeMs
      columns[2 * n + i] = s.durationUs
      columns[3 * n + i] = s.statusCode
      columns[4 * n + i] = s.httpStatus
      i++
    }
    ends[k] = i
  }
  return { resources, ends, columns }
}

/** The buffers to transfer with a batch (postMessage's transfer list). */
export function batchTransferList(b: TraceBatch): ArrayBuffer[] {
  return [b.columns.buffer as ArrayBuffer, b.ends.buffer as ArrayBuffer]
}

/**
 * Checks a batch received from a worker before it is read (a broken worker must not make the main
 * thread read out of bounds or loop forever); returns the problem, or undefined when well formed.
 */
export function checkTraceBatch(b: unknown): string | undefined {
  if (typeof b !== 'object' || b === null) return 'not an object'
  const { resources, ends, columns } = b as Partial<TraceBatch>
  if (!Array.isArray(resources) || !(ends instanceof Uint32Array) || !(columns instanceof Float64Array)) return 'wrong field types'
  if (resources.length !== ends.length) return 'resources and ends differ in length'
  if (columns.length % SPAN_COLUMNS !== 0) return 'columns not a multiple of 5'
  const n = columns.length / SPAN_COLUMNS
  let prev = 0
  for (let k = 0; k < ends.length; k++) {
    const e = ends[k] as number
    if (e < prev || e > n) return `ends[${k}] out of order or range`
    prev = e
    if (typeof resources[k] !== 'object' || resources[k] === null) return `resources[${k}] not an object`
  }
  return prev === n ? undefined : 'ends do not cover every span'
}

/** Number of spans in a batch. */
export function batchSpans(b: TraceBatch): number {
  return b.columns.length / SPAN_COLUMNS
}

/** A TracesRequest over the batch's columns (no span objects; see the file comment). */
export function batchRequest(b: TraceBatch): TracesRequest {
  const n = b.columns.length / SPAN_COLUMNS
  const resourceSpans: ResourceSpansLite[] = new Array<ResourceSpansLite>(b.resources.length)
  let start = 0
  for (let k = 0; k < b.resources.length; k++) {
    const end = b.ends[k] as number
    // the view stands in for DecodedSpan[]: length + iteration is the contract (file comment)
    resourceSpans[k] = { resource: b.resources[k] as Attributes, spans: new SpanColumns(b.columns, n, start, end) as unknown as DecodedSpan[] }
    start = end
  }
  return { resourceSpans }
}

/** The spans [start, end) of a batch: `length` and iteration, one reused span object. */
export class SpanColumns implements Iterable<DecodedSpan> {
  constructor(
    private readonly cols: Float64Array,
    private readonly n: number,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get length(): number {
    return this.end - this.start
  }

  [Symbol.iterator](): Iterator<DecodedSpan> {
    return new SpanCursor(this.cols, this.n, this.start, this.end)
  }
}

class SpanCursor implements Iterator<DecodedSpan> {
  private i: number
  private readonly span: DecodedSpan = { kind: 0, endTimeMs: 0, durationUs: 0, statusCode: 0, httpStatus: 0 }
  private readonly step: IteratorYieldResult<DecodedSpan> = { done: false, value: this.span }
  private static readonly DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

  constructor(
    private readonly cols: Float64Array,
    private readonly n: number,
    start: number,
    private readonly end: number,
  ) {
    this.i = start
  }

  next(): IteratorResult<DecodedSpan> {
    const i = this.i
    if (i >= this.end) return SpanCursor.DONE
    this.i = i + 1
    const c = this.cols
    const n = this.n
    const s = this.span
    s.kind = c[i] as number
    s.endTimeMs = c[n + i] as number
    s.durationUs = c[2 * n + i] as number
    s.statusCode = c[3 * n + i] as number
    s.httpStatus = c[4 * n + i] as number
    return this.step
  }
}
