/**
 * parseMatrix (src/calibrate/prometheus.ts): the direct scan of a query_range matrix answer gives
 * the same columns as JSON.parse, with or without whitespace, and refuses (undefined: the caller's
 * JSON.parse path) anything it does not know. A windowed latency read (latencyWindows) holds
 * the same bucket counts as a full one in its windows, zeros marked unknown elsewhere.
 */
import { describe, expect, it } from 'vitest'
import { parseMatrix, PrometheusClient, PrometheusHistorySource, type ColumnSeries } from '../../src/calibrate/prometheus.js'

const answer: { status: string; data: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] } } = {
  status: 'success',
  data: {
    resultType: 'matrix',
    result: [
      { metric: { le: '0.005', job: 'shop/"odd"\\name' }, values: [[1761955200, '0'], [1761955260, '12.5'], [1761955320.5, '1e3'], [1761955380, 'NaN'], [1761955440, '+Inf'], [1761955500, '-3'], [1761955560, '0.1234567890123456789']] },
      { metric: {}, values: [] },
      { metric: { pod: 'p-1' }, values: [[1761955200, '7']] },
    ],
  },
}

function expected(): ColumnSeries[] {
  return answer.data.result.map((s) => ({
    metric: s.metric,
    times: Float64Array.from(s.values, (v) => (v[0] as number) * 1000),
    values: Float64Array.from(s.values, (v) => {
      const x = Number(v[1])
      return Number.isFinite(x) ? x : Number.NaN
    }),
  }))
}

describe('parseMatrix', () => {
  it('reads what JSON.parse reads, compact or indented', () => {
    expect(parseMatrix(JSON.stringify(answer))).toEqual(expected())
    expect(parseMatrix(JSON.stringify(answer, null, 2))).toEqual(expected())
    expect(parseMatrix('{"status":"success","data":{"resultType":"matrix","result":[]}}')).toEqual([])
  })

  it('refuses errors, warnings, other result types and truncated text', () => {
    expect(parseMatrix('{"status":"error","errorType":"bad_data","error":"x"}')).toBeUndefined()
    expect(parseMatrix(JSON.stringify({ ...answer, warnings: ['w'] }))).toBeUndefined()
    expect(parseMatrix('{"status":"success","data":{"resultType":"vector","result":[]}}')).toBeUndefined()
    const full = JSON.stringify(answer)
    for (const cut of [20, 90, 130, full.length - 3]) expect(parseMatrix(full.slice(0, cut))).toBeUndefined()
  })

  it('rangeColumns falls back to JSON.parse for an answer it does not scan', async () => {
    const body = JSON.stringify({ ...answer, warnings: ['w'] })
    const c = new PrometheusClient({ url: 'http://x', fetch: (async () => new Response(body, { status: 200 })) as typeof fetch })
    const got: ColumnSeries[] = []
    const r = await c.rangeColumns('up', { startMs: 0, endMs: 60_000, stepMs: 60_000 }, (s) => got.push(...s))
    expect(r.kind).toBe('ok')
    expect(got).toEqual(expected())
    const bad = new PrometheusClient({ url: 'http://x', fetch: (async () => new Response('{"status":"error","errorType":"bad_data","error":"parse error"}', { status: 400 })) as typeof fetch })
    const r2 = await bad.rangeColumns('up{', { startMs: 0, endMs: 60_000, stepMs: 60_000 }, () => undefined)
    expect(r2).toMatchObject({ kind: 'failed' })
    if (r2.kind === 'failed') expect(r2.reason).toContain('parse error')
  })
})

describe('latency read in windows (latencyWindows)', () => {
  // a fake Prometheus: 10 requests per step, 4 under 0.1 s, all under +Inf; nothing for resources
  const fake = (async (input: string | URL | Request) => {
    const u = new URL(String(input))
    const q = u.searchParams.get('query') ?? ''
    const start = Number(u.searchParams.get('start'))
    const end = Number(u.searchParams.get('end'))
    const step = Number(u.searchParams.get('step'))
    const vals = (v: string) => {
      const out: [number, string][] = []
      for (let t = start; t <= end; t += step) out.push([t, v])
      return out
    }
    let result: { metric: Record<string, string>; values: [number, string][] }[] = []
    if (q.includes('by (le)')) result = [{ metric: { le: '0.1' }, values: vals('4') }, { metric: { le: '+Inf' }, values: vals('10') }]
    else if (q.includes('_count') && !q.includes('5..')) result = [{ metric: {}, values: vals('10') }]
    return new Response(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result } }), { status: 200 })
  }) as typeof fetch
  const range = { startMs: 1_000 * 60_000, endMs: 1_200 * 60_000, stepMs: 60_000 }

  it('reads the buckets only in the merged windows and marks the other steps unknown', async () => {
    const windows = [
      { startMs: 1_010 * 60_000 + 5, endMs: 1_020 * 60_000 },
      { startMs: 1_019 * 60_000, endMs: 1_030 * 60_000 },
      { startMs: 1_100 * 60_000, endMs: 1_110 * 60_000 },
    ]
    const src = new PrometheusHistorySource({ url: 'http://x', fetch: fake, latencyWindows: () => windows })
    const full = new PrometheusHistorySource({ url: 'http://x', fetch: fake })
    const w = await src.history({ namespace: 'shop', name: 'cart' }, range)
    const f = await full.history({ namespace: 'shop', name: 'cart' }, range)
    if (w.kind !== 'ok' || f.kind !== 'ok') throw new Error('not read')
    const known = w.history.requests.latencyKnown
    if (known === undefined) throw new Error('no latencyKnown')
    expect(f.history.requests.latencyKnown).toBeUndefined()
    const width = w.history.requests.boundsS.length + 1
    expect(width).toBe(2)
    let n = 0
    for (let i = 0; i < known.length; i++) {
      const row = [...w.history.requests.latency.subarray(i * width, (i + 1) * width)]
      if (known[i] === 1) {
        n += 1
        expect(row).toEqual([...f.history.requests.latency.subarray(i * width, (i + 1) * width)])
        expect(row).toEqual([4, 6])
      } else expect(row).toEqual([0, 0])
    }
    // steps 10..30 (the first two windows merged; the first widened down to the grid) and 100..110
    expect(n).toBe(21 + 11)
    expect(known[9]).toBe(0)
    expect(known[10]).toBe(1)
    expect(known[30]).toBe(1)
    expect(known[31]).toBe(0)
    expect([...w.history.requests.counts]).toEqual([...f.history.requests.counts])
  })
})
