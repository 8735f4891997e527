/**
 * The false-rollback bench writes OTLP/JSON directly (bench/false-rollbacks.ts), not through the
 * SDK: it must keep the shape the SDK and the Collector's file exporter write (the scenario
 * library's recordings, src/sim, are the reference), and read back without a malformed line.
 */
import { describe, expect, it } from 'vitest'
import { benignDeployment, paramsOf, type Params } from '../../bench/false-rollbacks.js'
import { parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { findScenario, recordToLines, type HistogramAggregation } from '../../src/sim/index.js'

type Json = Record<string, unknown>

/** the key paths of a JSON value, arrays collapsed (what "the same shape" means here) */
function shape(v: unknown, path = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) {
    for (const x of v) shape(x, `${path}[]`, out)
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Json)) {
      out.add(`${path}.${k}`)
      shape(x, `${path}.${k}`, out)
    }
  }
  return out
}

const first = (lines: string[], prefix: string) => lines.find((l) => l.startsWith(prefix))!

/** the scenario library's reference: 70 s of the SDK's spans and 10 s metrics, aggregated as given */
function reference(histogramAggregation?: HistogramAggregation): Promise<string[]> {
  const sdk = findScenario('spans-and-metrics-benign-deploy')!
  const agg = histogramAggregation === undefined ? {} : { histogramAggregation }
  return recordToLines({ ...sdk, durationS: 70, build: (seed) => ({ ...sdk.build(seed), durationS: 70, metricSchedule: 'aligned', metricExportS: 10, ...agg }) })
}

const QUIET = { out: () => undefined, err: () => undefined }
const replayed = (lines: Iterable<string>) => replayLines(lines, parseConfig({}), QUIET, { actuator: false, recordTimeline: true })

describe('false-rollback bench telemetry', () => {
  const base = paramsOf(1, 0)
  const params = (telemetry: Params['telemetry']): Params => ({ ...base, telemetry, rps: 20, intervalS: 10 })

  it('has the shape of the SDK recordings: spans, cumulative histograms with the default bounds, gauges', async () => {
    const ref = await reference()
    const spans = [...benignDeployment(params('spans'), 1)].slice(0, 40)
    const metrics = [...benignDeployment(params('metrics'), 1)].slice(0, 40)
    // status.code is there only when a span in the line failed: a value, not the shape
    const spanShape = (l: string) => [...shape(JSON.parse(l))].filter((k) => !k.endsWith('.status.code')).sort()
    expect(spanShape(first(spans, '{"resourceSpans"'))).toEqual(spanShape(first(ref, '{"resourceSpans"')))
    const withHist = (ls: string[]) => ls.find((l) => l.includes('"http.server.request.duration"'))!
    expect([...shape(JSON.parse(withHist(metrics)))].sort()).toEqual([...shape(JSON.parse(withHist(ref)))].sort())
    const h = JSON.parse(withHist(metrics)) as { resourceMetrics: { scopeMetrics: { metrics: { histogram?: { aggregationTemporality: number; dataPoints: Json[] } }[] }[] }[] }
    const hist = h.resourceMetrics[0]!.scopeMetrics[0]!.metrics[0]!.histogram!
    expect(hist.aggregationTemporality).toBe(2)
    expect(hist.dataPoints[0]!.explicitBounds).toEqual([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10])
    expect(first(spans, '{"resourceSpans"')).toMatch(/"startTimeUnixNano":"\d{19}"/)
  })

  it('--histograms exponential: the SDK\'s base-2 exponential points, the same requests counted as with explicit bounds', async () => {
    const ref = await reference('exponential')
    const exp = [...benignDeployment({ ...params('metrics'), histograms: 'exponential' }, 1)]
    const withHist = (ls: string[]) => ls.find((l) => l.includes('"exponentialHistogram"'))!
    expect(withHist(ref)).toBeDefined()
    expect([...shape(JSON.parse(withHist(exp)))].sort()).toEqual([...shape(JSON.parse(withHist(ref)))].sort())
    const explicit = [...benignDeployment(params('metrics'), 1)]
    const a = await replayed(explicit)
    const b = await replayed(exp)
    expect(b.malformed).toBe(0)
    // the same requests reach the engine whichever the aggregation: the last tick's request count
    const samples = (r: typeof a) => r.report!.timelines.flatMap((t) => t.ticks.at(-1)!.signals.filter((x) => x.signal === 'error_rate').map((x) => x.samples))
    expect(samples(b)).toEqual(samples(a))
    expect(samples(a)[0]).toBeGreaterThan(100)
  })

  it("--histograms micrometer: the shape of the scenario library's Micrometer-style timers, the same requests and errors counted", async () => {
    const ref = await reference('micrometer')
    const mm = [...benignDeployment({ ...params('metrics'), histograms: 'micrometer' }, 1)]
    const withTimer = (ls: string[]) => ls.find((l) => l.includes('"http.server.requests"'))!
    expect(withTimer(ref)).toBeDefined()
    expect([...shape(JSON.parse(withTimer(mm)))].sort()).toEqual([...shape(JSON.parse(withTimer(ref)))].sort())
    expect(withTimer(mm)).toContain('"unit":"milliseconds"')
    expect(withTimer(mm)).toContain('"explicitBounds":[]')
    const a = await replayed(benignDeployment(params('metrics'), 1))
    const b = await replayed(mm)
    expect(b.malformed).toBe(0)
    const last = (r: typeof a, signal: string) => r.report!.timelines.flatMap((t) => t.ticks.at(-1)!.signals.filter((x) => x.signal === signal).map((x) => [x.samples, x.value]))
    expect(last(b, 'error_rate')).toEqual(last(a, 'error_rate'))
    expect(last(a, 'error_rate')[0]![0]).toBeGreaterThan(100)
  })

  it('--rps draws traffic log-uniformly from its range; the default range keeps the draws the figures of record used', () => {
    const quiet = Array.from({ length: 200 }, (_, i) => paramsOf(1, i, [0.1, 1]).rps)
    expect(Math.min(...quiet)).toBeGreaterThanOrEqual(0.1)
    expect(Math.max(...quiet)).toBeLessThanOrEqual(1)
    expect(quiet.filter((x) => x < Math.sqrt(0.1)).length).toBeGreaterThan(70)
    expect(paramsOf(1, 7, [1, 500])).toEqual(paramsOf(1, 7))
    // run 0 of seed 1 and the quiet range draw from the same uniform
    expect(Math.log(paramsOf(1, 0, [0.1, 1]).rps / 0.1) / Math.log(10)).toBeCloseTo(Math.log(paramsOf(1, 0).rps) / Math.log(500), 9)
  })

  it('--errors F: the new version alone fails a share F more of its requests; without it the bytes are those of the benign run', async () => {
    const p = { ...params('spans'), rps: 40, errorRate: 0.005 }
    expect([...benignDeployment({ ...p, errors: 0 }, 1)]).toEqual([...benignDeployment(p, 1)])
    const lines = [...benignDeployment({ ...p, errors: 0.2 }, 1)]
    const tally = new Map<string, { n: number; bad: number }>()
    for (const l of lines) {
      if (!l.startsWith('{"resourceSpans"')) continue
      const d = JSON.parse(l) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: { status: { code?: number } }[] }[] }[] }
      for (const rs of d.resourceSpans) {
        const version = rs.resource.attributes.find((a) => a.key === 'service.version')!.value.stringValue!
        const t = tally.get(version) ?? { n: 0, bad: 0 }
        for (const ss of rs.scopeSpans) {
          for (const sp of ss.spans) {
            t.n++
            if (sp.status.code === 2) t.bad++
          }
        }
        tally.set(version, t)
      }
    }
    const ratio = (v: string) => tally.get(v)!.bad / tally.get(v)!.n
    expect(ratio('v1')).toBeLessThan(0.02)
    expect(ratio('v2')).toBeGreaterThan(0.17)
    expect(ratio('v2')).toBeLessThan(0.24)
    // the detection counterpart decides: 20 % fast 5xx against 0.5 % rolls back on its own
    const res = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })
    expect(res.verdicts.filter((v) => v.kind === 'rollback')).toHaveLength(1)
  })

  it('replays without a malformed line, every span counted', async () => {
    const lines = [...benignDeployment({ ...params('spans'), rps: 5 }, 1)]
    const spans = lines.filter((l) => l.startsWith('{"resourceSpans"')).reduce((a, l) => a + (l.match(/"kind":2/g)?.length ?? 0), 0)
    const res = await replayLines(lines, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })
    expect(res.malformed).toBe(0)
    expect(res.spans).toBe(spans)
    expect(spans).toBeGreaterThan(3000)
  })

  it('per-pod span exports: the same spans, one pod per line, in time order, off the bucket edges', () => {
    const spanIds = (ls: string[]) => ls.flatMap((l) => [...l.matchAll(/"spanId":"([0-9a-f]{16})"/g)].map((m) => m[1]!))
    const aligned = [...benignDeployment(params('spans'), 1)].filter((l) => l.startsWith('{"resourceSpans"'))
    const perPod = [...benignDeployment({ ...params('spans'), spanExport: 'per-pod' }, 1)].filter((l) => l.startsWith('{"resourceSpans"'))
    expect([...spanIds(perPod)].sort()).toEqual([...spanIds(aligned)].sort())
    for (const l of perPod) expect((JSON.parse(l) as { resourceSpans: unknown[] }).resourceSpans).toHaveLength(1)
    expect(perPod.length).toBeGreaterThan(2 * aligned.length)
    // lines in time order of their newest span end, and the phases are not bucket edges
    const newest = perPod.map((l) => Math.max(...[...l.matchAll(/"endTimeUnixNano":"(\d+)"/g)].map((m) => Number(BigInt(m[1]!) / 1_000_000n))))
    expect(newest.filter((x, i) => i > 0 && x < newest[i - 1]! - 5000)).toEqual([])
    expect(newest.some((x) => x % 5000 < 4000)).toBe(true)
  })

  it('export times: one per line, in order, never before the newest span or point the line holds', () => {
    for (const spanExport of ['aligned', 'per-pod'] as const) {
      for (const telemetry of ['spans', 'metrics'] as const) {
        const at: number[] = []
        const lines = [...benignDeployment({ ...params(telemetry), spanExport }, 1, (ms) => at.push(ms))]
        expect(at).toHaveLength(lines.length)
        expect(at.filter((x, i) => i > 0 && x < at[i - 1]!)).toEqual([])
        const newest = lines.map((l) => Math.max(...[...l.matchAll(/"(?:endTimeUnixNano|timeUnixNano)":"(\d+)"/g)].map((m) => Number(BigInt(m[1]!) / 1_000_000n))))
        expect(newest.filter((x, i) => x > at[i]!)).toEqual([])
      }
    }
  })
})
