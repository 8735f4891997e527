/**
 * src/engine/persist.ts: the generic codec, and a real EngineState (after real evaluate() runs with
 * deploy watches, frozen baselines, probe tracking, a decided rollback's pending recovery and a
 * recovery watch) through exportChanges -> restore, checked by continuing both states on the same
 * input: the restored one must give exactly the verdicts and statuses the original gives.
 */
import { describe, expect, it } from 'vitest'
import { engineSchema, type EngineConfig } from '../../src/engine/config.js'
import { evaluate, initialState, type EngineInput, type EngineState } from '../../src/engine/evaluate.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import { deploymentId, verdictId } from '../../src/engine/ids.js'
import { decodeValue, encodeValue, ENGINE_STATE_SCHEMA, EngineChangelog, UnserializableError, type StateChanges, type StoredRecord } from '../../src/engine/persist.js'
import type { Verdict } from '../../src/engine/verdict.js'
import type { ProbeObservation } from '../../src/normalize/observations.js'
import { FakeView } from '../engine/fake-view.js'

const S = 1000
const D = 1_000_000_000_000
const A1 = { namespace: 'ns', service: 'a', version: 'v1' }
const A2 = { namespace: 'ns', service: 'a', version: 'v2' }
const B1 = { namespace: 'ns', service: 'b', version: 'v1' }
const B2 = { namespace: 'ns', service: 'b', version: 'v2' }
const cfg: EngineConfig = engineSchema.parse({})

const changelog = (minWriteIntervalMs = 10_000) =>
  new EngineChangelog({ engine: cfg, minWriteIntervalMs, versions: { maxServices: 100, maxPerService: 4, ttlMs: 600_000, refreshMs: 60_000 } })

/** a: v2 bad from D (rollback), v1 restored from D+40s; b: v2 healthy from D, with probes. */
function world(): FakeView {
  const v = new FakeView()
  v.traffic(A1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  v.traffic(A2, D, D + 40 * S, { rps: 20, errorRate: 0.5, latencyMs: 300 })
  v.traffic(A1, D + 40 * S, D + 400 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  v.traffic(B1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  v.traffic(B2, D, D + 400 * S, { rps: 20, errorRate: 0.005, latencyMs: 100 })
  return v
}

const probes: ProbeObservation[] = [
  { kind: 'probe', key: B2, pod: 'b-2', container: 'app', timeMs: D + 2 * S, ready: false },
  { kind: 'probe', key: B2, pod: 'b-2', container: 'app', timeMs: D + 12 * S, ready: true },
]

interface Driver {
  state: EngineState
  verdicts: Verdict[]
  queued: DeploymentEvent[]
}

/** one tick at watermark t (5 s cadence), the actuator stand-in announcing the rollback of a rollback verdict */
function step(d: Driver, view: FakeView, t: number): ReturnType<typeof evaluate> {
  const input: EngineInput = {
    now: t + 5 * S,
    watermark: t,
    view,
    newVersions: t === D ? [{ ...A2, firstSeenMs: D }, { ...B2, firstSeenMs: D }] : [],
    deployments: d.queued,
    probes: probes.filter((p) => p.timeMs >= t - 5 * S && p.timeMs < t),
  }
  d.queued = []
  const out = evaluate(cfg, d.state, input)
  d.state = out.state
  for (const v of out.verdicts) {
    d.verdicts.push(v)
    if (v.kind === 'rollback' && !v.dryRun) d.queued.push({ namespace: v.namespace, service: v.service, version: v.baselineVersion, time: t, kind: 'rollback', source: 'test', decisionId: v.id })
  }
  return out
}

const asStored = (c: StateChanges): StoredRecord[] => c.upserts.map((u) => ({ key: u.key, value: u.value }))

describe('codec', () => {
  it('round-trips what JSON cannot hold', () => {
    const v = {
      m: new Map<unknown, unknown>([['k', { s: new Set(['x', 'y']) }], [3, [NaN, Infinity, -Infinity]]]),
      u: undefined,
      z: -0,
      arr: [1, undefined, null, 'two'],
      $m: 'a plain key that looks like a tag',
      $$x: { $u: 'nested look-alike' },
      nested: { onsets: { error_rate: undefined, latency: 5 } },
    }
    const back = decodeValue(JSON.parse(JSON.stringify(encodeValue(v)))) as typeof v
    expect(back).toStrictEqual(v)
    expect(Object.is(back.z, -0)).toBe(true)
    expect('u' in back).toBe(true)
    expect(Object.keys(back.nested.onsets)).toEqual(['error_rate', 'latency'])
  })

  it('refuses what it cannot carry', () => {
    class K {
      x = 1
    }
    const cyc: Record<string, unknown> = {}
    cyc.self = cyc
    for (const bad of [new K(), () => 1, 1n, Symbol('s'), cyc, new Date(0)]) expect(() => encodeValue({ bad })).toThrow(UnserializableError)
    expect(() => decodeValue({ $q: 1 })).toThrow(UnserializableError)
  })
})

describe('engine state round trip', () => {
  it('a restored state continues exactly as the original: same verdicts, same ids, same statuses', () => {
    const view = world()
    const live: Driver = { state: initialState(), verdicts: [], queued: [] }
    const log = changelog()
    let t = D
    // run until the rollback of a was announced and its recovery watch is half way through
    for (; t <= D + 90 * S; t += 5 * S) step(live, view, t)
    expect(live.verdicts.map((v) => v.kind)).toEqual(['rollback'])
    expect(live.state.pendingRecovery.size).toBe(0) // consumed by the rollback event: a recovery watch now
    const kinds = [...live.state.watches.values()].map((w) => w.kind).sort()
    expect(kinds).toEqual(['deploy', 'deploy', 'rollback'])
    const bWatch = live.state.watches.get(deploymentId('ns', 'b', 'v2', D))
    expect(bWatch?.baseline?.numbers.requests).toBeGreaterThan(0)
    expect(bWatch?.containers.size).toBe(1)

    const changes = log.exportChanges(live.state, t)
    expect(changes.deletes).toEqual([])
    const restored = initialState()
    const report = changelog().restore(restored, asStored(changes))
    expect(report).toMatchObject({ watches: 3, pending: 0, services: 0, skipped: { corrupt: 0, olderSchema: 0, newerSchema: 0, conflict: 0, overflow: 0, expired: 0, shape: 0 } })
    expect(restored.watches).toStrictEqual(live.state.watches)
    expect(restored.byVersion).toStrictEqual(live.state.byVersion)
    expect(report.pins).toEqual(expect.arrayContaining([A2, A1, B2, B1]))

    const twin: Driver = { state: restored, verdicts: [...live.verdicts], queued: [] }
    for (; t <= D + 300 * S; t += 5 * S) {
      const a = step(live, view, t)
      const b = step(twin, view, t)
      expect(b.verdicts).toEqual(a.verdicts)
      expect(b.statuses).toEqual(a.statuses)
    }
    expect(twin.verdicts.map((v) => v.kind)).toEqual(['rollback', 'recovered'])
    const rb = twin.verdicts[0] as Verdict
    expect(twin.verdicts[1]).toMatchObject({ deploymentId: rb.deploymentId, id: verdictId(rb.deploymentId, 'recovered') })
  })

  it('a single signal\'s hold (singleSignalHold) survives a restart half way through it: the same decision at the same time', () => {
    // a: v2 with 4 % errors and nothing else, a breach below the critical level: only its 5 min hold decides
    const view = new FakeView()
    view.traffic(A1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    view.traffic(A2, D, D + 900 * S, { rps: 20, errorRate: 0.04, latencyMs: 100 })
    const live: Driver = { state: initialState(), verdicts: [], queued: [] }
    let t = D
    for (; t <= D + 250 * S; t += 5 * S) step(live, view, t)
    expect(live.verdicts).toEqual([])
    const w = live.state.watches.get(deploymentId('ns', 'a', 'v2', D))
    expect(w?.onsets.error_rate).toBeLessThan(D + 250 * S - 120 * S)
    const restored = initialState()
    changelog().restore(restored, asStored(changelog().exportChanges(live.state, t)))
    // the baseline's pooled history (the minute of v1 before its window, history-pool.ts) comes back with it
    expect(w?.baseline?.numbers.pooled?.errors).toBeDefined()
    expect(restored.watches.get(deploymentId('ns', 'a', 'v2', D))?.baseline).toStrictEqual(w?.baseline)
    const twin: Driver = { state: restored, verdicts: [], queued: [] }
    for (; t <= D + 600 * S; t += 5 * S) {
      step(live, view, t)
      step(twin, view, t)
    }
    // (the restored v1 serves nothing in this world: its verification ends not-recovered, in both)
    expect(live.verdicts.map((v) => v.kind)).toEqual(['rollback', 'not-recovered'])
    expect(twin.verdicts.map((v) => [v.kind, v.decidedAt, v.id])).toEqual(live.verdicts.map((v) => [v.kind, v.decidedAt, v.id]))
    expect(twin.verdicts[0]?.reason).toContain('held 300s beyond the threshold')
  })

  it('a quiet service survives a restart mid-watch: its reached-back baseline and grown span give the same decision at the same time', () => {
    // 0.1 req/s (one request every 10 s): fewer than minSamples in baselineWindow, so the baseline
    // reaches back (cadence.ts baselineSpan); v2 4x slower and nothing else, decided on latency alone
    const view = new FakeView()
    for (let x = D - 600 * S; x < D; x += 10 * S) view.traffic(A1, x, x + 5 * S, { rps: 0.2, latencyMs: 100 })
    for (let x = D; x < D + 900 * S; x += 10 * S) view.traffic(A2, x, x + 5 * S, { rps: 0.2, latencyMs: 400 })
    const live: Driver = { state: initialState(), verdicts: [], queued: [] }
    let t = D
    for (; t <= D + 200 * S; t += 5 * S) step(live, view, t)
    expect(live.verdicts).toEqual([])
    const w = live.state.watches.get(deploymentId('ns', 'a', 'v2', D))
    expect(w?.baseline?.numbers.requests).toBeGreaterThanOrEqual(cfg.defaults.minSamples)
    expect(w?.baseline?.fromMs).toBeLessThan(D - cfg.defaults.baselineWindow)
    const restored = initialState()
    changelog().restore(restored, asStored(changelog().exportChanges(live.state, t)))
    expect(restored.watches.get(deploymentId('ns', 'a', 'v2', D))?.baseline).toStrictEqual(w?.baseline)
    const twin: Driver = { state: restored, verdicts: [], queued: [] }
    for (; t <= D + 900 * S; t += 5 * S) {
      step(live, view, t)
      step(twin, view, t)
    }
    expect(live.verdicts[0]?.kind).toBe('rollback')
    expect(live.verdicts[0]?.signals.find((x) => x.signal === 'latency')?.state).toBe('breach')
    expect(twin.verdicts.map((v) => [v.kind, v.decidedAt, v.id])).toEqual(live.verdicts.map((v) => [v.kind, v.decidedAt, v.id]))
  })

  it('the error witness against the baseline counts (composite.ts) survives a restart mid-watch: the same decision at the same time', () => {
    // 1.2 req/s with 2 errors in the old version's 6 minutes; v2 at 5.6 % errors and 2.5x slower,
    // decided with the error rate corroborating on its evidence against the baseline's counts
    const view = new FakeView()
    view.traffic(A1, D - 360 * S, D, { rps: 1.2, latencyMs: 100 })
    for (const at of [300, 100]) view.traffic(A1, D - at * S, D - (at - 5) * S, { rps: 1.2, errorRate: 0.2, latencyMs: 100 })
    for (let b = 0; b < 180; b++) view.traffic(A2, D + b * 5 * S, D + (b + 1) * 5 * S, { rps: 1.2, errorRate: b % 3 === 0 ? 0.2 : 0, latencyMs: 250 })
    const live: Driver = { state: initialState(), verdicts: [], queued: [] }
    let t = D
    for (; t <= D + 90 * S; t += 5 * S) step(live, view, t)
    expect(live.verdicts).toEqual([])
    const w = live.state.watches.get(deploymentId('ns', 'a', 'v2', D))
    expect(w?.evidence.errorGrid.n).toBeGreaterThan(0)
    const restored = initialState()
    changelog().restore(restored, asStored(changelog().exportChanges(live.state, t)))
    expect(restored.watches.get(deploymentId('ns', 'a', 'v2', D))?.evidence.errorGrid).toStrictEqual(w?.evidence.errorGrid)
    const twin: Driver = { state: restored, verdicts: [], queued: [] }
    for (; t <= D + 600 * S && live.verdicts.length === 0; t += 5 * S) {
      step(live, view, t)
      step(twin, view, t)
    }
    expect(live.verdicts[0]?.kind).toBe('rollback')
    expect(live.verdicts[0]?.reason).toContain("corroborating: evidence against the baseline's counts")
    expect(twin.verdicts.map((v) => [v.kind, v.decidedAt, v.id, v.reason])).toEqual(live.verdicts.map((v) => [v.kind, v.decidedAt, v.id, v.reason]))
  })

  it('carries a pending recovery (decided, rollback not yet announced)', () => {
    const view = world()
    const live: Driver = { state: initialState(), verdicts: [], queued: [] }
    let t = D
    for (; live.verdicts.length === 0; t += 5 * S) step(live, view, t)
    live.queued = [] // the actuator has not cut over yet
    expect(live.state.pendingRecovery.size).toBe(1)
    const restored = initialState()
    const r = changelog().restore(restored, asStored(changelog().exportChanges(live.state, t)))
    expect(r.pending).toBe(1)
    expect(restored.pendingRecovery).toStrictEqual(live.state.pendingRecovery)
    // the rollback event arriving after the restart is matched to the restored decision
    const rb = live.verdicts[0] as Verdict
    const ev: DeploymentEvent = { namespace: 'ns', service: 'a', version: 'v1', time: t, kind: 'rollback', source: 'test', decisionId: rb.id }
    const out = evaluate(cfg, restored, { now: t, watermark: t, view, deployments: [ev] })
    expect(out.state.counters.rollbackEventsUnmatched).toBe(0)
    expect([...out.state.watches.values()].some((w) => w.kind === 'rollback' && w.version === 'v1')).toBe(true)
  })
})

describe('exportChanges', () => {
  it('hands out only what changed, a watch at most once per interval unless its status or decision changed, and deletes ended watches', () => {
    const view = world()
    const d: Driver = { state: initialState(), verdicts: [], queued: [] }
    const log = changelog(30_000)
    step(d, view, D)
    const first = log.exportChanges(d.state, D)
    expect(first.upserts.filter((u) => !u.key.startsWith('versions/')).map((u) => u.key).sort()).toEqual([deploymentId('ns', 'a', 'v2', D), deploymentId('ns', 'b', 'v2', D)].sort())
    expect(log.exportChanges(d.state, D + 1)).toEqual({ upserts: [], deletes: [] })
    // next tick: lastEvalEnd moves, status unchanged: within the interval nothing is written
    step(d, view, D + 5 * S)
    expect(log.exportChanges(d.state, D + 5 * S).upserts).toEqual([])
    // the rollback decision is written in the tick that made it, whatever the interval
    let t = D + 10 * S
    let decided: StateChanges | undefined
    for (; decided === undefined; t += 5 * S) {
      step(d, view, t)
      const c = log.exportChanges(d.state, t)
      if (d.verdicts.length > 0) decided = c
    }
    d.queued = []
    expect(decided.upserts.map((u) => u.key)).toEqual(expect.arrayContaining([deploymentId('ns', 'a', 'v2', D), 'pending/ns/a']))
    // past the interval, a changed watch is written again
    const quiet = log.exportChanges(d.state, t)
    expect(quiet.upserts).toEqual([])
    step(d, view, t)
    expect(log.exportChanges(d.state, t + 30 * S).upserts.map((u) => u.key)).toContain(deploymentId('ns', 'b', 'v2', D))
    // watches end after `watch` (10 min): deletions
    for (; t <= D + 700 * S; t += 5 * S) step(d, view, t)
    expect(d.state.watches.size).toBe(0)
    const ended = log.exportChanges(d.state, t)
    expect(ended.deletes.map((x) => x.key).sort()).toEqual([deploymentId('ns', 'a', 'v2', D), deploymentId('ns', 'b', 'v2', D)].sort())
    // the pending recovery lives on until its rollback event consumes it
    d.state.pendingRecovery.clear()
    expect(log.exportChanges(d.state, t).deletes).toEqual([{ key: 'pending/ns/a', service: 'ns/a' }])
  })

  it('re-exports records the store handed back', () => {
    const d: Driver = { state: initialState(), verdicts: [], queued: [] }
    const log = changelog()
    step(d, world(), D)
    const c = log.exportChanges(d.state, D)
    expect(log.exportChanges(d.state, D)).toEqual({ upserts: [], deletes: [] })
    log.forget(c.upserts.map((u) => ({ key: u.key, service: u.service })))
    expect(log.exportChanges(d.state, D).upserts.map((u) => u.key).sort()).toEqual(c.upserts.map((u) => u.key).sort())
  })
})

describe('versions known per service', () => {
  it('a re-seen version keeps its first-seen time, a long-known one is not a new deployment, an unknown one passes', () => {
    const before = changelog()
    const early = D - 3_600_000
    before.seenVersions([{ ...A1, firstSeenMs: early }], early, early)
    before.seenVersions([{ ...A2, firstSeenMs: D }], D, D)
    before.refreshVersions(world(), D + 60 * S)
    const records = asStored(before.exportChanges(initialState(), D + 60 * S))
    expect(records.map((r) => r.key)).toEqual(['versions/ns/a'])

    const after = changelog()
    expect(after.restore(initialState(), records).services).toBe(1)
    const now = D + 120 * S // restarted: the store sees both versions again, for the first time
    const out = after.seenVersions([{ ...A1, firstSeenMs: now }, { ...A2, firstSeenMs: now + 1 }, { ...B2, firstSeenMs: now }], now - 5 * S, now)
    expect(out).toEqual([{ ...A2, firstSeenMs: D }, { ...B2, firstSeenMs: now }])
    expect(after.stats()).toMatchObject({ versionsContinued: 1, versionsSettled: 1 })
  })

  it('a version idle past the ttl is new again when it returns, as without a restart', () => {
    const log = changelog()
    log.seenVersions([{ ...A1, firstSeenMs: D }], D, D)
    const later = D + 700_000
    expect(log.seenVersions([{ ...A1, firstSeenMs: later }], later, later)).toEqual([{ ...A1, firstSeenMs: later }])
  })

  it('a new version the store holds but no pass handed on yet is not taken for an old one when a late pass does', () => {
    const log = changelog()
    log.seenVersions([{ ...A1, firstSeenMs: D - 3_600_000 }], D - 60 * S, D - 60 * S)
    // the store already holds v2 (from D, still serving); the refresh runs before any pass drained it
    const view = new FakeView()
    view.traffic(A1, D - 360 * S, D, { rps: 20 })
    view.traffic(A2, D, D + 700 * S, { rps: 20 })
    log.refreshVersions(view, D + 700 * S)
    // the pass that drains it comes late (a burst of partials): v2's 10 min watch would already be over
    const late = D + 700 * S
    expect(log.seenVersions([{ ...A2, firstSeenMs: D }], late, late)).toEqual([{ ...A2, firstSeenMs: D }])
    expect(log.stats()).toMatchObject({ versionsContinued: 0, versionsSettled: 0 })
  })

  it('the overlay view answers with the first-seen times and live versions an earlier incarnation knew', () => {
    const log = changelog()
    log.seenVersions([{ ...A1, firstSeenMs: D - 100 * S }, { ...A2, firstSeenMs: D }], D, D)
    const fresh = new FakeView().traffic(A2, D + 60 * S, D + 70 * S, { rps: 1 })
    const v = log.view(fresh, () => D + 70 * S)
    expect(v.versions('ns', 'a').map((x) => [x.version, x.firstSeenMs])).toEqual([
      ['v1', D - 100 * S],
      ['v2', D],
    ])
    expect(v.bucketMs).toBe(fresh.bucketMs)
    expect(v.window(A2, D + 60 * S, D + 70 * S).requests).toBe(fresh.window(A2, D + 60 * S, D + 70 * S).requests)
  })
})

describe('restore refuses what it cannot trust', () => {
  it('deletes a watch that ended long before the restore instead of judging it', () => {
    const d: Driver = { state: initialState(), verdicts: [], queued: [] }
    step(d, world(), D)
    const records = asStored(changelog().exportChanges(d.state, D))
    const watches = records.filter((r) => !r.key.startsWith('versions/'))
    const endsAt = D + 600 * S
    const soon = changelog().restore(initialState(), watches, { now: endsAt + 60 * S })
    expect(soon).toMatchObject({ watches: 2, skipped: { expired: 0 } })
    const late = changelog().restore(initialState(), watches, { now: endsAt + 3_600 * S })
    expect(late).toMatchObject({ watches: 0, skipped: { expired: 2 } })
    expect(late.deletes.map((x) => x.key).sort()).toEqual(watches.map((r) => r.key).sort())
  })


  it('forgets, and deletes, a watch whose fields differ from what this release makes (schema not bumped)', () => {
    const d: Driver = { state: initialState(), verdicts: [], queued: [] }
    step(d, world(), D)
    const [rec] = asStored(changelog().exportChanges(d.state, D)).filter((r) => !r.key.startsWith('versions/'))
    const env = JSON.parse(rec!.value) as { data: Record<string, unknown> }
    delete env.data.lastEvalEnd // an older release without this field
    const r = changelog().restore(initialState(), [{ key: rec!.key, value: JSON.stringify(env) }])
    expect(r).toMatchObject({ watches: 0, skipped: { shape: 1 } })
    expect(r.deletes.map((x) => x.key)).toEqual([rec!.key])
  })

  it('counts corrupt, older and newer records; deletes the older', () => {
    const rec = (schema: number) => JSON.stringify({ schema, kind: 'pending', service: 'ns/a', data: {} })
    const r = changelog().restore(initialState(), [
      { key: 'x', value: '{not json' },
      { key: 'pending/ns/a', value: rec(ENGINE_STATE_SCHEMA - 1) },
      { key: 'pending/ns/b', value: rec(ENGINE_STATE_SCHEMA + 1) },
      { key: 'y', value: JSON.stringify({ schema: ENGINE_STATE_SCHEMA, kind: 'watch', service: 'ns/a', data: { id: 'other' } }) },
    ])
    expect(r.skipped).toMatchObject({ corrupt: 2, olderSchema: 1, newerSchema: 1 })
    expect(r.deletes).toEqual([{ key: 'pending/ns/a', service: 'ns/a' }])
  })
})

describe('record text', () => {
  it('is JSON.stringify of the envelope with encodeValue(watch), byte for byte, in every state a watch goes through', () => {
    const view = world()
    const live: Driver = { state: initialState(), verdicts: [], queued: [] }
    const log = changelog(0)
    let compared = 0
    for (let t = D; t <= D + 300 * S; t += 5 * S) {
      step(live, view, t)
      const index = new Map<string, string[]>()
      for (const [k, ids] of live.state.byVersion) for (const id of ids) index.set(id, [...(index.get(id) ?? []), k])
      for (const u of log.exportChanges(live.state, t).upserts) {
        const w = live.state.watches.get(u.key)
        if (w === undefined) continue
        const want = JSON.stringify({ schema: ENGINE_STATE_SCHEMA, kind: 'watch', service: `${w.namespace}/${w.service}`, index: index.get(w.id) ?? [], data: encodeValue(w) })
        expect(u.value).toBe(want)
        compared += 1
      }
    }
    expect(compared).toBeGreaterThan(50)
  })
})
