/**
 * A real Prometheus server holding synthetic history (test/calibrate/synthetic.ts): the history is
 * written as OpenMetrics text, backfilled with `promtool tsdb create-blocks-from openmetrics` into a
 * temporary data dir (backfill.ts: one file per 54 h block), and served by the `prometheus` binary
 * (Debian package `prometheus`) on a loopback port. Its systemd service is never used.
 * writeOpenMetrics (one file per 2 h block) is the reference writer backfill.test.ts checks the
 * streamed one against.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../support/ports.js'
import { BLOCK_54H_MS, promtoolIngest, streamBlocks } from './backfill.js'
import { BOUNDS_S, memoryAt, rng, steps, type SynthService } from './synthetic.js'

export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/local/bin'])) {
    const p = join(dir, name)
    if (dir !== '' && existsSync(p)) return p
  }
  return undefined
}


function labels(l: Record<string, string>): string {
  return `{${Object.entries(l).map(([k, v]) => `${k}="${v}"`).join(',')}}`
}

/** promtool's block length: it re-reads its whole input once per 2 h block, so the history is cut into one file per block */
export const BLOCK_MS = 2 * 3_600_000

/**
 * OpenMetrics text of the services' history, one file per 2 h block (aligned as promtool aligns
 * blocks): promtool 2.42 parses its whole input once per block it writes, so one 30-day file costs
 * 360 passes; one file per block costs one. In each file every series' samples are in time order and
 * the families are not interleaved. Returns the files written, oldest first.
 */
export function writeOpenMetrics(dir: string, services: readonly (SynthService & { fromMs: number })[], endMs: number, stepMs: number, seed: number): string[] {
  const blockOf = (t: number) => Math.floor(t / BLOCK_MS)
  const files = new Map<number, string>()
  const fileOf = (b: number): string => {
    let f = files.get(b)
    if (f === undefined) {
      f = join(dir, `history-${b}.om`)
      writeFileSync(f, '')
      files.set(b, f)
    }
    return f
  }
  const first = blockOf(Math.min(...services.map((s) => s.fromMs)))
  for (let b = first; b <= blockOf(endMs); b++) fileOf(b)
  // one service-family at a time: its lines per block, appended to the block's file
  let pieces = new Map<number, string[]>()
  const put = (t: number, line: string) => {
    const b = blockOf(t)
    let p = pieces.get(b)
    if (p === undefined) {
      p = []
      pieces.set(b, p)
    }
    p.push(line)
  }
  const flush = () => {
    for (const [b, p] of pieces) appendFileSync(fileOf(b), p.join(''))
    pieces = new Map()
  }
  const header = (text: string) => {
    for (const f of files.values()) appendFileSync(f, text)
  }
  const name = 'http_server_request_duration_seconds'
  header(`# TYPE ${name} histogram\n# UNIT ${name} seconds\n`)
  for (const [k, s] of services.entries()) {
    const job = `${s.namespace}/${s.name}`
    // per status: cumulative bucket counts, count, sum; errors take the fastest requests (the split is irrelevant to the queries)
    for (const status of ['200', '500']) {
      const base = { job, http_response_status_code: status }
      const bucketLabels = BOUNDS_S.map((b) => labels({ ...base, le: String(b) }))
      const infLabels = labels({ ...base, le: '+Inf' })
      const plain = labels(base)
      const rows: { t: number; cum: number[]; total: number; sumS: number }[] = []
      const cum = new Array<number>(BOUNDS_S.length + 1).fill(0)
      let total = 0
      let sumS = 0
      for (const st of steps(s, s.fromMs, endMs, stepMs, seed + k)) {
        let errLeft = st.errors
        for (let j = 0; j < st.buckets.length; j++) {
          const b = st.buckets[j] as number
          const e = Math.min(errLeft, b)
          errLeft -= e
          const n = status === '500' ? e : b - e
          cum[j] = (cum[j] as number) + n
          total += n
          sumS += n * (j < BOUNDS_S.length ? (BOUNDS_S[j] as number) : 10)
        }
        rows.push({ t: st.timeMs, cum: [...cum], total, sumS })
      }
      // series by series (each in time order), split by block
      for (let j = 0; j < BOUNDS_S.length; j++) {
        for (const r of rows) {
          let c = 0
          for (let x = 0; x <= j; x++) c += r.cum[x] as number
          put(r.t, `${name}_bucket${bucketLabels[j]} ${c} ${(r.t / 1000).toFixed(3)}\n`)
        }
      }
      for (const r of rows) put(r.t, `${name}_bucket${infLabels} ${r.total} ${(r.t / 1000).toFixed(3)}\n`)
      for (const r of rows) put(r.t, `${name}_count${plain} ${r.total} ${(r.t / 1000).toFixed(3)}\n`)
      for (const r of rows) put(r.t, `${name}_sum${plain} ${r.sumS.toFixed(3)} ${(r.t / 1000).toFixed(3)}\n`)
      flush()
    }
  }
  header('# TYPE container_memory_working_set_bytes gauge\n')
  for (const [k, s] of services.entries()) {
    const r = rng((seed + k) ^ 0x5eed)
    for (let p = 0; p < s.pods; p++) {
      const l = labels({ namespace: s.namespace, pod: `${s.name}-7d4b9c8f6d-${String(p).padStart(5, 'x')}`, container: s.name })
      for (let t = s.fromMs; t <= endMs; t += stepMs) put(t, `container_memory_working_set_bytes${l} ${Math.round(memoryAt(s, p, t, r))} ${(t / 1000).toFixed(3)}\n`)
      flush()
    }
  }
  header('# TYPE kube_pod_container_resource_requests gauge\n')
  for (const s of services) {
    for (let p = 0; p < s.pods; p++) {
      const l = labels({ namespace: s.namespace, pod: `${s.name}-7d4b9c8f6d-${String(p).padStart(5, 'x')}`, container: s.name, resource: 'memory', unit: 'byte' })
      // one sample every 5 steps: a gauge that does not change (Prometheus' lookback bridges 5 min)
      for (let t = s.fromMs; t <= endMs; t += Math.min(5 * stepMs, 240_000)) put(t, `kube_pod_container_resource_requests${l} ${s.memoryRequestBytes} ${(t / 1000).toFixed(3)}\n`)
      flush()
    }
  }
  header('# EOF\n')
  return [...files.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1])
}

export interface RunningPrometheus {
  url: string
  dir: string
  backfillMs: number
  /** the server's process id (the bench reads its CPU time from /proc) */
  pid: number | undefined
  stop(): Promise<void>
}

/**
 * Backfills `services` into a temporary data dir (streamBlocks: one file per 54 h block, as a
 * Prometheus with >= 30 days' retention holds them after compaction, so the server has nothing to
 * compact) and serves it; `stop()` removes the dir.
 */
export async function startPrometheus(services: readonly (SynthService & { fromMs: number })[], endMs: number, stepMs: number, seed: number): Promise<RunningPrometheus> {
  const promtool = findBinary('promtool')
  if (findBinary('prometheus') === undefined || promtool === undefined) throw new Error('prometheus/promtool not found: install the Debian package `prometheus`')
  const dir = mkdtempSync(join(tmpdir(), 'pullback-prom-'))
  const data = join(dir, 'data')
  const t0 = performance.now()
  try {
    await streamBlocks({ services, endMs, stepMs, seed, blockMs: BLOCK_54H_MS }, { kind: 'text', om: join(dir, 'om'), ingest: (f) => promtoolIngest(promtool, f, data, BLOCK_54H_MS) })
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  rmSync(join(dir, 'om'), { recursive: true, force: true })
  const backfillMs = performance.now() - t0
  const p = await servePrometheus(data, { configDir: dir, removeOnStop: dir })
  return { ...p, backfillMs }
}

/**
 * Serves an existing TSDB dir (`data`) on a loopback port: retention 60 d (Prometheus' time retention
 * counts from its newest block, not from now, so a backfill ending days ago stays whole), no scrape
 * targets (the head stays empty), compaction ranges up to 54 h (`max-block-duration` 6 d, the
 * default for 60 d): blocks of 54 h, one per range, are never compacted again. `removeOnStop`: a
 * directory removed by `stop()` (a temporary backfill; a persistent one is kept).
 */
export async function servePrometheus(data: string, opts: { configDir?: string; removeOnStop?: string } = {}): Promise<Omit<RunningPrometheus, 'backfillMs'>> {
  const prometheus = findBinary('prometheus')
  if (prometheus === undefined) throw new Error('prometheus not found: install the Debian package `prometheus`')
  const confDir = opts.configDir ?? mkdtempSync(join(tmpdir(), 'pullback-promconf-'))
  const removeConf = opts.configDir === undefined ? confDir : undefined
  writeFileSync(join(confDir, 'prometheus.yml'), 'global:\n  scrape_interval: 1h\n')
  const port = await freePort()
  const child: ChildProcess = spawn(
    prometheus,
    [`--config.file=${join(confDir, 'prometheus.yml')}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=60d', '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 20_000) stderr += b.toString()
  })
  const exited = new Promise<void>((res) => child.once('exit', () => res()))
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    if (opts.removeOnStop !== undefined) rmSync(opts.removeOnStop, { recursive: true, force: true })
    if (removeConf !== undefined) rmSync(removeConf, { recursive: true, force: true })
  }
  const deadline = Date.now() + 120_000
  for (;;) {
    if (child.exitCode !== null) {
      await stop()
      throw new Error(`prometheus exited ${child.exitCode}: ${stderr.slice(-2000)}`)
    }
    try {
      const r = await fetch(`${url}/-/ready`)
      if (r.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`prometheus not ready in 120 s: ${stderr.slice(-2000)}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return { url, dir: data, pid: child.pid, stop }
}
