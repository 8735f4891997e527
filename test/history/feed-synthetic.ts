/**
 * Feeds the calibration tests' synthetic services (test/calibrate/synthetic.ts) into a history feed
 * step by step, as the store sampler would: one request aggregate per step at the bucket bounds,
 * and each pod's memory reading with its request.
 */
import type { HistoryFeed } from '../../src/history/accumulator.js'
import { BOUNDS_S, memoryAt, rng, steps, type SynthService } from '../calibrate/synthetic.js'

export const REPS_US = [...BOUNDS_S.map((b) => Math.round(b * 1e6)), Math.round((BOUNDS_S[BOUNDS_S.length - 1] as number) * 1e6) + 1]

export function feedSynthetic(feed: HistoryFeed, s: SynthService, startMs: number, endMs: number, stepMs: number, seed: number): number {
  const key = { namespace: s.namespace, service: s.name, version: 'v1' }
  const r = rng(seed ^ 0x5eed)
  let n = 0
  for (const st of steps(s, startMs, endMs, stepMs, seed)) {
    // the generator's step at t covers (t - step, t]: recorded inside it
    feed.requests(key, st.timeMs - 1, st.count, st.errors, REPS_US, st.buckets)
    for (let p = 0; p < s.pods; p++) feed.resource(key, `${s.name}-${p}`, 'memory', st.timeMs - 1, memoryAt(s, p, st.timeMs, r), s.memoryRequestBytes)
    n++
  }
  return n
}
