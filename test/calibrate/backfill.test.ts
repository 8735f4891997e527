/**
 * The streamed backfill writer (backfill.ts) writes the same samples as the per-2 h writer of the
 * fixture (writeOpenMetrics), whatever its block length: the generators carried over from block to
 * block and the memory generator jumped to a block's first draw (rngAt) give the same numbers.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { streamBlocks, type Svc } from './backfill.js'
import { writeOpenMetrics } from './prometheus-fixture.js'
import { rng, rngAt } from './synthetic.js'

const DAY = 86_400_000
const HOUR = 3_600_000
const END = Date.UTC(2026, 10, 1, 7)
const services: Svc[] = [
  { namespace: 'shop', name: 'cart', rps: 20, errorRatio: 0.005, medianS: 0.04, sigma: 0.6, noisyHours: 0.05, pods: 2, memoryBytes: 200e6, memoryRequestBytes: 256e6, fromMs: END - 2 * DAY },
  { namespace: 'shop', name: 'search', rps: 8, errorRatio: 0.05, medianS: 0.05, sigma: 0.5, noisyHours: 0.6, noisyMinutes: 20, noisyErrors: 8, noisyLatency: 2, pods: 3, memoryBytes: 300e6, memoryRequestBytes: 512e6, fromMs: END - 2 * DAY },
  { namespace: 'pay', name: 'ledger', rps: 5, errorRatio: 0.002, medianS: 0.08, sigma: 0.4, noisyHours: 0.02, pods: 2, memoryBytes: 400e6, memoryRequestBytes: 300e6, fromMs: END - DAY - 7 * 60_000 },
]

/** every sample as `series value ms`, sorted; checks each series is in time order within a file */
function samples(files: string[]): string[] {
  const out: string[] = []
  for (const f of files) {
    const last = new Map<string, number>()
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (line === '' || line.startsWith('#')) continue
      const m = /^(\S+) (\S+) (\S+)$/.exec(line)
      if (m === null) throw new Error(`bad line ${line}`)
      const ms = Math.round(Number(m[3]) * 1000)
      const prev = last.get(m[1] as string)
      if (prev !== undefined && prev >= ms) throw new Error(`out of order in ${f}: ${line}`)
      last.set(m[1] as string, ms)
      out.push(`${m[1]} ${Number(m[2])} ${ms}`)
    }
  }
  return out.sort()
}

/** bench/tsdb-ingest's input (main.go) back to `series value ms` lines, the series as the text names it */
function decode(buf: Buffer): string[] {
  const out: string[] = []
  let o = 0
  while (o < buf.length) {
    const ll = buf.readUInt32LE(o)
    const parts = buf.subarray(o + 4, o + 4 + ll).toString('utf8').split('\0')
    o += 4 + ll
    const start = Number(buf.readBigInt64LE(o))
    const step = Number(buf.readBigInt64LE(o + 8))
    const n = buf.readUInt32LE(o + 16)
    o += 20
    const l: string[] = []
    for (let i = 2; i < parts.length; i += 2) l.push(`${parts[i]}="${parts[i + 1]}"`)
    const series = `${parts[1]}{${l.join(',')}}`
    for (let i = 0; i < n; i++) out.push(`${series} ${buf.readDoubleLE(o + 8 * i)} ${start + i * step}`)
    o += 8 * n
  }
  return out.sort()
}

describe('streamed backfill writer', () => {
  const dirs: string[] = []
  // the per-2 h writer's samples, computed once
  let ref: string[] | undefined
  const reference = (): string[] => {
    if (ref === undefined) {
      const a = mkdtempSync(join(tmpdir(), 'pullback-bf-a-'))
      dirs.push(a)
      ref = samples(writeOpenMetrics(a, services, END, 60_000, 7))
    }
    return ref
  }
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('rngAt(seed, n) continues rng(seed) after n draws', () => {
    const r = rng(12345)
    for (let i = 0; i < 1000; i++) r()
    const j = rngAt(12345, 1000)
    for (let i = 0; i < 10; i++) expect(j()).toBe(r())
  })

  for (const blockH of [54, 6]) {
    it(`writes the samples of writeOpenMetrics, cut into ${blockH} h blocks, each file inside one block`, async () => {
      const b = mkdtempSync(join(tmpdir(), 'pullback-bf-b-'))
      dirs.push(b)
      const want = reference()
      const got: string[] = []
      const seen: number[] = []
      const oneBlock = (s: string[]) => {
        // one block per file: promtool aligns blocks to multiples of their length
        expect(new Set(s.map((x) => Math.floor(Number(x.split(' ')[2]) / (blockH * HOUR)))).size).toBe(1)
      }
      const res = await streamBlocks({ services, endMs: END, stepMs: 60_000, seed: 7, blockMs: blockH * HOUR }, {
        kind: 'text',
        om: b,
        ingest: async (file, block) => {
          const s = samples([file])
          seen.push(block)
          oneBlock(s)
          for (const x of s) got.push(x)
        },
      })
      expect(readdirSync(b)).toEqual([])
      expect(seen).toEqual(Array.from({ length: res.blocks }, (_, i) => i))
      expect(got.sort()).toEqual(want)
      expect(res.peakTextBytes).toBeGreaterThan(0)
      // the binary stream for bench/tsdb-ingest holds the same samples
      const bin: string[] = []
      const ends: number[] = []
      await streamBlocks({ services, endMs: END, stepMs: 60_000, seed: 7, blockMs: blockH * HOUR }, {
        kind: 'binary',
        open: (block) => {
          const chunks: Buffer[] = []
          let end: () => void = () => undefined
          const done = new Promise<void>((r) => (end = r)).then(() => {
            const s = decode(Buffer.concat(chunks))
            oneBlock(s)
            for (const x of s) bin.push(x)
            ends.push(block)
          })
          return { write: async (x) => void chunks.push(x), end: () => end(), done }
        },
      })
      expect(ends.length).toBe(res.blocks)
      expect(bin.sort()).toEqual(want)
    }, 60_000)
  }
})
