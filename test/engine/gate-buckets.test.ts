/**
 * The validation gate on a metric's buckets: a baseline is unhealthy on latency only when its p99 is
 * CERTAINLY beyond the reference's threshold (its bucket's lower bound), since the p99 is read
 * inside its bucket (src/normalize/buckets.ts interpolatedQuantileUs) and moves there with the
 * minute-to-minute shape of a wide bucket's tail. Found on the Nezha data (bench/datasets): a quiet
 * service whose six minutes before the deployment read 2.5 s against 1.0 s before them, both in the
 * SDK's (1, 2.5] s bucket, became an incident.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { judgeBaseline } from '../../src/engine/gate.js'
import type { LatencyBuckets, RequestObservation, SeriesKey } from '../../src/normalize/observations.js'
import { signalsSchema } from '../../src/signals/config.js'
import { SignalStore } from '../../src/signals/store.js'

const K: SeriesKey = { namespace: 'shop', service: 'gateway', version: 'v1' }
const M = 60_000
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % M)
/** the SDK's default bounds, microseconds */
const SDK: LatencyBuckets = { kind: 'explicit', boundsUs: [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10_000].map((x) => x * 1000) }
/** each bucket's representative, as the normalizer emits it (midpoints; the first half its bound) */
const REPS = [2.5, 7.5, 17.5, 37.5, 62.5, 87.5, 175, 375, 625, 875, 1750, 3750, 6250, 8750, 10_000].map((x) => x * 1000)

const stores: SignalStore[] = []
afterEach(() => {
  for (const s of stores.splice(0)) s.shutdown()
})

/** one 60 s delta point per minute: 600 requests, `inWide` of them in (1, 2.5] s, the rest in (250, 500] ms */
function minute(m: number, inWide: number): RequestObservation {
  const counts = REPS.map((_, i) => (i === 10 ? inWide : i === 7 ? 600 - inWide : 0))
  return { kind: 'request', key: K, timeMs: T0 + (m + 1) * M, startMs: T0 + m * M, count: 600, errors: 0, latenciesUs: REPS, latencyCounts: counts, latencyBuckets: SDK }
}

describe('validation gate on metric buckets', () => {
  const c = defaultEngineConfig().defaults
  const judge = (before: number, during: number) => {
    const s = new SignalStore(signalsSchema.parse({}))
    stores.push(s)
    // 4 min of reference, then the 5 min baseline window before a deployment at minute 9
    for (let m = 0; m < 9; m++) {
      s.record(minute(m, m < 4 ? before : during))
    }
    const to = T0 + 9 * M
    const bw = s.window(K, to - c.baselineWindow, to)
    return { health: judgeBaseline(c, s, K, bw, s.bucketMs), p99: bw.latency.valueAtQuantile(0.99), ref: s.window(K, T0, T0 + 4 * M).latency.valueAtQuantile(0.99) }
  }

  it('a p99 that moves inside the (1, 2.5] s bucket is not a pre-existing breach', () => {
    // 1.2 % of requests in (1, 2.5] s before, 4 % in the baseline window: read 1.2 s, then 2.1 s; the
    // count test alone (4 % vs 1.2 % in that bucket) is far beyond alpha
    const { health, p99, ref } = judge(7, 24)
    expect(ref / 1000).toBeLessThan(1300)
    expect(p99 / 1000).toBeGreaterThan(1.5 * (ref / 1000))
    expect(health.state).toBe('healthy')
  })

  it('a p99 whose bucket is certainly beyond the threshold still is', () => {
    // the same reference; the baseline window with 4 % of its requests in (2.5, 5] s instead
    const s = new SignalStore(signalsSchema.parse({}))
    stores.push(s)
    for (let m = 0; m < 9; m++) {
      const o = minute(m, 7)
      if (m >= 4) o.latencyCounts = REPS.map((_, i) => (i === 11 ? 24 : i === 7 ? 576 : 0))
      s.record(o)
    }
    const to = T0 + 9 * M
    const health = judgeBaseline(c, s, K, s.window(K, to - c.baselineWindow, to), s.bucketMs)
    expect(health.state).toBe('unhealthy')
    expect(health.onsets.latency).toBeDefined()
  })
})
