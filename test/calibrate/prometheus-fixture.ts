/**
 * A real Prometheus server holding synthetic history (test/calibrate/synthetic.ts): the history is
 * written as OpenMetrics text, backfilled with `promtool tsdb create-blocks-from openmetrics` into a
 * temporary data dir, and served by the `prometheus` binary (Debian package `prometheus`) on a
 * loopback port. Its systemd service is never used.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from '../support/external.js'
import { BOUNDS_S, memoryAt, rng, steps, type SynthService } from './synthetic.js'

const run = promisify(execFile)

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

/** OpenMetrics text of the services' history; every series' samples in time order, families not interleaved. */
export async function writeOpenMetrics(file: string, services: readonly (SynthService & { fromMs: number })[], endMs: number, stepMs: number, seed: number): Promise<void> {
  const out = createWriteStream(file)
  const write = (s: string) => new Promise<void>((res) => (out.write(s) ? res() : out.once('drain', () => res())))
  const name = 'http_server_request_duration_seconds'
  await write(`# TYPE ${name} histogram\n# UNIT ${name} seconds\n`)
  for (const [k, s] of services.entries()) {
    const job = `${s.namespace}/${s.name}`
    // per status: cumulative bucket counts, count, sum; errors take the fastest requests (the split is irrelevant to the queries)
    for (const status of ['200', '500']) {
      const lines: string[][] = BOUNDS_S.map(() => [])
      const inf: string[] = []
      const cnt: string[] = []
      const sum: string[] = []
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
        const ts = (st.timeMs / 1000).toFixed(3)
        let c = 0
        for (let j = 0; j < BOUNDS_S.length; j++) {
          c += cum[j] as number
          lines[j]!.push(`${c} ${ts}`)
        }
        inf.push(`${total} ${ts}`)
        cnt.push(`${total} ${ts}`)
        sum.push(`${sumS.toFixed(3)} ${ts}`)
      }
      const base = { job, http_response_status_code: status }
      for (let j = 0; j < BOUNDS_S.length; j++) await write(lines[j]!.map((l) => `${name}_bucket${labels({ ...base, le: String(BOUNDS_S[j]) })} ${l}\n`).join(''))
      await write(inf.map((l) => `${name}_bucket${labels({ ...base, le: '+Inf' })} ${l}\n`).join(''))
      await write(cnt.map((l) => `${name}_count${labels(base)} ${l}\n`).join(''))
      await write(sum.map((l) => `${name}_sum${labels(base)} ${l}\n`).join(''))
    }
  }
  await write('# TYPE container_memory_working_set_bytes gauge\n')
  for (const [k, s] of services.entries()) {
    const r = rng((seed + k) ^ 0x5eed)
    for (let p = 0; p < s.pods; p++) {
      const l = labels({ namespace: s.namespace, pod: `${s.name}-7d4b9c8f6d-${String(p).padStart(5, 'x')}`, container: s.name })
      const rows: string[] = []
      for (let t = s.fromMs; t <= endMs; t += stepMs) rows.push(`container_memory_working_set_bytes${l} ${Math.round(memoryAt(s, p, t, r))} ${(t / 1000).toFixed(3)}\n`)
      await write(rows.join(''))
    }
  }
  await write('# TYPE kube_pod_container_resource_requests gauge\n')
  for (const s of services) {
    for (let p = 0; p < s.pods; p++) {
      const l = labels({ namespace: s.namespace, pod: `${s.name}-7d4b9c8f6d-${String(p).padStart(5, 'x')}`, container: s.name, resource: 'memory', unit: 'byte' })
      const rows: string[] = []
      // one sample every 5 steps: a gauge that does not change (Prometheus' lookback bridges 5 min)
      for (let t = s.fromMs; t <= endMs; t += Math.min(5 * stepMs, 240_000)) rows.push(`kube_pod_container_resource_requests${l} ${s.memoryRequestBytes} ${(t / 1000).toFixed(3)}\n`)
      await write(rows.join(''))
    }
  }
  await write('# EOF\n')
  await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())))
}

export interface RunningPrometheus {
  url: string
  dir: string
  backfillMs: number
  stop(): Promise<void>
}

export async function startPrometheus(services: readonly (SynthService & { fromMs: number })[], endMs: number, stepMs: number, seed: number): Promise<RunningPrometheus> {
  const prometheus = findBinary('prometheus')
  const promtool = findBinary('promtool')
  if (prometheus === undefined || promtool === undefined) throw new Error('prometheus/promtool not found: install the Debian package `prometheus`')
  const dir = mkdtempSync(join(tmpdir(), 'pullback-prom-'))
  const data = join(dir, 'data')
  const om = join(dir, 'history.om')
  const t0 = performance.now()
  await writeOpenMetrics(om, services, endMs, stepMs, seed)
  await run(promtool, ['tsdb', 'create-blocks-from', 'openmetrics', om, data], { maxBuffer: 16 * 1024 * 1024 })
  rmSync(om)
  const backfillMs = performance.now() - t0
  writeFileSync(join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1h\n')
  const port = await freePort()
  const child: ChildProcess = spawn(
    prometheus,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=60d', '--log.level=warn'],
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
    rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 30_000
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
      throw new Error(`prometheus not ready in 30 s: ${stderr.slice(-2000)}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return { url, dir, backfillMs, stop }
}
