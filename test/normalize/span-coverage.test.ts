import { describe, expect, it } from 'vitest'
import { SpanCoverage, type SpanCoverageChange, type SpanCoverageConfig } from '../../src/normalize/span-coverage.js'
import { normalizeSchema } from '../../src/normalize/config.js'

const CFG: SpanCoverageConfig = normalizeSchema.parse({}).sourcePreference.coverage
const T0 = 1_760_000_000_000

/** A process serving `rps` requests a second; its SDK exports metrics every `everyS` s on a phase; spans batched every 5 s. */
function run(cov: SpanCoverage, o: { keep: (i: number) => boolean; rps: number; everyS: number; phaseMs: number; seconds: number; resource?: string; service?: string }): void {
  const resource = o.resource ?? 'pod-a'
  const service = o.service ?? 'shop/checkout'
  let lastExport = T0 + o.phaseMs
  let i = 0
  let batch: number[] = []
  let nextBatch = T0 + 5_000
  let counted = 0
  for (let ms = T0; ms <= T0 + o.seconds * 1000; ms += 1000 / o.rps) {
    const end = ms + 0.5
    if (end > nextBatch) {
      cov.spans(resource, service, batch)
      batch = []
      nextBatch += 5_000
    }
    if (end > lastExport + o.everyS * 1000) {
      const at = lastExport + o.everyS * 1000
      cov.metricInterval(resource, service, lastExport, at, counted)
      counted = 0
      lastExport = at
    }
    if (o.keep(i)) batch.push(end)
    counted++
    i++
  }
}

describe('span coverage: are the SERVER spans all the requests?', () => {
  it('complete spans stay the source, whatever the export interval and phase (buckets cut pro rata)', () => {
    for (const everyS of [10, 15, 60]) {
      for (const phaseMs of [0, 1_234, 7_777]) {
        const changes: SpanCoverageChange[] = []
        const cov = new SpanCoverage(CFG, (c) => changes.push(c))
        run(cov, { keep: () => true, rps: 7, everyS, phaseMs, seconds: 600 })
        expect(cov.stats().compared).toBeGreaterThan(3)
        expect(cov.sampled('shop/checkout')).toBe(false)
        expect(cov.state('shop/checkout')).toBe('complete')
        expect(changes).toEqual([])
      }
    }
  })

  it('head-sampled spans (10 %) hand the service to its metrics after two intervals and 200 requests', () => {
    const changes: SpanCoverageChange[] = []
    const cov = new SpanCoverage(CFG, (c) => changes.push(c))
    run(cov, { keep: (i) => i % 10 === 0, rps: 20, everyS: 60, phaseMs: 3_000, seconds: 400 })
    expect(cov.sampled('shop/checkout')).toBe(true)
    expect(changes).toHaveLength(1)
    expect(changes[0]).toMatchObject({ service: 'shop/checkout', state: 'sampled' })
    expect(changes[0]!.spans / changes[0]!.requests).toBeCloseTo(0.1, 1)
    expect(cov.stats().sampledServices).toBe(1)
  })

  it('spans that become complete again win back (hysteresis: between the two levels nothing changes)', () => {
    const changes: SpanCoverageChange[] = []
    const cov = new SpanCoverage(CFG, (c) => changes.push(c))
    run(cov, { keep: (i) => i % 2 === 0, rps: 20, everyS: 15, phaseMs: 0, seconds: 120 })
    expect(cov.sampled('shop/checkout')).toBe(true)
    // a second process of the same service, fully traced for long: the service's evidence fades to complete
    run(cov, { keep: () => true, rps: 20, everyS: 15, phaseMs: 0, seconds: 600, resource: 'pod-b' })
    expect(cov.sampled('shop/checkout')).toBe(false)
    expect(changes.map((c) => c.state)).toEqual(['sampled', 'complete'])
    expect(cov.stats().sampledServices).toBe(0)
  })

  it('few requests judge nothing; an interval is never compared before the spans reach past it', () => {
    const cov = new SpanCoverage(CFG)
    run(cov, { keep: () => false, rps: 0.2, everyS: 60, phaseMs: 0, seconds: 300 })
    expect(cov.state('shop/checkout')).toBe('unknown')
    const c2 = new SpanCoverage(CFG)
    c2.spans('p', 's', [T0 + 1_000])
    c2.metricInterval('p', 's', T0 + 10_000, T0 + 70_000, 1_000)
    c2.spans('p', 's', [T0 + 80_000]) // 10 s past the end: not settled (15 s)
    expect(c2.stats().compared).toBe(0)
    c2.spans('p', 's', [T0 + 85_001])
    expect(c2.stats().compared).toBe(1)
  })

  it('an interval that starts before the first tallied span is not compared (its spans were not counted)', () => {
    const cov = new SpanCoverage(CFG)
    cov.spans('p', 's', [T0 + 30_000])
    cov.metricInterval('p', 's', T0, T0 + 60_000, 600)
    cov.spans('p', 's', [T0 + 90_000])
    expect(cov.stats()).toMatchObject({ compared: 0, unmatched: 1 })
  })

  it('is bounded: processes and services past maxResources are forgotten and counted', () => {
    const cov = new SpanCoverage({ ...CFG, maxResources: 4 })
    for (let i = 0; i < 10; i++) cov.spans(`p${i}`, `s${i}`, [T0])
    expect(cov.stats().evicted).toBe(6)
  })

  it('tracked versions are forgotten least recently exported first: an active version keeps its spans tallied', () => {
    const cov = new SpanCoverage({ ...CFG, maxResources: 2 })
    cov.trackVersion('v1')
    cov.trackVersion('v2')
    cov.trackVersion('v1') // v1 exports again
    cov.trackVersion('v3')
    expect(cov.tracks('v1')).toBe(true)
    expect(cov.tracks('v2')).toBe(false)
    expect(cov.tracks('v3')).toBe(true)
  })

  it('off: nothing is tracked', () => {
    const cov = new SpanCoverage({ ...CFG, enabled: false })
    cov.trackVersion('v')
    expect(cov.tracks('v')).toBe(false)
    run(cov, { keep: (i) => i % 10 === 0, rps: 20, everyS: 60, phaseMs: 0, seconds: 400 })
    expect(cov.state('shop/checkout')).toBe('unknown')
  })

  it('the config refuses levels in the wrong order, naming the path', () => {
    const r = normalizeSchema.safeParse({ sourcePreference: { coverage: { sampledBelow: 0.9, completeAbove: 0.8 } } })
    expect(r.success).toBe(false)
    expect(JSON.stringify(r.error?.issues[0]?.path)).toBe('["sourcePreference","coverage","completeAbove"]')
  })
})
