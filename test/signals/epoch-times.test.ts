/**
 * Telemetry stamped near 1970 (a client with no clock, a zeroed field) must not throw out of the
 * store: recorded replays have no wall clock to reject it (live, `signals.maxClockSkew` does). Bucket
 * indices below the ring's size used to index the rings with a negative `%` and fail with a
 * TypeError that gRPC clients saw as INTERNAL.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { Pipeline } from '../../src/runtime/pipeline.js'

const span = (t: number) => ({ kind: 2, endTimeMs: t, durationUs: 5000, statusCode: 0, httpStatus: 200 })
const req = (t: number) => ({ resourceSpans: [{ resource: { 'service.name': 'a', 'service.version': 'v1' }, spans: [span(t)] }] })

describe('signal store: times near the epoch', () => {
  it('records spans ending at 1 ms, 5 s and 1000 s after 1970, then current ones, without throwing', () => {
    const cfg = parseConfig({})
    const p = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
    for (const t of [1, 5_000, 1_000_000, Date.UTC(2026, 11, 1)]) {
      expect(() => p.consumeTraces(req(t) as never), `span at ${t}`).not.toThrow()
    }
    expect(p.store.stats().series).toBe(1)
  })
})
