/**
 * Calibration on synthetic history, without Prometheus: the backtest runs the real pipeline, the
 * grid search loosens a flappy service's contract until its false rollbacks meet the target, the
 * written contracts load through the config loader, a short history is refused `enforce`, and the
 * Prometheus client cuts range queries under Prometheus' 11,000-points limit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { history, type SynthService } from './synthetic.js'
import { deployTimes, pseudoDeploy } from '../../src/calibrate/backtest.js'
import { calibrateService, criticalLevels, DEFAULT_CALIBRATE, type CalibrationResult } from '../../src/calibrate/search.js'
import { contractsYaml } from '../../src/calibrate/contracts.js'
import { PrometheusClient, PrometheusHistorySource, templatesFrom, MAX_POINTS_PER_QUERY } from '../../src/calibrate/prometheus.js'
import { workloadOf } from '../../src/calibrate/audit.js'
import { QuantileSketch } from '../../src/calibrate/quantile.js'
import { loadConfig, parseConfig } from '../../src/config/load.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 10, 1)
const cfg = parseConfig({})
const bc = { engine: cfg.engine, signals: cfg.signals }

const calm: SynthService = { namespace: 'shop', name: 'cart', rps: 20, errorRatio: 0.005, medianS: 0.04, sigma: 0.6, noisyHours: 0.05, pods: 3, memoryBytes: 200e6, memoryRequestBytes: 256e6 }
/** error and latency bursts of 20 min starting at 60 % of hours: the default contract rolls some pseudo-deploys back */
const flappy: SynthService = { namespace: 'shop', name: 'search', rps: 8, errorRatio: 0.005, medianS: 0.05, sigma: 0.5, noisyHours: 0.6, noisyMinutes: 20, noisyErrors: 8, noisyLatency: 2, pods: 2, memoryBytes: 300e6, memoryRequestBytes: 256e6 }

function calibrated(r: CalibrationResult): Extract<CalibrationResult, { kind: 'calibrated' | 'no-candidate' }> {
  if (r.kind === 'too-little-data') throw new Error(`not calibrated: ${r.reason}`)
  return r
}

describe('backtest', () => {
  const h = history(calm, START, START + 2 * DAY, 60_000, 1)
  const times = deployTimes(h, bc, 6)

  it('a pseudo-deploy of calm history is not rolled back; the same with +30 points of errors and 3x latency is', () => {
    expect(times.length).toBe(6)
    for (const t of times) {
      expect(pseudoDeploy(h, t, bc).kind).toBe('none')
      const bad = pseudoDeploy(h, t, bc, { errorStep: 0.3, latencyFactor: 3 })
      expect(bad.kind).toBe('rollback')
      if (bad.kind === 'rollback') expect(bad.afterMs).toBeLessThanOrEqual(cfg.engine.defaults.watch)
    }
  })

  it('deploy times leave room for the baseline before and the watch after', () => {
    for (const t of times) {
      expect(t - cfg.signals.retention).toBeGreaterThanOrEqual(h.firstDataMs)
      expect(t + cfg.engine.defaults.watch).toBeLessThan(h.lastDataMs)
    }
  })
})

describe('calibrateService', () => {
  it('loosens a flappy service until false rollbacks meet the target, and reports the power it costs', () => {
    const h = history(flappy, START, START + 2 * DAY, 60_000, 2)
    const lines: string[] = []
    const r = calibrated(calibrateService(h, bc, { ...DEFAULT_CALIBRATE, days: 2, deploys: 30, onProgress: (l) => lines.push(l) }))
    // the current (default) contract rolls pseudo-deploys back: the search has something to fix
    expect(r.current.falseRollbacks / r.current.deploys).toBeGreaterThan(0.01)
    expect(r.kind).toBe('calibrated')
    expect(r.chosen.falseRollbacks / r.chosen.deploys).toBeLessThanOrEqual(0.01)
    const e = r.contract.signals.errorRate
    const l = r.contract.signals.latency
    const d = cfg.engine.defaults.signals
    expect(e.minDelta > d.errorRate.minDelta || l.multiplier > d.latency.multiplier).toBe(true)
    expect(r.power.errorStep).toBeDefined()
    expect(r.power.latencyFactor).toBeDefined()
    expect(r.enforce.kind).toBe('enforce')
    // memory request (256 MB) below the p70 of usage (about 300 MB): resource signal in observe, with its reason
    expect(r.override.signals?.resource?.mode).toBe('observe')
    expect(r.evidence['signals.resource.mode']).toMatch(/below the p70/)
    expect(lines.some((x) => x.includes('current contract'))).toBe(true)
  })

  it('raises the single-signal critical levels with the thresholds: error-only bursts far above the loosest threshold are calibrated away', () => {
    // bursts of 40x the errors (20 %), latency unchanged: beyond every error threshold of the grid,
    // so only a critical level that rises with the step stops the error signal rolling back alone
    const bursty: SynthService = { ...flappy, name: 'payments', rps: 20, noisyHours: 0.5, noisyErrors: 40, noisyLatency: 1 }
    const h = history(bursty, START, START + 2 * DAY, 60_000, 5)
    const r = calibrated(calibrateService(h, bc, { ...DEFAULT_CALIBRATE, days: 2, deploys: 30 }))
    expect(r.current.falseRollbacks / r.current.deploys).toBeGreaterThan(0.01)
    expect(r.kind).toBe('calibrated')
    expect(r.chosen.falseRollbacks / r.chosen.deploys).toBeLessThanOrEqual(0.01)
    const e = r.contract.signals.errorRate
    const d = cfg.engine.defaults.signals.errorRate
    expect(e.criticalDelta > d.criticalDelta || e.criticalFactor > d.criticalFactor).toBe(true)
    expect(r.evidence['signals.errorRate.criticalDelta'] ?? r.evidence['signals.errorRate.criticalFactor']).toMatch(/grid step/)
    // its half-hour bursts are held far longer than singleSignalHold: off past the grid's first step
    expect(r.contract.singleSignalHold).toBe(0)
    expect(r.evidence.singleSignalHold).toMatch(/strict compound|critical level/)
  })

  it('critical levels: the contract own levels at the most sensitive step, scaled with the step after it', () => {
    const base = cfg.engine.defaults
    expect(criticalLevels(base, 0, 0)).toEqual({ errorRate: {}, latency: {} })
    const loose = criticalLevels(base, 4, 4)
    expect(loose.errorRate.criticalFactor).toBeGreaterThan(base.signals.errorRate.criticalFactor)
    expect(loose.errorRate.criticalDelta).toBeGreaterThan(base.signals.errorRate.criticalDelta)
    expect(loose.errorRate.critical).toBeLessThanOrEqual(1)
    expect(loose.latency.critical).toBeGreaterThan(base.signals.latency.critical)
    const high = { ...base, signals: { ...base.signals, latency: { ...base.signals.latency, critical: 50 } } }
    expect(criticalLevels(high, 0, 0).latency).toEqual({})
    expect(criticalLevels(high, 4, 4).latency.critical).toBe(100)
  })

  it('keeps a calm service at the most sensitive candidate and enforces it', () => {
    const h = history(calm, START, START + 2 * DAY, 60_000, 1)
    const r = calibrated(calibrateService(h, bc, { ...DEFAULT_CALIBRATE, days: 2, deploys: 24 }))
    expect(r.current.falseRollbacks).toBe(0)
    expect(r.contract.signals.errorRate.minDelta).toBe(0.02)
    expect(r.contract.signals.latency.multiplier).toBe(1.5)
    expect(r.enforce.kind).toBe('enforce')
    expect(r.override.signals?.resource).toBeUndefined()
  })

  it('refuses enforce for less history than --days, per service, and says why', () => {
    const h = history(calm, START, START + 1 * DAY, 60_000, 3)
    const r = calibrated(calibrateService(h, bc, { ...DEFAULT_CALIBRATE, days: 30, deploys: 12 }))
    expect(r.enforce).toMatchObject({ kind: 'observe' })
    expect(r.override.signals?.errorRate?.mode).toBe('observe')
    expect(r.override.signals?.latency?.mode).toBe('observe')
    expect(r.evidence['signals.errorRate.mode']).toMatch(/only 1\.0 days of history, fewer than --days 30/)
  })

  it('skips a service whose history holds too few pseudo-deployments', () => {
    const h = history(calm, START, START + 20 * 60_000, 60_000, 4)
    expect(calibrateService(h, bc, { ...DEFAULT_CALIBRATE }).kind).toBe('too-little-data')
  })
})

describe('contracts file', () => {
  it('loads back through the config loader, each value with its evidence comment', () => {
    const results = [
      calibrateService(history(flappy, START, START + 2 * DAY, 60_000, 2), bc, { ...DEFAULT_CALIBRATE, days: 2, deploys: 18 }),
      calibrateService(history(calm, START, START + DAY, 60_000, 3), bc, { ...DEFAULT_CALIBRATE, days: 30, deploys: 12 }),
      calibrateService(history(calm, START, START + 20 * 60_000, 60_000, 4), bc, { ...DEFAULT_CALIBRATE }),
    ]
    const text = contractsYaml(results, { source: 'test', days: 30, targetFalseRate: 0.01, generatedAt: START })
    const dir = mkdtempSync(join(tmpdir(), 'pullback-cal-'))
    try {
      const file = join(dir, 'contracts.yaml')
      writeFileSync(file, text)
      const loaded = loadConfig(file)
      const search = loaded.engine.services['shop/search']
      const cart = loaded.engine.services['shop/cart']
      expect(search).toBeDefined()
      expect(cart?.signals.errorRate.mode).toBe('observe')
      const r0 = calibrated(results[0] as CalibrationResult)
      expect(search?.signals.errorRate.minDelta).toBe(r0.contract.signals.errorRate.minDelta)
      expect(search?.minSamples).toBe(r0.contract.minSamples)
      for (const line of text.split('\n')) {
        if (/^\s+(window|minSamples|minDelta|relativeFactor|multiplier|minIncreaseMs|mode|critical\w*):/.test(line)) expect(line).toMatch(/ # \S/)
      }
      expect(text).toMatch(/# shop\/cart: not calibrated: /)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('prometheus client', () => {
  it('cuts a 30-day range at 60 s into queries of at most 10,000 points that cover it exactly once', async () => {
    const seen: { start: number; end: number; step: number }[] = []
    const fake = (async (url: string | URL) => {
      const u = new URL(String(url))
      seen.push({ start: Number(u.searchParams.get('start')), end: Number(u.searchParams.get('end')), step: Number(u.searchParams.get('step')) })
      return new Response(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } }), { status: 200 })
    }) as typeof fetch
    const c = new PrometheusClient({ url: 'http://x', fetch: fake })
    const range = { startMs: START, endMs: START + 30 * DAY, stepMs: 60_000 }
    const r = await c.rangeChunks('up', range, () => {})
    expect(r.kind).toBe('ok')
    expect(seen.length).toBe(5)
    let next = range.startMs / 1000
    for (const q of seen) {
      expect(q.start).toBe(next)
      expect((q.end - q.start) / q.step + 1).toBeLessThanOrEqual(MAX_POINTS_PER_QUERY)
      next = q.end + q.step
    }
    expect(next - 60).toBe(range.endMs / 1000)
  })

  it('turns HTTP and Prometheus errors into a failed outcome naming the query, never an exception', async () => {
    const fake = (async () => new Response(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'exceeded maximum resolution of 11,000 points per timeseries' }), { status: 400 })) as typeof fetch
    const src = new PrometheusHistorySource({ url: 'http://x', fetch: fake })
    const r = await src.history({ namespace: 'shop', name: 'cart' }, { startMs: START, endMs: START + DAY, stepMs: 60_000 })
    expect(r.kind).toBe('failed')
    if (r.kind === 'failed') expect(r.reason).toMatch(/11,000 points.*query: sum\(increase\(http_server_request_duration_seconds_count\{job="shop\/cart"\}\[60s\]\)\)/)
    const down = new PrometheusHistorySource({ url: 'http://127.0.0.1:1' })
    expect((await down.history({ namespace: 'shop', name: 'cart' }, { startMs: START, endMs: START + DAY, stepMs: 60_000 })).kind).toBe('failed')
  })

  it('query templates: overrides apply, an unknown key is refused by name', () => {
    expect(templatesFrom({ selector: 'service_name="$service"' }).selector).toBe('service_name="$service"')
    expect(() => templatesFrom({ requets: 'x' })).toThrow(/unknown key "requets"/)
  })
})

describe('helpers', () => {
  it('workloadOf strips replica set, daemon set and stateful set suffixes', () => {
    expect(workloadOf('cart-7d4b9c8f6d-x2k9p')).toBe('cart')
    expect(workloadOf('node-agent-x2k9p')).toBe('node-agent')
    expect(workloadOf('kafka-2')).toBe('kafka')
  })

  it('QuantileSketch is within 2 % of the exact quantile', () => {
    const sk = new QuantileSketch()
    const xs: number[] = []
    for (let i = 1; i <= 10_000; i++) {
      const v = 1e6 * (1 + Math.sin(i) ** 2 * 9)
      xs.push(v)
      sk.add(v)
    }
    xs.sort((a, b) => a - b)
    for (const q of [0.5, 0.7, 0.95]) {
      const exact = xs[Math.ceil(q * xs.length) - 1] as number
      expect(Math.abs(sk.quantile(q) - exact) / exact).toBeLessThan(0.021)
    }
  })
})
