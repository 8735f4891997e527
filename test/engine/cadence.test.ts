/**
 * The engine at the cadence people really export (60 s and 15 s metrics), single-cause faults and
 * pre-existing breaches of any shape: on the fake view, with data revealed report by report.
 */
import { describe, expect, it } from 'vitest'
import { engineSchema } from '../../src/engine/config.js'
import { earlyEnd } from '../../src/engine/cadence.js'
import { evaluate, initialState, type EngineOutput } from '../../src/engine/evaluate.js'
import type { Verdict } from '../../src/engine/verdict.js'
import type { SeriesKey } from '../../src/normalize/observations.js'
import type { SeriesCoverage, SignalView, VersionInfo, WindowStats } from '../../src/signals/view.js'
import { FakeView } from './fake-view.js'

const V1 = { namespace: 'ns', service: 'svc', version: 'v1' }
const V2 = { namespace: 'ns', service: 'svc', version: 'v2' }
const D = 1_000_000_000_000
const S = 1000

/**
 * The fake view as an exporter with interval `every` shows it: a report at t covers (t - every, t];
 * at telemetry time `now` only reports up to now are visible, so the series' data is complete up to
 * its newest report minus one interval (other pods may report later for that interval).
 */
class Reporting implements SignalView {
  now = 0
  constructor(
    private readonly inner: FakeView,
    private readonly every: number,
    private readonly phase = 0,
  ) {}
  get bucketMs(): number {
    return this.inner.bucketMs
  }
  get coarseBucketMs(): number {
    return this.inner.coarseBucketMs
  }
  get fineRetentionMs(): number {
    return this.inner.fineRetentionMs
  }
  private visible(): number {
    return Math.floor((this.now - this.phase) / this.every) * this.every + this.phase
  }
  versions(ns: string, svc: string): VersionInfo[] {
    return this.inner.versions(ns, svc).filter((v) => v.firstSeenMs < this.visible())
  }
  retainedFromMs(key: SeriesKey): number | undefined {
    return this.inner.retainedFromMs(key)
  }
  coverage(key: SeriesKey): SeriesCoverage | undefined {
    this.inner.visibleUntil = this.visible()
    const c = this.inner.coverage(key)
    if (c === undefined) return undefined
    const newest = Math.min(c.newestMs, this.visible())
    return { newestMs: newest, reportIntervalMs: this.every, completeUntilMs: newest - this.every }
  }
  window(key: SeriesKey, from: number, to: number): WindowStats {
    // like the real store: the range is answered whole, buckets not reported yet are empty
    this.inner.visibleUntil = this.visible()
    return this.inner.window(key, from, to)
  }
}

function drive(view: Reporting, until = D + 600 * S, first = D): { verdicts: Verdict[]; outs: EngineOutput[] } {
  const cfg = engineSchema.parse({})
  let state = initialState()
  const verdicts: Verdict[] = []
  const outs: EngineOutput[] = []
  let announced = false
  for (let t = D - 60 * S; t <= until; t += 5 * S) {
    view.now = t
    const seen = !announced && view.versions('ns', 'svc').some((v) => v.version === 'v2')
    if (seen) announced = true
    const out = evaluate(cfg, state, { now: t, watermark: t - cfg.lateness, view, newVersions: seen ? [{ ...V2, firstSeenMs: first }] : [] })
    state = out.state
    outs.push(out)
    verdicts.push(...out.verdicts)
  }
  return { verdicts, outs }
}

function metricsWorld(every: number, v2: { rps?: number; errorRate?: number; latencyMs?: number }, base = { rps: 20, errorRate: 0.005, latencyMs: 100 }): Reporting {
  const v = new FakeView()
  v.traffic(V1, D - 600 * S, D, base)
  v.traffic(V2, D, D + 900 * S, { ...base, ...v2 })
  v.reportEvery(V1, every).reportEvery(V2, every)
  return new Reporting(v, every)
}

describe('metrics at the SDK default 60 s and at 15 s', () => {
  it('60 s: a plain bad deploy (5 % errors, 2x latency) is rolled back within 3 export intervals + lateness of the first export', () => {
    const r = drive(metricsWorld(60 * S, { errorRate: 0.05, latencyMs: 200 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    // first export of the new version at D + 60 s
    expect(r.verdicts[0]?.decidedAt).toBeLessThanOrEqual(D + 60 * S + 3 * 60 * S + 5 * S)
  })

  it('15 s: rolled back within 90 s', () => {
    const r = drive(metricsWorld(15 * S, { errorRate: 0.05, latencyMs: 200 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    expect((r.verdicts[0]?.decidedAt as number) - D).toBeLessThanOrEqual(90 * S)
  })

  it('60 s: a benign deploy is never rolled back and is judged healthy (not stuck insufficient)', () => {
    const r = drive(metricsWorld(60 * S, {}))
    expect(r.verdicts).toEqual([])
    const last = r.outs.flatMap((o) => o.statuses).at(-1)
    expect(last?.status).toBe('healthy')
  })

  it('60 s at low traffic (1 req/s): decided once enough requests arrived, the span grows to hold the floor', () => {
    const r = drive(metricsWorld(60 * S, { errorRate: 0.2, latencyMs: 300 }, { rps: 1, errorRate: 0.005, latencyMs: 100 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    expect((r.verdicts[0]?.decidedAt as number) - D).toBeLessThanOrEqual(300 * S)
  })
})

describe('a quiet service (fewer than minSamples requests in baselineWindow)', () => {
  /**
   * 0.1 req/s (30 requests per 5 min, under the floor of 50) for 10 min before the deployment, in
   * 60 s metric points: one request in every other 5 s bucket, as the store spreads a point's few
   * requests over its interval in whole numbers.
   */
  function quietWorld(v2LatencyMs: number): Reporting {
    const v = new FakeView()
    for (let t = D - 600 * S; t < D; t += 10 * S) v.traffic(V1, t, t + 5 * S, { rps: 0.2, latencyMs: 100 })
    for (let t = D; t < D + 900 * S; t += 10 * S) v.traffic(V2, t, t + 5 * S, { rps: 0.2, latencyMs: v2LatencyMs })
    v.reportEvery(V1, 60 * S).reportEvery(V2, 60 * S)
    return new Reporting(v, 60 * S)
  }

  it('its baseline reaches back past baselineWindow until it holds minSamples, and a 4x slower version is rolled back on latency alone (the few requests of a 60 s point leave 5 s buckets empty: not a gap)', () => {
    const r = drive(quietWorld(400), D + 1200 * S)
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    expect(r.verdicts[0]?.signals.find((s) => s.signal === 'latency')?.state).toBe('breach')
  })

  it('spans at 0.1 req/s: the confirmation span reaches back as far as the baseline did, so half the requests failing and 3x slower is rolled back', () => {
    const v = new FakeView()
    for (let t = D - 600 * S; t < D; t += 10 * S) v.traffic(V1, t, t + 5 * S, { rps: 0.2, latencyMs: 100 })
    for (let t = D, i = 0; t < D + 900 * S; t += 10 * S, i++) v.traffic(V2, t, t + 5 * S, { rps: 0.2, latencyMs: 300, errorRate: i % 2 })
    const r = drive(new Reporting(v, 5 * S), D + 1200 * S)
    expect(r.verdicts.map((x) => x.kind)).toEqual(['rollback'])
    // 50 requests need 500 s at this rate: beyond baselineWindow (300 s), within the baseline's reach
    expect((r.verdicts[0]?.decidedAt as number) - D).toBeGreaterThanOrEqual(500 * S)
  })

  it('spans at 0.1 req/s, 4x slower and no errors: a single signal held over the whole grown span (empty 5 s buckets are not gaps) rolls back alone', () => {
    const v = new FakeView()
    for (let t = D - 600 * S; t < D; t += 10 * S) v.traffic(V1, t, t + 5 * S, { rps: 0.2, latencyMs: 100 })
    for (let t = D; t < D + 900 * S; t += 10 * S) v.traffic(V2, t, t + 5 * S, { rps: 0.2, latencyMs: 400 })
    const r = drive(new Reporting(v, 5 * S), D + 1200 * S)
    expect(r.verdicts.map((x) => x.kind)).toEqual(['rollback'])
    expect(r.verdicts[0]?.signals.find((s) => s.signal === 'latency')).toMatchObject({ state: 'breach', critical: true })
    expect(r.verdicts[0]?.signals.find((s) => s.signal === 'error_rate')?.state).toBe('healthy')
  })

  it('the same version unchanged: judged healthy, not stuck without a baseline', () => {
    const r = drive(quietWorld(100), D + 1200 * S)
    expect(r.verdicts).toEqual([])
    expect(r.outs.flatMap((o) => o.statuses).at(-1)?.status).toBe('healthy')
  })
})

describe('single-cause faults', () => {
  it('60 s metrics, 20 % fast 5xx (no latency change): rolled back on the error rate alone', () => {
    const r = drive(metricsWorld(60 * S, { errorRate: 0.2 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    const er = r.verdicts[0]?.signals.find((s) => s.signal === 'error_rate')
    expect(er).toMatchObject({ state: 'breach', critical: true })
    expect(r.verdicts[0]?.signals.find((s) => s.signal === 'latency')?.state).toBe('healthy')
  })
})

describe('pre-existing breaches of any shape', () => {
  /** v1 healthy until `onset`, then `bad` until the deployment; v2 like `after`. */
  function preWorld(onsetBeforeDeploy: number, bad: { errorRate: number; latencyMs: number }, after: { errorRate: number; latencyMs: number }): Reporting {
    const v = new FakeView()
    v.traffic(V1, D - 600 * S, D - onsetBeforeDeploy, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    v.traffic(V1, D - onsetBeforeDeploy, D, { rps: 20, ...bad })
    v.traffic(V2, D, D + 900 * S, { rps: 20, ...after })
    return new Reporting(v, 5 * S)
  }

  it('mild and long (7 % errors, 1.8x latency for 5 min before and after): incident, saying the baseline was unhealthy', () => {
    const r = drive(preWorld(300 * S, { errorRate: 0.07, latencyMs: 180 }, { errorRate: 0.07, latencyMs: 180 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['incident'])
    const v = r.verdicts[0] as Verdict
    expect(v.baselineHealth).toBe('unhealthy')
    expect(v.signals.length).toBe(4)
    expect(v.reason).toMatch(/pre-existing/)
  })

  it('the deployment cured a pre-existing breach: no verdict, statuses say the baseline was unhealthy', () => {
    const r = drive(preWorld(300 * S, { errorRate: 0.07, latencyMs: 180 }, { errorRate: 0.005, latencyMs: 100 }))
    expect(r.verdicts).toEqual([])
    expect(r.outs.flatMap((o) => o.statuses).at(-1)?.baselineHealth).toBe('unhealthy')
  })

  it('a healthy history and baseline: baselineHealth healthy on the rollback', () => {
    const r = drive(preWorld(0, { errorRate: 0.005, latencyMs: 100 }, { errorRate: 0.1, latencyMs: 300 }))
    expect(r.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    expect(r.verdicts[0]?.baselineHealth).toBe('healthy')
  })
})

describe('early firing: the end a series may be judged up to before the watermark (earlyEnd)', () => {
  const spans = (newestMs: number): SeriesCoverage => ({ newestMs, reportIntervalMs: 0, completeUntilMs: newestMs })
  it('a span series: its newest data, aligned down, never past now and never before the watermark end', () => {
    expect(earlyEnd(spans(D + 14_999), D + 14_999, D + 5 * S, 5 * S, 5 * S)).toBe(D + 10 * S)
    expect(earlyEnd(spans(D + 15 * S), D + 19_999, D + 5 * S, 5 * S, 5 * S)).toBe(D + 15 * S)
    // the bucket holding the newest span, once the clock has passed its end: its rest is in flight
    expect(earlyEnd(spans(D + 14_999), D + 15 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 15 * S)
    expect(earlyEnd(spans(D + 14_999), D + 20 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 15 * S)
    expect(earlyEnd(spans(D + 15 * S), D + 20 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 20 * S)
    // a skewed clock's future spans: bounded by now
    expect(earlyEnd(spans(D + 3_600 * S), D + 20 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 20 * S)
    // older than the watermark (the version went quiet): the watermark's end
    expect(earlyEnd(spans(D), D + 20 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 5 * S)
  })
  it('metric series, coarse buckets and unknown series keep the watermark end', () => {
    expect(earlyEnd({ newestMs: D + 20 * S, reportIntervalMs: 15 * S, completeUntilMs: D + 5 * S }, D + 20 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 5 * S)
    expect(earlyEnd(spans(D + 120 * S), D + 120 * S, D, 60 * S, 5 * S)).toBe(D)
    expect(earlyEnd(undefined, D + 20 * S, D + 5 * S, 5 * S, 5 * S)).toBe(D + 5 * S)
  })
})
