/**
 * The history stage without a broker: the versioned encoding round-trips and refuses what it does
 * not know, the accumulator's limits are counted, the store sampler reads what the signal store
 * holds, summaries rebuild the history the calibration reads, and the bytes per service-day of the
 * encoding are measured and printed.
 */
import { describe, expect, it } from 'vitest'
import { decodeHeader, decodeSummary, encodeSummary, HOUR_MS, type HourSummary } from '../../src/history/codec.js'
import { DEFAULT_BOUNDS_US, HistoryAccumulator } from '../../src/history/accumulator.js'
import { StoreSampler } from '../../src/history/feeds.js'
import { historyFromSummaries } from '../../src/calibrate/kafka.js'
import { history as synthHistory, type SynthService } from '../calibrate/synthetic.js'
import { feedSynthetic } from './feed-synthetic.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { parseConfig } from '../../src/config/load.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 10, 1)
const acc = (o: Partial<ConstructorParameters<typeof HistoryAccumulator>[0]> = {}) => new HistoryAccumulator({ stepMs: 60_000, graceMs: 120_000, maxServices: 100, maxPods: 8, ...o })
const cart: SynthService = { namespace: 'shop', name: 'cart', rps: 20, errorRatio: 0.005, medianS: 0.04, sigma: 0.6, noisyHours: 0.05, pods: 3, memoryBytes: 200e6, memoryRequestBytes: 256e6 }

describe('codec', () => {
  it('round-trips a summary exactly (gaps, empty steps, sparse buckets, sketches, unknown requests)', () => {
    const a = acc()
    const key = { namespace: 'shop', service: 'cart', version: 'v1' }
    a.requests(key, START + 5, 10, 2, [3000, 40_000, 20_000_000], [4, 5, 1])
    a.requests(key, START + 60_000, 0, 0, [], undefined)
    a.resource(key, 'cart-0', 'memory', START + 10, 200e6, 256e6)
    a.resource(key, 'cart-0', 'cpu', START + 10, 0, undefined)
    a.resource(key, 'cart-0', 'cpu', START + 20, 0.25, undefined)
    const [s] = a.drain(START + HOUR_MS + 120_000)
    expect(s).toBeDefined()
    const sum = s as HourSummary
    const d = decodeSummary(encodeSummary(sum))
    expect(d.kind).toBe('ok')
    if (d.kind !== 'ok') return
    expect(d.summary.namespace).toBe('shop')
    expect(d.summary.hourStartMs).toBe(START)
    expect(d.summary.boundsUs).toEqual(DEFAULT_BOUNDS_US)
    expect([...d.summary.counts.slice(0, 3)]).toEqual([10, 0, Number.NaN])
    expect(d.summary.errors[0]).toBe(2)
    const w = DEFAULT_BOUNDS_US.length + 1
    expect([...d.summary.latency.slice(0, w)]).toEqual([4, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    expect(d.summary.resources).toEqual(sum.resources)
    expect(d.summary.resources.find((r) => r.resource === 'cpu')?.request).toBeNaN()
    expect(decodeHeader(encodeSummary(sum))).toEqual({ kind: 'ok', namespace: 'shop', service: 'cart', hourStartMs: START })
  })

  it('refuses another version, another magic and truncated records as outcomes', () => {
    const a = acc()
    a.requests({ namespace: '', service: 'x', version: 'v' }, START, 1, 0, [1], undefined)
    const b = encodeSummary(a.drain(START + 2 * HOUR_MS)[0] as HourSummary)
    const v2 = Buffer.from(b)
    v2[2] = 2
    expect(decodeSummary(v2)).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/version 2/) })
    expect(decodeSummary(Buffer.from('{"json":1}'))).toMatchObject({ kind: 'invalid' })
    expect(decodeSummary(b.subarray(0, b.length - 3))).toMatchObject({ kind: 'invalid' })
  })
})

describe('accumulator', () => {
  it('writes an hour only after its grace, counts late and future observations, and the limits', () => {
    const a = acc({ maxServices: 2, maxPods: 1 })
    const k = (s: string) => ({ namespace: 'ns', service: s, version: 'v' })
    a.requests(k('a'), START + 1000, 1, 0, [], undefined)
    expect(a.drain(START + HOUR_MS + 60_000)).toHaveLength(0)
    expect(a.drain(START + HOUR_MS + 120_000)).toHaveLength(1)
    a.requests(k('a'), START + 2000, 1, 0, [], undefined)
    expect(a.stats().late).toBe(1)
    a.requests(k('a'), START + 3 * HOUR_MS, 1, 0, [], undefined)
    expect(a.stats().future).toBe(1)
    // 2 services x 2 open hours at most
    for (const s of ['a', 'b', 'c', 'd', 'e']) a.requests(k(s), START + HOUR_MS + 5, 1, 0, [], undefined)
    expect(a.stats().open).toBe(4)
    expect(a.stats().servicesDropped).toBe(1)
    a.resource(k('a'), 'p0', 'memory', START + HOUR_MS + 5, 1, 2)
    a.resource(k('a'), 'p1', 'memory', START + HOUR_MS + 5, 1, 2)
    expect(a.stats().podsDropped).toBe(1)
    a.requests(k('a'), Number.NaN, 1, 0, [], undefined)
    expect(a.stats().invalid).toBe(1)
    // shutdown writes the open (partial) hours
    expect(a.drain(START + HOUR_MS + 10_000, true)).toHaveLength(4)
  })
})

describe('summaries -> calibration history', () => {
  it('rebuilds the same request history the calibration reads from a backend, and usage sketches', () => {
    const a = acc({ maxPods: 64 })
    const end = START + DAY
    feedSynthetic(a, cart, START + 60_000, end, 60_000, 7)
    const sums = a.drain(end + HOUR_MS, true).map((s) => {
      const d = decodeSummary(encodeSummary(s))
      if (d.kind !== 'ok') throw new Error(d.reason)
      return d.summary
    })
    expect(sums).toHaveLength(24)
    const range = { startMs: START, endMs: end, stepMs: 60_000 }
    const h = historyFromSummaries({ namespace: 'shop', name: 'cart' }, sums, range)
    const want = synthHistory(cart, START + 60_000, end, 60_000, 7)
    // grid step i of the rebuilt history = the generator's step at the same time
    expect(h.requests.counts.length).toBe(want.requests.counts.length + 1)
    let total = 0
    for (let i = 0; i < want.requests.counts.length; i++) {
      expect(h.requests.counts[i + 1]).toBe(want.requests.counts[i])
      expect(h.requests.errors[i + 1]).toBe(want.requests.errors[i])
      total += want.requests.counts[i] as number
    }
    expect(total).toBeGreaterThan(1e6)
    const w = want.requests.boundsS.length + 1
    expect([...h.requests.latency.slice(w * 500, w * 501)]).toEqual([...want.requests.latency.slice(w * 499, w * 500)])
    expect(Number.isNaN(h.requests.counts[0] as number)).toBe(true)
    expect(h.resources.filter((r) => r.resource === 'memory')).toHaveLength(3)
    expect(h.resources[0]?.request).toBe(256e6)
    const p70 = h.usage?.memory.quantile(0.7) as number
    expect(p70).toBeGreaterThan(200e6)
    expect(p70).toBeLessThan(225e6)
  })

  it('sums two summaries of the same service and hour (a partial hour written at shutdown, then the rest)', () => {
    const key = { namespace: 'shop', service: 'cart', version: 'v' }
    const a = acc()
    a.requests(key, START + 10, 5, 1, [1000], [5])
    const first = a.drain(START + 20, true)
    const b = acc()
    b.requests(key, START + 20, 7, 0, [1000], [7])
    const second = b.drain(START + 2 * HOUR_MS)
    const h = historyFromSummaries({ namespace: 'shop', name: 'cart' }, [...first, ...second], { startMs: START, endMs: START + HOUR_MS, stepMs: 60_000 })
    expect(h.requests.counts[1]).toBe(12)
    expect(h.requests.errors[1]).toBe(1)
  })
})

describe('store sampler', () => {
  it('reads each finished step of the tapped services from the signal store', () => {
    const cfg = parseConfig({})
    const p = new Pipeline({ engine: cfg.engine, signals: cfg.signals })
    const a = acc()
    const key = { namespace: 'shop', service: 'cart', version: 'v1' }
    const t0 = START + 10 * 60_000
    for (let s = 0; s < 5; s++) {
      for (let i = 0; i < 10; i++) p.store.record({ kind: 'request', key, timeMs: t0 + s * 60_000 + i * 1000, count: 1, errors: i === 0 ? 1 : 0, latenciesUs: [i < 5 ? 3000 : 300_000], latencyCounts: undefined })
      p.store.record({ kind: 'resource', key, pod: 'cart-0', resource: 'memory', timeMs: t0 + s * 60_000 + 30_000, value: 100e6 + s, request: 256e6 })
    }
    const sampler = new StoreSampler({ view: () => p.store, services: () => [{ namespace: 'shop', service: 'cart' }], feed: a, boundsUs: a.boundsUs, stepMs: 60_000, lagMs: 65_000, maxBackMs: 600_000 })
    sampler.sample(t0 + 5 * 60_000 + 65_000)
    const [sum] = a.drain(START + 2 * HOUR_MS, true)
    expect(sum).toBeDefined()
    const s = sum as HourSummary
    const w = a.boundsUs.length + 1
    for (let k = 10; k < 15; k++) {
      expect(s.counts[k]).toBe(10)
      expect(s.errors[k]).toBe(1)
      const row = [...s.latency.slice(k * w, (k + 1) * w)]
      // 3 ms in (0, 5 ms]; 300 ms in (250, 500 ms]
      expect(row[0]).toBe(5)
      expect(row[7]).toBe(5)
    }
    expect(s.resources).toHaveLength(1)
    expect(s.resources[0]).toMatchObject({ pod: 'cart-0', resource: 'memory', request: 256e6 })
    p.store.shutdown()
  })
})

describe('bytes per service-day', () => {
  it('is measured on a day of a busy synthetic service (20 req/s, 3 pods) and stays under 40 KB', () => {
    const a = acc({ maxPods: 64 })
    feedSynthetic(a, cart, START + 60_000, START + DAY, 60_000, 11)
    let bytes = 0
    let raw = 0
    const sums = a.drain(START + DAY + HOUR_MS, true)
    for (const s of sums) {
      bytes += encodeSummary(s).length
      raw += 24 + s.counts.length * 17 * 8
    }
    const quiet = acc({ maxPods: 64 })
    feedSynthetic(quiet, { ...cart, name: 'quiet', rps: 0.2, pods: 1 }, START + 60_000, START + DAY, 60_000, 12)
    let quietBytes = 0
    for (const s of quiet.drain(START + DAY + HOUR_MS, true)) quietBytes += encodeSummary(s).length
    console.log(`history bytes per service-day: ${bytes} (20 req/s, 3 pods, 60 s steps; ${(bytes / 24).toFixed(0)} B/hour; floats would take ${raw}); quiet service (0.2 req/s, 1 pod): ${quietBytes}; 30 days x 1,000 busy services: ${((bytes * 30 * 1000) / 2 ** 20).toFixed(0)} MiB`)
    expect(sums).toHaveLength(24)
    expect(bytes).toBeLessThan(40_000)
    expect(quietBytes).toBeLessThan(bytes)
  })
})
