/**
 * OTLP/gRPC span ingest with decode workers off and on (src/workers), end to end:
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/workers.js [--seconds 10] [--runs 3] [--workers 0,1,2] [--conns 4] [--inflight 4]
 *
 * Per run and per `receivers.workers` setting, a target child process (this file, `--target N`)
 * builds the real receivers stage from config (createReceivers: OTLP/gRPC on 127.0.0.1, decode
 * workers from `receivers.workers`) in front of a Pipeline (normalize -> signal store), with the
 * engine ticking every `runtime.tickInterval` as in the sidecar. This process feeds it with grpc-js
 * clients: 16 distinct pre-encoded ExportTraceServiceRequests (512 SERVER spans x 10 attributes,
 * 8 services x 2 versions), conns x inflight calls outstanding for the whole run. A call is
 * answered only after its spans are recorded, so acknowledged spans are recorded spans.
 * Measured over `--seconds` after a 2 s warm-up:
 *   - spans/s acknowledged;
 *   - the target's CPU seconds per million spans (utime+stime of /proc/<pid>/stat, all threads),
 *     and its main thread's share (/proc/<pid>/task/<pid>/stat);
 *   - event-loop delay of the target's main thread (perf_hooks.monitorEventLoopDelay, 10 ms
 *     resolution), p99 and max over the window;
 *   - the target's peak RSS (VmHWM).
 * Settings alternate within a run (0, 1, 2, 0, 1, 2, ...) so that load from other work spreads
 * evenly; the summary gives min / median / max over the runs. The client shares the machine's
 * cores with the target: CPU per span is the target's own cost, spans/s is the pair's throughput.
 * Every child is stopped before the next starts and at the end (no process is left behind).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import { parseConfig } from '../src/config/load.js'
import { createReceivers } from '../src/receivers/index.js'
import { traceServiceDefinition } from '../src/receivers/otlp-grpc/receiver.js'
import { Pipeline } from '../src/runtime/pipeline.js'
import { SPANS_PER_REQUEST, fmt, payloads, spread } from './peer-common.js'
import { spread as figure } from './stats.js'
import { flags, exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const WARMUP_MS = 2_000

interface Options {
  seconds: number
  runs: number
  workers: number[]
  conns: number
  inflight: number
}

function parseOptions(argv: string[]): Options {
  const { get, int } = flags(argv)
  const num = (name: string, def: number, max: number): number => int(name, def, 1, max)
  const workers = (get('workers') ?? '0,1,2').split(',').map(Number)
  if (workers.some((w) => !Number.isInteger(w) || w < 0 || w > 16)) throw new Error('--workers must be a list of integers in 0..16, e.g. 0,1,2')
  return { seconds: num('seconds', 10, 300), runs: num('runs', 3, 10), workers, conns: num('conns', 4, 32), inflight: num('inflight', 4, 64) }
}

// ---- target (child process) ----------------------------------------------------------------------

type ToTarget = { kind: 'start' } | { kind: 'stop' }
type FromTarget =
  | { kind: 'ready'; port: number }
  | { kind: 'window'; loopP50Ms: number; loopP99Ms: number; loopMaxMs: number; ticks: number; acceptedSpans: number; refused: Record<string, number>; pool: unknown }

async function target(workers: number): Promise<void> {
  const cfg = parseConfig({
    receivers: { workers, otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { enabled: false } }, deployments: { enabled: false } },
  })
  const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
  const receivers = createReceivers({ config: cfg.receivers, kafka: cfg.kafka, consumer: pipeline })
  for (const r of receivers.all) await r.start()
  const lateness = cfg.engine.lateness
  let ticks = 0
  const ticker = setInterval(() => {
    const now = Date.now()
    pipeline.tick(now, now - lateness)
    ticks++
  }, cfg.runtime.tickInterval)
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const send = (m: FromTarget) => process.send?.(m)
  process.on('message', (m: ToTarget) => {
    if (m.kind === 'start') {
      delay.reset()
      ticks = 0
    } else {
      const st = receivers.grpc?.stats()
      send({
        kind: 'window',
        loopP50Ms: delay.percentile(50) / 1e6,
        loopP99Ms: delay.percentile(99) / 1e6,
        loopMaxMs: delay.max / 1e6,
        ticks,
        acceptedSpans: st?.acceptedSpans ?? 0,
        refused: st?.rejected ?? {},
        pool: receivers.workers?.stats(),
      })
    }
  })
  process.once('SIGTERM', () => {
    clearInterval(ticker)
    delay.disable()
    void (async () => {
      for (const r of [...receivers.all].reverse()) await r.shutdown()
      pipeline.shutdown()
      process.disconnect?.()
    })()
  })
  send({ kind: 'ready', port: receivers.grpc?.port ?? 0 })
}

// ---- driver ---------------------------------------------------------------------------------------


type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')

function exportOnce(c: Raw, body: Buffer): Promise<number> {
  return new Promise((resolve) => c.Export(body, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err) => resolve(err ? err.code : 0)))
}

/** utime + stime in seconds of /proc/<pid>/stat, or of one thread's /proc/<pid>/task/<tid>/stat */
function cpuSeconds(file: string): number {
  const stat = readFileSync(file, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

interface RunResult {
  workers: number
  run: number
  spansPerSec: number
  cpuPerMillion: number
  mainCpuPerMillion: number
  targetCores: number
  clientCores: number
  loopP99Ms: number
  loopMaxMs: number
  peakRssMiB: number
  failed: Map<number, number>
  window: Extract<FromTarget, { kind: 'window' }>
}

function nextMessage(child: ChildProcess, kind: FromTarget['kind'], timeoutMs: number): Promise<FromTarget> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', on)
      reject(new Error(`target sent no ${kind} within ${timeoutMs} ms`))
    }, timeoutMs)
    const on = (m: FromTarget) => {
      if (m.kind !== kind) return
      clearTimeout(timer)
      child.off('message', on)
      resolve(m)
    }
    child.on('message', on)
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill('SIGTERM')
  const hard = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(hard)
}

async function measure(workers: number, run: number, bodies: Buffer[], o: Options): Promise<RunResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--target', String(workers)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    const ready = (await nextMessage(child, 'ready', 30_000)) as Extract<FromTarget, { kind: 'ready' }>
    const pid = child.pid as number
    const clients = Array.from({ length: o.conns }, () => new TraceClient(`127.0.0.1:${ready.port}`, grpc.credentials.createInsecure()) as unknown as Raw)
    let ok = 0
    let stopped = false
    let next = 0
    const failed = new Map<number, number>()
    const loop = async (c: Raw) => {
      while (!stopped) {
        const code = await exportOnce(c, bodies[next++ % bodies.length] as Buffer)
        if (code === 0) ok++
        else {
          failed.set(code, (failed.get(code) ?? 0) + 1)
          await new Promise((r) => setTimeout(r, 50))
        }
      }
    }
    const loops = clients.flatMap((c) => Array.from({ length: o.inflight }, () => loop(c)))
    await new Promise((r) => setTimeout(r, WARMUP_MS))
    child.send({ kind: 'start' } satisfies ToTarget)
    const ok0 = ok
    const cpu0 = cpuSeconds(`/proc/${pid}/stat`)
    const main0 = cpuSeconds(`/proc/${pid}/task/${pid}/stat`)
    const self0 = process.cpuUsage()
    const t0 = performance.now()
    await new Promise((r) => setTimeout(r, o.seconds * 1000))
    const ok1 = ok
    const cpu1 = cpuSeconds(`/proc/${pid}/stat`)
    const main1 = cpuSeconds(`/proc/${pid}/task/${pid}/stat`)
    const self1 = process.cpuUsage(self0)
    const secs = (performance.now() - t0) / 1000
    const windowMsg = nextMessage(child, 'window', 10_000)
    child.send({ kind: 'stop' } satisfies ToTarget)
    const window = (await windowMsg) as Extract<FromTarget, { kind: 'window' }>
    stopped = true
    await Promise.all(loops)
    for (const c of clients) c.close()
    const spans = (ok1 - ok0) * SPANS_PER_REQUEST
    return {
      workers,
      run,
      spansPerSec: spans / secs,
      cpuPerMillion: ((cpu1 - cpu0) / spans) * 1e6,
      mainCpuPerMillion: ((main1 - main0) / spans) * 1e6,
      targetCores: (cpu1 - cpu0) / secs,
      clientCores: (self1.user + self1.system) / 1e6 / secs,
      loopP99Ms: window.loopP99Ms,
      loopMaxMs: window.loopMaxMs,
      peakRssMiB: peakRssMiB(pid),
      failed,
      window,
    }
  } finally {
    await stop(child)
  }
}


async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2))
  const results: RunResult[] = []
  let size = 0
  for (let run = 1; run <= o.runs; run++) {
    const bodies = payloads(BigInt(Date.now()) * 1_000_000n, 'workers-bench/1.0')
    size = bodies[0]?.length ?? 0
    for (const w of o.workers) {
      const r = await measure(w, run, bodies, o)
      results.push(r)
      const fails = [...r.failed].map(([c, n]) => `${grpc.status[c] ?? c}=${n}`).join(' ') || '0'
      console.error(
        `workers=${w} run ${run}: ${fmt(r.spansPerSec)} spans/s, ${fmt(r.cpuPerMillion, 2)} CPU-s/M (main thread ${fmt(r.mainCpuPerMillion, 2)}), loop delay p99 ${fmt(r.loopP99Ms, 1)} ms max ${fmt(r.loopMaxMs, 1)} ms, failed ${fails}`,
      )
    }
  }
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ')
  console.log(
    `node ${process.version}, ${os.availableParallelism()} cores, load average at the end ${load}; ${o.seconds} s per run after ${WARMUP_MS / 1000} s warm-up, ` +
      `${o.conns} connections x ${o.inflight} calls in flight, 16 distinct requests of ${SPANS_PER_REQUEST} spans (${size} B each)`,
  )
  console.log('| workers | run | spans/s | target CPU-s / M spans | of which main thread | target cores busy | client cores busy | loop delay p99 / max ms | ticks | peak RSS MiB | failed calls |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    const fails = [...r.failed].map(([c, n]) => `${grpc.status[c] ?? c}=${n}`).join(' ') || '0'
    console.log(
      `| ${r.workers} | ${r.run} | ${fmt(r.spansPerSec)} | ${fmt(r.cpuPerMillion, 2)} | ${fmt(r.mainCpuPerMillion, 2)} | ${fmt(r.targetCores, 2)} | ${fmt(r.clientCores, 2)} | ${fmt(r.loopP99Ms, 1)} / ${fmt(r.loopMaxMs, 1)} | ${r.window.ticks} | ${fmt(r.peakRssMiB)} | ${fails} |`,
    )
  }
  // the figures as one JSON line (min / median / max objects), for run.ts's results file and compare.js
  const json = o.workers.map((w) => {
    const rs = results.filter((r) => r.workers === w)
    return {
      workers: w,
      spansPerSec: figure(rs.map((r) => r.spansPerSec)),
      cpuSecPerMillion: figure(rs.map((r) => r.cpuPerMillion)),
      mainCpuSecPerMillion: figure(rs.map((r) => r.mainCpuPerMillion)),
      loopDelayP99Ms: figure(rs.map((r) => r.loopP99Ms)),
      peakRssMiB: figure(rs.map((r) => r.peakRssMiB)),
    }
  })
  console.log(JSON.stringify({ bench: 'workers', runs: o.runs, figures: json }))
  console.log('\nmin / median / max over runs')
  console.log('| workers | spans/s | target CPU-s / M spans | main thread CPU-s / M spans | loop delay p99 ms | peak RSS MiB |')
  console.log('|---|---|---|---|---|---|')
  for (const w of o.workers) {
    const rs = results.filter((r) => r.workers === w)
    console.log(
      `| ${w} | ${spread(rs.map((r) => r.spansPerSec))} | ${spread(rs.map((r) => r.cpuPerMillion), 2)} | ${spread(rs.map((r) => r.mainCpuPerMillion), 2)} | ${spread(rs.map((r) => r.loopP99Ms), 1)} | ${spread(rs.map((r) => r.peakRssMiB))} |`,
    )
  }
}

const ti = process.argv.indexOf('--target')
if (ti >= 0) {
  target(Number(process.argv[ti + 1])).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
