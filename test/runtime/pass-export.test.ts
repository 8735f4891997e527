/**
 * A pass's state export runs as bounded steps after its last engine call (Pipeline.stepPass,
 * EngineChangelog.exportStep): with many watches and a small bound it spans many steps, each
 * handing over a few records, and the records over the whole pass are exactly those of the one-call
 * export of Pipeline.tick() on the same data (deletions first). The pass is done, with the same
 * verdicts and statuses, only after the export's last step. tick(), finishOpenPass() and
 * persistNow() in the middle of an export hand over the rest in one call, with no record twice.
 */
import { describe, expect, it } from 'vitest'
import type { DeploymentEvent } from '../../src/engine/events.js'
import type { StateChanges } from '../../src/engine/persist.js'
import type { Pipeline, PassStep } from '../../src/runtime/pipeline.js'
import { statePipeline } from './state-pipeline.js'

const D = 1_767_225_600_000
const S = 1000
const WATCHES = 200

const pipeline = statePipeline

function announce(p: Pipeline, from: number, n: number, t: number): void {
  for (let i = from; i < from + n; i++) {
    const ev: DeploymentEvent = { namespace: 'ns', service: `svc-${i}`, version: `v${t}`, time: t, kind: 'deploy', source: 'test' }
    p.deployment(ev)
  }
}

/** every record handed over, in order, as comparable lines */
function records(writes: readonly StateChanges[]): { upserts: string[]; deletes: string[] } {
  const upserts: string[] = []
  const deletes: string[] = []
  for (const w of writes) {
    for (const d of w.deletes) deletes.push(`${d.key} ${d.service}`)
    for (const u of w.upserts) upserts.push(`${u.key} ${u.service} ${u.value}`)
  }
  return { upserts: upserts.sort(), deletes: deletes.sort() }
}

/** a pass in steps of `max` evaluations: the steps, and the writes made before its last step */
function stepped(p: Pipeline, writes: StateChanges[], now: number, max: number): { done: Extract<PassStep, { kind: 'done' }>; steps: number; writesBeforeDone: number } {
  expect(p.beginPass(now, now - 5 * S)).toBe('started')
  let steps = 0
  for (;;) {
    const before = writes.length
    const step = p.stepPass(max)
    steps += 1
    if (step.kind === 'done') return { done: step, steps, writesBeforeDone: before }
    if (steps > 100_000) throw new Error('the pass does not end')
  }
}

describe('a pass exports the state in bounded steps', () => {
  it('spans many steps with a small bound and hands over exactly the one-call export', () => {
    const one = pipeline()
    const steps = pipeline()
    const times = [D, D + 5 * S, D + 15 * S, D + 30 * S]
    for (const [k, t] of times.entries()) {
      // new watches each pass (urgent), and from the third pass the first ones due on the write interval
      announce(one.p, k * WATCHES, WATCHES, t)
      announce(steps.p, k * WATCHES, WATCHES, t)
      const w0 = one.writes.length
      const ref = one.p.tick(t, t - 5 * S)
      // tick(): one call hands over everything
      expect(one.writes.length - w0).toBeLessThanOrEqual(1)
      const s0 = steps.writes.length
      const r = stepped(steps.p, steps.writes, t, 8)
      expect(r.done.result).toEqual(ref)
      const mine = steps.writes.slice(s0)
      expect(records(mine)).toEqual(records(one.writes.slice(w0)))
      // 8 evaluations' worth per step: two watches encoded per step, many steps
      expect(mine.length).toBeGreaterThan(WATCHES / 8)
      for (const w of mine) expect(w.upserts.filter((u) => !u.key.startsWith('versions/')).length).toBeLessThanOrEqual(3)
      // deletions come first: only the first write of the pass carries any
      for (const w of mine.slice(1)) expect(w.deletes).toEqual([])
      // the export's steps came before the pass was done (the done step hands over the last chunk at most)
      expect(r.writesBeforeDone - s0).toBeGreaterThan(WATCHES / 8 - 1)
      expect(steps.writes.length - r.writesBeforeDone).toBeLessThanOrEqual(1)
    }
    expect(records(steps.writes)).toEqual(records(one.writes))
    expect(steps.p.stats().state?.upserts).toBe(one.p.stats().state?.upserts)
    expect(steps.p.stats().state?.unchanged).toBe(one.p.stats().state?.unchanged)
  })

  it('tick(), finishOpenPass() and persistNow() in the middle of an export hand the rest over in one call', () => {
    const one = pipeline()
    announce(one.p, 0, WATCHES, D)
    one.p.tick(D, D - 5 * S)
    const ref = records(one.writes)

    for (const finish of ['tick', 'finishOpenPass', 'persistNow'] as const) {
      const x = pipeline()
      announce(x.p, 0, WATCHES, D)
      expect(x.p.beginPass(D, D - 5 * S)).toBe('started')
      // into the export: a few steps that each wrote something
      let n = 0
      while (x.writes.length < 5) {
        expect(x.p.stepPass(16).kind).toBe('more')
        if (++n > 10_000) throw new Error('no export step')
      }
      const before = x.writes.length
      if (finish === 'tick') {
        x.p.tick(D, D - 5 * S)
        expect(x.p.passOpen).toBe(false)
      } else if (finish === 'finishOpenPass') {
        expect(x.p.finishOpenPass()?.statuses.length).toBeGreaterThan(0)
        expect(x.writes.length - before).toBe(1)
      } else {
        x.p.persistNow(D)
        expect(x.writes.length - before).toBe(1)
        // the pass goes on to its end and hands over nothing twice
        for (let i = 0; x.p.passOpen; i++) {
          x.p.stepPass(16)
          if (i > 100_000) throw new Error('the pass does not end')
        }
      }
      expect(records(x.writes)).toEqual(ref)
    }
  })
})
