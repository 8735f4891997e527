/** Load as a confounder of latency (load.ts): the version's request rate against its snapshot's. */
import { describe, expect, it } from 'vitest'
import { defaultEngineConfig } from '../../src/engine/config.js'
import { loadConfounds, loadRatio } from '../../src/engine/load.js'
import { FakeView } from './fake-view.js'

const K = { namespace: 'ns', service: 'svc', version: 'v2' }
const D = 1_000_000_000_000
const S = 1000
const c = defaultEngineConfig().defaults

describe('load ratio', () => {
  const view = new FakeView().traffic(K, D, D + 300 * S, { rps: 40 })
  // the snapshot: 6,000 requests in 5 min = 20 req/s
  const snapshot = { requests: 6000, fromMs: D - 300 * S, toMs: D }

  it('is the version\'s rate over the hold against the snapshot\'s', () => {
    expect(loadRatio(view, K, snapshot, D, D + 300 * S)).toBeCloseTo(2, 9)
    expect(loadRatio(view, K, snapshot, D + 240 * S, D + 300 * S)).toBeCloseTo(2, 9)
    // half the hold without requests: half the rate
    expect(loadRatio(view, K, snapshot, D + 150 * S, D + 450 * S)).toBeCloseTo(1, 9)
  })

  it('is unknown (NaN, never a confounder) without a snapshot time, snapshot requests or a hold', () => {
    expect(loadRatio(view, K, { ...snapshot, fromMs: D }, D, D + 300 * S)).toBeNaN()
    expect(loadRatio(view, K, { ...snapshot, requests: 0 }, D, D + 300 * S)).toBeNaN()
    expect(loadRatio(view, K, snapshot, D, D)).toBeNaN()
    expect(loadConfounds(c, NaN)).toBe(false)
  })

  it('confounds beyond the contract\'s loadFactor (2x by default), not at it', () => {
    expect(c.signals.latency.loadFactor).toBe(2)
    expect(loadConfounds(c, 2)).toBe(false)
    expect(loadConfounds(c, 2.01)).toBe(true)
  })
})
