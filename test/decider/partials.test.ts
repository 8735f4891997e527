/**
 * The ingest side (PartialAggregator, codec) and the decider's merge, on hand-made observations:
 * partials re-recorded by the decider give the signal store what direct recording gives; the wire
 * encoding is exact; late partials and silent nodes are handled as documented.
 */
import { describe, expect, it } from 'vitest'
import { PartialAggregator } from '../../src/partials/aggregator.js'
import { decodeBatch, encodeBatch } from '../../src/partials/codec.js'
import { partialObservations, type PartialBatch } from '../../src/partials/types.js'
import { Decider } from '../../src/decider/decider.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { SignalStore } from '../../src/signals/store.js'
import { parseConfig } from '../../src/config/load.js'
import { PermanentError } from '../../src/common/errors.js'
import type { LatencyBuckets, Observation, SeriesKey } from '../../src/normalize/observations.js'
import { fnv1a32, nodeOf } from '../../src/decider/daemonset.js'

const K: SeriesKey = { namespace: 'shop', service: 'checkout', version: 'v2' }
const T = 1_700_000_000_000 // bucket-aligned (multiple of 5 s)

function span(t: number, us: number, error = false): Observation {
  return { kind: 'request', key: K, timeMs: t, count: 1, errors: error ? 1 : 0, latenciesUs: [us], latencyCounts: undefined }
}

function collect(opts: Partial<ConstructorParameters<typeof PartialAggregator>[0]> = {}) {
  const batches: PartialBatch[] = []
  const agg = new PartialAggregator({ node: 'n0', bucketMs: 5000, lateness: 5000, emit: (b) => batches.push(b), ...opts })
  return { agg, batches }
}

/** A mixed observation stream over 40 s: spans (fractional times and latencies), a metric delta, resources, probes. */
function stream(): Observation[] {
  const out: Observation[] = []
  for (let i = 0; i < 400; i++) out.push(span(T + i * 100 + 0.37, 40_000 + (i % 7) * 1000.4, i % 50 === 0))
  out.push({ kind: 'request', key: K, timeMs: T + 30_000, startMs: T + 15_000, count: 90, errors: 3, latenciesUs: [25_000, 75_000], latencyCounts: [60, 30], latencyBuckets: { kind: 'explicit', boundsUs: [0, 50_000, 100_000] } })
  out.push({ kind: 'request', key: K, timeMs: T + 12_000, startMs: T - 50_000, streamStart: true, count: 10, errors: 0, latenciesUs: [5000], latencyCounts: [10], latencyBuckets: { kind: 'exponential', scale: 3, factor: 1000 } })
  out.push({ kind: 'request', key: K, timeMs: T + 20_000, startMs: T + 10_000, count: 2, errors: 0, latenciesUs: [1500.5], latencyCounts: [2] })
  for (let s = 0; s < 40; s += 10) {
    out.push({ kind: 'resource', key: K, pod: 'checkout-v2-a', resource: 'memory', timeMs: T + s * 1000, value: 200e6 + s * 1e6, request: 512e6 })
    out.push({ kind: 'resource', key: K, pod: 'checkout-v2-a', resource: 'cpu', timeMs: T + s * 1000 + 0.5, value: 0.25, request: undefined })
    out.push({ kind: 'probe', key: K, pod: 'checkout-v2-a', container: 'app', timeMs: T + s * 1000, ready: s !== 20 })
  }
  return out
}

describe('partials: aggregator', () => {
  it('flushOpen=false: emits a bucket only once the clock passed its end, merging point requests and equal latency values', () => {
    const { agg, batches } = collect({ flushOpen: false })
    agg.record(span(T + 100, 40_000.2))
    agg.record(span(T + 4000.5, 40_000.4, true))
    agg.record(span(T + 2000, 70_000))
    agg.advance(T + 4999)
    expect(batches.filter((b) => b.partials.length > 0)).toEqual([])
    agg.advance(T + 5000)
    const p = batches.flatMap((b) => b.partials)
    expect(p).toHaveLength(1)
    expect(p[0]).toMatchObject({ pod: '', bucketStartMs: T, requests: { count: 3, errors: 1, firstMs: T + 100, lastMs: T + 4000.5, latenciesUs: [40_000, 70_000], latencyCounts: [2, 1] } })
    expect(batches.at(-1)).toMatchObject({ node: 'n0', nowMs: T + 5000, watermarkMs: T, final: false })
  })

  it('flushOpen (default): each watermark announcement also carries the open bucket so far; the rest follows', () => {
    const { agg, batches } = collect()
    agg.record(span(T + 100, 1000))
    agg.advance(T + 100) // first announcement: watermark T - 4900
    agg.record(span(T + 200, 1000))
    agg.advance(T + 4999) // same watermark bucket: nothing to announce, the bucket is still open
    agg.record(span(T + 5100, 1000))
    agg.advance(T + 5100) // watermark enters the next bucket: closed T bucket, open T+5s bucket so far
    expect(batches.map((b) => b.partials.map((p) => [p.bucketStartMs - T, p.requests?.count]))).toEqual([[[0, 1]], [[0, 1], [5000, 1]]])
    expect(agg.stats().reopened).toBe(0)
  })

  it('keeps metric deltas (startMs, streamStart) as given, and resources/probes per pod', () => {
    const { agg, batches } = collect()
    for (const o of stream()) agg.record(o)
    agg.flush()
    const ps = batches.flatMap((b) => b.partials)
    const iv = ps.flatMap((p) => p.intervals)
    expect(iv).toEqual([
      { timeMs: T + 12_000, startMs: T - 50_000, streamStart: true, count: 10, errors: 0, latenciesUs: [5000], latencyCounts: [10], latencyBuckets: { kind: 'exponential', scale: 3, factor: 1000 } },
      { timeMs: T + 20_000, startMs: T + 10_000, streamStart: false, count: 2, errors: 0, latenciesUs: [1500.5], latencyCounts: [2], latencyBuckets: undefined },
      { timeMs: T + 30_000, startMs: T + 15_000, streamStart: false, count: 90, errors: 3, latenciesUs: [25_000, 75_000], latencyCounts: [60, 30], latencyBuckets: { kind: 'explicit', boundsUs: [0, 50_000, 100_000] } },
    ])
    expect(ps.filter((p) => p.resources.length > 0).every((p) => p.pod === 'checkout-v2-a')).toBe(true)
    expect(ps.flatMap((p) => p.probes).map((x) => x.ready)).toEqual([true, true, false, true])
    expect(batches.at(-1)).toMatchObject({ final: true, watermarkMs: T + 39_900.37 })
  })

  it('counts an observation for an emitted bucket as reopened and still emits it', () => {
    const { agg, batches } = collect({ flushOpen: false })
    agg.record(span(T + 100, 1000))
    agg.advance(T + 10_000)
    agg.record(span(T + 200, 1000))
    agg.advance(T + 10_001)
    expect(agg.stats().reopened).toBe(1)
    expect(batches.flatMap((b) => b.partials).map((p) => p.requests?.count)).toEqual([1, 1])
  })

  it('bounds the open keys and counts the overflow', () => {
    const { agg } = collect({ maxOpenKeys: 2 })
    for (let i = 0; i < 5; i++) agg.record({ ...span(T + i, 1000), key: { ...K, version: `v${i}` } })
    expect(agg.stats()).toMatchObject({ openKeys: 2, overflowObservations: 3, overflowRequests: 3 })
  })
})

describe('partials: codec', () => {
  it('decodes exactly what was encoded (fractional times, floats, missing requests, unicode)', () => {
    const { agg, batches } = collect()
    for (const o of stream()) agg.record({ ...o, key: { ...o.key, namespace: 'bou­tique-ü' } })
    agg.flush()
    for (const b of batches) expect(decodeBatch(encodeBatch(b))).toEqual(b)
  })

  it('refuses another version, foreign bytes and truncation as permanent errors', () => {
    const { agg, batches } = collect()
    for (const o of stream()) agg.record(o)
    agg.flush()
    const buf = encodeBatch(batches.at(-1) as PartialBatch)
    const v3 = Buffer.from(buf)
    v3[2] = 3
    expect(() => decodeBatch(v3)).toThrow(/unsupported version 3/)
    // an interval's flags byte: where the encodings of streamStart false and true differ
    const one = (streamStart: boolean) =>
      encodeBatch({ node: 'n', nowMs: T, watermarkMs: T, final: false, partials: [{ key: K, pod: '', bucketStartMs: T, requests: undefined, intervals: [{ timeMs: T + 1, startMs: T, streamStart, count: 1, errors: 0, latenciesUs: [1], latencyCounts: undefined, latencyBuckets: undefined }], resources: [], probes: [] }] })
    const plain = one(false)
    const flagAt = plain.findIndex((x, i) => x !== one(true)[i])
    expect(plain[flagAt]).toBe(0)
    const mangled = Buffer.from(plain)
    mangled[flagAt] = 6 // explicit and exponential at once
    expect(() => decodeBatch(mangled)).toThrow(PermanentError)
    expect(() => decodeBatch(Buffer.from('{"json":1}'))).toThrow(PermanentError)
    expect(() => decodeBatch(buf.subarray(0, buf.length - 3))).toThrow(PermanentError)
  })
})

describe('partials: version 1', () => {
  it('a batch without layouts is written as version 1, what a decider of the previous release reads; one with a layout as version 2', () => {
    const { agg, batches } = collect()
    for (const o of stream()) if (o.kind !== 'request' || o.latencyBuckets === undefined) agg.record(o)
    agg.flush()
    expect(batches.some((b) => b.partials.some((p) => p.intervals.length > 0))).toBe(true)
    for (const b of batches) {
      const buf = encodeBatch(b)
      expect(buf[2]).toBe(1)
      expect(decodeBatch(buf)).toEqual(b)
    }
    const withLayouts = collect()
    for (const o of stream()) withLayouts.agg.record(o)
    withLayouts.agg.flush()
    expect(withLayouts.batches.map((b) => encodeBatch(b)[2])).toContain(2)
  })

  it('a layout repeated in a batch is written once and decodes to equal layouts', () => {
    const iv = (latencyBuckets: LatencyBuckets | undefined) => ({ timeMs: T + 1, startMs: T, streamStart: false, count: 1, errors: 0, latenciesUs: [1], latencyCounts: undefined, latencyBuckets })
    const sdk = (): LatencyBuckets => ({ kind: 'explicit', boundsUs: [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10_000].map((x) => x * 1000) })
    const batch = (a: LatencyBuckets, b: LatencyBuckets): PartialBatch => ({
      node: 'n', nowMs: T, watermarkMs: T, final: false,
      partials: [
        { key: K, pod: '', bucketStartMs: T, requests: undefined, intervals: [iv(a), iv(undefined)], resources: [], probes: [] },
        { key: { ...K, version: 'v3' }, pod: '', bucketStartMs: T, requests: undefined, intervals: [iv(b)], resources: [], probes: [] },
      ],
    })
    const same = batch(sdk(), sdk())
    const other = batch(sdk(), { kind: 'explicit', boundsUs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map((x) => x * 1e6) })
    expect(decodeBatch(encodeBatch(same))).toEqual(same)
    expect(decodeBatch(encodeBatch(other))).toEqual(other)
    expect(encodeBatch(same).length).toBeLessThan(encodeBatch(other).length - 30)
  })

  it('an interval carries its latency layout to the decider observation', () => {
    const { agg, batches } = collect()
    for (const o of stream()) agg.record(o)
    agg.flush()
    const obs = batches.flatMap((b) => decodeBatch(encodeBatch(b)).partials).flatMap(partialObservations)
    const layouts = obs.filter((o) => o.kind === 'request' && o.latencyBuckets !== undefined).map((o) => (o.kind === 'request' ? o.latencyBuckets : undefined))
    expect(layouts).toEqual(expect.arrayContaining([{ kind: 'explicit', boundsUs: [0, 50_000, 100_000] }, { kind: 'exponential', scale: 3, factor: 1000 }]))
    expect(layouts).toHaveLength(2)
  })
})

describe('decider', () => {
  const cfg = parseConfig({})

  it('re-recorded partials give the store the windows, versions and times of direct recording', () => {
    const direct = new SignalStore(cfg.signals)
    const merged = new SignalStore(cfg.signals)
    const { agg, batches } = collect()
    const other: SeriesKey = { ...K, version: 'v1' }
    const obs = [...stream(), ...stream().map((o) => ({ ...o, key: other, timeMs: o.timeMs + 3 }))]
    for (const o of obs) {
      direct.record(o)
      agg.record(o)
    }
    agg.flush()
    for (const b of batches) for (const p of decodeBatch(encodeBatch(b)).partials) for (const o of partialObservations(p)) merged.record(o)
    for (const k of [K, other]) {
      for (const [a, b] of [[T - 60_000, T + 40_000], [T, T + 20_000], [T + 15_000, T + 35_000]] as const) {
        const x = direct.window(k, a, b)
        const y = merged.window(k, a, b)
        const nums = (w: typeof x) => [w.requests, w.errors, w.latency.count, w.latency.valueAtQuantile(0.5), w.latency.valueAtQuantile(0.99), w.resources, w.probes]
        expect(nums(y)).toEqual(nums(x))
        expect(x.requests).toBeGreaterThan(0)
      }
      expect(merged.coverage(k)).toEqual(direct.coverage(k))
    }
    expect(merged.versions('shop', 'checkout')).toEqual(direct.versions('shop', 'checkout'))
  })

  function decider(nodeTimeoutMs = 30_000) {
    const ticks: { now: number; watermark: number }[] = []
    const d = new Decider({ pipeline: new Pipeline({ engine: cfg.engine, signals: cfg.signals }), nodeTimeoutMs, onTick: (_r, now, watermark) => ticks.push({ now, watermark }) })
    return { d, ticks }
  }
  const hb = (node: string, nowMs: number, partials: PartialBatch['partials'] = []): PartialBatch => ({ node, nowMs, watermarkMs: nowMs - 5000, final: false, partials })

  it('ticks on the minimum of the nodes watermarks, ignoring a node silent for longer than the timeout', () => {
    const { d, ticks } = decider(20_000)
    d.receive(hb('a', T + 10_000))
    d.receive(hb('b', T + 10_000))
    expect(ticks).toEqual([{ now: T + 10_000, watermark: T + 5000 }])
    for (let s = 15; s <= 30; s += 5) d.receive(hb('a', T + s * 1000))
    // b, silent since T + 10 s, still holds the watermark at T + 5 s
    expect(ticks).toHaveLength(1)
    d.receive(hb('a', T + 35_000))
    expect(ticks.at(-1)).toEqual({ now: T + 35_000, watermark: T + 30_000 })
    expect(d.watermark()).toBe(T + 30_000)
  })

  it('receiveAll: nodes heard together are never silent against each other, even across a time gap', () => {
    const apart = decider(20_000)
    apart.d.receive(hb('a', T + 10_000))
    apart.d.receive(hb('b', T + 10_000))
    apart.d.receive(hb('a', T + 60_000)) // b, heard at T + 10 s, is silent against a's T + 60 s: ignored
    expect(apart.ticks.at(-1)).toEqual({ now: T + 60_000, watermark: T + 55_000 })
    const together = decider(20_000)
    together.d.receiveAll([hb('a', T + 10_000), hb('b', T + 10_000)])
    together.d.receiveAll([hb('a', T + 60_000), hb('b', T + 40_000)])
    expect(together.ticks.at(-1)).toEqual({ now: T + 60_000, watermark: T + 35_000 })
    expect(together.ticks).toHaveLength(2)
  })

  it('counts a partial for a bucket already judged as late, and still records it', () => {
    const { d } = decider()
    d.receive(hb('a', T + 20_000))
    expect(d.stats().judgedWatermarkMs).toBe(T + 15_000)
    const { agg, batches } = collect()
    agg.record(span(T + 5000, 1000))
    agg.record(span(T + 15_000, 1000))
    agg.flush()
    d.receive({ ...hb('a', T + 20_000), partials: batches.flatMap((b) => b.partials) })
    expect(d.stats()).toMatchObject({ latePartials: 1, partials: 2 })
    expect(d.pipeline.store.window(K, T, T + 20_000).requests).toBe(2)
  })

  it('consume(): decodes batches, counts undecodable ones and ends without throwing', async () => {
    const { d, ticks } = decider()
    async function* src() {
      yield encodeBatch(hb('a', T + 10_000))
      yield Buffer.from('garbage')
      yield encodeBatch(hb('a', T + 15_000))
    }
    await expect(d.consume(src())).resolves.toEqual({ kind: 'ended', batches: 2 })
    expect(d.stats().undecodable).toBe(1)
    expect(ticks).toHaveLength(2)
  })
})

describe('daemonset split', () => {
  it('FNV-1a 32 reference values, and pod identity preference', () => {
    // published FNV-1a 32 test vectors
    expect(fnv1a32('')).toBe(0x811c9dc5)
    expect(fnv1a32('a')).toBe(0xe40c292c)
    expect(fnv1a32('foobar')).toBe(0xbf9cf968)
    expect(nodeOf({ 'k8s.pod.name': 'foobar', 'host.name': 'x' }, 7)).toBe(0xbf9cf968 % 7)
    expect(nodeOf({ 'service.instance.id': 'foobar' }, 7)).toBe(0xbf9cf968 % 7)
    expect(nodeOf({ 'service.name': 'checkout' }, 7)).toBe(0)
  })
})
