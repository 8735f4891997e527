/**
 * The assembled sidecar across a restart on the embedded bus: the SIGTERM drain writes the engine's
 * state before Kafka closes, and the next sidecar restores it before its first evaluation (same
 * deployment id). Asserts also that the drain steps are unchanged and clean.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { silentLogger } from '../../src/common/logger.js'
import { deploymentId } from '../../src/engine/ids.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { stateSchema } from '../../src/state/config.js'
import { StateStore } from '../../src/state/store.js'

function config(state: Record<string, unknown> = {}) {
  return parseConfig({
    receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
    runtime: { admin: { endpoint: '127.0.0.1:0' }, telemetry: { enabled: false }, tickInterval: '50ms', state: { scope: 'node-a', ...state } },
  })
}

const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey)

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('sidecar restart', () => {
  it('a watch survives a SIGTERM drain and comes back before the first tick of the next sidecar', async () => {
    const bus = new MemoryBus()
    const time = Date.now()
    const a = new Sidecar({ config: config(), transport: bus, logger: silentLogger, signer, headless: true })
    await a.start()
    a.pipeline.deployment({ namespace: 'shop', service: 'web', version: '2.0.0', previousVersion: '1.0.0', time, kind: 'deploy', source: 'argocd' })
    await until(() => a.pipeline.stats().watched === 1)
    const report = await a.drain()
    expect(report.result).toBe('clean')
    expect(report.steps.map((s) => s.name)).toEqual(['not-ready', 'receivers', 'final-tick', 'publisher', 'close'])
    expect(a.state?.stats()).toMatchObject({ queued: 0, abandonedAtShutdown: 0 })
    // what the drain wrote: the watch under its deployment id
    const reader = new StateStore({ transport: bus, config: stateSchema.parse({}), topic: 'pullback.engine.state', scope: 'node-a', groupPrefix: 'pullback', logger: silentLogger })
    await reader.start()
    const loaded = await reader.load()
    await reader.shutdown()
    expect(loaded.kind === 'loaded' ? loaded.records.map((r) => r.key) : loaded).toContain(deploymentId('shop', 'web', '2.0.0', time))

    const b = new Sidecar({ config: config(), transport: bus, logger: silentLogger, signer, headless: true })
    let watchedAtFirstTick: number | undefined
    // the sidecar's ticks are passes of bounded turns (runtime.evaluation): the first begins here
    const begin = b.pipeline.beginPass.bind(b.pipeline)
    b.pipeline.beginPass = (now, wm) => {
      watchedAtFirstTick ??= b.pipeline.stats().watched
      return begin(now, wm)
    }
    await b.start()
    await until(() => watchedAtFirstTick !== undefined)
    expect(watchedAtFirstTick).toBe(1)
    await b.drain()
  })

  it('with runtime.state.enabled false nothing is restored (the old behaviour)', async () => {
    const bus = new MemoryBus()
    const a = new Sidecar({ config: config({ enabled: false }), transport: bus, logger: silentLogger, signer, headless: true })
    await a.start()
    a.pipeline.deployment({ namespace: 'shop', service: 'web', version: '2.0.0', previousVersion: '1.0.0', time: Date.now(), kind: 'deploy', source: 'argocd' })
    await until(() => a.pipeline.stats().watched === 1)
    await a.drain()
    const b = new Sidecar({ config: config({ enabled: false }), transport: bus, logger: silentLogger, signer, headless: true })
    await b.start()
    await b.drain()
    expect(b.pipeline.stats().watched).toBe(0)
  })
})
