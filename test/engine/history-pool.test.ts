/** The old version's longer history pooled with its baseline window (history-pool.ts, rules.ts narrowed). */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig } from '../../src/engine/config.js'
import type { BaselineHealth } from '../../src/engine/gate.js'
import { pooledHistory } from '../../src/engine/history-pool.js'
import { errorLevel, latencyCutUs, latencyLevels, shiftLevels, type BaselineNumbers, type PooledCounts } from '../../src/engine/rules.js'
import { rateUpperBound } from '../../src/engine/evidence.js'
import type { HistorySummary, SeriesHistory, SignalView, WindowStats } from '../../src/signals/view.js'

const c = defaultEngineConfig().defaults
const KEY = { namespace: 'shop', service: 'checkout', version: 'v1' }
const MIN = 60_000
const T = 100 * MIN

/** a 1.5 req/s service's 5-minute window: 450 requests, 2 errors, 2 samples above the latency cut */
const win = (o: Partial<BaselineNumbers> = {}): BaselineNumbers => ({
  requests: 450,
  errors: 2,
  latencyUs: 180_000,
  latencyCount: 450,
  latencyAbove: 2,
  shift: [{ us: 40_000, above: 100 }],
  resourceSlope: {},
  ...o,
})
const pooled = (errors: number, requests: number, o: Partial<PooledCounts> = {}): PooledCounts => ({ fromMs: 0, errors: { events: errors, samples: requests }, latency: undefined, shift: [], ...o })
const lift = (up: number) => up + (Math.max(up + c.signals.errorRate.minDelta, up * c.signals.errorRate.relativeFactor) - up) / 2

describe('narrowed levels', () => {
  it('an hour that agrees with the window bounds its rate far tighter than the window alone', () => {
    const own = errorLevel(c, win())
    const hour = errorLevel(c, win({ pooled: pooled(27, 5400) }))
    expect(own).toBeCloseTo(lift(rateUpperBound(2, 450, 0.01)), 10)
    expect(hour).toBeCloseTo(lift(rateUpperBound(27, 5400, 0.01)), 10)
    expect(hour).toBeLessThan(own - 0.01)
  })

  it('never above the window\'s own level: a worse history does not loosen it', () => {
    expect(errorLevel(c, win({ pooled: pooled(300, 5400) }))).toBe(errorLevel(c, win()))
  })

  it('never under the window\'s own rate lifted: a rate that crept up is judged from where it is now', () => {
    // 6 of 450 now (1.3 %), a clean hour before it: the pooled bound alone would sit under the window's point estimate
    const w = win({ errors: 6, pooled: pooled(6, 20_000) })
    expect(lift(rateUpperBound(6, 20_000, 0.01))).toBeLessThan(lift(6 / 450))
    expect(errorLevel(c, w)).toBeCloseTo(lift(6 / 450), 10)
  })

  it('narrows the latency and shift levels the same way, never under 1 - q', () => {
    const cut = latencyCutUs(c, 180_000)
    const shiftCut = latencyCutUs(c, 40_000)
    expect(cut).toBeGreaterThan(180_000)
    const base = win()
    const w = win({ pooled: pooled(27, 5400, { latency: { events: 20, samples: 5400 }, shift: [{ events: 1200, samples: 5400 }] }) })
    expect(latencyLevels(c, w).level).toBeLessThan(latencyLevels(c, base).level)
    expect(latencyLevels(c, w).level).toBeGreaterThanOrEqual(1 - c.signals.latency.quantile)
    const q = c.signals.latency.shiftQuantiles[0] as number
    const cfg = { ...c, signals: { ...c.signals, latency: { ...c.signals.latency, shiftQuantiles: [q] } } }
    expect(shiftLevels(cfg, w)[0]!.level).toBeLessThanOrEqual(shiftLevels(cfg, base)[0]!.level)
    expect(shiftLevels(cfg, w)[0]!.cutUs).toBe(shiftCut)
  })
})

/** A view holding a retained reference window and, optionally, long-history minutes before it. */
function viewOf(reference: { requests: number; errors: number; count: number; above: number }, long?: { minutes: number; requests: number; errors: number; above: number }): SignalView {
  const w = (o: typeof reference): WindowStats =>
    ({ requests: o.requests, errors: o.errors, latency: { count: o.count, valueAtQuantile: () => 180_000, countAbove: () => o.above } }) as unknown as WindowStats
  const history: SeriesHistory | undefined =
    long === undefined
      ? undefined
      : {
          widthMs: MIN,
          starts: Array.from({ length: long.minutes }, (_, i) => T - 10 * MIN - (i + 1) * MIN),
          summary: (fromMs: number, toMs: number): HistorySummary => ({
            fromMs,
            toMs,
            requests: long.requests,
            errors: long.errors,
            latencyCount: long.requests,
            valueAtQuantile: () => 180_000,
            countAbove: () => 0,
            countReaching: () => long.above,
          }),
        }
  return { window: () => w(reference), history: () => history } as unknown as SignalView
}

const health = (state: BaselineHealth['state']): BaselineHealth => ({
  state,
  reference: state === 'unknown' ? undefined : { ...win(), requests: 450, errors: 2 },
  referenceFromMs: T - 10 * MIN,
  referenceToMs: T - 5 * MIN,
  onsets: {},
  note: '',
})
const bw = { requests: 450, errors: 2 } as WindowStats

describe('pooledHistory', () => {
  const ref = { requests: 450, errors: 2, count: 450, above: 2 }
  const hour = { minutes: 60, requests: 5400, errors: 27, above: 25 }

  it('pools the retained reference and the long history with a healthy window', () => {
    const p = pooledHistory(c, viewOf(ref, hour), KEY, bw, win(), health('healthy'))
    expect(p?.errors).toEqual({ events: 2 + 2 + 27, samples: 450 + 450 + 5400 })
    expect(p?.latency).toEqual({ events: 2 + 2 + 25, samples: 450 + 450 + 5400 })
    expect(p?.fromMs).toBe(T - 70 * MIN)
  })

  it('never pools a window the gate found unhealthy or could not judge', () => {
    expect(pooledHistory(c, viewOf(ref, hour), KEY, bw, win(), health('unhealthy'))).toBeUndefined()
    expect(pooledHistory(c, viewOf(ref, hour), KEY, bw, win(), health('unknown'))).toBeUndefined()
  })

  it('pools a window whose share stands out too: its level stays at the window\'s own rate, lifted', () => {
    // 9 errors of 450 (2 %) against 29 of 5,850 (0.5 %): the pooled bound alone would sit under the window's rate
    const w = win({ errors: 9 })
    const p = pooledHistory(c, viewOf(ref, hour), KEY, { requests: 450, errors: 9 } as WindowStats, w, health('healthy'))
    expect(p?.errors).toEqual({ events: 38, samples: 6300 })
    expect(errorLevel(c, { ...w, pooled: p })).toBeCloseTo(lift(9 / 450), 10)
    expect(errorLevel(c, { ...w, pooled: p })).toBeLessThan(errorLevel(c, w))
  })

  it('with only the retained reference (no long history) pools that', () => {
    const p = pooledHistory(c, viewOf(ref), KEY, bw, win(), health('healthy'))
    expect(p?.errors).toEqual({ events: 4, samples: 900 })
    expect(p?.fromMs).toBe(T - 10 * MIN)
  })
})
