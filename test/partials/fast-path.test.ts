/**
 * The aggregator's span fast path (PartialAggregator.series, used by the normalizer as a
 * FastRequestSink) must have exactly the effect of recording each span as an observation: the same
 * batches byte for byte on the wire, the same stats, with buckets emitted in the middle of a request
 * stream, late spans, spans of several buckets in one request, invalid spans and the open-key bound.
 */
import { describe, expect, it } from 'vitest'
import { PartialAggregator } from '../../src/partials/aggregator.js'
import { encodeBatch } from '../../src/partials/codec.js'
import { IngestNode } from '../../src/partials/ingest.js'
import type { PartialBatch } from '../../src/partials/types.js'
import type { ConsumeResult } from '../../src/receivers/consumer.js'
import { SpanKind, StatusCode, type DecodedSpan, type TracesRequest } from '../../src/receivers/otlp/model.js'

const T = 1_700_000_000_000 // bucket-aligned (multiple of 5 s)

/** deterministic pseudo-random numbers in [0, 1) */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0
    return s / 2 ** 32
  }
}

/** requests of 1-3 resources (4 services x 2 versions), 1-40 spans each, over ~60 s, some late, some invalid */
function requests(seed: number, n: number): TracesRequest[] {
  const r = rng(seed)
  const out: TracesRequest[] = []
  for (let i = 0; i < n; i++) {
    const resourceSpans = []
    const base = T + i * 150
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const svc = Math.floor(r() * 4)
      const spans: DecodedSpan[] = []
      for (let j = Math.floor(r() * 40) + 1; j > 0; j--) {
        const x = r()
        // mostly near the request's time, some seconds late (earlier buckets), a few invalid
        const end = x < 0.9 ? base - r() * 2000 : x < 0.98 ? base - 6000 - r() * 20_000 : x < 0.99 ? NaN : -5
        const dur = r() < 0.5 ? Math.floor(r() * 5000) : r() * 90_000
        spans.push({
          kind: r() < 0.9 ? SpanKind.SERVER : SpanKind.CLIENT,
          endTimeMs: r() < 0.5 ? Math.floor(end) : end,
          durationUs: r() < 0.01 ? -1 : dur,
          statusCode: r() < 0.05 ? StatusCode.ERROR : 0,
          httpStatus: r() < 0.05 ? 503 : 200,
        })
      }
      resourceSpans.push({ resource: { 'service.name': `svc-${svc}`, 'service.version': `v${svc % 2}`, 'k8s.namespace.name': 'shop' }, spans })
    }
    out.push({ resourceSpans })
  }
  return out
}

function run(fast: boolean, reqs: TracesRequest[], maxOpenKeys?: number) {
  const batches: PartialBatch[] = []
  // a tap makes the normalizer's sink a plain ObservationSink: every span is one observation
  const node = new IngestNode({
    node: 'n0',
    bucketMs: 5000,
    lateness: 5000,
    emit: (b) => batches.push(b),
    ...(maxOpenKeys !== undefined ? { maxOpenKeys } : {}),
    ...(fast ? {} : { tap: { record: () => undefined } }),
  })
  const results: ConsumeResult[] = []
  reqs.forEach((req, i) => {
    results.push(node.consumeTraces(req))
    // the node's clock moves every 7 requests: buckets are emitted between requests of one series
    if (i % 7 === 6) node.advance(T + i * 150 + 1000)
  })
  node.flush()
  return { wire: batches.map((b) => encodeBatch(b).toString('hex')), batches, results, stats: node.stats() }
}

describe('partials: span fast path', () => {
  it('gives the batches, bytes, results and stats of one observation per span', () => {
    for (const seed of [1, 2, 3]) {
      const reqs = requests(seed, 600)
      const slow = run(false, reqs)
      const fast = run(true, reqs)
      expect(slow.batches.reduce((a, b) => a + b.partials.length, 0)).toBeGreaterThan(50)
      expect(slow.stats.partials.reopened).toBeGreaterThan(0)
      expect(fast.wire).toEqual(slow.wire)
      expect(fast.batches).toEqual(slow.batches)
      expect(fast.results).toEqual(slow.results)
      expect(fast.stats).toEqual(slow.stats)
    }
  })

  it('counts the overflow at the open-key bound alike', () => {
    const reqs = requests(7, 300)
    const slow = run(false, reqs, 3)
    const fast = run(true, reqs, 3)
    expect(slow.stats.partials.overflowRequests).toBeGreaterThan(0)
    expect(fast.wire).toEqual(slow.wire)
    expect(fast.stats).toEqual(slow.stats)
  })

  it('a recorder kept across an emission of its bucket opens a new partial (reopened), as record() would', () => {
    const batches: PartialBatch[] = []
    const agg = new PartialAggregator({ node: 'n0', bucketMs: 5000, lateness: 5000, emit: (b) => batches.push(b) })
    const rec = agg.series({ namespace: '', service: 'a', version: 'v1' })
    rec.recordRequest(T + 100, 50, false)
    agg.advance(T + 10_000)
    rec.recordRequest(T + 200, 60, true)
    agg.flush()
    const ps = batches.flatMap((b) => b.partials)
    expect(ps.map((p) => p.requests)).toEqual([
      { count: 1, errors: 0, firstMs: T + 100, lastMs: T + 100, latenciesUs: [50], latencyCounts: [1] },
      { count: 1, errors: 1, firstMs: T + 200, lastMs: T + 200, latenciesUs: [60], latencyCounts: [1] },
    ])
    expect(agg.stats()).toMatchObject({ observations: 2, partials: 2, reopened: 1 })
  })

  it('sorts merged latency values ascending, whole microseconds', () => {
    const batches: PartialBatch[] = []
    const node = new IngestNode({ node: 'n0', bucketMs: 5000, lateness: 5000, emit: (b) => batches.push(b) })
    const spans = [900.4, 10, 5e6, 10.2, 0, 899.6, 7].map((d): DecodedSpan => ({ kind: SpanKind.SERVER, endTimeMs: T + 100, durationUs: d, statusCode: 0, httpStatus: 200 }))
    node.consumeTraces({ resourceSpans: [{ resource: { 'service.name': 'a' }, spans }] })
    node.flush()
    const r = batches.flatMap((b) => b.partials)[0]?.requests
    expect(r?.latenciesUs).toEqual([0, 7, 10, 900, 5e6])
    expect(r?.latencyCounts).toEqual([1, 1, 2, 2, 1])
  })
})
