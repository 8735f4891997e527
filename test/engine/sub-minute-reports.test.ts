/**
 * Metric series that report every 20-45 s: their span reaches past the store's 60 s fine ring, so
 * their window starts lie on coarse minutes (cadence.ts granularity), but a deployment is judged as
 * each report completes its data, on the 5 s grid (cadence.ts endGranularity). Before, such a series
 * was judged minute by minute like a 60 s one, and a report that arrived at :20 waited for :00.
 */
import { describe, expect, it } from 'vitest'
import { confirmationSpan, endGranularity, granularity } from '../../src/engine/cadence.js'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { SignalStore } from '../../src/signals/store.js'
import type { RequestObservation } from '../../src/normalize/observations.js'
import type { SeriesCoverage } from '../../src/signals/view.js'
import { benignDeployment, paramsOf } from '../../bench/false-rollbacks.js'

const S = 1000
const K = { namespace: 'ns', service: 'svc', version: 'v2' }
const T0 = 1_700_000_040_000 // a minute edge

function cov(intervalMs: number): SeriesCoverage {
  return { newestMs: T0, reportIntervalMs: intervalMs, completeUntilMs: T0 }
}

describe('the grid a series is judged on', () => {
  it('the store says where a series\' fine buckets begin: 60 s before the bucket after its newest', () => {
    const s = new SignalStore({})
    const t = T0 + 90 * S + 2_500
    s.record({ kind: 'request', key: K, timeMs: t, startMs: t - 20 * S, count: 40, errors: 0, latenciesUs: [], latencyCounts: undefined })
    const c = s.coverage(K)
    expect(c?.fineFromMs).toBe(T0 + 90 * S - 55 * S)
    // a range from there is answered in 5 s buckets, one from 5 s before it from the coarse minute's end
    expect(s.window(K, c!.fineFromMs!, t).buckets[0]?.startMs).toBe(c!.fineFromMs)
  })

  const store = new SignalStore({})
  const c = defaultEngineConfig().defaults

  it('20, 30 and 45 s exporters: window starts on coarse minutes, ends on 5 s buckets; 10-15 s and spans fine throughout; 60 s minute by minute', () => {
    for (const i of [20, 30, 45]) {
      const g = granularity(c, store, cov(i * S))
      expect(g).toBe(60 * S)
      expect(endGranularity(store, cov(i * S), g)).toBe(5 * S)
    }
    for (const i of [0, 10, 15]) {
      const g = granularity(c, store, cov(i * S))
      expect(g).toBe(5 * S)
      expect(endGranularity(store, cov(i * S), g)).toBe(5 * S)
    }
    const g60 = granularity(c, store, cov(60 * S))
    expect(endGranularity(store, cov(60 * S), g60)).toBe(60 * S)
  })

  it('a span ending between minute edges starts on a minute edge and is answered whole (its first bucket starts where it does)', () => {
    // one pod every 30 s on phase 10 s, 300 requests a report, 10 % errors; the newest report ends
    // 25 s after the judged end, so the fine ring (60 s) no longer holds the span's first half minute
    const s = new SignalStore({})
    const end = T0 + 5 * 60 * S + 15 * S
    for (let t = T0 + 10 * S; t <= end + 25 * S; t += 30 * S) {
      const o: RequestObservation = { kind: 'request', key: K, timeMs: t, startMs: t - 30 * S, count: 300, errors: 30, latenciesUs: [], latencyCounts: undefined }
      s.record(o)
    }
    const span = confirmationSpan(c, s, K, end, T0, 60 * S, 30 * S)
    expect(span).toBeDefined()
    expect((span?.fromMs ?? NaN) % (60 * S)).toBe(0)
    expect(span?.fromMs).toBeLessThanOrEqual(end - 60 * S)
    expect(span?.win.buckets[0]?.startMs).toBe(span?.fromMs)
    // every request of the span is in it: 10 % of them failed
    expect(span?.win.errors).toBe(Math.round(span!.win.requests / 10))
  })
})

describe('a bad deploy on 20 s and 30 s metrics is judged as its reports arrive', () => {
  // drawn deployment #207 of `false-rollbacks.js --intervals 20,30,45` (26 req/s, 6 pods, three
  // routes), its new version 5 % more 5xx and 2x slower: judged minute by minute it was rolled back
  // 130 s (20 s metrics) and 125 s (30 s) after the deployment, and 89 s on 15 s metrics
  const sink = { out: () => undefined, err: () => undefined }
  for (const intervalS of [20, 30]) {
    it(`${intervalS} s: rolled back within 100 s of the deployment, judged between minute edges`, async () => {
      const p = { ...paramsOf(1, 207, [1, 500], [20, 30, 45]), intervalS, slower: 2, errors: 0.05 }
      const r = await replayLines(benignDeployment(p, 1), parseConfig({}), sink, { actuator: false, recordTimeline: true }, 'x')
      const deploy = r.report?.timelines.find((t) => t.kind === 'deploy')
      expect(deploy).toBeDefined()
      const rollback = r.verdicts.find((v) => v.kind === 'rollback')
      expect(rollback).toBeDefined()
      expect((rollback?.decidedAt ?? Infinity) - (deploy?.deployedAt ?? 0)).toBeLessThanOrEqual(100 * S)
      expect(deploy?.ticks.some((t) => t.t % (60 * S) !== 0)).toBe(true)
    }, 60_000)
  }

  it('20 s: the first spans lie on the 5 s grid while the store still holds them finely (deploySpan): drawn #20 (57 req/s) within 60 s of the deployment', async () => {
    // 76 s with every span on minute edges (the first one 60 s from the first minute edge after the deployment)
    const p = { ...paramsOf(1, 20, [1, 500], [20, 30, 45]), intervalS: 20, slower: 2, errors: 0.05 }
    const r = await replayLines(benignDeployment(p, 1), parseConfig({}), sink, { actuator: false }, 'x')
    const rollback = r.verdicts.find((v) => v.kind === 'rollback')
    expect(rollback).toBeDefined()
    expect((rollback?.decidedAt ?? Infinity) - (rollback?.deployedAt ?? 0)).toBeLessThanOrEqual(60 * S)
  }, 60_000)

  it('the same deployment unchanged (benign) on 30 s metrics: no verdict', async () => {
    const p = { ...paramsOf(1, 207, [1, 500], [20, 30, 45]), intervalS: 30 }
    const r = await replayLines(benignDeployment(p, 1), parseConfig({}), sink, { actuator: false }, 'x')
    expect(r.verdicts.filter((v) => v.kind === 'rollback' || v.kind === 'incident')).toEqual([])
  }, 60_000)
})

describe('one signal alone on 20-45 s metrics is held for three reports, not for a 60 s exporter\'s three minutes', () => {
  // drawn #207 (26 req/s), its new version failing 20 % more of its requests and no slower: the
  // error rate decides alone once critical in every report of the shortest span and one more
  // report. With the hold on the minute grid (two minutes plus one, as a 60 s exporter's) it was
  // rolled back 130 / 125 / 210 s after the deployment on 20 / 30 / 45 s metrics
  const sink = { out: () => undefined, err: () => undefined }
  const within: Record<number, number> = { 20: 100, 30: 110, 45: 180 }
  for (const intervalS of [20, 30, 45]) {
    it(`${intervalS} s: 20 % fast 5xx rolled back within ${within[intervalS]} s of the deployment`, async () => {
      const p = { ...paramsOf(1, 207, [1, 500], [20, 30, 45]), intervalS, errors: 0.2 }
      const r = await replayLines(benignDeployment(p, 1), parseConfig({}), sink, { actuator: false }, 'x')
      const rollback = r.verdicts.find((v) => v.kind === 'rollback')
      expect(rollback).toBeDefined()
      expect((rollback?.decidedAt ?? Infinity) - (rollback?.deployedAt ?? 0)).toBeLessThanOrEqual((within[intervalS] as number) * S)
    }, 60_000)
  }
})
