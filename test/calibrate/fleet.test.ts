/**
 * calibrateFleet (src/calibrate/fleet.ts) in this thread: every service answered once, a service
 * the source cannot read reported (not thrown), the histories held at once bounded by the
 * read-ahead, the same result as calibrating the service alone, and a progress line with the count.
 * Also the backtest's binary search for a pod series' cursor and the scenario-library history
 * generator of the held-out bench.
 */
import { describe, expect, it } from 'vitest'
import { history, BOUNDS_S, type SynthService } from './synthetic.js'
import { simHistory, sliceHistory } from './sim-history.js'
import { calibrateFleet, type FleetItem } from '../../src/calibrate/fleet.js'
import { calibrateService, DEFAULT_CALIBRATE } from '../../src/calibrate/search.js'
import { firstAfter } from '../../src/calibrate/backtest.js'
import type { HistoryOutcome, HistoryRange, HistorySource, ServiceRef } from '../../src/calibrate/history.js'
import { parseConfig } from '../../src/config/load.js'
import { SCENARIOS } from '../../src/sim/index.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 10, 1)
const cfg = parseConfig({})
const bc = { engine: cfg.engine, signals: cfg.signals }
const svc = (name: string, rps: number): SynthService => ({ namespace: 'shop', name, rps, errorRatio: 0.004, medianS: 0.05, sigma: 0.5, noisyHours: 0.05, pods: 2, memoryBytes: 200e6, memoryRequestBytes: 256e6 })
const specs = [svc('a', 10), svc('b', 20), svc('missing', 5), svc('c', 4)]
const opts = { ...DEFAULT_CALIBRATE, days: 1, deploys: 9 }

/** an in-memory source that counts the histories handed out and not yet calibrated */
class CountingSource implements HistorySource {
  out = 0
  maxOut = 0
  async services(): Promise<ServiceRef[]> {
    return specs.map((s) => ({ namespace: s.namespace, name: s.name }))
  }
  async history(s: ServiceRef, range: HistoryRange): Promise<HistoryOutcome> {
    await new Promise((r) => setTimeout(r, 1))
    if (s.name === 'missing') return { kind: 'empty', service: s, reason: 'no request history in the range' }
    const k = specs.findIndex((x) => x.name === s.name)
    this.out += 1
    this.maxOut = Math.max(this.maxOut, this.out)
    return { kind: 'ok', history: history(specs[k] as SynthService, range.startMs, range.endMs, range.stepMs, k + 1) }
  }
}

describe('calibrateFleet', () => {
  it('answers every service once, reports the unreadable one, holds at most read-ahead + 1 histories, and matches calibrateService', async () => {
    const src = new CountingSource()
    const range = { startMs: START, endMs: START + DAY, stepMs: 60_000 }
    const items: FleetItem[] = []
    const lines: string[] = []
    const st = await calibrateFleet({
      source: src,
      services: await src.services(),
      range,
      cfg: bc,
      calibrate: opts,
      workers: 0,
      readAhead: 1,
      progressEveryMs: 0,
      onLine: (l) => lines.push(l),
      onResult: (it) => {
        items.push(it)
        if (it.kind === 'calibrated') src.out -= 1
      },
    })
    expect(items.map((i) => i.index).sort()).toEqual([0, 1, 2, 3])
    expect(st).toMatchObject({ services: 4, calibrated: 3, unread: 1, workers: 0 })
    const unread = items.find((i) => i.kind === 'unread')
    expect(unread?.service.name).toBe('missing')
    expect(src.maxOut).toBeLessThanOrEqual(2)
    expect(lines.at(-1)).toMatch(/^4\/4 services, .*\/min, .* elapsed, ETA .*, RSS \d+ MiB$/)
    const b = items.find((i) => i.kind === 'calibrated' && i.service.name === 'b')
    if (b?.kind !== 'calibrated') throw new Error('b not calibrated')
    const alone = calibrateService(history(specs[1] as SynthService, range.startMs, range.endMs, range.stepMs, 2), bc, opts)
    if (alone.kind === 'too-little-data' || b.result.kind === 'too-little-data') throw new Error('too little data')
    expect(b.result.override).toEqual(alone.override)
    expect(b.result.current).toEqual(alone.current)
  }, 60_000)

  it('stops reading when aborted', async () => {
    const src = new CountingSource()
    const ac = new AbortController()
    ac.abort()
    const items: FleetItem[] = []
    const st = await calibrateFleet({ source: src, services: await src.services(), range: { startMs: START, endMs: START + DAY, stepMs: 60_000 }, cfg: bc, calibrate: opts, workers: 0, signal: ac.signal, onResult: (it) => items.push(it) })
    expect(items).toEqual([])
    expect(st.calibrated).toBe(0)
  })
})

describe('firstAfter', () => {
  it('finds the first time after t', () => {
    const ts = Float64Array.from([10, 20, 20, 30])
    expect([0, 10, 15, 20, 29, 30, 31].map((t) => firstAfter(ts, t))).toEqual([0, 1, 1, 3, 3, 4, 4])
    expect(firstAfter(new Float64Array(0), 5)).toBe(0)
  })
})

describe('simHistory (held-out bench)', () => {
  it("holds the sim service's traffic: request rate, bucket counts summing to the count, errors near the baseline ratio", () => {
    const sc = SCENARIOS.find((s) => s.name === 'benign-deploy')
    if (sc === undefined) throw new Error('benign-deploy missing from the library')
    const spec = sc.build(1)
    const s = spec.services.find((x) => x.name === sc.service)
    if (s === undefined) throw new Error('no service')
    const h = simHistory(s, { ...spec.traffic, spikes: [] }, START, START + DAY, 60_000, 3, { noisyHours: 0, spikesPerDay: 0 })
    const r = h.requests
    const w = BOUNDS_S.length + 1
    let total = 0
    let errors = 0
    for (let i = 0; i < r.counts.length; i++) {
      let sum = 0
      for (let j = 0; j < w; j++) sum += r.latency[i * w + j] as number
      expect(sum).toBe(r.counts[i])
      total += r.counts[i] as number
      errors += r.errors[i] as number
    }
    expect(total / (r.counts.length * 60)).toBeGreaterThan(s.rps * 0.9)
    expect(total / (r.counts.length * 60)).toBeLessThan(s.rps * 1.1)
    expect(errors / total).toBeGreaterThan(s.errorRate * 0.7)
    expect(errors / total).toBeLessThan(s.errorRate * 1.3)
    const part = sliceHistory(h, START + DAY / 2, START + DAY)
    expect(part.firstDataMs).toBe(START + DAY / 2)
    expect(part.requests.counts.length).toBe(721)
    expect(part.resources[0]?.timesMs[0]).toBe(START + DAY / 2)
  })
})
