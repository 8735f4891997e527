/** Threshold contracts: defaults, per-service deep-partial overrides, cross-field rules with paths, the shipped YAML. */
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/config/load.js'
import { contractFor, defaultEngineConfig } from '../../src/engine/config.js'

describe('engine config', () => {
  it('has the documented defaults', () => {
    const c = defaultEngineConfig().defaults
    expect(c).toMatchObject({ window: 15_000, slices: 3, minSamples: 50, minSignals: 2, baselineWindow: 300_000, watch: 600_000, verificationWindow: 90_000 })
    expect(c.signals.latency).toMatchObject({ quantile: 0.99, multiplier: 1.5, minIncreaseMs: 20, critical: 3, mode: 'enforce' })
    expect(c.signals.errorRate.critical).toBe(0.3)
    expect(c.signals.probe.startupGrace).toBe(60_000)
  })

  it('config/pullback.yaml is exactly the defaults', () => {
    const file = fileURLToPath(new URL('../../config/pullback.yaml', import.meta.url))
    expect(loadConfig(file).engine).toEqual(parseConfig({}).engine)
  })

  it('a service override is a deep partial over the (user) defaults', () => {
    const cfg = parseConfig({
      engine: {
        defaults: { minSamples: 80, signals: { latency: { quantile: 0.95 } } },
        services: { 'shop/cart': { window: '1m', signals: { latency: { multiplier: 2 }, probe: { mode: 'observe' } } } },
      },
      // a 1 min window (+ lateness) needs the store's fine buckets to reach that far (src/config/cross-checks.ts)
      signals: { fineRetention: '90s' },
    }).engine
    const c = contractFor(cfg, 'shop/cart')
    expect(c.window).toBe(60_000)
    expect(c.minSamples).toBe(80)
    expect(c.signals.latency).toMatchObject({ multiplier: 2, quantile: 0.95, minIncreaseMs: 20 })
    expect(c.signals.probe).toMatchObject({ mode: 'observe', startupGrace: 60_000 })
    expect(contractFor(cfg, 'shop/other').window).toBe(15_000)
  })

  it.each([
    [{ defaults: { minSignals: 5 } }, /engine\.defaults\.minSignals/],
    [{ defaults: { window: 'soon' } }, /engine\.defaults\.window: invalid duration/],
    [{ defaults: { window: '31s', slices: 3 } }, /engine\.defaults\.slices: window 31000 ms is not divisible/],
    [{ defaults: { signals: { latency: { multiplyer: 2 } } } }, /engine\.defaults\.signals\.latency\.multiplyer: unknown key/],
    [{ services: { 'shop/cart': { signals: { latency: { multiplyer: 2 } } } } }, /engine\.services\["shop\/cart"\]\.signals\.latency\.multiplyer: unknown key/],
    [{ services: { 'shop/cart': { minSignals: 0 } } }, /engine\.services\["shop\/cart"\]\.minSignals/],
    [{ services: { 'shop/cart': { watch: '5s' } } }, /engine\.services\["shop\/cart"\]\.watch: must be at least the window/],
    [{ defaults: { signals: { errorRate: { mode: 'loud' } } } }, /engine\.defaults\.signals\.errorRate\.mode/],
  ])('rejects %j naming the path', (engine, re) => {
    expect(() => parseConfig({ engine })).toThrow(re)
  })
})
