import { describe, expect, it } from 'vitest'
import { MAX_CHAINS, ReportChains } from '../../src/signals/report-chains.js'
import { SignalStore } from '../../src/signals/store.js'
import type { RequestObservation } from '../../src/normalize/observations.js'

const S = 1_000
const I = 60 * S
const T0 = 1_700_000_000_000

/** `pods` exporters every `every` ms on the given phases, from `from` to `to` (report times), in time order */
function reports(phases: readonly number[], every: number, from: number, to: number): { start: number; time: number }[] {
  const out: { start: number; time: number }[] = []
  for (const p of phases) for (let t = from + p; t <= to; t += every) out.push({ start: t - every, time: t })
  return out.sort((a, b) => a.time - b.time)
}

describe('ReportChains', () => {
  it('one exporter: complete up to its newest report; before chains it was one interval earlier', () => {
    const c = new ReportChains()
    for (const r of reports([0], I, T0 + I, T0 + 5 * I)) c.note(r.start, r.time, I)
    expect(c.size).toBe(1)
    expect(c.completeUntil(T0 + 5 * I, I)).toBe(T0 + 5 * I)
  })

  it('two exporters on phases 20 s apart: complete up to the one behind', () => {
    const c = new ReportChains()
    for (const r of reports([0, 20 * S], I, T0 + I, T0 + 5 * I + 20 * S)) c.note(r.start, r.time, I)
    expect(c.completeUntil(T0 + 5 * I + 20 * S, I)).toBe(T0 + 5 * I)
    // the first reports again: the second is now the one behind
    c.note(T0 + 5 * I, T0 + 6 * I, I)
    expect(c.completeUntil(T0 + 6 * I, I)).toBe(T0 + 5 * I + 20 * S)
  })

  it('one report with a point per attribute set, and replicas on the same phase, are one chain', () => {
    const c = new ReportChains()
    for (let k = 0; k < 5; k++) for (let a = 0; a < 4; a++) c.note(T0 + k * I, T0 + (k + 1) * I, I)
    expect(c.size).toBe(1)
    expect(c.completeUntil(T0 + 5 * I, I)).toBe(T0 + 5 * I)
  })

  it('an exporter that stops: once it is a whole interval behind it no longer holds the series back', () => {
    const c = new ReportChains()
    for (const r of reports([0, 30 * S], I, T0 + I, T0 + 3 * I)) c.note(r.start, r.time, I)
    // phase 30 s stopped after T0 + 2.5 I; phase 0 goes on
    for (const t of [T0 + 4 * I, T0 + 5 * I]) c.note(t - I, t, I)
    // newest T0 + 5 I, the stopped chain's head T0 + 2.5 I: more than one interval behind
    expect(c.completeUntil(T0 + 5 * I, I)).toBe(T0 + 5 * I)
    // at T0 + 3 I the stopped chain (head 2.5 I) was still due: it held the series back then
    const d = new ReportChains()
    for (const r of reports([0, 30 * S], I, T0 + I, T0 + 3 * I)) d.note(r.start, r.time, I)
    expect(d.completeUntil(T0 + 3 * I, I)).toBe(T0 + 2 * I + 30 * S)
  })

  it('never earlier than newest - interval (the rule before chains), never later than newest', () => {
    const c = new ReportChains()
    c.note(T0, T0 + I, I)
    c.note(T0 + 10 * S, T0 + I + 10 * S, I)
    expect(c.completeUntil(T0 + I + 10 * S, I)).toBe(T0 + I)
    expect(c.completeUntil(T0 + 3 * I, I)).toBe(T0 + 2 * I)
    expect(c.completeUntil(T0 + I - 5 * S, I)).toBe(T0 + I - 5 * S)
    // spans only (interval 0): the newest time
    expect(c.completeUntil(T0 + 3 * I, 0)).toBe(T0 + 3 * I)
  })

  it('a lost report starts a new chain; the old one, a whole interval behind, stops counting', () => {
    const c = new ReportChains()
    c.note(T0, T0 + I, I)
    // the report at T0 + 2 I was lost: the next delta starts there (delta temporality)
    c.note(T0 + 2 * I, T0 + 3 * I, I)
    expect(c.size).toBe(2)
    expect(c.completeUntil(T0 + 3 * I, I)).toBe(T0 + 3 * I)
  })

  it(`at ${MAX_CHAINS} chains still reporting the series falls back to newest - interval, and recovers once some stop`, () => {
    const c = new ReportChains()
    const step = I / (MAX_CHAINS + 1)
    for (let k = 0; k < MAX_CHAINS; k++) expect(c.note(T0 + k * step - I, T0 + k * step, I)).toBe(true)
    expect(c.note(T0 + MAX_CHAINS * step - I, T0 + MAX_CHAINS * step, I)).toBe(false)
    expect(c.full).toBe(true)
    expect(c.completeUntil(T0 + MAX_CHAINS * step, I)).toBe(T0 + MAX_CHAINS * step - I)
    // much later, one new chain: the old ones are a whole interval behind and make room
    expect(c.note(T0 + 5 * I, T0 + 6 * I, I)).toBe(true)
    expect(c.full).toBe(false)
    expect(c.size).toBe(1)
    expect(c.completeUntil(T0 + 6 * I, I)).toBe(T0 + 6 * I)
  })
})

describe('SignalStore coverage with report chains', () => {
  const K = { namespace: '', service: 'checkout', version: 'v2' }
  const point = (start: number, time: number): RequestObservation => ({ kind: 'request', key: K, timeMs: time, startMs: start, count: 10, errors: 0, latenciesUs: [], latencyCounts: undefined })

  it('the same horizon whatever order the reports arrive in within a bucket-ordered replay (a decider re-records partials)', () => {
    const rs = reports([0, 17 * S, 41 * S], I, T0 + I, T0 + 6 * I)
    const a = new SignalStore({ retention: '30m' })
    for (const r of rs) a.record(point(r.start, r.time))
    const b = new SignalStore({ retention: '30m' })
    // by exporter instead of by time: each chain in order, chains one after another
    for (const p of [41 * S, 0, 17 * S]) for (const r of rs.filter((x) => (x.time - T0) % I === p)) b.record(point(r.start, r.time))
    expect(b.coverage(K)?.completeUntilMs).toBe(a.coverage(K)?.completeUntilMs)
    expect(a.coverage(K)?.completeUntilMs).toBe(T0 + 5 * I + 17 * S)
  })

  it('a fresh process (its first point covers its age) starts a chain of its own', () => {
    const s = new SignalStore({ retention: '30m' })
    for (let t = T0 + I; t <= T0 + 4 * I; t += I) s.record(point(t - I, t))
    s.record({ ...point(T0 - 3_600 * S, T0 + 3 * I + 30 * S), streamStart: true })
    expect(s.coverage(K)?.completeUntilMs).toBe(T0 + 3 * I + 30 * S)
    expect(s.stats().reportChainsFull).toBe(0)
  })
})
