/**
 * The columnar span batch (src/workers/batch.ts): encode -> (transfer) -> view round trip is exact
 * for every value the decoders can produce, and a malformed batch is refused before it is read.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { batchRequest, batchSpans, batchTransferList, checkTraceBatch, encodeTraceBatch, type TraceBatch } from '../../src/workers/batch.js'
import type { TracesRequest } from '../../src/receivers/otlp/model.js'
import { countSpans } from '../../src/receivers/otlp/proto.js'
import { spansOf } from './bundle-worker.js'

const number = fc.oneof(fc.double(), fc.integer({ min: -(2 ** 31), max: 2 ** 31 }), fc.constantFrom(0, -0, NaN, Infinity, 2 ** 60, 1.5e12, 503, 2))
const attrs = fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string({ maxLength: 10 }), fc.double(), fc.boolean()), { maxKeys: 6 })
const span = fc.record({ kind: number, endTimeMs: number, durationUs: number, statusCode: number, httpStatus: number })
const request: fc.Arbitrary<TracesRequest> = fc.record({
  resourceSpans: fc.array(fc.record({ resource: attrs, spans: fc.array(span, { maxLength: 20 }) }), { maxLength: 5 }),
})

/** structuredClone with the batch's buffers transferred, as postMessage does */
function overTheWire(b: TraceBatch): TraceBatch {
  return structuredClone(b, { transfer: batchTransferList(b) })
}

describe('trace batch codec', () => {
  it('round trip: the view yields exactly the decoded spans, resources and counts (property)', () => {
    fc.assert(
      fc.property(request, (req) => {
        const b = overTheWire(encodeTraceBatch(req))
        expect(checkTraceBatch(b)).toBeUndefined()
        expect(batchSpans(b)).toBe(countSpans(req))
        const view = batchRequest(b)
        expect(countSpans(view)).toBe(countSpans(req))
        // toEqual compares NaN as NaN and tells -0 from 0 (Object.is)
        expect(spansOf(view)).toEqual(spansOf(req))
        for (let i = 0; i < req.resourceSpans.length; i++) expect(view.resourceSpans[i]?.spans.length).toBe(req.resourceSpans[i]?.spans.length)
      }),
      { numRuns: 300 },
    )
  })

  it('moves the buffers: the sender keeps nothing of them', () => {
    const b = encodeTraceBatch({ resourceSpans: [{ resource: { 'service.name': 'a' }, spans: [{ kind: 2, endTimeMs: 1, durationUs: 2, statusCode: 0, httpStatus: 200 }] }] })
    const moved = overTheWire(b)
    expect(b.columns.length).toBe(0)
    expect(moved.columns.length).toBe(5)
  })

  it('can fail: a view iterated twice gives the same spans, and a wrong batch is caught', () => {
    const req: TracesRequest = { resourceSpans: [{ resource: {}, spans: [{ kind: 1, endTimeMs: 5, durationUs: 6, statusCode: 2, httpStatus: 0 }, { kind: 2, endTimeMs: 7, durationUs: 8, statusCode: 0, httpStatus: 500 }] }] }
    const view = batchRequest(encodeTraceBatch(req))
    expect(spansOf(view)).toEqual(spansOf(view))
    expect(spansOf(view)).not.toEqual(spansOf({ resourceSpans: [{ resource: {}, spans: [...req.resourceSpans[0]!.spans].reverse() }] }))
    const good = encodeTraceBatch(req)
    expect(checkTraceBatch({ ...good, ends: new Uint32Array([3]) })).toMatch(/out of order or range/)
    expect(checkTraceBatch({ ...good, ends: new Uint32Array([1]) })).toMatch(/cover/)
    expect(checkTraceBatch({ ...good, columns: new Float64Array(7) })).toMatch(/multiple/)
    expect(checkTraceBatch({ ...good, resources: [] })).toMatch(/length/)
    expect(checkTraceBatch(null)).toBe('not an object')
  })
})
