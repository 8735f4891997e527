/**
 * The warm-up stage (src/warmup): a process's first requests left out of its version's series,
 * through the real Normalizer; and the drawn cold-start deployment it exists for.
 */
import { describe, expect, it } from 'vitest'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { Observation, RequestObservation } from '../../src/normalize/observations.js'
import type { Attributes, DecodedMetric, DecodedSpan, HistogramPoint } from '../../src/receivers/otlp/model.js'
import { PodWarmup } from '../../src/warmup/pod-warmup.js'
import { loadConfig, parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { benignDeployment, paramsOf } from '../../bench/false-rollbacks.js'

const T = 1_700_000_000_000
const POD_A: Attributes = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2', 'k8s.pod.name': 'cart-a' }
const POD_B: Attributes = { ...POD_A, 'k8s.pod.name': 'cart-b' }
const ANONYMOUS: Attributes = { 'service.name': 'cart', 'k8s.namespace.name': 'shop', 'service.version': 'v2' }
const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1]
const WARMUP = { warmup: { duration: '10s' } }

function setup(cfg: object = WARMUP) {
  const obs: Observation[] = []
  const n = new Normalizer(cfg, { record: (o) => obs.push(o) })
  const requests = () => obs.filter((o): o is RequestObservation => o.kind === 'request')
  return { n, requests, count: () => requests().reduce((a, r) => a + r.count, 0) }
}

/** a SERVER span that started at `startMs` and took 2 ms */
const span = (startMs: number): DecodedSpan => ({ kind: 2, endTimeMs: startMs + 2, durationUs: 2000, statusCode: 0, httpStatus: 200 })
const spans = (resource: Attributes, ...s: DecodedSpan[]) => ({ resourceSpans: [{ resource, spans: s }] })

function hist(points: Partial<HistogramPoint>[], temporality = 1): DecodedMetric {
  return {
    name: 'http.server.request.duration',
    unit: 's',
    type: 'histogram',
    temporality,
    points: points.map((p) => ({ startTimeMs: T, timeMs: T, count: 0, sum: undefined, bounds: BOUNDS, bucketCounts: [0, 0, 0, 0, 0, 0], attributes: {}, ...p })),
  }
}
const metrics = (resource: Attributes, ...ms: DecodedMetric[]) => ({ resourceMetrics: [{ resource, metrics: ms }] })
/** a delta point of `n` requests over (from, to] */
const delta = (from: number, to: number, n: number, attributes: Attributes = {}): Partial<HistogramPoint> => ({ startTimeMs: from, timeMs: to, count: n, bucketCounts: [n, 0, 0, 0, 0, 0], attributes })

describe('warm-up: spans', () => {
  it('off by default: every span counts', () => {
    const { n, count } = setup({})
    n.traces(spans(POD_A, span(T), span(T + 1000)))
    expect(count()).toBe(2)
    expect(n.stats().warmupExcluded).toBe(0)
  })

  it("a process's spans that started within the warm-up of its first are left out and counted; each process has its own", () => {
    const { n, count } = setup()
    n.traces(spans(POD_A, span(T), span(T + 9_000)))
    n.traces(spans(POD_A, span(T + 9_999), span(T + 10_000), span(T + 20_000)))
    expect(count()).toBe(2)
    // a second pod starting later has its own warm-up
    n.traces(spans(POD_B, span(T + 15_000), span(T + 26_000)))
    expect(count()).toBe(3)
    const st = n.stats()
    expect(st.warmupExcluded).toBe(4)
    expect(st.accepted).toBe(7)
    expect(st.rejected).toBe(0)
  })

  it('a late span from before the first seen ends the warm-up sooner; a far-future span is outvoted by the next true one', () => {
    const { n, count } = setup()
    n.traces(spans(POD_A, span(T + 3_600_000)))
    n.traces(spans(POD_A, span(T), span(T + 10_000)))
    // the far-future span was its process's first (left out); the next true one moves the start back,
    // so the warm-up ends 10 s after T, not an hour ahead
    expect(count()).toBe(1)
    n.traces(spans(POD_A, span(T + 11_000)))
    expect(count()).toBe(2)
    const late = setup()
    late.n.traces(spans(POD_A, span(T + 8_000)))
    late.n.traces(spans(POD_A, span(T - 5_000)))
    late.n.traces(spans(POD_A, span(T + 6_000)))
    expect(late.count()).toBe(1)
  })

  it('replicas without identity share one resource: no warm-up applies', () => {
    const { n, count } = setup()
    n.traces(spans(ANONYMOUS, span(T), span(T + 1_000)))
    expect(count()).toBe(2)
  })
})

describe('warm-up: metric points', () => {
  it('a 15 s export mostly inside the warm-up is left out; the next one counts', () => {
    const { n, count } = setup()
    n.metrics(metrics(POD_A, hist([delta(T, T + 15_000, 30)], 1)))
    n.metrics(metrics(POD_A, hist([delta(T + 15_000, T + 30_000, 40)], 1)))
    expect(count()).toBe(40)
    expect(n.stats().warmupExcluded).toBe(30)
  })

  it('a delta point without a usable start (all at its time) is left out when its time is in the warm-up', () => {
    const { n, count } = setup()
    n.metrics(metrics(POD_A, hist([delta(0, T, 5)], 1)))
    n.metrics(metrics(POD_A, hist([delta(0, T + 9_000, 6)], 1)))
    n.metrics(metrics(POD_A, hist([delta(0, T + 10_000, 7)], 1)))
    expect(count()).toBe(7)
  })

  it('a 60 s export holding a 10 s warm-up counts (a sixth of its interval)', () => {
    const { n, count } = setup()
    n.metrics(metrics(POD_A, hist([delta(T, T + 60_000, 100)], 1)))
    expect(count()).toBe(100)
  })

  it("cumulative: a process's first export counts whole from its start and is left out; a stream new in a later export holds requests since the previous one", () => {
    const { n, count } = setup()
    const cum = (t: number, c: number, status: number) => ({ startTimeMs: T, timeMs: t, count: c, bucketCounts: [c, 0, 0, 0, 0, 0], attributes: { 'http.response.status_code': status } })
    // first export at +10 s, two streams (both the process's first: left out)
    n.metrics(metrics(POD_A, hist([cum(T + 10_000, 20, 200), cum(T + 10_000, 2, 500)], 2)))
    expect(count()).toBe(0)
    // +20 s: the 200 stream's delta and a new 404 stream (since +10 s, after the warm-up): both count
    n.metrics(metrics(POD_A, hist([cum(T + 20_000, 45, 200), cum(T + 20_000, 3, 404)], 2)))
    expect(count()).toBe(25 + 3)
    expect(n.stats().warmupExcluded).toBe(22)
  })

  it('a stream new in the same export as its siblings is the warm-up too (not read as the newest requests)', () => {
    const { n, count } = setup()
    const cum = (c: number, status: number) => ({ startTimeMs: T, timeMs: T + 10_000, count: c, bucketCounts: [c, 0, 0, 0, 0, 0], attributes: { 'http.response.status_code': status } })
    n.metrics(metrics(POD_A, hist([cum(5, 200), cum(7, 500), cum(1, 404)], 2)))
    expect(count()).toBe(0)
  })
})

describe('warm-up: the map', () => {
  it('at maxPods the least recently seen process is forgotten and counted; its next requests start a warm-up again', () => {
    const w = new PodWarmup({ duration: 10_000, maxPods: 2 })
    expect(w.until('a', T)).toBe(T + 10_000)
    w.until('b', T)
    w.until('a', T + 20_000) // a is now the most recent
    w.until('c', T + 30_000) // b forgotten
    expect(w.size()).toBe(2)
    expect(w.stats().warmupPodsEvicted).toBe(1)
    expect(w.until('a', T + 40_000)).toBe(T + 10_000)
    expect(w.until('b', T + 40_000)).toBe(T + 50_000)
  })

  it('bad config fails at start naming the path', () => {
    expect(() => parseConfig({ normalize: { warmup: { duration: 'soon' } } })).toThrow(/normalize\.warmup\.duration/)
    expect(() => parseConfig({ normalize: { warmup: { duration: '11m' } } })).toThrow(/normalize\.warmup\.duration/)
    expect(() => parseConfig({ normalize: { warmup: { maxPods: 0 } } })).toThrow(/normalize\.warmup\.maxPods/)
    expect(() => parseConfig({ normalize: { warmup: { grace: '10s' } } })).toThrow(/grace/)
  })
})

// bench/false-rollbacks.ts --cold-start 5: drawn benign deployment #7 (seed 1, spans, 5 pods, ~200
// req/s): each new pod 6x slower with 3 % errors over its first 5 s; a rolling update makes one new
// pod after another the youngest, and the frozen baseline is warm pods: rolled back by default.
describe('warm-up: a rolling update of pods that start cold', () => {
  const run = async (cfg: ReturnType<typeof parseConfig>) => {
    const p = { ...paramsOf(1, 7), coldStartS: 5 }
    const s = await replayLines(benignDeployment(p, 1), cfg, { out: () => undefined, err: () => undefined }, { actuator: false })
    return s.verdicts.filter((v) => !v.dryRun).map((v) => v.kind)
  }

  it('is rolled back without a warm-up, and left alone with the benches\' 10 s one', async () => {
    expect(paramsOf(1, 7).telemetry).toBe('spans')
    expect(await run(parseConfig({}))).toEqual(['rollback'])
    expect(await run(loadConfig('bench/configs/warmup-10s.yaml'))).toEqual([])
  }, 60_000)
})
