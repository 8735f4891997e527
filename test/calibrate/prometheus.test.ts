/**
 * `pullback calibrate` and `pullback audit requests` against a REAL Prometheus (Debian package
 * `prometheus`: the `prometheus` server and `promtool`), backfilled with synthetic history by
 * `promtool tsdb create-blocks-from openmetrics`. Under CI a missing binary fails the test naming
 * the package; elsewhere the file is skipped with a message.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findBinary, startPrometheus, type RunningPrometheus } from './prometheus-fixture.js'
import { history as synthHistory, type SynthService } from './synthetic.js'
import { PrometheusHistorySource } from '../../src/calibrate/prometheus.js'
import { main } from '../../src/cli/main.js'
import { loadConfig } from '../../src/config/load.js'

const DAY = 86_400_000
const STEP = 60_000
const SEED = 7
const have = findBinary('prometheus') !== undefined && findBinary('promtool') !== undefined
const ci = process.env.CI === 'true' || process.env.CI === '1'
if (!have && !ci) console.warn('SKIPPED test/calibrate/prometheus.test.ts: no prometheus/promtool on PATH (apt-get install prometheus)')

// history ends a little before now so Prometheus holds it as ordinary past data
const END = Math.floor((Date.now() - 30 * 60_000) / 3_600_000) * 3_600_000
const services: (SynthService & { fromMs: number })[] = [
  { namespace: 'shop', name: 'cart', rps: 20, errorRatio: 0.005, medianS: 0.04, sigma: 0.6, noisyHours: 0.05, pods: 2, memoryBytes: 200e6, memoryRequestBytes: 256e6, fromMs: END - 2 * DAY },
  { namespace: 'shop', name: 'search', rps: 8, errorRatio: 0.005, medianS: 0.05, sigma: 0.5, noisyHours: 0.6, noisyMinutes: 20, noisyErrors: 8, noisyLatency: 2, pods: 2, memoryBytes: 300e6, memoryRequestBytes: 512e6, fromMs: END - 2 * DAY },
  // one day only: refused enforce for --days 2; memory request below its usage
  { namespace: 'pay', name: 'ledger', rps: 5, errorRatio: 0.002, medianS: 0.08, sigma: 0.4, noisyHours: 0.02, pods: 2, memoryBytes: 400e6, memoryRequestBytes: 300e6, fromMs: END - DAY },
]

function io() {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) } }
}

describe.skipIf(!have && !ci)('calibration against a real Prometheus', () => {
  let prom: RunningPrometheus | undefined
  let dir = ''

  beforeAll(async () => {
    if (!have) throw new Error('CI: prometheus/promtool not found; install the Debian package `prometheus` (.ci/run does)')
    dir = mkdtempSync(join(tmpdir(), 'pullback-calp-'))
    prom = await startPrometheus(services, END, STEP, SEED)
  }, 120_000)

  afterAll(async () => {
    await prom?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('reads back the history it was given: counts, errors, latency buckets, pods and requests', async () => {
    const src = new PrometheusHistorySource({ url: prom!.url })
    const range = { startMs: END - 2 * DAY, endMs: END, stepMs: STEP }
    const found = (await src.services(range)).map((s) => `${s.namespace}/${s.name}`).sort()
    expect(found).toEqual(['pay/ledger', 'shop/cart', 'shop/search'])
    const got = await src.history({ namespace: 'shop', name: 'cart' }, range)
    expect(got.kind).toBe('ok')
    if (got.kind !== 'ok') return
    const want = synthHistory(services[0]!, services[0]!.fromMs, END, STEP, SEED)
    const sum = (a: Float64Array) => a.reduce((x, y) => x + (Number.isNaN(y) ? 0 : y), 0)
    // increase() of the first sample of a series has no predecessor: the first step is missing
    const wantCount = sum(want.requests.counts) - (want.requests.counts[0] as number)
    expect(Math.abs(sum(got.history.requests.counts) - wantCount) / wantCount).toBeLessThan(0.01)
    const wantErr = sum(want.requests.errors) - (want.requests.errors[0] as number)
    expect(Math.abs(sum(got.history.requests.errors) - wantErr) / Math.max(1, wantErr)).toBeLessThan(0.02)
    expect(got.history.requests.boundsS).toEqual(want.requests.boundsS)
    expect(Math.abs(sum(got.history.requests.latency) - wantCount) / wantCount).toBeLessThan(0.01)
    const mem = got.history.resources.filter((r) => r.resource === 'memory')
    expect(mem.length).toBe(2)
    for (const m of mem) expect(m.request).toBe(256e6)
    expect(got.history.lastDataMs).toBe(END)
  }, 60_000)

  it('pullback calibrate writes loadable contracts: loosened where flappy, observe where history is short', async () => {
    const out = join(dir, 'contracts.yaml')
    const t = io()
    const code = await main(['calibrate', '--prometheus', prom!.url, '--days', '2', '--deploys', '24', '--end', new Date(END).toISOString(), '--out', out], t.io)
    const err = t.err.join('')
    expect(code, err).toBe(0)
    // the flappy service's current contract rolls some pseudo-deploys back: there is something to loosen
    expect(err).toMatch(/shop\/search: history 2\.0 days.*current contract: [1-9]\d*\/\d+ false rollbacks/)
    expect(err).toMatch(/calibrate: \[1\/3\] .*current contract/)
    expect(err).toMatch(/pay\/ledger: observe: only 1\.0 days of history, fewer than --days 2/)
    const table = t.out.join('')
    expect(table).toMatch(/^service\s+days\s+p10 req\/s\s+current FR/)
    expect(table).toMatch(/shop\/search/)
    const cfg = loadConfig(out)
    const search = cfg.engine.services['shop/search']
    const cart = cfg.engine.services['shop/cart']
    const ledger = cfg.engine.services['pay/ledger']
    expect(cart?.signals.errorRate.mode).toBe('enforce')
    expect(cart?.signals.errorRate.minDelta).toBe(0.02)
    const d = cfg.engine.defaults.signals
    expect((search?.signals.errorRate.minDelta ?? 0) > d.errorRate.minDelta || (search?.signals.latency.multiplier ?? 0) > d.latency.multiplier).toBe(true)
    expect(ledger?.signals.errorRate.mode).toBe('observe')
    expect(ledger?.signals.latency.mode).toBe('observe')
    const text = readFileSync(out, 'utf8')
    expect(text).toMatch(/"shop\/search":\n\s+# 2\.0 days of history/)
    expect(text).toMatch(/minDelta: [\d.]+ {2}# \d+\/\d+ false rollbacks/)
  }, 120_000)

  it('pullback audit requests flags the container whose memory request is below the p70 of its usage', async () => {
    const t = io()
    const code = await main(['audit', 'requests', '--prometheus', prom!.url, '--days', '2', '--end', new Date(END).toISOString(), '--json'], t.io)
    expect(code, t.err.join('')).toBe(0)
    const rows = t.out.join('').trim().split('\n').map((l) => JSON.parse(l) as { namespace: string; workload: string; container: string; resource: string; request: number; p70: number; p95: number; below: boolean })
    const ledger = rows.find((r) => r.workload === 'ledger' && r.resource === 'memory')
    const cart = rows.find((r) => r.workload === 'cart' && r.resource === 'memory')
    expect(ledger).toMatchObject({ namespace: 'pay', container: 'ledger', request: 300e6, below: true })
    expect(ledger!.p70).toBeGreaterThan(380e6)
    expect(ledger!.p95).toBeGreaterThanOrEqual(ledger!.p70)
    expect(cart).toMatchObject({ below: false, request: 256e6 })
    expect(t.err.join('')).toMatch(/1 below p70/)
  }, 60_000)
})
