/** The sibling-export memory of cumulative streams (src/normalize/export-groups.ts): answers and bounds. */
import { describe, expect, it } from 'vitest'
import { ExportGroups } from '../../src/normalize/export-groups.js'

describe('ExportGroups', () => {
  it('answers the latest export strictly before the given one, for every point of an export', () => {
    const g = new ExportGroups(10, 600_000)
    expect(g.seen('a', 1000)).toBeUndefined()
    expect(g.seen('a', 1000)).toBeUndefined() // a second point of the first export
    expect(g.seen('a', 61_000)).toBe(1000)
    expect(g.seen('a', 61_000)).toBe(1000)
    expect(g.seen('a', 121_000)).toBe(61_000)
    // a late point of an older export: unknown, so the caller falls back to its start-time rule
    expect(g.seen('a', 30_000)).toBeUndefined()
  })

  it('holds at most `max` groups, dropping the least recently updated, counted', () => {
    const g = new ExportGroups(2, 600_000)
    g.seen('a', 1000)
    g.seen('b', 2000)
    g.seen('a', 3000) // a is now the most recent
    g.seen('c', 4000) // drops b
    expect(g.size).toBe(2)
    expect(g.evicted).toBe(1)
    expect(g.seen('b', 5000)).toBeUndefined() // new again: drops a, now the least recently updated
    expect(g.evicted).toBe(2)
    expect(g.seen('c', 6000)).toBe(4000)
    expect(g.seen('a', 7000)).toBeUndefined()
  })

  it('forgets groups idle for longer than the idle TTL (telemetry time), not counted as evictions', () => {
    const g = new ExportGroups(10, 60_000)
    g.seen('a', 1000)
    g.seen('b', 200_000)
    expect(g.size).toBe(1)
    expect(g.evicted).toBe(0)
  })
})
