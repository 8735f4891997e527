/** Snapshot or live baseline while the old version serves beside the new one (baseline-source.ts). */
import { describe, expect, it } from 'vitest'
import { liveWorseThanSnapshot as worse } from '../../src/engine/baseline-source.js'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { errorLevel, latencyCutUs, type BaselineNumbers } from '../../src/engine/rules.js'

const c = defaultEngineConfig().defaults
const nums = (o: Partial<BaselineNumbers> = {}): BaselineNumbers => ({ requests: 6000, errors: 18, latencyUs: 150_000, latencyCount: 6000, latencyAbove: 0, shift: [], resourceSlope: {}, ...o })
const snapshot = nums()

/** the snapshot's levels as the engine computes (and caches) them */
const liveWorseThanSnapshot = (cc: typeof c, live: BaselineNumbers, snap: BaselineNumbers): boolean => {
  const latOk = snap.latencyCount >= cc.minSamples && Number.isFinite(snap.latencyUs)
  return worse(cc, live, snap, { errorLevel: snap.requests >= cc.minSamples ? errorLevel(cc, snap) : NaN, latencyCutUs: latOk ? latencyCutUs(cc, snap.latencyUs) : NaN, latencyLevel: NaN, shift: [] })
}

describe('live or snapshot baseline', () => {
  it('keeps the snapshot while the old version serves as it did before the deployment', () => {
    // 400 requests since the deployment at the same 0.3 %: its upper bound is far looser than the snapshot's
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, errors: 1, latencyCount: 400, latencyUs: 160_000 }), snapshot)).toBe(false)
    // better than before: the snapshot is the more lenient baseline, still kept
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, errors: 0, latencyCount: 400, latencyUs: 90_000 }), snapshot)).toBe(false)
  })

  it('takes the live numbers when the old version now errs beyond the level the new one is judged against', () => {
    const level = errorLevel(c, snapshot)
    const errors = Math.ceil(400 * level) + 1
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, errors, latencyCount: 400 }), snapshot)).toBe(true)
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, errors: Math.floor(400 * level), latencyCount: 400 }), snapshot)).toBe(false)
  })

  it('takes the live numbers when the old version is now slower than the latency cut', () => {
    const cut = latencyCutUs(c, snapshot.latencyUs)
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, errors: 1, latencyCount: 400, latencyUs: cut + 1000 }), snapshot)).toBe(true)
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, errors: 1, latencyCount: 400, latencyUs: cut - 1000 }), snapshot)).toBe(false)
  })

  it('takes the live numbers when the snapshot holds too few requests or no latency', () => {
    expect(liveWorseThanSnapshot(c, nums({ requests: 400 }), nums({ requests: c.minSamples - 1 }))).toBe(true)
    expect(liveWorseThanSnapshot(c, nums({ requests: 400, latencyCount: 400 }), nums({ latencyCount: 0, latencyUs: NaN }))).toBe(true)
  })

  it('a live old version with too few requests of its own says nothing against the snapshot', () => {
    expect(liveWorseThanSnapshot(c, nums({ requests: 20, errors: 10, latencyCount: 20, latencyUs: 900_000 }), snapshot)).toBe(false)
  })
})
