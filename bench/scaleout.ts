/**
 * Scale-out on the real broker (issue 12's target): 3 ingest processes + 2 deciders on this machine.
 *
 *   npm run build && KAFKA_BROKERS=127.0.0.1:19092 node dist/bench/scaleout.js \
 *     [--seconds 30] [--runs 3] [--rate 300000] [--warmup 5] [--per-node] [--cpu-prof DIR]
 *
 * --per-node: instead of the scale-out, each role's own CPU per span, one process alone, closed loop
 * (4 connections x 4 calls in flight, as bench/peer-spanmetrics.ts) on the same 48 requests: an
 * ingest node (partials to the real broker) and a single deciding sidecar (embedded bus), runs
 * alternating, so that both see the same machine; with this load generator's CPU per span.
 * --cpu-prof DIR: the sidecar processes run under `node --cpu-prof` (one .cpuprofile each in DIR).
 * Runs in another --outDir than dist/ work too (the sidecar is taken from the same build).
 *
 * Processes (children of this one, fresh per run, on topics `pullback-bench-scaleout-<run>.*` deleted
 * afterwards):
 *   - 3 ingest nodes: `node dist/src/cli/main.js sidecar` with `decider.distributed: true`,
 *     `decider.enabled: false` (OTLP/gRPC on 127.0.0.1 -> normalize -> IngestNode -> partials topic),
 *     admin, self-telemetry, state and deployment events off;
 *   - 2 deciders: this file with `--role decider`, which runs DeciderProcess (the assembly behind
 *     `pullback decider`: group member on the partials topic, merge, engine, signed publisher) and
 *     reports its signal store's request total and its judgement delays on stdout.
 * Load (this process, open loop): pre-encoded ExportTraceServiceRequests (otlp_proto, 512 SERVER
 * spans x 10 attributes; 8 services x 2 versions x 3 pods = 48 requests; pod p runs on node p, as a
 * DaemonSet places it) over gRPC (4 HTTP/2 connections per node, the lean client of bench/grpc-raw.ts: the generator shares the 2 cores), at --rate spans/s spread over 50 ms slots. The bytes are encoded
 * once; each second their span timestamps (fixed64 fields found by marker values at encoding) are
 * rewritten in fresh copies to the previous second, so telemetry time follows the wall clock as live.
 * A slot's request that would exceed 64 calls in flight to its node is not sent (counted as shed):
 * the offered load stays steady and what the nodes cannot take is visible.
 *
 * Figures per run, over --seconds after --warmup:
 *   - offered / acknowledged spans/s (gRPC OK) and shed / failed calls;
 *   - end to end: requests the deciders' signal stores recorded per second (sum over both deciders and
 *     the 16 series, store windows read at the start and end of the measurement), and after the load
 *     stops and the stores settle, recorded / acknowledged (1.0: nothing lost or doubled; a call that
 *     timed out may still have been taken, so with timeouts also recorded / (acknowledged + timed out),
 *     which is then <= 1);
 *   - the decider's added delay: each time a decider's judged watermark W advances, the wall time
 *     then minus the wall time the slowest node announced W (its heartbeat's nowMs = W + lateness,
 *     the nodes' clock being this machine's wall clock), polled every 10 ms: p50/p99 against one
 *     bucket + 1 s. The nodes tick on the wall clock's whole seconds (src/common/ticker.ts), so
 *     they announce a bucket together; before that each ticked on the phase its process started
 *     at, the watermark waited for the last of them, and this figure's p50 was ~0.2 or ~1.0 s by
 *     the luck of a run's start. A run has 12 samples (two deciders, one per bucket, 30 s): its
 *     p99 is their maximum, so the p50 is the figure that reproduces;
 *   - CPU (cores busy over the window, utime+stime from /proc) and RSS (at the end; peak VmHWM) per
 *     process, this load generator included (the broker's JVM is not ours and not counted).
 * Then min / median / max over the runs. The target (300 k spans/s on 2 cores, p99 delay <= one
 * bucket + 1 s) is printed as met or not; the exit code is 1 when a run failed to complete, not when
 * the target is missed.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import protobuf from 'protobufjs'
import { silentLogger } from '../src/common/logger.js'
import { parseConfig } from '../src/config/load.js'
import { createTransport } from '../src/kafka/index.js'
import { signerFromKey } from '../src/publish/signing.js'
import { TRACE_EXPORT_PATH } from '../src/receivers/otlp-grpc/receiver.js'
import { DeciderProcess } from '../src/runtime/decider-process.js'
import { httpServerAttributes, strAttr } from './http-span.js'
import { flags, exitOnHelp } from './args.js'
import { DEADLINE_EXCEEDED, RawGrpcClient, type CallResult } from './grpc-raw.js'
import { spread as figure } from './stats.js'

exitOnHelp(import.meta.url)

const HERE = path.dirname(fileURLToPath(import.meta.url))
/** the sidecar's entry point in the same build as this bench (dist/bench/x.js -> dist/src/cli/main.js, or any --outDir) */
const SIDECAR_MAIN = path.resolve(HERE, '../src/cli/main.js')

/** The repository's proto/ directory: dist/bench/x.js -> <repo>/proto, else (another --outDir) the working directory's. */
function protoDir(): string {
  for (const dir of [path.resolve(HERE, '../../proto'), path.join(process.cwd(), 'proto')]) {
    if (existsSync(path.join(dir, 'opentelemetry/proto/collector/trace/v1/trace_service.proto'))) return dir
  }
  throw new Error('proto/ not found (run from the repository root)')
}
const SPANS_PER_REQUEST = 512
const SERVICES = ['checkout', 'orders', 'payments', 'cart', 'search', 'catalog', 'users', 'shipping']
const VERSIONS = ['2.3.0', '2.4.0']
const NODES = 3
const DECIDERS = 2
const PARTITIONS = 12
const SLOT_MS = 50
const MAX_INFLIGHT_PER_NODE = 64
/** HTTP/2 connections per node: one connection's flow-control window would cap a node well below its CPU */
const CONNS_PER_NODE = 4
const BUCKET_MS = 5000
const LATENESS_MS = 5000
/** marker timestamps (ns) written at encoding and searched for in the bytes: unique 8-byte patterns */
const MARK = 0x5a5a_0000_0000_0000n

interface Options {
  seconds: number
  runs: number
  rate: number
  warmup: number
  /** --cpu-prof DIR: the ingest nodes run with `node --cpu-prof --cpu-prof-dir DIR` (profiles written at exit) */
  cpuProf: string | undefined
  /** --per-node: instead of the scale-out, each role's CPU per span alone, closed loop (see perNode) */
  perNode: boolean
}

function parseOptions(argv: string[]): Options {
  const { int: num, get } = flags(argv)
  const prof = get('cpu-prof')
  // bounded: at most 5 minutes per measurement, 10 runs, 2 M spans/s offered
  return {
    seconds: num('seconds', 30, 1, 300),
    runs: num('runs', 3, 1, 10),
    rate: num('rate', 300_000, 512, 2_000_000),
    warmup: num('warmup', 5, 0, 60),
    cpuProf: prof === undefined ? undefined : path.resolve(prof),
    perNode: argv.includes('--per-node'),
  }
}

/** node flags of a sidecar process: a CPU profile per process and run when --cpu-prof is given */
function nodeArgs(opts: Options, name: string): string[] {
  return opts.cpuProf === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.cpuProf, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`]
}

// ---------------------------------------------------------------------------------------------
// decider role (a child process)

interface DeciderReport {
  partitions: number[]
  /** requests the signal store holds over the bench's series */
  requests: number
  /** new delay samples (ms) since the last report */
  delays: number[]
}

async function deciderRole(): Promise<void> {
  const raw = JSON.parse(process.env.PULLBACK_BENCH_CONFIG ?? '{}') as object
  const from = Number(process.env.PULLBACK_BENCH_FROM)
  const cfg = parseConfig(raw)
  const transport = await createTransport(cfg.kafka)
  const proc = new DeciderProcess({ config: cfg, transport, logger: silentLogger, headless: true, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
  await proc.start()
  const lateness = cfg.engine.lateness
  let judged = -Infinity
  let delays: number[] = []
  const poll = setInterval(() => {
    const w = proc.service.stats().decider?.judgedWatermarkMs ?? -Infinity
    if (w > judged) {
      if (Number.isFinite(judged)) delays.push(Date.now() - (w + lateness))
      judged = w
    }
  }, 10)
  const report = setInterval(() => {
    const store = proc.service.pipeline()?.store
    let requests = 0
    if (store !== undefined) {
      const to = Date.now() + 60_000
      for (const service of SERVICES) for (const version of VERSIONS) requests += store.window({ namespace: 'shop', service, version }, from, to).requests
    }
    const r: DeciderReport = { partitions: proc.service.stats().partitions, requests, delays }
    delays = []
    process.stdout.write(`${JSON.stringify(r)}\n`)
  }, 500)
  const stop = () => {
    clearInterval(poll)
    clearInterval(report)
    proc.shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

// ---------------------------------------------------------------------------------------------
// load

interface Template {
  bytes: Buffer
  node: number
  /** offsets of each span's start and end fixed64 fields */
  startAt: number[]
  endAt: number[]
  durNs: bigint[]
}

function templates(): Template[] {
  const root = new protobuf.Root()
  const dir = protoDir()
  root.resolvePath = (_origin, target) => path.join(dir, target)
  root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto')
  root.resolveAll()
  const T = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
  const s = strAttr
  const routes = ['/api/items/{id}', '/api/items', '/api/health', '/api/search']
  const out: Template[] = []
  SERVICES.forEach((service, si) =>
    VERSIONS.forEach((version, vi) => {
      for (let pod = 0; pod < NODES; pod++) {
        const spans = []
        const durNs: bigint[] = []
        for (let i = 0; i < SPANS_PER_REQUEST; i++) {
          const route = routes[i % routes.length] as string
          const failed = (i + si * 3 + vi + pod) % 40 === 0
          durNs.push(BigInt(300_000 + Math.floor((((i * 2_654_435_761 + si * 97 + pod) % 80_000_000) * ((i % 7) + 1)) / 7)))
          spans.push({
            traceId: Buffer.from(Array.from({ length: 16 }, (_, b) => (i * 31 + b * 17 + si + pod) & 0xff)),
            spanId: Buffer.from(Array.from({ length: 8 }, (_, b) => (i * 13 + b * 7 + vi) & 0xff)),
            name: `${i % 2 === 0 ? 'GET' : 'POST'} ${route}`,
            kind: 2,
            startTimeUnixNano: (MARK + BigInt(2 * i)).toString(),
            endTimeUnixNano: (MARK + BigInt(2 * i + 1)).toString(),
            attributes: httpServerAttributes(service, route, i, si, failed, 'scaleout-bench/1.0'),
            status: failed ? { code: 2, message: 'internal error' } : {},
          })
        }
        const req = {
          resourceSpans: [
            {
              resource: {
                attributes: [s('service.name', service), s('service.version', version), s('service.namespace', 'shop'), s('k8s.namespace.name', 'shop'), s('k8s.pod.name', `${service}-${vi}-${pod}`)],
              },
              scopeSpans: [{ scope: { name: 'bench', version: '1.0.0' }, spans }],
            },
          ],
        }
        const bytes = Buffer.from(T.encode(T.fromObject(req)).finish())
        const startAt: number[] = []
        const endAt: number[] = []
        const mark = Buffer.alloc(8)
        let at = 0
        for (let i = 0; i < SPANS_PER_REQUEST; i++) {
          for (const [v, into] of [
            [MARK + BigInt(2 * i), startAt],
            [MARK + BigInt(2 * i + 1), endAt],
          ] as const) {
            mark.writeBigUInt64LE(v)
            at = bytes.indexOf(mark, at)
            if (at < 0) throw new Error('bench: span timestamp marker not found in the encoded request')
            into.push(at)
            at += 8
          }
        }
        out.push({ bytes, node: pod, startAt, endAt, durNs })
      }
    }),
  )
  return out
}

/** A copy of the template whose spans ended during the second before `secondMs`. */
function stamped(t: Template, secondMs: number): Buffer {
  const b = Buffer.from(t.bytes)
  const base = BigInt(secondMs - 1000) * 1_000_000n
  for (let i = 0; i < SPANS_PER_REQUEST; i++) {
    const end = base + BigInt(Math.floor((i * 1000) / SPANS_PER_REQUEST)) * 1_000_000n
    b.writeBigUInt64LE(end - (t.durNs[i] as bigint), t.startAt[i] as number)
    b.writeBigUInt64LE(end, t.endAt[i] as number)
  }
  return b
}

type ExportClient = RawGrpcClient

function newClient(port: number): ExportClient {
  return new RawGrpcClient(`http://127.0.0.1:${port}`, TRACE_EXPORT_PATH)
}

function exportOnce(c: ExportClient, body: Buffer, timeoutMs: number): Promise<CallResult> {
  return c.call(body, timeoutMs)
}

// ---------------------------------------------------------------------------------------------
// processes

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return NaN
  }
}

function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

interface Proc {
  name: string
  child: ChildProcess
  log: string
}

const live = new Set<ChildProcess>()

function startProc(name: string, args: string[], env: NodeJS.ProcessEnv, dir: string, stdout: 'pipe' | 'log'): Proc {
  const log = path.join(dir, `${name}.log`)
  const fd = openSync(log, 'w')
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', stdout === 'pipe' ? 'pipe' : fd, fd] })
  closeSync(fd)
  live.add(child)
  child.once('exit', () => live.delete(child))
  return { name, child, log }
}

async function stopProc(p: Proc): Promise<void> {
  const c = p.child
  if (c.exitCode !== null || c.signalCode !== null) return
  const exited = new Promise<void>((r) => c.once('exit', () => r()))
  c.kill('SIGTERM')
  const hard = setTimeout(() => c.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(hard)
}

async function waitFor(cond: () => boolean, what: string, procs: Proc[], timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    for (const p of procs) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}): ${readFileSync(p.log, 'utf8').slice(-2000)}`)
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

interface ProcFigures {
  name: string
  cores: number
  rssMiB: number
  peakMiB: number
}

interface RunResult {
  run: number
  /** 1-minute load average of the machine before the run (other work on the machine shares the cores) */
  loadBefore: number
  offered: number
  acked: number
  shed: number
  failed: Map<number, number>
  endToEnd: number
  completeness: number
  /**
   * recorded / (acknowledged + spans of calls that timed out): a call past its deadline may still
   * have been taken by its node, so with timeouts recorded / acked may exceed 1 by up to their
   * spans; nothing lost or doubled is completeness >= 1 and this <= 1
   */
  completenessUpper: number
  delayP50: number
  delayP99: number
  delaySamples: number
  procs: ProcFigures[]
}

const quantile = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number
}

async function oneRun(run: number, opts: Options, brokers: string, tpls: Template[]): Promise<RunResult> {
  const prefix = `pullback-bench-scaleout-${randomUUID().slice(0, 8)}`
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-scaleout-'))
  const topics = { partials: `${prefix}.partials`, decisions: `${prefix}.decisions`, incidents: `${prefix}.incidents`, deployments: `${prefix}.deployments`, spans: `${prefix}.spans` }
  const kafka = { brokers: brokers.split(','), groupPrefix: prefix, topics }
  const procs: Proc[] = []
  const loadBefore = os.loadavg()[0] as number
  const from = Date.now() - 60_000
  const reports = new Map<string, DeciderReport>()
  const delays: number[] = []
  let measuring = false
  try {
    const deciderRaw = {
      kafka,
      decider: { partitions: PARTITIONS },
      publish: { wal: { enabled: false } },
      receivers: { deployments: { enabled: false } },
      runtime: { admin: { enabled: false }, telemetry: { enabled: false } },
    }
    for (let i = 0; i < DECIDERS; i++) {
      const p = startProc(`decider-${i}`, [fileURLToPath(import.meta.url), '--role', 'decider'], { PULLBACK_BENCH_CONFIG: JSON.stringify(deciderRaw), PULLBACK_BENCH_FROM: String(from) }, dir, 'pipe')
      let buf = ''
      p.child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString()
        const lines = buf.split('\n')
        buf = lines.pop() ?? ''
        for (const l of lines) {
          const r = JSON.parse(l) as DeciderReport
          reports.set(p.name, r)
          if (measuring) delays.push(...r.delays)
        }
      })
      procs.push(p)
    }
    const ports: number[] = []
    for (let i = 0; i < NODES; i++) {
      const port = await freePort()
      ports.push(port)
      const cfg = path.join(dir, `node-${i}.yaml`)
      writeFileSync(
        cfg,
        JSON.stringify({
          kafka: { ...kafka, instanceId: `node-${i}` },
          decider: { distributed: true, enabled: false, partitions: PARTITIONS },
          receivers: { otlp: { grpc: { endpoint: `127.0.0.1:${port}` }, http: { enabled: false } }, deployments: { enabled: false } },
          runtime: { admin: { enabled: false }, telemetry: { enabled: false }, state: { enabled: false } },
        }),
      )
      procs.push(startProc(`ingest-${i}`, [...nodeArgs(opts, `ingest-${i}`), SIDECAR_MAIN, 'sidecar', '--config', cfg], {}, dir, 'log'))
    }
    const deciders = procs.filter((p) => p.name.startsWith('decider'))
    await waitFor(
      () => deciders.every((d) => (reports.get(d.name)?.partitions.length ?? 0) > 0) && deciders.reduce((a, d) => a + (reports.get(d.name)?.partitions.length ?? 0), 0) === PARTITIONS,
      'the deciders to share the partitions',
      procs,
    )
    const clients = ports.map((p) => Array.from({ length: CONNS_PER_NODE }, () => newClient(p)))
    // ready = an empty ExportTraceServiceRequest is accepted by every node
    for (const c of clients.map((cs) => cs[0] as ExportClient)) {
      const until = Date.now() + 30_000
      for (;;) {
        const r = await exportOnce(c, Buffer.alloc(0), 1000)
        if (r.ok) break
        if (Date.now() > until) throw new Error('an ingest node did not accept OTLP within 30 s')
        await new Promise((res) => setTimeout(res, 200))
      }
    }

    // open-loop load
    let second = -1
    let bodies: Buffer[] = []
    const inflight = ports.map(() => 0)
    let offered = 0
    let acked = 0
    let shed = 0
    const failed = new Map<number, number>()
    let next = 0
    const t0 = performance.now()
    let issued = 0
    let stopLoad = false
    const calls = new Set<Promise<void>>()
    const slot = () => {
      if (stopLoad) return
      const nowMs = Date.now()
      const sec = Math.floor(nowMs / 1000) * 1000
      if (sec !== second) {
        second = sec
        bodies = tpls.map((t) => stamped(t, sec))
      }
      const due = Math.floor((((performance.now() - t0) / 1000) * opts.rate) / SPANS_PER_REQUEST)
      for (; issued < due; issued++) {
        const k = next++ % tpls.length
        const node = (tpls[k] as Template).node
        offered += SPANS_PER_REQUEST
        if ((inflight[node] as number) >= MAX_INFLIGHT_PER_NODE) {
          shed += SPANS_PER_REQUEST
          continue
        }
        inflight[node] = (inflight[node] as number) + 1
        const conns = clients[node] as ExportClient[]
        const call = exportOnce(conns[issued % conns.length] as ExportClient, bodies[k] as Buffer, 10_000).then((r) => {
          inflight[node] = (inflight[node] as number) - 1
          if (r.ok) acked += SPANS_PER_REQUEST
          else failed.set(r.code, (failed.get(r.code) ?? 0) + 1)
        })
        calls.add(call)
        void call.finally(() => calls.delete(call))
      }
    }
    const timer = setInterval(slot, SLOT_MS)
    await new Promise((r) => setTimeout(r, opts.warmup * 1000))

    const total = () => [...reports.values()].reduce((a, r) => a + r.requests, 0)
    const sample = () => ({ at: performance.now(), offered, acked, shed, recorded: total(), cpu: new Map(procs.map((p) => [p.name, cpuSeconds(p.child.pid as number)])), self: process.cpuUsage() })
    const s0 = sample()
    measuring = true
    await new Promise((r) => setTimeout(r, opts.seconds * 1000))
    const s1 = sample()
    const selfCpu = process.cpuUsage(s0.self)
    measuring = false
    stopLoad = true
    clearInterval(timer)
    const secs = (s1.at - s0.at) / 1000
    const procFigures: ProcFigures[] = procs.map((p) => ({
      name: p.name,
      cores: ((s1.cpu.get(p.name) ?? NaN) - (s0.cpu.get(p.name) ?? NaN)) / secs,
      rssMiB: statusMiB(p.child.pid as number, 'VmRSS'),
      peakMiB: statusMiB(p.child.pid as number, 'VmHWM'),
    }))
    procFigures.push({ name: 'load generator', cores: (selfCpu.user + selfCpu.system) / 1e6 / secs, rssMiB: process.memoryUsage().rss / 2 ** 20, peakMiB: NaN })
    await Promise.all([...calls])
    for (const c of clients.flat()) c.close()
    // settle: the last buckets pass the watermark and the stores stop growing
    let last = -1
    let stable = 0
    const settleUntil = Date.now() + 30_000
    while (Date.now() < settleUntil && stable < 4) {
      await new Promise((r) => setTimeout(r, 1000))
      const n = total()
      stable = n === last ? stable + 1 : 0
      last = n
    }
    return {
      run,
      loadBefore,
      offered: (s1.offered - s0.offered) / secs,
      acked: (s1.acked - s0.acked) / secs,
      shed: (s1.shed - s0.shed) / secs,
      failed,
      endToEnd: (s1.recorded - s0.recorded) / secs,
      completeness: acked > 0 ? total() / acked : NaN,
      completenessUpper: acked > 0 ? total() / (acked + (failed.get(DEADLINE_EXCEEDED) ?? 0) * SPANS_PER_REQUEST) : NaN,
      delayP50: quantile(delays, 0.5),
      delayP99: quantile(delays, 0.99),
      delaySamples: delays.length,
      procs: procFigures,
    }
  } finally {
    for (const p of [...procs].reverse()) await stopProc(p)
    rmSync(dir, { recursive: true, force: true })
    const transport = await createTransport(parseConfig({ kafka }).kafka)
    const admin = transport.admin()
    await admin.deleteTopics([topics.partials, topics.decisions, topics.incidents, topics.deployments, `${prefix}.decider.state`]).catch(() => undefined)
    await admin.disconnect()
  }
}

// ---------------------------------------------------------------------------------------------
// --per-node: each role's CPU per span alone

/** closed loop of --per-node: as bench/peer-spanmetrics.ts, 4 connections x 4 calls in flight */
const PER_NODE_CONNS = 4
const PER_NODE_INFLIGHT = 4

interface NodeCost {
  role: 'ingest' | 'single'
  run: number
  loadBefore: number
  spansPerSec: number
  /** the node's CPU seconds per million spans acknowledged */
  cpuPerM: number
  cores: number
  /** this load generator's CPU seconds per million spans (its gRPC client side) */
  clientPerM: number
  peakMiB: number
}

/**
 * One process alone, fed the scale-out's requests (all 48, every pod's) as fast as it acknowledges
 * them: an ingest node (`decider.distributed: true`, `decider.enabled: false`, partials to the real
 * broker; no decider reads them), or a single deciding sidecar on the embedded bus (the process of
 * bench/peer-spanmetrics.ts: normalize -> signal windows -> engine ticks). Its CPU seconds per million
 * spans acknowledged, over --seconds after --warmup.
 */
async function perNodeRun(role: NodeCost['role'], run: number, opts: Options, brokers: string, tpls: Template[]): Promise<NodeCost> {
  const prefix = `pullback-bench-scaleout-${randomUUID().slice(0, 8)}`
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-scaleout-'))
  const topics = { partials: `${prefix}.partials`, decisions: `${prefix}.decisions`, incidents: `${prefix}.incidents`, deployments: `${prefix}.deployments`, spans: `${prefix}.spans` }
  const kafka = { brokers: brokers.split(','), groupPrefix: prefix, topics }
  const port = await freePort()
  const base = {
    receivers: { otlp: { grpc: { endpoint: `127.0.0.1:${port}` }, http: { enabled: false } }, deployments: { enabled: false } },
    runtime: { admin: { enabled: false }, telemetry: { enabled: false }, state: { enabled: false } },
  }
  const cfg = path.join(dir, 'node.yaml')
  writeFileSync(cfg, JSON.stringify(role === 'ingest' ? { ...base, kafka: { ...kafka, instanceId: 'node-0' }, decider: { distributed: true, enabled: false, partitions: PARTITIONS } } : base))
  const loadBefore = os.loadavg()[0] as number
  const proc = startProc(`${role}-node`, [...nodeArgs(opts, `${role}-node`), SIDECAR_MAIN, 'sidecar', '--config', cfg], {}, dir, 'log')
  const clients = Array.from({ length: PER_NODE_CONNS }, () => newClient(port))
  try {
    const until = Date.now() + 60_000
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited: ${readFileSync(proc.log, 'utf8').slice(-2000)}`)
      if ((await exportOnce(clients[0] as ExportClient, Buffer.alloc(0), 1000)).ok) break
      if (Date.now() > until) throw new Error(`${proc.name} did not accept OTLP within 60 s`)
      await new Promise((res) => setTimeout(res, 200))
    }
    let second = -1
    let bodies: Buffer[] = []
    const body = (k: number): Buffer => {
      const sec = Math.floor(Date.now() / 1000) * 1000
      if (sec !== second) {
        second = sec
        bodies = tpls.map((t) => stamped(t, sec))
      }
      return bodies[k % bodies.length] as Buffer
    }
    let acked = 0
    let next = 0
    let stop = false
    const loop = async (c: ExportClient) => {
      while (!stop) {
        const r = await exportOnce(c, body(next++), 10_000)
        if (r.ok) acked += SPANS_PER_REQUEST
        else await new Promise((res) => setTimeout(res, 50))
      }
    }
    const loops = clients.flatMap((c) => Array.from({ length: PER_NODE_INFLIGHT }, () => loop(c)))
    await new Promise((r) => setTimeout(r, Math.max(2, opts.warmup) * 1000))
    const pid = proc.child.pid as number
    const a0 = acked
    const c0 = cpuSeconds(pid)
    const self0 = process.cpuUsage()
    const t0 = performance.now()
    await new Promise((r) => setTimeout(r, opts.seconds * 1000))
    const spans = acked - a0
    const cpu = cpuSeconds(pid) - c0
    const self = process.cpuUsage(self0)
    const secs = (performance.now() - t0) / 1000
    stop = true
    await Promise.all(loops)
    return {
      role,
      run,
      loadBefore,
      spansPerSec: spans / secs,
      cpuPerM: spans > 0 ? (cpu / spans) * 1e6 : NaN,
      cores: cpu / secs,
      clientPerM: spans > 0 ? ((self.user + self.system) / 1e6 / spans) * 1e6 : NaN,
      peakMiB: statusMiB(pid, 'VmHWM'),
    }
  } finally {
    for (const c of clients) c.close()
    await stopProc(proc)
    rmSync(dir, { recursive: true, force: true })
    if (role === 'ingest') {
      const transport = await createTransport(parseConfig({ kafka }).kafka)
      const admin = transport.admin()
      await admin.deleteTopics([topics.partials, topics.decisions, topics.incidents, topics.deployments]).catch(() => undefined)
      await admin.disconnect()
    }
  }
}

async function perNode(opts: Options, brokers: string, tpls: Template[]): Promise<number> {
  const results: NodeCost[] = []
  for (let run = 1; run <= opts.runs; run++) {
    for (const role of ['ingest', 'single'] as const) {
      const r = await perNodeRun(role, run, opts, brokers, tpls)
      results.push(r)
      console.error(`${role} run ${run}: ${fmt(r.spansPerSec)} spans/s, ${fmt(r.cpuPerM, 2)} CPU-s per M spans (${fmt(r.cores, 2)} cores), client ${fmt(r.clientPerM, 2)} CPU-s per M spans, load ${fmt(r.loadBefore, 2)}`)
    }
  }
  console.log(
    `node ${process.version}, ${os.cpus().length} cores, one process alone, closed loop ${PER_NODE_CONNS} connections x ${PER_NODE_INFLIGHT} calls in flight, ` +
      `${opts.seconds} s per run after ${Math.max(2, opts.warmup)} s warm-up, ${tpls.length} requests of ${SPANS_PER_REQUEST} spans`,
  )
  console.log('| process | spans/s (min / median / max) | CPU-s per M spans | cores busy | load generator CPU-s per M spans | peak RSS MiB |')
  console.log('|---|---|---|---|---|---|')
  for (const [label, role] of [['ingest node (partials to the broker)', 'ingest'], ['single deciding sidecar (embedded bus)', 'single']] as const) {
    const of = results.filter((r) => r.role === role)
    console.log(`| ${label} | ${mmm(of.map((r) => r.spansPerSec))} | ${mmm(of.map((r) => r.cpuPerM), 2)} | ${mmm(of.map((r) => r.cores), 2)} | ${mmm(of.map((r) => r.clientPerM), 2)} | ${mmm(of.map((r) => r.peakMiB))} |`)
  }
  console.log(`machine load average (1 min) before each run: ${results.map((r) => fmt(r.loadBefore, 2)).join(', ')}`)
  const json: Record<string, unknown> = {}
  for (const role of ['ingest', 'single'] as const) {
    const of = results.filter((r) => r.role === role)
    json[role] = { spansPerSec: figure(of.map((r) => r.spansPerSec)), cpuSecPerMillion: figure(of.map((r) => r.cpuPerM)), peakRssMiB: figure(of.map((r) => r.peakMiB)) }
  }
  console.log(JSON.stringify({ bench: 'scaleout-per-node', runs: opts.runs, figures: json }))
  return 0
}

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a')
const mmm = (xs: number[], digits = 0) => {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b)
  if (s.length === 0) return 'n/a'
  const mid = s.length >> 1
  const med = s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  return `${fmt(s[0] as number, digits)} / ${fmt(med, digits)} / ${fmt(s[s.length - 1] as number, digits)}`
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2))
  const brokers = process.env.KAFKA_BROKERS
  if (brokers === undefined || brokers === '') {
    console.error('scaleout: KAFKA_BROKERS is not set (a real broker is needed)')
    return 2
  }
  const tpls = templates()
  if (opts.perNode) return perNode(opts, brokers, tpls)
  const results: RunResult[] = []
  for (let run = 1; run <= opts.runs; run++) {
    const r = await oneRun(run, opts, brokers, tpls)
    results.push(r)
    console.error(
      `run ${run}: offered ${fmt(r.offered)} spans/s, acked ${fmt(r.acked)}, end to end ${fmt(r.endToEnd)} spans/s, recorded/acked ${fmt(r.completeness, 4)}, delay p50 ${fmt(r.delayP50)} ms p99 ${fmt(r.delayP99)} ms`,
    )
  }
  console.log(
    `node ${process.version}, ${os.cpus().length} cores, ${NODES} ingest + ${DECIDERS} deciders + this load generator, real broker ${brokers}, ` +
      `${PARTITIONS} partials partitions, ${opts.seconds} s per run after ${opts.warmup} s warm-up, offered ${fmt(opts.rate)} spans/s ` +
      `(${tpls.length} requests of ${SPANS_PER_REQUEST} spans, ${tpls[0]?.bytes.length ?? 0} B each)`,
  )
  console.log('| run | offered spans/s | acked spans/s | shed spans/s | failed calls | end to end spans/s | recorded / acked | recorded / (acked + timed out) | delay p50 ms | delay p99 ms | samples |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    const fails = [...r.failed].map(([code, n]) => `${grpc.status[code] ?? code}=${n}`).join(' ') || '0'
    console.log(`| ${r.run} | ${fmt(r.offered)} | ${fmt(r.acked)} | ${fmt(r.shed)} | ${fails} | ${fmt(r.endToEnd)} | ${fmt(r.completeness, 4)} | ${fmt(r.completenessUpper, 4)} | ${fmt(r.delayP50)} | ${fmt(r.delayP99)} | ${r.delaySamples} |`)
  }
  console.log(`machine load average (1 min) before each run: ${results.map((r) => fmt(r.loadBefore, 2)).join(', ')}`)
  console.log('\n| process | cores busy (min / median / max) | CPU-s per M spans end to end | RSS at end MiB | peak RSS MiB |')
  console.log('|---|---|---|---|---|')
  const perM = (r: RunResult, cores: number) => (r.endToEnd > 0 ? (cores / r.endToEnd) * 1e6 : NaN)
  for (const name of results[0]?.procs.map((p) => p.name) ?? []) {
    const of = results.map((r) => ({ r, p: r.procs.find((p) => p.name === name) as ProcFigures }))
    console.log(`| ${name} | ${mmm(of.map((x) => x.p.cores), 2)} | ${mmm(of.map((x) => perM(x.r, x.p.cores)), 2)} | ${mmm(of.map((x) => x.p.rssMiB))} | ${mmm(of.map((x) => x.p.peakMiB))} |`)
  }
  const tierCores = (r: RunResult, prefix: string) => r.procs.filter((p) => p.name.startsWith(prefix)).reduce((a, p) => a + p.cores, 0)
  for (const [label, prefix] of [['all ingest', 'ingest'], ['all deciders', 'decider'], ['everything of ours', '']] as const) {
    console.log(`| ${label} | ${mmm(results.map((r) => tierCores(r, prefix)), 2)} | ${mmm(results.map((r) => perM(r, tierCores(r, prefix))), 2)} | | |`)
  }
  const ours = results.map((r) => perM(r, tierCores(r, ''))).sort((a, b) => a - b)
  const oursMed = ours[ours.length >> 1] as number
  console.log(`spans/s these processes could carry on 2 idle cores at the measured CPU per span: ${fmt(2e6 / oursMed)} (load generator included)`)
  const e2e = results.map((r) => r.endToEnd)
  const p99 = results.map((r) => r.delayP99)
  const p50 = results.map((r) => r.delayP50)
  const sorted = [...e2e].sort((a, b) => a - b)
  const medE2e = sorted[sorted.length >> 1] as number
  const medP99 = [...p99].sort((a, b) => a - b)[p99.length >> 1] as number
  console.log(`\nend to end spans/s (min / median / max): ${mmm(e2e)}; decider added delay p50 ms: ${mmm(p50)}, p99 ms: ${mmm(p99)}`)
  // the figures as one JSON line (min / median / max objects), for run.ts's results file and compare.js
  console.log(
    JSON.stringify({
      bench: 'scaleout',
      runs: opts.runs,
      offered: opts.rate,
      figures: { endToEndSpansPerSec: figure(e2e), delayP50Ms: figure(p50), delayP99Ms: figure(p99), completeness: figure(results.map((r) => r.completeness)), cpuSecPerMillionOurs: figure(ours) },
    }),
  )
  console.log(
    `target 300,000 spans/s end to end: ${medE2e >= 300_000 ? 'met' : 'NOT met'} (median ${fmt(medE2e)}); ` +
      `target p99 delay <= one bucket + 1 s (${BUCKET_MS + 1000} ms): ${medP99 <= BUCKET_MS + 1000 ? 'met' : 'NOT met'} (median p99 ${fmt(medP99)} ms, lateness ${LATENESS_MS} ms not included)`,
  )
  return 0
}

const killAll = () => {
  for (const c of live) c.kill('SIGKILL')
}

if (process.argv.includes('--role')) {
  deciderRole().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  process.once('SIGINT', () => {
    killAll()
    process.exit(130)
  })
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      console.error(err)
      killAll()
      process.exitCode = 1
    },
  )
}
