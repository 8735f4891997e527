/**
 * memoryMaxOr (src/calibrate/prometheus.ts) computes the default memory template's answer from its
 * two raw selectors; checked here against a REAL Prometheus evaluating the template itself, on
 * series made to exercise it: several series per (pod, container) (max), a gap, NaN samples, a
 * kubeletstats pod-level series for a pod cAdvisor also reports (dropped by `or` where cAdvisor has
 * a value, kept in its gap) and for one it does not (kept), a series without a pod.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_TEMPLATES, expand, memoryMaxOr, PrometheusClient, RAW_MEMORY, type ColumnSeries } from '../../src/calibrate/prometheus.js'
import { findBinary, servePrometheus } from './prometheus-fixture.js'

const have = findBinary('prometheus') !== undefined && findBinary('promtool') !== undefined
const ci = process.env.CI === 'true' || process.env.CI === '1'
const STEP = 60_000
const END = Math.floor((Date.now() - 3_600_000) / 3_600_000) * 3_600_000
const START = END - 3 * 3_600_000

function openMetrics(): string {
  const lines: string[] = ['# TYPE container_memory_working_set_bytes gauge']
  const cad = (l: string, f: (i: number) => number | undefined) => {
    for (let t = START, i = 0; t <= END; t += STEP, i++) {
      const v = f(i)
      if (v !== undefined) lines.push(`container_memory_working_set_bytes{namespace="shop",container="cart",${l}} ${Number.isNaN(v) ? 'NaN' : v} ${t / 1000}`)
    }
  }
  // pod a: two series (two cgroup ids), the max changes sides; a NaN now and then
  cad('pod="a",id="1"', (i) => (i % 17 === 5 ? Number.NaN : 100 + (i % 7)))
  cad('pod="a",id="2"', (i) => 103 + (i % 5) - (i % 3))
  // pod b: a gap of 20 minutes (past the 5 m lookback)
  cad('pod="b",id="1"', (i) => (i > 60 && i < 80 ? undefined : 200 + i))
  // no pod label
  cad('id="9"', (i) => 50 + i)
  lines.push('# TYPE k8s_pod_memory_working_set_bytes gauge')
  const kub = (pod: string, f: (i: number) => number, extra = '') => {
    for (let t = START, i = 0; t <= END; t += STEP, i++) lines.push(`k8s_pod_memory_working_set_bytes{k8s_namespace_name="shop",k8s_deployment_name="cart",k8s_pod_name="${pod}"${extra}} ${f(i)} ${t / 1000}`)
  }
  kub('b', (i) => 900 + i)
  kub('c', (i) => 300 + (i % 11))
  // the same label set as cAdvisor's pod b once relabelled: `or` drops it where cAdvisor has b, keeps it in b's gap
  kub('b', (i) => 5000 + i, ',container="cart"')
  lines.push('# EOF')
  return `${lines.join('\n')}\n`
}

describe.skipIf(!have && !ci)('the default memory template evaluated from raw series', () => {
  let dir = ''
  let prom: Awaited<ReturnType<typeof servePrometheus>> | undefined

  beforeAll(async () => {
    if (!have) throw new Error('CI: prometheus/promtool not found; install the Debian package `prometheus` (.ci/run does)')
    dir = mkdtempSync(join(tmpdir(), 'pullback-memq-'))
    writeFileSync(join(dir, 'in.om'), openMetrics())
    await promisify(execFile)(findBinary('promtool') as string, ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', join(dir, 'in.om'), join(dir, 'data')])
    prom = await servePrometheus(join(dir, 'data'), { configDir: dir })
  }, 60_000)

  afterAll(async () => {
    await prom?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('answers what Prometheus answers for the template, chunk by chunk', async () => {
    const client = new PrometheusClient({ url: prom!.url })
    const vars = { namespace: 'shop', service: 'cart', step: '60s', selector: '' }
    const range = { startMs: START - 30 * 60_000, endMs: END + 10 * 60_000, stepMs: STEP }
    const read = async (q: string, maxPoints: number) => {
      const chunks: ColumnSeries[][] = []
      const a = await client.rangeColumns(q, range, (s) => void chunks.push(s), undefined, maxPoints)
      expect(a.kind).toBe('ok')
      return chunks
    }
    for (const maxPoints of [10_000, 50]) {
      const want = await read(expand(DEFAULT_TEMPLATES.memory, vars), maxPoints)
      const ra = await read(expand(RAW_MEMORY[0], vars), maxPoints)
      const rb = await read(expand(RAW_MEMORY[1], vars), maxPoints)
      expect(ra.length).toBe(want.length)
      const got = want.map((_, i) => memoryMaxOr(ra[i] ?? [], rb[i] ?? []))
      const plain = (cs: ColumnSeries[][]) => cs.map((c) => c.map((s) => ({ metric: s.metric, times: [...s.times], values: [...s.values].map((v) => (Number.isNaN(v) ? 'NaN' : v)) })))
      expect(plain(got)).toEqual(plain(want))
      // the data exercises every branch: several pods, a pod from kubeletstats only, one without a pod
      expect(new Set(want.flat().map((s) => s.metric.pod ?? '-'))).toEqual(new Set(['a', 'b', 'c', '-']))
      expect(want.flat().some((s) => s.metric.pod === 'b' && s.metric.container === 'cart' && s.values.some((v) => v >= 5000))).toBe(true)
      expect(want.flat().some((s) => s.metric.pod === 'b' && s.metric.container === 'cart' && s.values.some((v) => v < 5000))).toBe(true)
    }
  }, 60_000)
})
