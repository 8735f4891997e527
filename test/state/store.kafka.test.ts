/**
 * The state store on the real broker: a topic it creates itself (compacted), read to its end from a
 * fresh group, tombstones honoured, other scopes ignored, and a real engine state written by one
 * store restored by another exactly (the restart path of the sidecar).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { engineSchema } from '../../src/engine/config.js'
import { evaluate, initialState } from '../../src/engine/evaluate.js'
import { EngineChangelog } from '../../src/engine/persist.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { stateSchema } from '../../src/state/config.js'
import { StateStore } from '../../src/state/store.js'
import { FakeView } from '../engine/fake-view.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'

const S = 1000
const D = 1_000_000_000_000
const V1 = { namespace: 'ns', service: 'svc', version: 'v1' }
const V2 = { namespace: 'ns', service: 'svc', version: 'v2' }

describeKafka('engine state store (real broker)', () => {
  let transport: ConfluentTransport
  const topic = uniqueName('it-engine-state')
  const config = stateSchema.parse({ partitions: 2, flushTimeout: '20s', restoreTimeout: '90s' })
  const stores: StateStore[] = []
  const store = (scope: string) => {
    const s = new StateStore({ transport, config, topic, scope, groupPrefix: uniqueName('it-state'), logger: silentLogger, stallMs: 15_000 })
    stores.push(s)
    return s
  }

  beforeAll(() => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
  })

  afterAll(async () => {
    for (const s of stores) await s.shutdown()
    const admin = transport.admin()
    await admin.deleteTopics([topic]).catch(() => undefined)
    await admin.disconnect()
  })

  it('reads its own scope to the end: newest values, deletions applied, other scopes ignored', async () => {
    // the first load creates the topic (compacted) and reads it empty: the fresh-topic case
    const a = store('node-a')
    await a.start()
    const empty = await a.load()
    expect(empty).toMatchObject({ kind: 'loaded', records: [] })
    const b = store('node-b')
    await b.start()
    a.write({ upserts: [{ key: 'k1', service: 'ns/x', value: '1' }, { key: 'k2', service: 'ns/y', value: '2' }, { key: 'k3', service: 'ns/z', value: '3' }], deletes: [] })
    a.write({ upserts: [{ key: 'k1', service: 'ns/x', value: '1b' }], deletes: [{ key: 'k2', service: 'ns/y' }] })
    b.write({ upserts: [{ key: 'k1', service: 'ns/x', value: 'other node' }], deletes: [] })
    expect(await a.flush(20_000)).toMatchObject({ kind: 'flushed' })
    expect(await b.flush(20_000)).toMatchObject({ kind: 'flushed' })
    // 4 or 5 records: the second k1 replaces the first only if that one had not been sent yet
    expect(a.stats()).toMatchObject({ tombstones: 1, rejected: 0, refused: 0, queued: 0 })
    expect(a.stats().written).toBeGreaterThanOrEqual(4)

    const again = store('node-a')
    await again.start()
    const loaded = await again.load()
    expect(loaded.kind).toBe('loaded')
    if (loaded.kind !== 'loaded') return
    expect(new Map(loaded.records.map((r) => [r.key, r.value]))).toEqual(
      new Map([
        ['k1', '1b'],
        ['k3', '3'],
      ]),
    )
    expect(again.stats().foreign).toBeGreaterThanOrEqual(1)
  })

  it('a real engine state written by one store is restored exactly by the next', async () => {
    const cfg = engineSchema.parse({})
    const view = new FakeView()
    view.traffic(V1, D - 360 * S, D, { rps: 20, errorRate: 0.005, latencyMs: 100 })
    view.traffic(V2, D, D + 120 * S, { rps: 20, errorRate: 0.5, latencyMs: 300 })
    let state = initialState()
    for (let t = D; t <= D + 60 * S; t += 5 * S) state = evaluate(cfg, state, { now: t, watermark: t, view, newVersions: t === D ? [{ ...V2, firstSeenMs: D }] : [] }).state
    expect(state.pendingRecovery.size).toBe(1) // decided: the rollback awaits its cutover
    const opts = { engine: cfg, minWriteIntervalMs: 10_000, versions: { maxServices: 10, maxPerService: 4, ttlMs: 600_000, refreshMs: 60_000 } }

    const writer = store('node-c')
    await writer.start()
    expect(writer.write(new EngineChangelog(opts).exportChanges(state, D + 60 * S))).toMatchObject({ refused: [] })
    expect(await writer.flush(20_000)).toMatchObject({ kind: 'flushed' })

    const reader = store('node-c')
    await reader.start()
    const loaded = await reader.load()
    if (loaded.kind !== 'loaded') throw new Error(loaded.reason)
    const restored = initialState()
    const report = new EngineChangelog(opts).restore(restored, loaded.records)
    expect(report).toMatchObject({ watches: 1, pending: 1, skipped: { corrupt: 0, olderSchema: 0, newerSchema: 0, conflict: 0, overflow: 0, expired: 0, shape: 0 } })
    expect(restored.watches).toStrictEqual(state.watches)
    expect(restored.pendingRecovery).toStrictEqual(state.pendingRecovery)
    expect(restored.byVersion).toStrictEqual(state.byVersion)
  })
})
