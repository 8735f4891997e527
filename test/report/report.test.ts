import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { SignalName, SignalReading, SignalState, Verdict } from '../../src/engine/verdict.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { loadConfig } from '../../src/config/load.js'
import { renderReport } from '../../src/report/html.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import type { DeploymentTimeline, ReportInput, TickRecord } from '../../src/report/model.js'

const T0 = Date.UTC(2026, 0, 15, 9, 4, 0)

function readingAt(signal: SignalName, sec: number, bad: boolean): SignalReading {
  const wave = Math.sin(sec / 17)
  let value = 0
  let baseline = 0
  let threshold = 0
  let state: SignalState = 'healthy'
  switch (signal) {
    case 'error_rate':
      baseline = 0.002
      threshold = 0.02
      value = bad && sec > 5 ? 0.2 + 0.01 * wave : 0.002 + 0.001 * wave
      break
    case 'latency':
      baseline = 160
      threshold = 240
      value = bad && sec > 5 ? 2050 + 40 * wave : 160 + 10 * wave
      break
    case 'resource':
      baseline = 0.001
      threshold = 0.02
      value = 0.002 + 0.001 * wave
      break
    case 'probe':
      value = 0
      threshold = 0
      break
  }
  if (sec < 0 && signal !== 'probe') state = 'healthy'
  if (bad && sec > 35 && (signal === 'error_rate' || signal === 'latency')) state = 'breach'
  if (sec >= 0 && sec < 10) state = 'insufficient'
  return { signal, state, mode: 'enforce', value, baseline, threshold, samples: Math.max(0, 600 + Math.round(sec)), critical: false }
}

function ticks(from: number, to: number, deployedAt: number, bad: (sec: number) => boolean): TickRecord[] {
  const out: TickRecord[] = []
  for (let s = from; s <= to; s += 5) {
    const signals = (['error_rate', 'latency', 'resource', 'probe'] as const).map((n) => readingAt(n, s, bad(s)))
    out.push({ t: deployedAt + s * 1000, status: signals.some((r) => r.state === 'breach') ? 'breach' : 'healthy', signals })
  }
  return out
}

function verdict(kind: Verdict['kind'], decidedAt: number, tl: Pick<DeploymentTimeline, 'version' | 'baselineVersion' | 'deployedAt'>, signals: SignalReading[]): Verdict {
  return {
    kind,
    dryRun: false,
    id: `v-${kind}`,
    deploymentId: 'd-1',
    namespace: 'shop',
    service: 'checkout',
    version: tl.version,
    baselineVersion: tl.baselineVersion,
    baselineSource: 'snapshot',
    deployedAt: tl.deployedAt,
    decidedAt,
    reason: `${kind}: error_rate and latency breached for the whole 30 s window <script>alert(1)</script>`,
    signals,
  }
}

export function syntheticReport(): ReportInput {
  const deploy: DeploymentTimeline = {
    deploymentId: 'd-1',
    namespace: 'shop',
    service: 'checkout',
    version: 'v1.5.0',
    baselineVersion: 'v1.4.0',
    deployedAt: T0,
    kind: 'deploy',
    ticks: ticks(-60, 100, T0, () => true),
    verdicts: [],
  }
  deploy.verdicts.push(verdict('rollback', T0 + 70_000, deploy, deploy.ticks[deploy.ticks.length - 7]!.signals))
  const rbAt = T0 + 100_000
  const rollback: DeploymentTimeline = {
    deploymentId: 'd-2',
    namespace: 'shop',
    service: 'checkout',
    version: 'v1.4.0',
    baselineVersion: 'v1.4.0',
    deployedAt: rbAt,
    kind: 'rollback',
    ticks: ticks(0, 150, rbAt, () => true),
    verdicts: [],
  }
  rollback.verdicts.push({ ...verdict('not-recovered', rbAt + 120_000, rollback, rollback.ticks[24]!.signals), restoredVersion: 'v1.4.0' })
  const benign: DeploymentTimeline = {
    deploymentId: 'd-3',
    namespace: 'shop',
    service: 'cart',
    version: 'v3.3.0',
    baselineVersion: 'v3.2.1',
    deployedAt: T0 + 30_000,
    kind: 'deploy',
    ticks: ticks(-30, 200, T0 + 30_000, () => false),
    verdicts: [],
  }
  return { title: 'pullback replay: test & <report>', source: 'scenario.jsonl', generatedAt: T0 + 600_000, timelines: [deploy, rollback, benign], input: { lines: 217, spans: 64995, metricPoints: 3650, malformed: 0 } }
}

interface Chart {
  signal: string
  body: string
}

function charts(html: string): Chart[] {
  return [...html.matchAll(/<svg class="chart" data-signal="(\w+)"[\s\S]*?<\/svg>/g)].map((m) => ({ signal: m[1]!, body: m[0] }))
}

function pathPoints(body: string, cls: string): number {
  const m = new RegExp(`<path class="${cls}" d="([^"]*)"`).exec(body)
  if (m === null) return -1
  return (m[1]!.match(/[ML]-?\d/g) ?? []).length
}

function checkCharts(html: string): void {
  const found = charts(html)
  // three timelines x four signals
  expect(found).toHaveLength(12)
  for (const c of found) {
    expect(pathPoints(c.body, 'series'), c.signal).toBeGreaterThan(10)
    expect(c.body).not.toMatch(/NaN|Infinity/)
    if (c.signal !== 'probe') {
      expect(pathPoints(c.body, 'baseline'), c.signal).toBeGreaterThan(10)
      expect(pathPoints(c.body, 'threshold'), c.signal).toBeGreaterThan(10)
    }
    expect(c.body).toContain('class="marker marker-deploy"')
  }
  expect(html).toContain('marker-decision')
  expect(html).toContain('marker-recovery')
  expect(html).toMatch(/class="state state-breach"/)
  expect(html).toMatch(/class="state state-insufficient"/)
}

describe('renderReport (static)', () => {
  const html = renderReport(syntheticReport())

  it('draws four charts per timeline with value, baseline and threshold lines', () => {
    checkCharts(html)
  })

  it('is self-contained and escapes what it prints', () => {
    expect(html).not.toMatch(/<script|<link|@import|url\(|src=|href=/i)
    expect(html).not.toMatch(/https?:\/\//)
    expect(html).toContain('&#60;script&#62;alert(1)')
    expect(html).toContain('<table class="verdicts">')
    expect(html).toContain('not-recovered')
  })

  it('says so when nothing was watched', () => {
    const empty = renderReport({ title: 't', source: 's', generatedAt: 0, timelines: [], input: {} })
    expect(empty).toContain('No deployment was watched')
    expect(charts(empty)).toHaveLength(0)
  })
})

describe('renderReport of a real replay', () => {
  it('draws the deployment and the recovery verification of a recorded scenario', async () => {
    const lines = await recordToLines(findScenario('error-spike-rolled-back')!)
    const quiet = { out: () => undefined, err: () => undefined }
    const res = await replayLines(lines, loadConfig(undefined), quiet, { recordTimeline: true }, 'error-spike-rolled-back.jsonl')
    expect(res.report).toBeDefined()
    const html = renderReport(res.report!)
    const sections = [...html.matchAll(/<section class="timeline"[^>]*data-kind="(\w+)"/g)].map((m) => m[1])
    expect(sections).toEqual(['deploy', 'rollback'])
    const found = charts(html)
    expect(found).toHaveLength(8)
    const requestCharts = found.filter((x) => x.signal === 'error_rate' || x.signal === 'latency')
    // the deployment's watch ends at the decision, right after its first full window; the verification runs longer
    for (const c of requestCharts.slice(0, 2)) expect(pathPoints(c.body, 'series')).toBeGreaterThanOrEqual(1)
    for (const c of requestCharts.slice(2)) expect(pathPoints(c.body, 'series')).toBeGreaterThan(5)
    expect(html).toContain('marker-decision')
    expect(html).toContain('marker-recovery')
    expect(html).toMatch(/kind-rollback">rollback/)
    expect(html).toMatch(/kind-recovered">recovered/)
    // the sequential evidence beside each request signal: a curve and its bound 1/alpha
    const evidence = [...html.matchAll(/<svg class="evidence" data-signal="(\w+)"[\s\S]*?<\/svg>/g)]
    expect(evidence.map((m) => m[1])).toEqual(expect.arrayContaining(['error_rate', 'latency']))
    for (const m of evidence) {
      expect(m[0]).toContain('class="evidence-bound"')
      expect(pathPoints(m[0], 'evidence-series')).toBeGreaterThanOrEqual(1)
    }
  })
})

describe('the evidence curve', () => {
  it('breaks where a reading has no evidence (a gap), as the value curve does, instead of joining across it', () => {
    const input = syntheticReport()
    const tl = input.timelines[0]!
    // evidence on the error rate from +10 s, none from +40 s to +55 s (insufficient data), then again
    tl.ticks = tl.ticks.map((k) => {
      const sec = (k.t - tl.deployedAt) / 1000
      const gap = sec >= 40 && sec <= 55
      return { ...k, signals: k.signals.map((r) => (r.signal === 'error_rate' && sec >= 10 && !gap ? { ...r, evidence: 2 ** (sec / 10), evidenceBound: 1000 } : r)) }
    })
    tl.verdicts = []
    const html = renderReport({ ...input, timelines: [tl] })
    const ev = /<svg class="evidence" data-signal="error_rate"[\s\S]*?<\/svg>/.exec(html)![0]
    const d = /<path class="evidence-series" d="([^"]*)"/.exec(ev)![1]!
    // two runs: +10..+35 s (6 readings) and +60..+100 s (9)
    expect(d.match(/M/g)).toHaveLength(2)
    expect(pathPoints(ev, 'evidence-series')).toBe(15)
  })
})

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p))
const underCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'
if (CHROMIUM === undefined && !underCi) {
  console.warn('report.test: chromium not found (apt-get install -y chromium); the browser test is skipped')
}

describe.skipIf(CHROMIUM === undefined && !underCi)('renderReport in headless Chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-report-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const run = (args: string[]) => {
    if (CHROMIUM === undefined) throw new Error('chromium is required under CI: apt-get install -y chromium')
    const flags = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      `--user-data-dir=${join(dir, 'profile')}`,
    ]
    const r = spawnSync(CHROMIUM, [...flags, ...args], { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * 1024 * 1024 })
    if (r.error !== undefined) throw r.error
    return r
  }

  it('renders the charts (every expected SVG path has points) and a screenshot', () => {
    const file = join(dir, 'report.html')
    writeFileSync(file, renderReport(syntheticReport()))
    const dom = run(['--dump-dom', `file://${file}`])
    expect(dom.status, dom.stderr).toBe(0)
    // the DOM as the browser parsed it, serialized back: the charts survived parsing intact
    expect(dom.stdout).toContain('<svg class="chart"')
    checkCharts(dom.stdout)
    const png = process.env.PULLBACK_REPORT_PNG ?? join(dir, 'report.png')
    const shot = run([`--screenshot=${png}`, '--window-size=1300,1900', '--hide-scrollbars', `file://${file}`])
    expect(shot.status, shot.stderr).toBe(0)
    const bytes = readFileSync(png)
    expect(bytes.subarray(1, 4).toString()).toBe('PNG')
    expect(bytes.length).toBeGreaterThan(20_000)
  })
})
