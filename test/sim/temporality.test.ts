/**
 * Delta temporality as users send it: the SDK's own delta preference, and cumulative points
 * converted on the way by a Collector's `cumulativetodelta` processor (src/sim/cumulative-to-delta.ts).
 * The converter against hand-made lines; then a 15 s metrics-only bad deploy recorded each way is
 * rolled back as its cumulative recording is (before the normalizer read a converted stream's first
 * point from its own start, the converted one was never decided).
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { CumulativeToDelta } from '../../src/sim/cumulative-to-delta.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'

const S = 1_768_467_600n * 1_000_000_000n
const ns = (sec: number) => String(S + BigInt(sec) * 1_000_000_000n)
const line = (points: { code: number; start: number; t: number; counts: number[] }[]) =>
  JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'cart' } }] },
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'http.server.request.duration',
                unit: 's',
                histogram: {
                  aggregationTemporality: 2,
                  dataPoints: points.map((p) => ({
                    attributes: [{ key: 'http.response.status_code', value: { intValue: String(p.code) } }],
                    startTimeUnixNano: ns(p.start),
                    timeUnixNano: ns(p.t),
                    count: String(p.counts.reduce((a, b) => a + b, 0)),
                    sum: 1,
                    min: 0.001,
                    max: 0.5,
                    explicitBounds: [0.1],
                    bucketCounts: p.counts.map(String),
                  })),
                },
              },
            ],
          },
        ],
      },
    ],
  })

type Pt = { startTimeUnixNano: string; timeUnixNano: string; count: string; bucketCounts: string[]; min?: number }
const pointsOf = (text: string): Pt[] => (JSON.parse(text) as { resourceMetrics: { scopeMetrics: { metrics: { histogram: { aggregationTemporality: number; dataPoints: Pt[] } }[] }[] }[] }).resourceMetrics[0]!.scopeMetrics[0]!.metrics[0]!.histogram.dataPoints

describe('cumulativetodelta (initial_value auto)', () => {
  it('drops first points of streams older than the processor, passes newer ones whole, then differences', () => {
    const c = new CumulativeToDelta()
    // the processor starts at the first export (t = 60): the old process's stream is dropped
    expect(pointsOf(c.line(line([{ code: 200, start: -3600, t: 60, counts: [100, 5] }])))).toEqual([])
    expect(c.dropped).toBe(1)
    // next export: a difference from t = 60; a new pod's stream (started at 90) passes whole
    const second = pointsOf(
      c.line(
        line([
          { code: 200, start: -3600, t: 120, counts: [130, 6] },
          { code: 200, start: 90, t: 120, counts: [7, 1] },
        ]),
      ),
    )
    expect(second.map((p) => [p.startTimeUnixNano, p.timeUnixNano, p.count, p.bucketCounts])).toEqual([
      [ns(60), ns(120), '31', ['30', '1']],
      [ns(90), ns(120), '8', ['7', '1']],
    ])
    // min and max of a difference are unknown
    expect(second[0]!.min).toBeUndefined()
    // a restart (a new start time: a new stream) after the processor started passes whole
    const third = pointsOf(c.line(line([{ code: 200, start: 150, t: 180, counts: [3, 0] }])))
    expect(third.map((p) => [p.startTimeUnixNano, p.count])).toEqual([[ns(150), '3']])
    // a count that went down under the same start: a histogram passes whole from the previous point
    const fourth = pointsOf(c.line(line([{ code: 200, start: 150, t: 210, counts: [1, 0] }])))
    expect(fourth.map((p) => [p.startTimeUnixNano, p.count])).toEqual([[ns(180), '1']])
    // the lines are delta now
    expect(c.line(line([{ code: 200, start: 150, t: 240, counts: [4, 0] }]))).toContain('"aggregationTemporality":1')
  })

  it('passes trace lines unchanged', () => {
    const t = '{"resourceSpans":[]}'
    expect(new CumulativeToDelta().line(t)).toBe(t)
  })
})

describe('a metrics-only bad deploy in each temporality', () => {
  it('is rolled back from delta points as from cumulative ones', async () => {
    const s = findScenario('metrics-15s-bad-deploy')!
    const quiet = { out: () => undefined, err: () => undefined }
    const decided: Record<string, number | undefined> = {}
    for (const metricTemporality of ['cumulative', 'delta', 'cumulativetodelta'] as const) {
      const lines = await recordToLines(s, { metricTemporality })
      if (metricTemporality !== 'cumulative') expect(lines.some((l) => l.includes('"aggregationTemporality":1'))).toBe(true)
      const r = await replayLines(lines, parseConfig({}), quiet, { actuator: false })
      const v = r.verdicts.find((x) => x.kind === 'rollback')
      decided[metricTemporality] = v === undefined ? undefined : (v.decidedAt - v.deployedAt) / 1000
    }
    expect(decided.cumulative).toBeDefined()
    // the same evidence, the same bucket or the next: at most one 15 s report later
    expect(Math.abs(decided.delta! - decided.cumulative!)).toBeLessThanOrEqual(15)
    expect(Math.abs(decided.cumulativetodelta! - decided.cumulative!)).toBeLessThanOrEqual(15)
  }, 60_000)
})
