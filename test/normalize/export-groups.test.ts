/** The sibling-export memory of cumulative streams (src/normalize/export-groups.ts): answers and bounds. */
import { describe, expect, it } from 'vitest'
import { ExportGroups } from '../../src/normalize/export-groups.js'

/** Each step: a point of `group` at `t`, and what `seen` must answer (undefined: nothing known before it). */
type Step = [group: string, t: number, want: number | undefined]

const answers = (g: ExportGroups, steps: readonly Step[]) => steps.map(([group, t]) => g.seen(group, t))
const wanted = (steps: readonly Step[]) => steps.map(([, , want]) => want)

describe('ExportGroups', () => {
  it('answers the latest export strictly before the given one, for every point of an export', () => {
    const steps: Step[] = [
      ['a', 1000, undefined],
      ['a', 1000, undefined], // a second point of the first export
      ['a', 61_000, 1000],
      ['a', 61_000, 1000],
      ['a', 121_000, 61_000],
      ['a', 30_000, undefined], // a late point of an older export: the caller falls back to its start-time rule
    ]
    expect(answers(new ExportGroups(10, 600_000), steps)).toEqual(wanted(steps))
  })

  it('holds at most `max` groups, dropping the least recently updated, counted', () => {
    const g = new ExportGroups(2, 600_000)
    const steps: Step[] = [
      ['a', 1000, undefined],
      ['b', 2000, undefined],
      ['a', 3000, 1000], // a is now the most recent
      ['c', 4000, undefined], // drops b
      ['b', 5000, undefined], // new again: drops a, now the least recently updated
      ['c', 6000, 4000],
      ['a', 7000, undefined],
    ]
    expect(answers(g, steps)).toEqual(wanted(steps))
    expect(g.size).toBe(2)
    expect(g.evicted).toBe(3)
  })

  it('forgets groups idle for longer than the idle TTL (telemetry time), not counted as evictions', () => {
    const g = new ExportGroups(10, 60_000)
    g.seen('a', 1000)
    g.seen('b', 200_000)
    expect(g.size).toBe(1)
    expect(g.evicted).toBe(0)
  })
})
