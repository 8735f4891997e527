import { afterEach, describe, expect, it, vi } from 'vitest'
import { AlignedTicker, delayToNextEdge, EDGE_SLACK_MS } from '../../src/common/ticker.js'
import { EvaluationScheduler } from '../../src/runtime/evaluation-scheduler.js'
import type { PassRunner } from '../../src/runtime/pipeline.js'

afterEach(() => {
  vi.useRealTimers()
})

describe('delayToNextEdge', () => {
  it('aims just past the next multiple of the interval, never at the one just passed', () => {
    expect(delayToNextEdge(5_000, 1_000)).toBe(1_000 + EDGE_SLACK_MS)
    expect(delayToNextEdge(5_001, 1_000)).toBe(999 + EDGE_SLACK_MS)
    expect(delayToNextEdge(5_999, 1_000)).toBe(1 + EDGE_SLACK_MS)
    // a fire a little early (after its edge, before edge + slack): the next edge, not a second fire now
    expect(delayToNextEdge(6_001, 1_000)).toBe(999 + EDGE_SLACK_MS)
    expect(delayToNextEdge(-250, 1_000)).toBe(250 + EDGE_SLACK_MS)
  })
})

describe('AlignedTicker', () => {
  it('fires on the edges of the clock, whatever phase it started at, and stops for good', () => {
    vi.useFakeTimers()
    vi.setSystemTime(1_700_000_000_437)
    const fired: number[] = []
    const t = new AlignedTicker(() => fired.push(Date.now()), 1_000, { now: () => Date.now() })
    t.start()
    t.start() // idempotent
    vi.advanceTimersByTime(3_100)
    expect(fired).toEqual([1_700_000_001_000, 1_700_000_002_000, 1_700_000_003_000].map((e) => e + EDGE_SLACK_MS))
    t.stop()
    t.stop()
    vi.advanceTimersByTime(5_000)
    expect(fired).toHaveLength(3)
  })

  it('a throwing callback does not end the ticker', () => {
    vi.useFakeTimers()
    vi.setSystemTime(0)
    let calls = 0
    const t = new AlignedTicker(
      () => {
        calls += 1
        throw new Error('boom')
      },
      100,
      { now: () => Date.now() },
    )
    t.start()
    for (let i = 0; i < 3; i++) {
      try {
        vi.advanceTimersByTime(105)
      } catch {
        // the fake timers may hand the callback's throw to the caller; a real timer would make it an uncaught exception (the caller's to catch)
      }
    }
    expect(calls).toBe(3)
    t.stop()
  })

  it('refuses an interval that is not positive', () => {
    expect(() => new AlignedTicker(() => undefined, 0, { now: () => 0 })).toThrow(RangeError)
  })
})

describe('EvaluationScheduler timer', () => {
  it('begins its passes on the edges of its clock', async () => {
    vi.useFakeTimers()
    vi.setSystemTime(50_777)
    const begun: number[] = []
    let open = false
    const runner: PassRunner = {
      beginPass: (now: number) => {
        begun.push(now)
        open = true
        return 'started'
      },
      stepPass: () => {
        open = false
        return { kind: 'done', result: { verdicts: [], statuses: [] }, now: 0, watermark: 0, calls: 1 }
      },
      get passOpen() {
        return open
      },
    }
    const s = new EvaluationScheduler({
      runner,
      clock: { now: () => Date.now() },
      intervalMs: 1_000,
      watermark: (n) => n - 5_000,
      turns: { maxWatchesPerTurn: 10, turnBudget: 1e9 },
      onPass: () => undefined,
    })
    await s.start()
    vi.advanceTimersByTime(2_500)
    expect(begun).toEqual([51_000, 52_000, 53_000].map((e) => e + EDGE_SLACK_MS))
    await s.shutdown()
  })
})
