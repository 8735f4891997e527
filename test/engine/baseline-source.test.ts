/** Snapshot or live baseline while the old version serves beside the new one (baseline-source.ts). */
import { describe, expect, it } from 'vitest'
import { liveWorseThanSnapshot as worse, type LiveWindow } from '../../src/engine/baseline-source.js'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { errorLevel, latencyLevels, type BaselineNumbers } from '../../src/engine/rules.js'
import { binomialUpperTail } from '../../src/engine/stats.js'

const c = defaultEngineConfig().defaults
const nums = (o: Partial<BaselineNumbers> = {}): BaselineNumbers => ({ requests: 6000, errors: 18, latencyUs: 150_000, latencyCount: 6000, latencyAbove: 0, shift: [], resourceSlope: {}, ...o })
const snapshot = nums()

/** the snapshot's levels as the engine computes (and caches) them */
const levelsOf = (cc: typeof c, snap: BaselineNumbers) => {
  const latOk = snap.latencyCount >= cc.minSamples && Number.isFinite(snap.latencyUs)
  const lat = latOk ? latencyLevels(cc, snap) : undefined
  return { errorLevel: snap.requests >= cc.minSamples ? errorLevel(cc, snap) : NaN, latencyCutUs: lat?.cutUs ?? NaN, latencyLevel: lat?.level ?? NaN, shift: [], errorGrid: undefined }
}

/** an old version's live window: `slow` of its `latency` samples lie above any cut asked about */
const live = (requests: number, errors: number, latency = requests, slow = 0): LiveWindow => ({ requests, errors, latency: { count: latency, countAbove: () => slow } })
const liveWorseThanSnapshot = (cc: typeof c, w: LiveWindow, snap: BaselineNumbers): boolean => worse(cc, w, snap, levelsOf(cc, snap))

/** the smallest count of `n` whose upper tail at `level` is at most sqrt(alpha): the test's edge */
const edge = (n: number, level: number): number => {
  let k = Math.ceil(n * level)
  while (binomialUpperTail(k, n, level) > Math.sqrt(c.alpha)) k++
  return k
}

describe('live or snapshot baseline', () => {
  it('keeps the snapshot while the old version serves as it did before the deployment', () => {
    // 400 requests since the deployment at the same 0.3 %: its upper bound is far looser than the snapshot's
    expect(liveWorseThanSnapshot(c, live(400, 1, 400, 2), snapshot)).toBe(false)
    // better than before: the snapshot is the more lenient baseline, still kept
    expect(liveWorseThanSnapshot(c, live(400, 0, 400, 0), snapshot)).toBe(false)
  })

  it('takes the live numbers when the old version now errs improbably often at the level the new one is judged against', () => {
    const level = errorLevel(c, snapshot)
    const k = edge(400, level)
    expect(liveWorseThanSnapshot(c, live(400, k), snapshot)).toBe(true)
    expect(liveWorseThanSnapshot(c, live(400, k - 1), snapshot)).toBe(false)
    // beyond the level as a point estimate, yet as probable as not at it: no switch
    expect(k - 1).toBeGreaterThan(400 * level)
  })

  it('takes the live numbers when improbably many of the old version\'s requests are above the latency cut', () => {
    const { level } = latencyLevels(c, snapshot)
    const k = edge(400, level)
    expect(liveWorseThanSnapshot(c, live(400, 1, 400, k), snapshot)).toBe(true)
    expect(liveWorseThanSnapshot(c, live(400, 1, 400, k - 1), snapshot)).toBe(false)
  })

  it('a few hundred requests whose p99 sits in the long tail do not switch (the point estimate did: spans-and-metrics seed 13)', () => {
    // 1 % allowed above the cut; 6 of 300 (2 %) puts the live p99 above the cut, P(>= 6 | 1 %) ~ 8 %
    const { level } = latencyLevels(c, snapshot)
    expect(6 / 300).toBeGreaterThan(level)
    expect(liveWorseThanSnapshot(c, live(300, 1, 300, 6), snapshot)).toBe(false)
    // a shared cause that doubles the share above the cut over the same requests does
    expect(liveWorseThanSnapshot(c, live(300, 1, 300, 15), snapshot)).toBe(true)
  })

  it('takes the live numbers when the snapshot holds too few requests or no latency', () => {
    expect(liveWorseThanSnapshot(c, live(400, 0), nums({ requests: c.minSamples - 1 }))).toBe(true)
    expect(liveWorseThanSnapshot(c, live(400, 0, 400), nums({ latencyCount: 0, latencyUs: NaN }))).toBe(true)
  })

  it('a live old version with too few requests of its own says nothing against the snapshot', () => {
    expect(liveWorseThanSnapshot(c, live(20, 10, 20, 20), snapshot)).toBe(false)
  })
})
