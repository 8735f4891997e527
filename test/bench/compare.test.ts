/** bench/compare.ts: two `npm run bench` result files, figure by figure (min / median / max spreads). */
import { describe, expect, it, onTestFinished } from 'vitest'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { atEqualSpeed, baselineDoc, compare, figureKind, InputError, isExtreme, machineSpeed, parseDoc, readReference, render, spreads } from '../../bench/compare.js'

const s = (min: number, median: number, max: number) => ({ min, median, max })

function doc(benches: unknown[]): string {
  return JSON.stringify({ startedAt: '2026-12-03T00:00:00Z', node: 'v20', cpus: 2, benches })
}

describe('bench compare', () => {
  it('finds every min / median / max spread in the JSON lines, named by its path', () => {
    const m = spreads([{ bench: 'engine-tick', full: { maxTurnMs: s(1, 2, 3), counters: { n: 5 } } }, { rate: s(10, 20, 30) }])
    expect([...m.keys()]).toEqual(['0.full.maxTurnMs', '1.rate'])
  })

  it('judges each figure by its medians: within, outside, not comparable; ranges overlap or not', () => {
    const a = parseDoc(doc([{ name: 'engine', kind: 'ran', code: 0, json: [{ p99: s(10, 12, 14), rate: s(100, 110, 120), zero: s(0, 0, 0) }], machine: { busy: 0.5, steal: 0 } }]), 'a')
    const b = parseDoc(doc([{ name: 'engine', kind: 'ran', code: 0, json: [{ p99: s(11, 13, 15), rate: s(40, 50, 60), zero: s(0, 1, 2) }], machine: { busy: 0.9, steal: 0.1 } }]), 'b')
    const c = compare(a, b, 0.2)
    const by = Object.fromEntries(c.rows.map((r) => [r.path, r]))
    expect(by['0.p99']).toMatchObject({ verdict: 'within', overlap: true })
    expect(by['0.rate']).toMatchObject({ verdict: 'outside', overlap: false })
    expect(by['0.rate']?.ratio).toBeCloseTo(50 / 110)
    expect(by['0.zero']?.verdict).toBe('not comparable')
    const text = render(c, 0.2)
    expect(text).toContain('1 of 2 comparable figures within 20 % (1 not comparable)')
    expect(text).toContain('engine: busy 50 % / 90 %, steal 0 % / 10 %')
  })

  it("counts a run's extremes (maxima) apart from the other figures, still judging each", () => {
    expect(['0.full.maxTurnMs', '0.full.eventLoopDelayMaxMs', '0.full.gcMaxMs', '0.full.detectionMaxTurnMs'].map(isExtreme)).toEqual([true, true, true, true])
    expect(['0.full.eventLoopDelayP99Ms', '0.targets.pullback.peakRssMiB', '0.figures.maximal', '0.figures.decodeSpansPerSec'].map(isExtreme)).toEqual([false, false, false, false])
    const a = parseDoc(doc([{ name: 'engine', kind: 'ran', code: 0, json: [{ full: { maxTurnMs: s(10, 13, 16), eventLoopDelayP99Ms: s(9, 10, 11), gcMaxMs: s(8, 9, 10) } }] }]), 'a')
    const b = parseDoc(doc([{ name: 'engine', kind: 'ran', code: 0, json: [{ full: { maxTurnMs: s(12, 19, 28), eventLoopDelayP99Ms: s(9, 10.5, 12), gcMaxMs: s(20, 21, 22) } }] }]), 'b')
    const c = compare(a, b, 0.2)
    expect(c.rows.filter((r) => r.extreme).map((r) => r.path)).toEqual(['0.full.maxTurnMs', '0.full.gcMaxMs'])
    const text = render(c, 0.2)
    expect(text).toContain('1 of 3 comparable figures within 20 %')
    expect(text).toContain("of them 2 a run's extreme")
    expect(text).toContain('0 within 20 %, 1 with ranges overlapping; the other 1: 1 within 20 %')
  })

  it("reads the machine's speed before and after the suite, and a file without it as unknown", () => {
    const withSpeed = parseDoc(JSON.stringify({ machineSpeed: { start: s(90, 100, 110), end: s(110, 120, 130) }, benches: [] }), 'a')
    expect(machineSpeed(withSpeed)).toEqual({ start: 100, end: 120, mean: 110 })
    const onlyEnd = parseDoc(JSON.stringify({ machineSpeed: { end: s(1, 2, 3) }, benches: [] }), 'b')
    expect(machineSpeed(onlyEnd)).toEqual({ start: 2, end: 2, mean: 2 })
    expect(machineSpeed(parseDoc(doc([]), 'c'))).toBeUndefined()
  })

  it('tells rates from times from the rest by the benches\' naming', () => {
    expect(figureKind('0.figures.decodeSpansPerSec')).toBe('rate')
    expect(figureKind('0.figures.fast path, 1 series', 'obs/s')).toBe('rate')
    expect(figureKind('0.figures.window(30s)+p99', 'ms')).toBe('time')
    expect(figureKind('0.figures.110 pods, filled', 'us')).toBe('time')
    expect(figureKind('0.figures.bytes per service-version', 'B')).toBe('other')
    expect(figureKind('0.full.maxTurnMs')).toBe('time')
    expect(figureKind('0.figures.0.cpuSecPerMillion')).toBe('time')
    expect(figureKind('0.figures.cpuSecPerMillionOurs')).toBe('time')
    expect(figureKind('0.targets.pullback.peakRssMiB')).toBe('other')
    expect(figureKind('0.targets.pullback[http2].cpuPerSpanVsCollector')).toBe('other')
    expect(figureKind('0.full.detectionScavenges')).toBe('other')
    // held at the offered load: not a capacity
    expect(figureKind('0.figures.endToEndSpansPerSec')).toBe('other')
    expect(figureKind('0.targets.pullback.sustainedSpansPerSec')).toBe('other')
    expect(figureKind('0.targets.pullback.drainSpansPerSec')).toBe('rate')
    // waits on timers and protocol rounds: left as measured at equal speed
    expect(figureKind('0.figures.killToAssignedMs', undefined, 'failover')).toBe('wait')
    expect(figureKind('0.figures.delayP99Ms', undefined, 'scaleout')).toBe('wait')
    expect(figureKind('0.figures.cpuSecPerMillionOurs', undefined, 'scaleout')).toBe('time')
    expect(figureKind('0.full.maxTurnMs', undefined, 'engine')).toBe('time')
    expect(atEqualSpeed(1.1, 'wait', 1.25)).toBe(1.1)
  })

  it('judges each figure again at equal machine speed: a rate divided by the speed ratio, a time multiplied', () => {
    expect(atEqualSpeed(0.85, 'rate', 0.85)).toBeCloseTo(1)
    expect(atEqualSpeed(1.2, 'time', 1 / 1.2)).toBeCloseTo(1)
    expect(atEqualSpeed(0.7, 'other', 0.5)).toBe(0.7)
    const a = parseDoc(doc([{ name: 'ingest', kind: 'ran', json: [{ decodeSpansPerSec: s(90, 100, 110), cpuSecPerMillion: s(1, 1, 1), peakRssMiB: s(90, 90, 90) }] }]), 'a')
    // the new machine 30 % slower: the rate fell and the CPU cost rose with it, memory did not move
    const b = parseDoc(doc([{ name: 'ingest', kind: 'ran', json: [{ decodeSpansPerSec: s(65, 70, 75), cpuSecPerMillion: s(1.4, 1.43, 1.5), peakRssMiB: s(90, 91, 92) }] }]), 'b')
    const c = compare(a, b, 0.2, undefined, 0.7)
    const by = Object.fromEntries(c.rows.map((r) => [r.path, r]))
    expect(by['0.decodeSpansPerSec']).toMatchObject({ verdict: 'outside', kind: 'rate', atEqualSpeed: { verdict: 'within' } })
    expect(by['0.cpuSecPerMillion']).toMatchObject({ verdict: 'outside', kind: 'time', atEqualSpeed: { verdict: 'within' } })
    expect(by['0.peakRssMiB']).toMatchObject({ verdict: 'within', kind: 'other', atEqualSpeed: { verdict: 'within' } })
    const text = render(c, 0.2)
    expect(text).toContain('1 of 3 comparable figures within 20 %')
    expect(text).toContain('3 of 3 within 20 % at equal machine speed')
    // without both speeds: no second opinion
    expect(compare(a, b, 0.2).rows.every((r) => r.atEqualSpeed === undefined)).toBe(true)
    expect(render(compare(a, b, 0.2), 0.2)).not.toContain('at equal machine speed')
  })

  it('lists benches that did not run in both files instead of comparing them', () => {
    const a = parseDoc(doc([{ name: 'quality', kind: 'ran', json: [] }, { name: 'decisions', kind: 'skipped', reason: 'KAFKA_BROKERS is not set' }]), 'a')
    const b = parseDoc(doc([{ name: 'decisions', kind: 'ran', json: [] }, { name: 'signals', kind: 'ran', json: [] }]), 'b')
    expect(compare(a, b, 0.2).unmatched).toEqual([
      { bench: 'quality', why: 'only in the reference file' },
      { bench: 'decisions', why: 'skipped in the reference file' },
      { bench: 'signals', why: 'only in the new file' },
    ])
  })

  it('bad input fails with the file named and what is wrong', () => {
    expect(() => parseDoc('{', 'r.json')).toThrow(InputError)
    expect(() => parseDoc('{', 'r.json')).toThrow(/^r\.json: not JSON/)
    expect(() => parseDoc('{"x": 1}', 'r.json')).toThrow('r.json: no "benches" array')
    expect(() => parseDoc('{"benches": [{"name": 3}]}', 'r.json')).toThrow('r.json: benches[0]: needs a string "name"')
  })
  it('judges a run against the newest record by name, a named file, or none; a bad file fails at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullback-records-'))
    expect(readReference(undefined, dir)).toBeUndefined()
    expect(readReference(undefined, join(dir, 'absent'))).toBeUndefined()
    writeFileSync(join(dir, '2026-12-04.json'), doc([]))
    writeFileSync(join(dir, '2026-12-05.json'), JSON.stringify({ startedAt: 'newest', benches: [] }))
    writeFileSync(join(dir, 'notes.txt'), 'not a record')
    expect(readReference(undefined, dir)).toMatchObject({ file: join(dir, '2026-12-05.json'), doc: { startedAt: 'newest' } })
    expect(readReference(join(dir, '2026-12-04.json'), dir)?.doc.startedAt).toBe('2026-12-03T00:00:00Z')
    expect(readReference('none', dir)).toBeUndefined()
    expect(() => readReference(join(dir, 'missing.json'), dir)).toThrow(InputError)
    writeFileSync(join(dir, 'bad.json'), '{"benches": 3}')
    expect(() => readReference(join(dir, 'bad.json'), dir)).toThrow(InputError)
  })

  it("reads a run's baseline (npm run bench -- --baseline) as a document, and compares the run with it", () => {
    const run = parseDoc(
      JSON.stringify({
        startedAt: 'then',
        commit: 'head',
        machineSpeed: { start: s(80, 80, 80) },
        benches: [{ name: 'engine', kind: 'ran', json: [{ p99: s(10, 12, 14) }] }],
        baseline: { commit: 'base', benches: [{ name: 'engine', kind: 'ran', json: [{ p99: s(9, 10, 11) }] }] },
      }),
      'r.json',
    )
    const base = baselineDoc(run, 'r.json')
    expect(base).toMatchObject({ commit: 'base', startedAt: 'then', machineSpeed: { start: { median: 80 } } })
    expect(compare(base, run, 0.2).rows[0]).toMatchObject({ path: '0.p99', verdict: 'within' })
    expect(() => baselineDoc(parseDoc(doc([]), 'plain.json'), 'plain.json')).toThrow('plain.json: no "baseline"')
    expect(() => baselineDoc(parseDoc(JSON.stringify({ benches: [], baseline: { benches: [{ name: 1 }] } }), 'x.json'), 'x.json')).toThrow(/x\.json \(its baseline\): benches\[0\]/)

    // the compiled tool: `compare.js FILE --baseline` (exit 1: a figure outside), and without a baseline exit 2
    const tool = join(process.env.PULLBACK_DIST ?? fileURLToPath(new URL('../../dist', import.meta.url)), 'bench', 'compare.js')
    expect(existsSync(tool), `${tool} is missing: run \`npm run build\` first`).toBe(true)
    const dir = mkdtempSync(join(tmpdir(), 'pullback-compare-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const slower = JSON.stringify({ commit: 'head', benches: [{ name: 'engine', kind: 'ran', json: [{ p99: s(20, 20, 20) }] }], baseline: { commit: 'base', benches: [{ name: 'engine', kind: 'ran', json: [{ p99: s(10, 10, 10) }] }] } })
    writeFileSync(join(dir, 'slower.json'), slower)
    const r = spawnSync(process.execPath, [tool, join(dir, 'slower.json'), '--baseline'], { encoding: 'utf8', timeout: 30_000 })
    expect(r.status, r.stderr).toBe(1)
    expect(r.stdout).toContain('against its baseline base')
    expect(r.stdout).toContain('0 of 1 comparable figures within 20 %')
    writeFileSync(join(dir, 'plain.json'), doc([]))
    const p = spawnSync(process.execPath, [tool, join(dir, 'plain.json'), '--baseline'], { encoding: 'utf8', timeout: 30_000 })
    expect(p.status).toBe(2)
    expect(p.stderr).toContain('no "baseline"')
  })
})
