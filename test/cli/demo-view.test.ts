/**
 * The demo's live view before the engine has judged the watched version: the engine reports every
 * request signal "insufficient, n=0" until its first full confirmation span after the deployment is
 * in, while the new version's requests are already in the store. The view must show those (issue 15
 * item 6: the line printed right before a decision on hundreds of samples said n=0 everywhere).
 */
import { describe, expect, it } from 'vitest'
import { View, viewReadings } from '../../src/cli/commands/demo.js'
import type { WatchStatus } from '../../src/engine/evaluate.js'
import type { SignalReading } from '../../src/engine/verdict.js'
import type { SeriesKey } from '../../src/normalize/observations.js'
import type { WindowStats } from '../../src/signals/view.js'

const T = 1_796_148_384_000
const pending = (signal: SignalReading['signal']): SignalReading => ({ signal, state: 'insufficient', mode: 'enforce', value: 0, baseline: 0, threshold: 0, samples: 0, critical: false })
const status = (signals: SignalReading[], version = 'v1.5.0'): WatchStatus => ({
  deploymentId: 'd1',
  kind: 'deploy',
  namespace: 'shop',
  service: 'checkout',
  version,
  baselineVersion: 'v1.4.0',
  deployedAt: T - 4000,
  t: T,
  status: 'insufficient',
  baselineHealth: 'healthy',
  signals,
})

/** a store holding 240 requests (36 errors, p99 1.9 s) of v1.5.0 and 900 of v1.4.0 over any range */
function store() {
  const asked: { key: SeriesKey; from: number; to: number }[] = []
  const stats = (requests: number, errors: number, p99us: number): WindowStats => ({
    fromMs: 0,
    toMs: 0,
    requests,
    errors,
    latency: { count: requests, valueAtQuantile: (q) => (q === 0.99 ? p99us : NaN), upperAtQuantile: (q) => (q === 0.99 ? p99us : NaN), countAbove: () => 0 },
    buckets: [],
    resources: [],
    probes: { readings: 0, failures: 0, firstFailureMs: undefined, lastFailureMs: undefined, failing: [] },
  })
  return {
    asked,
    window(key: SeriesKey, from: number, to: number): WindowStats {
      asked.push({ key, from, to })
      return key.version === 'v1.5.0' ? stats(240, 36, 1_900_000) : stats(900, 2, 160_000)
    },
  }
}

describe('demo live view', () => {
  it('shows the watched version’s requests from the store while the engine has not judged it yet', () => {
    let out = ''
    const view = new View({ out: (s) => void (out += s), err: () => undefined }, false, T - 30_000, 'demo')
    const s = store()
    view.readFrom(s, { windowMs: 3000, latencyQuantile: 0.99 })
    view.setStatus(status([pending('error_rate'), pending('latency'), pending('resource'), { ...pending('probe'), state: 'healthy', samples: 4 }]))
    const lines = out.split('\n')
    expect(lines.some((l) => l.trim() === 'watching shop/checkout v1.5.0 (baseline v1.4.0): insufficient')).toBe(true)
    const er = lines.find((l) => l.trim().startsWith('error_rate'))!
    const lat = lines.find((l) => l.trim().startsWith('latency'))!
    expect(er).toMatch(/15\.00%/)
    expect(er).toMatch(/n=\s+240\s+collecting/)
    expect(lat).toMatch(/1900 ms/)
    expect(lat).toMatch(/n=\s+240\s+collecting/)
    // the watched version, over the engine's last window
    expect(s.asked).toEqual([{ key: { namespace: 'shop', service: 'checkout', version: 'v1.5.0' }, from: T - 3000, to: T }])
    // resource has no store number to show and stays as the engine reported it
    expect(lines.find((l) => l.trim().startsWith('resource'))).toMatch(/n=\s+0\s+insufficient/)
  })

  it('leaves the engine’s readings alone once it judged them, and says insufficient when the store has nothing either', () => {
    const judged: SignalReading = { signal: 'error_rate', state: 'healthy', mode: 'enforce', value: 0.002, baseline: 0.003, threshold: 0.023, samples: 480, critical: false }
    const s = store()
    expect(viewReadings(status([judged]), s, { windowMs: 3000, latencyQuantile: 0.99 })).toEqual([{ reading: judged, source: 'engine' }])
    expect(s.asked).toHaveLength(0)
    const empty = { window: (): WindowStats => ({ ...store().window({ namespace: '', service: '', version: 'x' }, 0, 0), requests: 0, errors: 0, latency: { count: 0, valueAtQuantile: () => NaN, upperAtQuantile: () => NaN, countAbove: () => 0 } }) }
    expect(viewReadings(status([pending('error_rate'), pending('latency')]), empty, { windowMs: 3000, latencyQuantile: 0.99 }).map((r) => r.source)).toEqual(['engine', 'engine'])
  })
})
