/**
 * Streamed, chunked promtool backfill of synthetic history (test/calibrate/synthetic.ts), shaped as a
 * long-running Prometheus holds it after compaction: one OpenMetrics file per TSDB block of
 * `blockMs` (default 54 h: the largest compaction range of a Prometheus whose
 * `--storage.tsdb.max-block-duration` is 3 days or more, i.e. retention >= 30 days), each written,
 * handed to `promtool tsdb create-blocks-from openmetrics --max-block-duration=...` (a hidden flag
 * of 2.42; promtool aligns blocks to multiples of the block length from the epoch, as this writer
 * cuts them) and deleted before the next-but-one is written: the text on disk is at most two
 * blocks' (one being read by promtool while the next is written). promtool 2.42 parses its whole
 * input once per block it writes, so a file holding one block is read once.
 *
 * Each service keeps its generator between blocks (the request generator is sequential; the memory
 * readings' generator is jumped to the block's first draw, `rngAt`), so the whole history is
 * generated once. The samples are those of the per-2 h writer (writeOpenMetrics in
 * prometheus-fixture.ts, checked equal by test/calibrate/backfill.test.ts) and of bench/promsim.ts.
 *
 * `ensureBackfill(dir, spec)`: DIR/manifest.json names the spec (services, days, seed, end, step,
 * block); a complete manifest of the same spec is reused as it is; an incomplete one (a killed run)
 * is resumed at the first block not recorded as done (blocks promtool wrote after it are removed);
 * a different spec is refused (never deletes someone's TSDB).
 */
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { BOUNDS_S, memoryAt, rngAt, steps, type Step, type SynthService } from './synthetic.js'

export const HOUR_MS = 3_600_000
/** Prometheus' compaction ranges: 2 h x 3^k; with max-block-duration >= 54 h (retention >= 22.5 d) the largest is 54 h */
export const BLOCK_54H_MS = 54 * HOUR_MS

export type Svc = SynthService & { fromMs: number }

function labels(l: Record<string, string>): string {
  return `{${Object.entries(l).map(([k, v]) => `${k}="${v}"`).join(',')}}`
}

function pairs(l: Record<string, string>): string[] {
  return Object.entries(l).flat()
}

const HIST = 'http_server_request_duration_seconds'
const W = BOUNDS_S.length + 1

/** One service's generators and running counters, carried from block to block. */
class ServiceStream {
  private readonly it: Generator<Step>
  private pending: Step | undefined
  private done = false
  /** per status (200, 500): cumulative per bucket (non-cumulative over buckets), total, sum */
  private readonly cum = [new Array<number>(W).fill(0), new Array<number>(W).fill(0)]
  private readonly total = [0, 0]
  private readonly sumS = [0, 0]
  private readonly bucketLabels: string[][]
  private readonly bucketPairs: string[][][]
  private readonly plain: string[]
  private readonly plainPairs: string[][]
  private readonly podLabels: string[]
  private readonly podPairs: string[][]
  private readonly reqLabels: string[]
  private readonly reqPairs: string[][]
  /** steps from fromMs to endMs (the memory generator draws 2 per step, pod after pod) */
  private readonly n: number

  constructor(
    readonly s: Svc,
    private readonly k: number,
    private readonly endMs: number,
    private readonly stepMs: number,
    private readonly seed: number,
  ) {
    this.it = steps(s, s.fromMs, endMs, stepMs, seed + k)
    const job = `${s.namespace}/${s.name}`
    const les = [...BOUNDS_S.map((b) => String(b)), '+Inf']
    this.bucketLabels = ['200', '500'].map((st) => les.map((le) => labels({ job, http_response_status_code: st, le })))
    this.bucketPairs = ['200', '500'].map((st) => les.map((le) => pairs({ job, http_response_status_code: st, le })))
    this.plain = ['200', '500'].map((st) => labels({ job, http_response_status_code: st }))
    this.plainPairs = ['200', '500'].map((st) => pairs({ job, http_response_status_code: st }))
    this.podLabels = []
    this.podPairs = []
    this.reqLabels = []
    this.reqPairs = []
    for (let p = 0; p < s.pods; p++) {
      const pod = `${s.name}-7d4b9c8f6d-${String(p).padStart(5, 'x')}`
      this.podLabels.push(labels({ namespace: s.namespace, pod, container: s.name }))
      this.podPairs.push(pairs({ namespace: s.namespace, pod, container: s.name }))
      this.reqLabels.push(labels({ namespace: s.namespace, pod, container: s.name, resource: 'memory', unit: 'byte' }))
      this.reqPairs.push(pairs({ namespace: s.namespace, pod, container: s.name, resource: 'memory', unit: 'byte' }))
    }
    this.n = s.fromMs <= endMs ? Math.floor((endMs - s.fromMs) / stepMs) + 1 : 0
  }

  /** the request steps with timeMs < toMs (in order), advancing the counters */
  private take(toMs: number): Step[] {
    const out: Step[] = []
    for (;;) {
      if (this.pending === undefined) {
        if (this.done) break
        const r = this.it.next()
        if (r.done === true) {
          this.done = true
          break
        }
        this.pending = r.value
      }
      if (this.pending.timeMs >= toMs) break
      out.push(this.pending)
      this.pending = undefined
    }
    return out
  }

  /** advance over [.., toMs) without writing (resuming a killed backfill) */
  skip(toMs: number): void {
    for (const st of this.take(toMs)) this.accumulate(st)
  }

  private accumulate(st: Step): void {
    // errors take the fastest requests (as writeOpenMetrics)
    for (let s = 0; s < 2; s++) {
      const cum = this.cum[s] as number[]
      let errLeft = st.errors
      for (let j = 0; j < st.buckets.length; j++) {
        const b = st.buckets[j] as number
        const e = Math.min(errLeft, b)
        errLeft -= e
        const n = s === 1 ? e : b - e
        cum[j] = (cum[j] as number) + n
        this.total[s] = (this.total[s] as number) + n
        this.sumS[s] = (this.sumS[s] as number) + n * (j < BOUNDS_S.length ? (BOUNDS_S[j] as number) : 10)
      }
    }
  }

  /** the histogram family's series for [.., toMs): per status, bucket by bucket (+Inf last), count, sum */
  histogram(toMs: number): Series[] {
    const rows = this.take(toMs)
    const m = rows.length
    if (m === 0) return []
    // per status: per row the bucket values (cumulative over buckets: `le`), the +Inf/count and the sum
    const vals = [new Float64Array(m * W), new Float64Array(m * W)]
    const sums = [new Float64Array(m), new Float64Array(m)]
    for (let i = 0; i < m; i++) {
      this.accumulate(rows[i] as Step)
      for (let s = 0; s < 2; s++) {
        const cum = this.cum[s] as number[]
        const v = vals[s] as Float64Array
        let c = 0
        for (let j = 0; j < BOUNDS_S.length; j++) {
          c += cum[j] as number
          v[i * W + j] = c
        }
        v[i * W + BOUNDS_S.length] = this.total[s] as number
        // the text writer prints toFixed(3): the stored value is that one
        ;(sums[s] as Float64Array)[i] = Number((this.sumS[s] as number).toFixed(3))
      }
    }
    const startMs = (rows[0] as Step).timeMs
    const out: Series[] = []
    for (let s = 0; s < 2; s++) {
      const v = vals[s] as Float64Array
      for (let j = 0; j < W; j++) {
        const col = new Float64Array(m)
        for (let i = 0; i < m; i++) col[i] = v[i * W + j] as number
        out.push({ name: `${HIST}_bucket`, labels: (this.bucketLabels[s] as string[])[j] as string, pairs: (this.bucketPairs[s] as string[][])[j] as string[], startMs, stepMs: this.stepMs, values: col })
      }
      const cnt = new Float64Array(m)
      for (let i = 0; i < m; i++) cnt[i] = v[i * W + BOUNDS_S.length] as number
      out.push({ name: `${HIST}_count`, labels: this.plain[s] as string, pairs: this.plainPairs[s] as string[], startMs, stepMs: this.stepMs, values: cnt })
      out.push({ name: `${HIST}_sum`, labels: this.plain[s] as string, pairs: this.plainPairs[s] as string[], startMs, stepMs: this.stepMs, values: sums[s] as Float64Array, fixed3: true })
    }
    return out
  }

  /** the memory gauge's series for [fromMs, toMs) */
  memory(fromMs: number, toMs: number): Series[] {
    const s = this.s
    const first = Math.max(s.fromMs, s.fromMs + Math.ceil((fromMs - s.fromMs) / this.stepMs) * this.stepMs)
    if (first > this.endMs || first >= toMs) return []
    const i0 = (first - s.fromMs) / this.stepMs
    const m = Math.floor((Math.min(this.endMs, toMs - 1) - first) / this.stepMs) + 1
    const out: Series[] = []
    for (let p = 0; p < s.pods; p++) {
      // writeOpenMetrics draws pod after pod, 2 per reading (normal())
      const r = rngAt((this.seed + this.k) ^ 0x5eed, 2 * (p * this.n + i0))
      const values = new Float64Array(m)
      for (let i = 0; i < m; i++) values[i] = Math.round(memoryAt(s, p, first + i * this.stepMs, r))
      out.push({ name: 'container_memory_working_set_bytes', labels: this.podLabels[p] as string, pairs: this.podPairs[p] as string[], startMs: first, stepMs: this.stepMs, values })
    }
    return out
  }

  /** the memory request gauge's series for [fromMs, toMs): one sample every 5 steps (at most 240 s) */
  requests(fromMs: number, toMs: number): Series[] {
    const s = this.s
    const every = Math.min(5 * this.stepMs, 240_000)
    const first = Math.max(s.fromMs, s.fromMs + Math.ceil((fromMs - s.fromMs) / every) * every)
    if (first > this.endMs || first >= toMs) return []
    const m = Math.floor((Math.min(this.endMs, toMs - 1) - first) / every) + 1
    const out: Series[] = []
    for (let p = 0; p < s.pods; p++) out.push({ name: 'kube_pod_container_resource_requests', labels: this.reqLabels[p] as string, pairs: this.reqPairs[p] as string[], startMs: first, stepMs: every, values: new Float64Array(m).fill(s.memoryRequestBytes) })
    return out
  }
}

/** one series' samples in a block: values at startMs + i x stepMs */
export interface Series {
  name: string
  /** `{k="v",...}` as the text writer prints it */
  labels: string
  /** name, value, name, value ... (without __name__) */
  pairs: string[]
  startMs: number
  stepMs: number
  values: Float64Array
  /** printed with toFixed(3) in text (as writeOpenMetrics prints the sum) */
  fixed3?: boolean
}

/** OpenMetrics text of series (each in time order) */
export function seriesText(xs: readonly Series[], ts: (t: number) => string): string {
  const parts: string[] = []
  for (const x of xs) {
    const pre = `${x.name}${x.labels} `
    for (let i = 0; i < x.values.length; i++) {
      const v = x.values[i] as number
      parts.push(`${pre}${x.fixed3 === true ? v.toFixed(3) : String(v)} ${ts(x.startMs + i * x.stepMs)}\n`)
    }
  }
  return parts.join('')
}

/** the binary stream bench/tsdb-ingest reads (see its main.go) */
export function seriesBinary(xs: readonly Series[]): Buffer {
  const bufs: Buffer[] = []
  for (const x of xs) {
    const lb = Buffer.from(['__name__', x.name, ...x.pairs].join('\0'), 'utf8')
    const head = Buffer.alloc(4 + lb.length + 20)
    head.writeUInt32LE(lb.length, 0)
    lb.copy(head, 4)
    head.writeBigInt64LE(BigInt(x.startMs), 4 + lb.length)
    head.writeBigInt64LE(BigInt(x.stepMs), 12 + lb.length)
    head.writeUInt32LE(x.values.length, 20 + lb.length)
    bufs.push(head, Buffer.from(x.values.buffer, x.values.byteOffset, x.values.byteLength))
  }
  return Buffer.concat(bufs)
}

export interface BackfillSpec {
  services: readonly Svc[]
  endMs: number
  stepMs: number
  seed: number
  /** block length (and OpenMetrics file span); promtool aligns to multiples of it */
  blockMs: number
}

export interface BlockProgress {
  block: number
  blocks: number
  services: number
  servicesTotal: number
  phase: 'write' | 'ingest'
}

/**
 * Where the blocks go. `text`: an OpenMetrics file per block in `om`, handed to `ingest` (promtool)
 * and deleted once ingested; `binary`: a stream per block into `open(block)` (bench/tsdb-ingest's
 * stdin), `done` settling once the block is written.
 */
export type BlockSink =
  | { kind: 'text'; om: string; ingest: (file: string, block: number) => Promise<void> }
  | { kind: 'binary'; open: (block: number) => { write: (b: Buffer) => Promise<void>; end: () => void; done: Promise<void> } }

/**
 * Generates the history block by block into `sink`, at most one block's ingest in flight while the
 * next is generated (so the text on disk is at most two blocks'). `startBlock` > 0 resumes (earlier
 * blocks are generated without writing). Returns the largest text on disk at once and all bytes
 * handed over.
 */
export async function streamBlocks(
  spec: BackfillSpec,
  sink: BlockSink,
  opts: { startBlock?: number; onProgress?: (p: BlockProgress) => void; onBlockDone?: (block: number) => void } = {},
): Promise<{ peakTextBytes: number; blocks: number; bytes: number }> {
  const { services, endMs, stepMs, seed, blockMs } = spec
  const first = Math.floor(Math.min(...services.map((s) => s.fromMs)) / blockMs)
  const last = Math.floor(endMs / blockMs)
  const blocks = last - first + 1
  const streams = services.map((s, k) => new ServiceStream(s, k, endMs, stepMs, seed))
  const startBlock = opts.startBlock ?? 0
  for (let b = 0; b < startBlock; b++) for (const st of streams) st.skip((first + b + 1) * blockMs)
  if (sink.kind === 'text') mkdirSync(sink.om, { recursive: true })
  const tsCache = new Map<number, string>()
  const ts = (t: number): string => {
    let x = tsCache.get(t)
    if (x === undefined) {
      x = t % 1000 === 0 ? String(t / 1000) : (t / 1000).toFixed(3)
      tsCache.set(t, x)
    }
    return x
  }
  let inFlight: { p: Promise<void>; bytes: number } | undefined
  let peak = 0
  let total = 0
  const yieldNow = () => new Promise<void>((r) => setImmediate(r))
  for (let b = startBlock; b < blocks; b++) {
    const from = (first + b) * blockMs
    const to = from + blockMs
    tsCache.clear()
    let bytes = 0
    let put: (xs: Series[], header?: string) => Promise<void>
    let finish: () => Promise<void>
    let closeOut: () => void
    if (sink.kind === 'text') {
      const file = join(sink.om, `block-${first + b}.om`)
      const fd = openSync(file, 'w')
      closeOut = () => closeSync(fd)
      put = async (xs, header) => {
        const buf = Buffer.from((header ?? '') + seriesText(xs, ts), 'utf8')
        let off = 0
        while (off < buf.length) off += writeSync(fd, buf, off)
        bytes += buf.length
        peak = Math.max(peak, bytes + (inFlight?.bytes ?? 0))
      }
      finish = async () => {
        await put([], '# EOF\n')
        closeSync(fd)
        const block = b
        const p = sink.ingest(file, block).then(() => rmSync(file, { force: true }))
        p.catch(() => undefined)
        if (inFlight !== undefined) {
          opts.onProgress?.({ block: b, blocks, services: streams.length, servicesTotal: streams.length, phase: 'ingest' })
          await inFlight.p
        }
        inFlight = { p: p.then(() => opts.onBlockDone?.(block)), bytes }
        inFlight.p.catch(() => undefined)
      }
    } else {
      // the previous block's writer may still be flushing: at most one
      const out = sink.open(b)
      out.done.catch(() => undefined)
      closeOut = () => out.end()
      put = async (xs) => {
        const buf = seriesBinary(xs)
        bytes += buf.length
        await out.write(buf)
      }
      finish = async () => {
        out.end()
        const block = b
        if (inFlight !== undefined) await inFlight.p
        inFlight = { p: out.done.then(() => opts.onBlockDone?.(block)), bytes: 0 }
        inFlight.p.catch(() => undefined)
      }
    }
    let lastShown = 0
    try {
      const hdr = (h: string) => (sink.kind === 'text' ? h : undefined)
      await put([], hdr(`# TYPE ${HIST} histogram\n# UNIT ${HIST} seconds\n`))
      for (const [i, st] of streams.entries()) {
        await put(st.histogram(to))
        if (performance.now() - lastShown > 10_000) {
          lastShown = performance.now()
          opts.onProgress?.({ block: b, blocks, services: i + 1, servicesTotal: streams.length, phase: 'write' })
        }
        // let an ingest's exit be noticed
        if (i % 50 === 49) await yieldNow()
      }
      await put([], hdr('# TYPE container_memory_working_set_bytes gauge\n'))
      for (const st of streams) await put(st.memory(from, to))
      await put([], hdr('# TYPE kube_pod_container_resource_requests gauge\n'))
      for (const st of streams) await put(st.requests(from, to))
    } catch (e) {
      closeOut()
      throw e
    }
    total += bytes
    await finish()
  }
  if (inFlight !== undefined) await inFlight.p
  return { peakTextBytes: peak, blocks, bytes: total }
}

/**
 * A binary sink into bench/tsdb-ingest (Prometheus 2.42's block writer), one process per block
 * writing into `data`.
 */
export function tsdbIngestSink(bin: string, data: string, blockMs: number): BlockSink {
  return {
    kind: 'binary',
    open: () => {
      const child = spawn(bin, [data, String(blockMs)], { stdio: ['pipe', 'pipe', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 20_000) stderr += d.toString()
      })
      child.stdout.resume()
      let failed: Error | undefined
      const done = new Promise<void>((resolve, reject) => {
        child.once('error', (e) => {
          failed = e
          reject(e)
        })
        child.once('exit', (code) => {
          if (code === 0) resolve()
          else {
            failed = new Error(`tsdb-ingest exited ${code}: ${stderr.slice(-2000)}`)
            reject(failed)
          }
        })
      })
      child.stdin.on('error', () => undefined)
      return {
        write: async (buf: Buffer) => {
          if (failed !== undefined) throw failed
          if (buf.length === 0) return
          if (!child.stdin.write(buf)) {
            // a broken pipe means the writer died: its exit (with stderr) is the error to report
            await Promise.race([once(child.stdin, 'drain'), done]).catch(async (e: unknown) => {
              await done
              throw e
            })
          }
        },
        end: () => child.stdin.end(),
        done,
      }
    },
  }
}

export async function promtoolIngest(promtool: string, file: string, data: string, blockMs: number): Promise<void> {
  const run = (cmd: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, _out, stderr) => (err === null ? resolve() : reject(new Error(`promtool ${args.join(' ')}: ${err.message} ${String(stderr).slice(-2000)}`))))
    })
  await run(promtool, ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', `--max-block-duration=${blockMs / HOUR_MS}h`, file, data])
}

export interface Manifest {
  kind: 'pullback-calibrate-backfill'
  version: 1
  generator: string
  services: number
  days: number
  seed: number
  endMs: number
  end: string
  stepMs: number
  blockHours: number
  blocks: number
  blocksDone: number
  complete: boolean
  backfillS?: number
  peakTextBytes?: number
  /** bytes handed to the ingest (text, or the binary stream) */
  textBytes?: number
  ingest?: 'promtool' | 'tsdb-ingest'
}

export interface EnsureResult {
  reused: boolean
  manifest: Manifest
  data: string
}

/** the fields that must match for a backfill to be reused */
function sameSpec(a: Manifest, b: Manifest): boolean {
  return a.generator === b.generator && a.services === b.services && a.days === b.days && a.seed === b.seed && a.endMs === b.endMs && a.stepMs === b.stepMs && a.blockHours === b.blockHours
}

export function readManifest(dir: string): Manifest | undefined {
  const f = join(dir, 'manifest.json')
  if (!existsSync(f)) return undefined
  return JSON.parse(readFileSync(f, 'utf8')) as Manifest
}

function writeManifest(dir: string, m: Manifest): void {
  const f = join(dir, 'manifest.json')
  writeFileSync(`${f}.tmp`, `${JSON.stringify(m, null, 2)}\n`)
  renameSync(`${f}.tmp`, f)
}

/** block dirs promtool wrote (meta.json's minTime), leftovers of an interrupted write removed */
function blocksOnDisk(data: string): { dir: string; minTime: number }[] {
  if (!existsSync(data)) return []
  const out: { dir: string; minTime: number }[] = []
  for (const d of readdirSync(data)) {
    const p = join(data, d)
    if (d.includes('.tmp')) {
      rmSync(p, { recursive: true, force: true })
      continue
    }
    const meta = join(p, 'meta.json')
    if (existsSync(meta)) out.push({ dir: p, minTime: (JSON.parse(readFileSync(meta, 'utf8')) as { minTime: number }).minTime })
  }
  return out
}

/**
 * DIR/data holds the TSDB of `services` x `days` ending at `endMs`; builds (or resumes) it unless a
 * complete manifest of the same spec is there. `generator` names the service mix (part of the spec).
 */
export async function ensureBackfill(
  dir: string,
  want: { generator: string; services: readonly Svc[]; days: number; seed: number; endMs: number; stepMs: number; blockMs: number },
  promtool: string,
  log: (line: string) => void,
  /** bench/tsdb-ingest built: the blocks are written by it from a binary stream instead of promtool parsing text */
  ingestBin?: string,
): Promise<EnsureResult> {
  const data = join(dir, 'data')
  const first = Math.floor(Math.min(...want.services.map((s) => s.fromMs)) / want.blockMs)
  const blocks = Math.floor(want.endMs / want.blockMs) - first + 1
  const m: Manifest = {
    kind: 'pullback-calibrate-backfill',
    version: 1,
    generator: want.generator,
    services: want.services.length,
    days: want.days,
    seed: want.seed,
    endMs: want.endMs,
    end: new Date(want.endMs).toISOString(),
    stepMs: want.stepMs,
    blockHours: want.blockMs / HOUR_MS,
    blocks,
    blocksDone: 0,
    complete: false,
  }
  const have = readManifest(dir)
  if (have !== undefined && !sameSpec(have, m)) throw new Error(`${dir} holds a different backfill (${have.services} services x ${have.days} days, seed ${have.seed}, end ${have.end}, ${have.generator}); use another --data-dir or remove it`)
  if (have?.complete === true) return { reused: true, manifest: have, data }
  if (have === undefined && existsSync(dir) && readdirSync(dir).some((x) => x !== 'bin')) throw new Error(`${dir} is not empty and has no manifest.json; use an empty or new --data-dir`)
  mkdirSync(data, { recursive: true })
  const startBlock = have?.blocksDone ?? 0
  // a killed run: drop blocks of groups not recorded as done (promtool may have finished one after the last record)
  for (const b of blocksOnDisk(data)) if (b.minTime >= (first + startBlock) * want.blockMs) rmSync(b.dir, { recursive: true, force: true })
  const state: Manifest = { ...m, blocksDone: startBlock, backfillS: have?.backfillS ?? 0 }
  writeManifest(dir, state)
  const t0 = performance.now()
  const priorS = state.backfillS ?? 0
  const elapsed = () => (performance.now() - t0) / 1000
  let lastLine = 0
  const res = await streamBlocks(
    { services: want.services, endMs: want.endMs, stepMs: want.stepMs, seed: want.seed, blockMs: want.blockMs },
    ingestBin !== undefined ? tsdbIngestSink(ingestBin, data, want.blockMs) : { kind: 'text', om: join(dir, 'om'), ingest: (file) => promtoolIngest(promtool, file, data, want.blockMs) },
    {
      startBlock,
      onProgress: (p) => {
        if (performance.now() - lastLine < 10_000 && p.phase === 'write') return
        lastLine = performance.now()
        const doneFrac = (p.block - startBlock + p.services / p.servicesTotal) / (blocks - startBlock)
        const eta = doneFrac > 0 ? (elapsed() / doneFrac) * (1 - doneFrac) : Number.NaN
        log(`backfill: block ${p.block + 1}/${p.blocks} ${p.phase === 'write' ? `writing, ${p.services}/${p.servicesTotal} services` : 'written; waiting for the previous one to be ingested'}; ${state.blocksDone}/${blocks} blocks in the TSDB; elapsed ${elapsed().toFixed(0)} s, ETA ${Number.isFinite(eta) ? `${(eta / 60).toFixed(1)} min` : '?'}`)
      },
      onBlockDone: (b) => {
        state.blocksDone = b + 1
        state.backfillS = priorS + elapsed()
        writeManifest(dir, state)
        log(`backfill: block ${b + 1}/${blocks} in the TSDB; elapsed ${elapsed().toFixed(0)} s`)
      },
    },
  )
  rmSync(join(dir, 'om'), { recursive: true, force: true })
  const done: Manifest = { ...state, blocksDone: blocks, complete: true, backfillS: priorS + elapsed(), peakTextBytes: Math.max(res.peakTextBytes, have?.peakTextBytes ?? 0), textBytes: res.bytes + (have?.textBytes ?? 0), ingest: ingestBin !== undefined ? 'tsdb-ingest' : 'promtool' }
  writeManifest(dir, done)
  return { reused: false, manifest: done, data }
}

/** bytes under a directory (du -sb) */
export function duBytes(dir: string): number {
  let n = 0
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, d.name)
    if (d.isDirectory()) n += duBytes(p)
    else if (d.isFile()) n += statSync(p).size
  }
  return n
}
