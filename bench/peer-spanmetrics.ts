/**
 * pullback's OTLP/gRPC span path vs the OpenTelemetry Collector's spanmetrics connector, on the same
 * bytes, on the same machine.
 *
 *   npm run build && OTELCOL_BIN=/path/to/otelcol node dist/bench/peer-spanmetrics.js \
 *     [--seconds 10] [--runs 2] [--conns 4] [--inflight 4] [--only collector|pullback]
 *     [--grpc-server grpc-js|http2|both] [--client grpc-js|raw]
 *
 * Both targets run as child processes listening on 127.0.0.1 only, and are fed identical pre-encoded
 * ExportTraceServiceRequests (otlp_proto, 512 SERVER spans x 10 attributes each, 8 services x 2
 * versions) by clients in this process (grpc-js by default, see --client), which call
 * /opentelemetry.proto.collector.trace.v1.TraceService/Export with raw bytes, keeping
 * conns x inflight calls outstanding for the whole run (as fast as the target accepts). Measured over
 * the window after a 2 s warm-up:
 *   - spans/s acknowledged (OK responses x 512),
 *   - the target's CPU seconds per million spans (utime+stime of /proc/<pid>/stat, all threads),
 *   - the target's peak resident memory (VmHWM of /proc/<pid>/status, whole process life), and the
 *     anonymous / file-backed split (RssAnon / RssFile) at the largest of the window's 250 ms samples.
 * Targets alternate (collector, pullback, collector, ...) so that noise from other load spreads evenly.
 * `--grpc-server` picks pullback's gRPC transport (`receivers.otlp.grpc.server`, default grpc-js);
 * `both` measures pullback once with each per run (collector, pullback[grpc-js], pullback[http2], ...).
 * `--client raw` loads the targets with bench/grpc-raw.ts (node:http2, no grpc-js client) instead of
 * grpc-js clients: less of the shared cores goes to the load generator; partial successes are then
 * not read (the column shows n/a).
 * The clients share the 2 cores with the target: spans/s is the pair's throughput on this machine,
 * CPU per span is the target's own cost and the fairer number for the comparison.
 *
 * Targets:
 *   (a) the Collector: otlp receiver (gRPC only, 127.0.0.1) -> span_metrics connector (defaults:
 *       dimensions service.name, span.name, span.kind, status.code; explicit-bucket histogram;
 *       flush every 5 s) -> nop exporter; its own telemetry switched off (no :8888 listener).
 *   (b) `node dist/src/cli/main.js sidecar` with gRPC on 127.0.0.1, HTTP, admin and self-telemetry off,
 *       no Kafka (embedded bus): receiver -> lazy decoder -> normalize -> signal windows -> engine ticks.
 *
 * How OTELCOL_BIN was obtained (a local tool, built outside this repository, never committed): the
 * Collector builder go.opentelemetry.io/collector/cmd/builder v0.165.0 was installed with `go install`
 * from the Go module proxy, and given a manifest (kept under /tmp) naming
 * go.opentelemetry.io/collector/receiver/otlpreceiver v0.165.0,
 * github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector v0.165.1,
 * go.opentelemetry.io/collector/exporter/nopexporter v0.165.0 (and debugexporter v0.165.0), and the
 * confmap providers fileprovider and envprovider v1.71.0; the builder compiled it with Go 1.26.
 * Without OTELCOL_BIN only pullback is measured.
 *
 * Profiling pullback's side: PULLBACK_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (node flags for
 * the pullback child only; --cpu-prof is refused in NODE_OPTIONS), PEER_KEEP_LOGS=1 keeps each target's
 * directory (config and stdout/stderr, e.g. with --trace-gc).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { TRACE_EXPORT_PATH, traceServiceDefinition, type GrpcServerKind } from '../src/receivers/otlp-grpc/receiver.js'
import { RawGrpcClient } from './grpc-raw.js'
import { SERVICES, SIDECAR_MAIN, SPANS_PER_REQUEST, VERSIONS, cpuSeconds, fmt, freePort, median, payloads, spread, statusKiB } from './peer-common.js'
import { spread as figure } from './stats.js'
import { flags, exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const WARMUP_MS = 2_000

interface Options {
  seconds: number
  runs: number
  conns: number
  inflight: number
  only: 'collector' | 'pullback' | undefined
  servers: GrpcServerKind[]
  client: 'grpc-js' | 'raw'
}

function parseOptions(argv: string[]): Options {
  const { get, int } = flags(argv)
  const num = (name: string, def: number, max: number): number => int(name, def, 1, max)
  const only = get('only')
  if (only !== undefined && only !== 'collector' && only !== 'pullback') throw new Error('--only must be collector or pullback')
  const server = get('grpc-server') ?? 'grpc-js'
  if (server !== 'grpc-js' && server !== 'http2' && server !== 'both') throw new Error('--grpc-server must be grpc-js, http2 or both')
  const servers: GrpcServerKind[] = server === 'both' ? ['grpc-js', 'http2'] : [server]
  // bounded: at most 5 minutes per measurement, 10 runs
  const client = get('client') ?? 'grpc-js'
  if (client !== 'grpc-js' && client !== 'raw') throw new Error('--client must be grpc-js or raw')
  return { seconds: num('seconds', 10, 300), runs: num('runs', 2, 10), conns: num('conns', 4, 32), inflight: num('inflight', 4, 64), only, servers, client }
}

type ExportClient = grpc.Client & { Export(body: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const ClientCtor = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')

function newClient(port: number): ExportClient {
  // a local subchannel pool gives each client its own HTTP/2 connection
  return new ClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as ExportClient
}

function exportOnce(c: ExportClient, body: Buffer, timeoutMs: number): Promise<{ ok: true; partial: boolean } | { ok: false; code: number }> {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + timeoutMs)
    ;(c as unknown as { Export(b: Buffer, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }).Export(
      body,
      new grpc.Metadata(),
      { deadline },
      (err, res) => resolve(err ? { ok: false, code: err.code } : { ok: true, partial: rejectedSpans(res) > 0 }),
    )
  })
}

/** One connection of the load generator; `partial` is undefined when the client does not read answers. */
interface LoadClient {
  call(body: Buffer, timeoutMs: number): Promise<{ ok: true; partial?: boolean } | { ok: false; code: number }>
  close(): void
}

function grpcJsClient(port: number): LoadClient {
  const c = newClient(port)
  return { call: (body, timeoutMs) => exportOnce(c, body, timeoutMs), close: () => c.close() }
}

function rawClient(port: number): LoadClient {
  const c = new RawGrpcClient(`http://127.0.0.1:${port}`, TRACE_EXPORT_PATH)
  return { call: (body, timeoutMs) => c.call(body, timeoutMs), close: () => c.close() }
}

/**
 * rejected_spans of an ExportTraceServiceResponse (partial_success = field 1, rejected_spans = its
 * field 1); 0 when absent. Both targets may send an empty partial_success message on full success.
 */
function rejectedSpans(res: Buffer | undefined): number {
  if (res === undefined || res.length < 2 || res[0] !== 0x0a) return 0
  const end = Math.min(res.length, 2 + (res[1] as number))
  if ((res[1] as number) >= 0x80 || end <= 2 || res[2] !== 0x08) return 0
  let v = 0
  let mul = 1
  for (let i = 3; i < end; i++) {
    const b = res[i] as number
    v += (b & 0x7f) * mul
    if (b < 0x80) return v
    mul *= 128
  }
  return 0
}

interface Target {
  name: 'collector' | 'pullback'
  /** pullback's gRPC transport */
  server: GrpcServerKind | undefined
  child: ChildProcess
  port: number
  dir: string
}

async function startTarget(name: 'collector' | 'pullback', otelcolBin: string | undefined, server?: GrpcServerKind): Promise<Target> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pb-peer-${name}-`))
  const port = await freePort()
  const log = openSync(path.join(dir, 'target.log'), 'w')
  let child: ChildProcess
  if (name === 'collector') {
    const cfg = path.join(dir, 'otelcol.yaml')
    writeFileSync(
      cfg,
      `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${port}
connectors:
  span_metrics:
    metrics_flush_interval: 5s
exporters:
  nop:
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [span_metrics]
    metrics:
      receivers: [span_metrics]
      exporters: [nop]
`,
    )
    child = spawn(otelcolBin as string, ['--config', `file:${cfg}`], { stdio: ['ignore', log, log] })
  } else {
    const cfg = path.join(dir, 'pullback.yaml')
    writeFileSync(
      cfg,
      `receivers:
  otlp:
    grpc:
      endpoint: 127.0.0.1:${port}
      server: ${server ?? 'grpc-js'}
    http:
      enabled: false
runtime:
  admin:
    enabled: false
  telemetry:
    enabled: false
`,
    )
    // PULLBACK_NODE_FLAGS (space-separated, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): node flags for the
    // pullback child only, for profiling its side (--cpu-prof is not allowed in NODE_OPTIONS)
    const nodeFlags = (process.env.PULLBACK_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '')
    child = spawn(process.execPath, [...nodeFlags, SIDECAR_MAIN, 'sidecar', '--config', cfg], { stdio: ['ignore', log, log] })
  }
  closeSync(log)
  const target: Target = { name, server: name === 'pullback' ? (server ?? 'grpc-js') : undefined, child, port, dir }
  // ready = an empty (valid) ExportTraceServiceRequest is accepted
  const probe = newClient(port)
  const until = Date.now() + 30_000
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${readFileSync(path.join(dir, 'target.log'), 'utf8').slice(-2000)}`)
      const r = await exportOnce(probe, Buffer.alloc(0), 1_000)
      if (r.ok) break
      if (Date.now() > until) throw new Error(`${name} not ready on 127.0.0.1:${port} within 30 s (last code ${r.code})`)
      await new Promise((res) => setTimeout(res, 200))
    }
  } catch (err) {
    await stopTarget(target)
    throw err
  } finally {
    probe.close()
  }
  return target
}

async function stopTarget(t: Target): Promise<void> {
  if (t.child.exitCode === null && t.child.signalCode === null) {
    const exited = new Promise<void>((r) => t.child.once('exit', () => r()))
    t.child.kill('SIGTERM')
    const hard = setTimeout(() => t.child.kill('SIGKILL'), 30_000)
    await exited
    clearTimeout(hard)
  }
  // PEER_KEEP_LOGS=1 keeps each target's directory (config, target.log) for inspection
  if (process.env.PEER_KEEP_LOGS === '1') console.error(`${t.name}: kept ${t.dir}`)
  else rmSync(t.dir, { recursive: true, force: true })
}

interface RunResult {
  /** collector, or pullback[<grpc server>] */
  target: string
  run: number
  spansPerSec: number
  cpuSecPerMillion: number
  targetCores: number
  clientCores: number
  peakRssMiB: number
  endRssMiB: number
  /** anonymous / file-backed resident KiB->MiB at the window's largest RSS sample */
  sampledAnonMiB: number
  sampledFileMiB: number
  okRequests: number
  failed: Map<number, number>
  partial: number
}

interface RssSplit {
  rss: number
  anon: number
  file: number
}

/** VmRSS and its anonymous (heaps, buffers) and file-backed (executable, libraries) parts, KiB. */
function rssSplit(pid: number): RssSplit {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN)
    return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') }
  } catch {
    return { rss: 0, anon: NaN, file: NaN }
  }
}

async function measure(t: Target, run: number, bodies: Buffer[], opts: Options): Promise<RunResult> {
  const pid = t.child.pid as number
  const clients: LoadClient[] = Array.from({ length: opts.conns }, () => (opts.client === 'raw' ? rawClient(t.port) : grpcJsClient(t.port)))
  let ok = 0
  let partial = 0
  const failed = new Map<number, number>()
  let stop = false
  let next = 0
  const loop = async (c: LoadClient) => {
    while (!stop) {
      const body = bodies[next++ % bodies.length] as Buffer
      const r = await c.call(body, 10_000)
      if (r.ok) {
        ok++
        if (r.partial === true) partial++
      } else {
        failed.set(r.code, (failed.get(r.code) ?? 0) + 1)
        // UNAVAILABLE / RESOURCE_EXHAUSTED: back off briefly, as an OTLP exporter would
        await new Promise((res) => setTimeout(res, 50))
      }
    }
  }
  const loops = clients.flatMap((c) => Array.from({ length: opts.inflight }, () => loop(c)))
  await new Promise((r) => setTimeout(r, WARMUP_MS))
  const ok0 = ok
  const cpu0 = cpuSeconds(pid)
  const self0 = process.cpuUsage()
  const t0 = performance.now()
  // the split of the resident set at its largest sample in the window (every 250 ms)
  let split: RssSplit = { rss: 0, anon: NaN, file: NaN }
  const sampler = setInterval(() => {
    const s = rssSplit(pid)
    if (s.rss > split.rss) split = s
  }, 250)
  await new Promise((r) => setTimeout(r, opts.seconds * 1000))
  clearInterval(sampler)
  const ok1 = ok
  const cpu1 = cpuSeconds(pid)
  const self1 = process.cpuUsage(self0)
  const secs = (performance.now() - t0) / 1000
  const peak = statusKiB(pid, 'VmHWM')
  const rss = statusKiB(pid, 'VmRSS')
  stop = true
  await Promise.all(loops)
  for (const c of clients) c.close()
  const spans = (ok1 - ok0) * SPANS_PER_REQUEST
  return {
    target: t.name === 'collector' ? 'collector' : `pullback[${t.server}]`,
    run,
    spansPerSec: spans / secs,
    cpuSecPerMillion: spans > 0 ? ((cpu1 - cpu0) / spans) * 1e6 : NaN,
    targetCores: (cpu1 - cpu0) / secs,
    clientCores: (self1.user + self1.system) / 1e6 / secs,
    peakRssMiB: peak / 1024,
    endRssMiB: rss / 1024,
    sampledAnonMiB: split.anon / 1024,
    sampledFileMiB: split.file / 1024,
    okRequests: ok,
    failed,
    partial,
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2))
  const otelcolBin = process.env.OTELCOL_BIN
  const targets: Array<{ name: 'collector' | 'pullback'; server?: GrpcServerKind }> = []
  if (opts.only !== 'pullback') {
    if (otelcolBin === undefined || otelcolBin === '') {
      if (opts.only === 'collector') throw new Error('OTELCOL_BIN is not set')
      console.log('OTELCOL_BIN not set: measuring pullback only')
    } else targets.push({ name: 'collector' })
  }
  if (opts.only !== 'collector') for (const server of opts.servers) targets.push({ name: 'pullback', server })

  const results: RunResult[] = []
  let sample: Buffer | undefined
  for (let run = 1; run <= opts.runs; run++) {
    // fresh timestamps per run: the signal windows accept spans within their retention only
    const bodies = payloads(BigInt(Date.now()) * 1_000_000n, 'peer-spanmetrics-bench/1.0')
    sample = bodies[0]
    for (const { name, server } of targets) {
      const t = await startTarget(name, otelcolBin, server)
      try {
        results.push(await measure(t, run, bodies, opts))
      } finally {
        await stopTarget(t)
      }
      const r = results[results.length - 1] as RunResult
      const fails = [...r.failed].map(([code, n]) => `${grpc.status[code] ?? code}=${n}`).join(' ') || '0'
      console.error(`${r.target} run ${run}: ${fmt(r.spansPerSec)} spans/s, ${fmt(r.cpuSecPerMillion, 2)} CPU-s/M spans, peak RSS ${fmt(r.peakRssMiB)} MiB, failed ${fails}`)
    }
  }

  console.log(
    `node ${process.version}, ${os.cpus().length} cores, ${opts.seconds} s per run after ${WARMUP_MS / 1000} s warm-up, ` +
      `${opts.conns} ${opts.client} client connections x ${opts.inflight} calls in flight, ${SERVICES.length * VERSIONS.length} distinct requests of ` +
      `${SPANS_PER_REQUEST} spans (${sample?.length ?? 0} B each)`,
  )
  console.log('| target | run | spans/s | target CPU-s / M spans | target cores busy | client cores busy | peak RSS MiB | RSS at end MiB | anon / file MiB at largest sample | failed calls | calls with rejected spans |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    const fails = [...r.failed].map(([code, n]) => `${grpc.status[code] ?? code}=${n}`).join(' ') || '0'
    console.log(
      `| ${r.target} | ${r.run} | ${fmt(r.spansPerSec)} | ${fmt(r.cpuSecPerMillion, 2)} | ${fmt(r.targetCores, 2)} | ${fmt(r.clientCores, 2)} | ${fmt(r.peakRssMiB)} | ${fmt(r.endRssMiB)} | ${fmt(r.sampledAnonMiB)} / ${fmt(r.sampledFileMiB)} | ${fails} | ${opts.client === 'raw' ? 'n/a' : r.partial} |`,
    )
  }
  const of = (name: string) => results.filter((r) => r.target === name)
  const c = of('collector')
  // per run (targets alternate within a run, so each run's pair saw similar load): a target's figure / the Collector's
  const perRun = (name: string, f: (r: RunResult) => number) =>
    of(name).flatMap((r) => {
      const col = c.find((x) => x.run === r.run)
      return col === undefined ? [] : [f(r) / f(col)]
    })
  // the figures as one JSON line (min / median / max objects), for run.ts's results file and compare.js
  const json: Record<string, unknown> = {}
  for (const name of [...new Set(results.map((r) => r.target))]) {
    const rs = of(name)
    const cpu = perRun(name, (r) => r.cpuSecPerMillion)
    json[name] = {
      spansPerSec: figure(rs.map((r) => r.spansPerSec)),
      cpuSecPerMillion: figure(rs.map((r) => r.cpuSecPerMillion)),
      peakRssMiB: figure(rs.map((r) => r.peakRssMiB)),
      ...(name !== 'collector' && cpu.length > 0 ? { cpuPerSpanVsCollector: figure(cpu), peakRssVsCollector: figure(perRun(name, (r) => r.peakRssMiB)) } : {}),
    }
  }
  console.log(JSON.stringify({ bench: 'peer-spanmetrics', runs: opts.runs, seconds: opts.seconds, targets: json }))
  for (const server of opts.servers) {
    const name = `pullback[${server}]`
    const p = of(name)
    if (c.length === 0 || p.length === 0) continue
    const ratio = (f: (r: RunResult) => number) => median(p.map(f)) / median(c.map(f))
    console.log(
      `medians: ${name}/collector spans/s = ${fmt(ratio((r) => r.spansPerSec), 2)}x; ` +
        `CPU per span = ${fmt(ratio((r) => r.cpuSecPerMillion), 2)}x (collector uses ${fmt(1 / ratio((r) => r.cpuSecPerMillion), 2)}x pullback's CPU per span); ` +
        `peak RSS = ${fmt(ratio((r) => r.peakRssMiB), 2)}x`,
    )
    const cpu = perRun(name, (r) => r.cpuSecPerMillion)
    const rss = perRun(name, (r) => r.peakRssMiB)
    console.log(`per-run ratios ${name}/collector (min / median / max): CPU per span ${spread(cpu, 2)}x, peak RSS ${spread(rss, 2)}x`)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
