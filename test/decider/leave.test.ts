/**
 * Nodes leaving (src/decider/README.md "Nodes leaving"): a node that announced leaving stops holding
 * the watermark back after the leave grace, a silent one after the node timeout; a restart within the
 * grace loses nothing; a restart after it never moves the judged watermark back or re-judges; the
 * `leaving` flag is backward compatible on the wire; the config key validates.
 */
import { describe, expect, it } from 'vitest'
import { decodeBatch, encodeBatch } from '../../src/partials/codec.js'
import type { PartialBatch, SeriesPartial } from '../../src/partials/types.js'
import { Decider } from '../../src/decider/decider.js'
import { deciderLeaveGrace } from '../../src/decider/config.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { parseConfig } from '../../src/config/load.js'

const T = 1_700_000_000_000 // bucket-aligned (multiple of 5 s)
const cfg = parseConfig({})

function partial(bucketStartMs: number, count = 1): SeriesPartial {
  return {
    key: { namespace: 'shop', service: 'cart', version: 'v1' },
    pod: '',
    bucketStartMs,
    requests: { count, errors: 0, firstMs: bucketStartMs + 100, lastMs: bucketStartMs + 100, latenciesUs: [1000], latencyCounts: [count] },
    intervals: [],
    resources: [],
    probes: [],
  }
}
/** a live node's heartbeat at clock `nowMs` (watermark = clock - lateness 5 s) */
const hb = (node: string, nowMs: number, partials: SeriesPartial[] = []): PartialBatch => ({ node, nowMs, watermarkMs: nowMs - 5000, final: false, partials })
const leave = (node: string, nowMs: number, partials: SeriesPartial[] = []): PartialBatch => ({ ...hb(node, nowMs, partials), leaving: true })
const hello = (node: string): PartialBatch => ({ node, nowMs: -Infinity, watermarkMs: -Infinity, final: false, partials: [] })

function decider(o: { nodeTimeoutMs?: number; leaveGraceMs?: number } = {}) {
  const ticks: number[] = []
  const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals })
  const d = new Decider({ pipeline, nodeTimeoutMs: o.nodeTimeoutMs ?? 30_000, leaveGraceMs: o.leaveGraceMs ?? 10_000, onTick: (_r, _now, w) => ticks.push(w) })
  return { d, ticks, pipeline }
}

/** a's heartbeats every second from `from` to `to` (s after T), as a live sidecar ticks */
function aliveUntil(d: Decider, from: number, to: number): void {
  for (let s = from; s <= to; s++) d.receive(hb('a', T + s * 1000))
}

describe('decider: nodes leaving', () => {
  it('a leaving node holds the watermark for the leave grace after its announcement, then no longer', () => {
    const { d, ticks, pipeline } = decider()
    d.receiveAll([hb('a', T + 20_000), hb('b', T + 20_000)])
    d.receive(leave('b', T + 20_000))
    expect(d.stats()).toMatchObject({ leaves: 1, leavesExpired: 0 })
    aliveUntil(d, 21, 29)
    // b's last promise (T + 15 s) still holds the partition within the grace
    expect(d.watermark()).toBe(T + 15_000)
    expect(ticks).toEqual([T + 15_000])
    aliveUntil(d, 30, 30)
    // 10 s of the partition's clock after the leave: b no longer counts
    expect(d.watermark()).toBe(T + 25_000)
    expect(ticks).toEqual([T + 15_000, T + 25_000])
    expect(d.stats()).toMatchObject({ leaves: 1, leavesExpired: 1, timeouts: 0, returns: 0, rejoins: 0, nodes: 2 })
    pipeline.shutdown()
  })

  it('a crashed node (no leave) holds the watermark until the node timeout, counted as a timeout', () => {
    const { d, ticks, pipeline } = decider()
    d.receiveAll([hb('a', T + 20_000), hb('b', T + 20_000)])
    aliveUntil(d, 21, 50)
    expect(d.watermark()).toBe(T + 15_000)
    expect(ticks).toEqual([T + 15_000])
    expect(d.stats().timeouts).toBe(0)
    aliveUntil(d, 51, 51)
    // b was heard at T + 20 s; the partition's clock is past T + 50 s: silent for longer than 30 s
    expect(d.watermark()).toBe(T + 46_000)
    expect(ticks.at(-1)).toBe(T + 46_000)
    expect(d.stats()).toMatchObject({ timeouts: 1, leaves: 0, leavesExpired: 0 })
    pipeline.shutdown()
  })

  it('a restart within the grace holds the gap unjudged: the restarted node sends the gap and nothing is late', () => {
    const { d, ticks, pipeline } = decider()
    d.receiveAll([hb('a', T + 20_000), hb('b', T + 20_000)])
    d.receive(leave('b', T + 20_000, [partial(T + 15_000)]))
    aliveUntil(d, 21, 26)
    // the new pod under the same node name: hello, then what its pods' exporters retried (from T + 16 s on)
    d.receive(hello('b'))
    expect(d.watermark()).toBe(T + 15_000) // the hello's -Infinity does not move b's watermark back
    d.receive(hb('b', T + 27_000, [partial(T + 15_000), partial(T + 20_000, 4), partial(T + 25_000, 2)]))
    aliveUntil(d, 27, 45)
    for (let s = 28; s <= 45; s++) d.receive(hb('b', T + s * 1000))
    const st = d.stats()
    expect(st).toMatchObject({ leaves: 1, returns: 1, leavesExpired: 0, rejoins: 0, timeouts: 0, latePartials: 0 })
    // never judged past b's last promise before it was back; afterwards in order, each bucket once
    expect(ticks[0]).toBe(T + 15_000)
    expect(ticks[1]).toBe(T + 21_000)
    for (let i = 1; i < ticks.length; i++) expect(Math.floor(ticks[i]! / 5000)).toBeGreaterThan(Math.floor(ticks[i - 1]! / 5000))
    // everything b sent is in the store and was judged in its windows
    expect(pipeline.store.window({ namespace: 'shop', service: 'cart', version: 'v1' }, T + 15_000, T + 30_000).requests).toBe(1 + 1 + 4 + 2)
    // b is live again: it is timed out only by nodeTimeout from now on, not by the old leave
    expect(d.watermark()).toBe(T + 40_000)
    pipeline.shutdown()
  })

  it('a restart after the grace rejoins without moving the judged watermark back or re-judging; its judged-bucket data is late', () => {
    const { d, ticks, pipeline } = decider()
    d.receiveAll([hb('a', T + 20_000), hb('b', T + 20_000)])
    d.receive(leave('b', T + 20_000))
    aliveUntil(d, 21, 42)
    const judged = d.stats().judgedWatermarkMs
    expect(judged).toBe(T + 35_000)
    const before = ticks.length
    d.receive(hello('b'))
    // b rejoins at the judged watermark, never under it
    expect(d.watermark()).toBe(judged)
    d.receive(hb('b', T + 43_000, [partial(T + 20_000), partial(T + 40_000)]))
    expect(d.stats()).toMatchObject({ leaves: 1, leavesExpired: 1, rejoins: 1, returns: 0, latePartials: 1 })
    expect(ticks.length).toBe(before) // nothing re-judged
    for (let s = 44; s <= 45; s++) d.receiveAll([hb('a', T + s * 1000), hb('b', T + s * 1000)])
    expect(ticks.at(-1)).toBe(T + 40_000)
    expect(ticks.every((w, i) => i === 0 || w > ticks[i - 1]!)).toBe(true)
    pipeline.shutdown()
  })

  it('leaveGrace 0 lets go at the announcement itself; a final node never goes', () => {
    const { d, ticks, pipeline } = decider({ leaveGraceMs: 0 })
    d.receiveAll([hb('a', T + 20_000), hb('b', T + 15_000)])
    expect(ticks).toEqual([T + 10_000])
    d.receive(leave('b', T + 15_000))
    expect(d.stats().leavesExpired).toBe(1)
    expect(ticks.at(-1)).toBe(T + 15_000)
    const f = decider({ nodeTimeoutMs: 5000 })
    f.d.receiveAll([hb('a', T + 20_000), { node: 'b', nowMs: T + 20_000, watermarkMs: T + 20_000, final: true, partials: [] }])
    aliveUntil(f.d, 21, 40)
    expect(f.d.stats()).toMatchObject({ timeouts: 0, leaves: 0 })
    pipeline.shutdown()
    f.pipeline.shutdown()
  })

  it('at maxNodes a gone node is forgotten to track a new one; without a gone node the new one is refused', () => {
    const ticks: number[] = []
    const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals })
    const d = new Decider({ pipeline, maxNodes: 2, leaveGraceMs: 0, onTick: (_r, _n, w) => ticks.push(w) })
    d.receiveAll([hb('a', T + 20_000), hb('b', T + 20_000)])
    d.receive(hb('c', T + 21_000))
    expect(d.stats()).toMatchObject({ nodesRefused: 1, nodesEvicted: 0, nodes: 2 })
    d.receive(leave('b', T + 21_000))
    d.receive(hb('c', T + 22_000))
    expect(d.stats()).toMatchObject({ nodesRefused: 1, nodesEvicted: 1, nodes: 2 })
    pipeline.shutdown()
  })
})

describe('codec: leaving is backward compatible (version 1 unchanged)', () => {
  // written by the codec before `leaving` existed (dist of 2026-12-02 03:53): a live batch with one
  // partial, and a final heartbeat
  const OLD_LIVE = '504201026e31c0f8d8fcf3c501a0dcd7fcf3c50100010473686f7004636172740276310080c0d6fcf3c501010c049003807d000201a01f08a01f04'
  const OLD_FINAL = '504201026e31c0f8d8fcf3c501c0f8d8fcf3c5010100'
  const p: SeriesPartial = {
    key: { namespace: 'shop', service: 'cart', version: 'v1' },
    pod: '',
    bucketStartMs: T,
    requests: { count: 3, errors: 1, firstMs: T + 100, lastMs: T + 4000, latenciesUs: [1000, 2000], latencyCounts: [2, 1] },
    intervals: [],
    resources: [],
    probes: [],
  }

  it('old batches decode as before (no `leaving` key), and batches without the flag encode to the same bytes', () => {
    const live = decodeBatch(Buffer.from(OLD_LIVE, 'hex'))
    expect(live).toStrictEqual({ node: 'n1', nowMs: T + 10_000, watermarkMs: T + 5000, final: false, partials: [p] })
    expect(decodeBatch(Buffer.from(OLD_FINAL, 'hex'))).toStrictEqual({ node: 'n1', nowMs: T + 10_000, watermarkMs: T + 10_000, final: true, partials: [] })
    expect(encodeBatch(live).toString('hex')).toBe(OLD_LIVE)
    expect(encodeBatch({ ...live, leaving: false }).toString('hex')).toBe(OLD_LIVE)
  })

  it('a leaving batch round-trips, and differs from the live one only in the end value an old decoder reads as "not final"', () => {
    const b: PartialBatch = { node: 'n1', nowMs: T + 10_000, watermarkMs: T + 5000, final: false, leaving: true, partials: [p] }
    const buf = encodeBatch(b)
    expect(decodeBatch(buf)).toStrictEqual(b)
    const live = Buffer.from(OLD_LIVE, 'hex')
    const diff = [...buf].flatMap((x, i) => (x === live[i] ? [] : [[i, live[i], x]]))
    // the old decoder: `final = end === 1`, so 2 reads as a plain live heartbeat (timed out by nodeTimeout)
    expect(diff).toEqual([[20, 0, 2]])
    expect(buf.length).toBe(live.length)
    // final wins over leaving
    expect(decodeBatch(encodeBatch({ ...b, final: true }))).toStrictEqual({ node: 'n1', nowMs: T + 10_000, watermarkMs: T + 5000, final: true, partials: [p] })
  })
})

describe('config: decider.leaveGrace', () => {
  it('defaults to one bucket + lateness, at most nodeTimeout; longer than nodeTimeout fails naming the path', () => {
    expect(cfg.decider.leaveGrace).toBeUndefined()
    expect(deciderLeaveGrace(cfg.decider, cfg.signals.bucket, cfg.engine.lateness)).toBe(10_000)
    const short = parseConfig({ decider: { nodeTimeout: '4s' } })
    expect(deciderLeaveGrace(short.decider, short.signals.bucket, short.engine.lateness)).toBe(4000)
    expect(parseConfig({ decider: { leaveGrace: '0s' } }).decider.leaveGrace).toBe(0)
    expect(() => parseConfig({ decider: { leaveGrace: '45s' } })).toThrow(/decider\.leaveGrace/)
    expect(() => parseConfig({ decider: { leaveGrace: 'soon' } })).toThrow(/decider\.leaveGrace/)
  })
})
