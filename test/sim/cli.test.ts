import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { UsageError, type Io } from '../../src/cli/args.js'
import { command } from '../../src/cli/commands/sim.js'
import { SCENARIOS } from '../../src/sim/index.js'

function capture(): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (s: string) => void (io.stdout += s),
    err: (s: string) => void (io.stderr += s),
  }
  return io
}

describe('pullback sim', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-sim-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const signal = new AbortController().signal

  it('lists every scenario with its expected verdict', async () => {
    const io = capture()
    expect(await command.run(['list'], io, signal)).toBe(0)
    for (const s of SCENARIOS) expect(io.stdout).toMatch(new RegExp(`^${s.name}\\s+${s.expected.replace('+', '\\+')}\\s`, 'm'))
  })

  it('rejects an unknown scenario, a missing one and a bad seed as usage errors', async () => {
    await expect(command.run(['record', 'no-such'], capture(), signal)).rejects.toThrow(UsageError)
    await expect(command.run(['record'], capture(), signal)).rejects.toThrow(/missing SCENARIO/)
    await expect(command.run(['record', 'error-spike', '--seed', 'x'], capture(), signal)).rejects.toThrow(/--seed/)
    await expect(command.run(['frobnicate'], capture(), signal)).rejects.toThrow(UsageError)
    await expect(command.run(['record', 'error-spike', '--span-export', 'random'], capture(), signal)).rejects.toThrow(/--span-export expects aligned or per-pod/)
    await expect(command.run(['record', 'error-spike', '--histograms', 'native'], capture(), signal)).rejects.toThrow(/--histograms expects explicit, exponential, micrometer, spanmetrics/)
  })

  it('records to --out and to stdout identically, with a summary on stderr', async () => {
    const file = join(dir, 'rec.jsonl')
    const a = capture()
    expect(await command.run(['record', 'telemetry-outage', '--seed', '7', '--out', file], a, signal)).toBe(0)
    expect(a.stdout).toBe('')
    expect(a.stderr).toMatch(/telemetry-outage \(seed 7\): \d+ lines, \d+ spans/)
    const b = capture()
    expect(await command.run(['record', 'telemetry-outage', '--seed', '7'], b, signal)).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe(b.stdout)
    expect(b.stdout.split('\n').filter((l) => l !== '').length).toBeGreaterThan(150)
  })

  it('--span-export per-pod writes one span line per pod export, more lines than the fleet-wide batches', async () => {
    const aligned = capture()
    const perPod = capture()
    expect(await command.run(['record', 'telemetry-outage'], aligned, signal)).toBe(0)
    expect(await command.run(['record', 'telemetry-outage', '--span-export', 'per-pod'], perPod, signal)).toBe(0)
    const spanLines = (out: string) => out.split('\n').filter((l) => l.startsWith('{"resourceSpans"'))
    for (const line of spanLines(perPod.stdout)) expect((JSON.parse(line) as { resourceSpans: unknown[] }).resourceSpans).toHaveLength(1)
    expect(spanLines(perPod.stdout).length).toBeGreaterThan(3 * spanLines(aligned.stdout).length)
  })

  it('--histograms exponential writes base-2 exponential duration histograms and no explicit ones', async () => {
    const io = capture()
    expect(await command.run(['record', 'metrics-60s-benign-deploy', '--histograms', 'exponential'], io, signal)).toBe(0)
    expect(io.stdout).toMatch(/"exponentialHistogram":\{"aggregationTemporality":2/)
    expect(io.stdout).not.toMatch(/"explicitBounds"/)
  })

  it("--histograms micrometer writes Micrometer's server timer: http.server.requests in milliseconds, one bucket, Spring's tags", async () => {
    const io = capture()
    expect(await command.run(['record', 'metrics-60s-benign-deploy', '--histograms', 'micrometer'], io, signal)).toBe(0)
    expect(io.stdout).toMatch(/"name":"http.server.requests","unit":"milliseconds"/)
    expect(io.stdout).toMatch(/"key":"outcome","value":\{"stringValue":"SUCCESS"\}/)
    expect(io.stdout).not.toMatch(/"http.server.request.duration"/)
    expect(io.stdout).not.toMatch(/"explicitBounds":\[[0-9]/)
  })

  it("--histograms spanmetrics writes the spanmetrics connector's histogram: ms, its bounds and dimensions, SERVER and CLIENT points, one start time", async () => {
    const io = capture()
    expect(await command.run(['record', 'metrics-60s-benign-deploy', '--histograms', 'spanmetrics'], io, signal)).toBe(0)
    expect(io.stdout).toMatch(/"name":"traces.span.metrics.duration","unit":"ms"/)
    expect(io.stdout).toMatch(/"explicitBounds":\[2,4,6,8,10,50,100,/)
    expect(io.stdout).toMatch(/"key":"span.kind","value":\{"stringValue":"SPAN_KIND_CLIENT"\}/)
    expect(io.stdout).toMatch(/"key":"status.code","value":\{"stringValue":"STATUS_CODE_UNSET"\}/)
    expect(io.stdout).not.toMatch(/"http.server.request.duration"/)
    const starts = new Set([...io.stdout.matchAll(/"name":"traces.span.metrics.duration".*?"startTimeUnixNano":"(\d+)"/g)].map((m) => m[1]))
    expect(starts.size).toBe(1)
  })

  it('fails with exit 1 when --out cannot be written', async () => {
    const io = capture()
    expect(await command.run(['record', 'benign-deploy', '--out', join(dir, 'missing', 'x.jsonl')], io, signal)).toBe(1)
    expect(io.stderr).toMatch(/cannot write/)
  })
})
