/**
 * Real OpenTelemetry peers for the interop suite: where their binaries are, how to run them, and a
 * byte-counting TCP relay that shows what a peer really put on the wire.
 *
 * Binaries are found through TELEMETRYGEN_BIN / OTELCOL_BIN / MICROMETER_PEER, else through the env file that
 * tools/peers/build.sh writes (${PULLBACK_PEERS_DIR:-~/.cache/pullback-peers}/peers.env). Under CI
 * (CI=true) a missing peer fails the suite; elsewhere the suite is skipped with a note naming the
 * build script.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { describeWhenAvailable, freePort } from '../support/external.js'

export type Peer = 'TELEMETRYGEN_BIN' | 'OTELCOL_BIN' | 'MICROMETER_PEER'

export type PeerLookup = { found: true; path: string } | { found: false; reason: string }

const BUILD_HINT = 'build the peers with `bash tools/peers/build.sh` (Go 1.26 and the Go module proxy; Maven and a JDK 17+ for the Micrometer peer) or set TELEMETRYGEN_BIN/OTELCOL_BIN/MICROMETER_PEER'

function envFile(): Record<string, string> {
  const root = process.env.PULLBACK_PEERS_DIR ?? path.join(os.homedir(), '.cache', 'pullback-peers')
  const file = path.join(root, 'peers.env')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return {}
  }
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.+)$/.exec(line.trim())
    if (m) out[m[1] as string] = m[2] as string
  }
  return out
}

export function findPeer(name: Peer): PeerLookup {
  const candidate = process.env[name] ?? envFile()[name]
  if (candidate === undefined || candidate === '') return { found: false, reason: `${name} is not set and no peers.env names it` }
  try {
    accessSync(candidate, constants.X_OK)
  } catch {
    return { found: false, reason: `${name}=${candidate} is not an executable file` }
  }
  return { found: true, path: candidate }
}

/** The binary's path; only called inside a describePeers block, where the lookup succeeded. */
export function peerPath(name: Peer): string {
  const p = findPeer(name)
  if (!p.found) throw new Error(`${p.reason}: ${BUILD_HINT}`)
  return p.path
}

/**
 * describe() for tests that need real peers (and whatever else `otherwiseUnmet` names as missing,
 * e.g. the broker). Missing peers: under CI one failing test that says how
 * to build them (a CI without peers must not pass silently); elsewhere a skip with a visible note.
 */
export function describePeers(name: string, peers: Peer[], fn: () => void, otherwiseUnmet: string[] = []): void {
  const missing = [...otherwiseUnmet, ...peers.map(findPeer).flatMap((p) => (p.found ? [] : [p.reason]))]
  describeWhenAvailable(name, { missing, hint: BUILD_HINT, check: 'has its real peers', banner: 'INTEROP SKIPPED' }, fn)
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a peer to completion (killed after timeoutMs); output kept to the last 64 KiB of each stream. */
export function runPeer(bin: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const keep = (s: string) => (s.length > 65_536 ? s.slice(-65_536) : s)
    child.stdout.on('data', (d: Buffer) => (stdout = keep(stdout + d.toString())))
    child.stderr.on('data', (d: Buffer) => (stderr = keep(stderr + d.toString())))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** A long-running peer (the Collector): its recent output for failure messages, and a stop that waits. */
export class PeerProcess {
  private output = ''
  private readonly child: ChildProcess
  private readonly exited: Promise<void>
  private exitCode: number | null | undefined

  constructor(bin: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-65_536)
    }
    this.child.stdout?.on('data', keep)
    this.child.stderr?.on('data', keep)
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => {
        this.exitCode = code
        resolve()
      })
      // a binary that cannot be started: no 'close' follows
      this.child.on('error', (err) => {
        this.output += `\nspawn ${bin}: ${err.message}`
        this.exitCode = null
        resolve()
      })
    })
  }

  logs(): string {
    return this.output
  }

  /** undefined while running */
  code(): number | null | undefined {
    return this.exitCode
  }

  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return
    this.child.kill('SIGTERM')
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await this.exited
    clearTimeout(killer)
  }
}

export { freePort }

/**
 * A TCP relay on 127.0.0.1 to `target`, counting the bytes clients send through it: how a test sees
 * whether a peer compressed its requests without trusting the peer's flags.
 */
export class CountingRelay {
  clientBytes = 0
  private readonly server: net.Server
  private readonly sockets = new Set<net.Socket>()

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1')
      this.sockets.add(client).add(upstream)
      client.on('data', (d: Buffer) => void (this.clientBytes += d.length))
      client.pipe(upstream)
      upstream.pipe(client)
      const close = () => {
        client.destroy()
        upstream.destroy()
        this.sockets.delete(client)
        this.sockets.delete(upstream)
      }
      client.on('error', close).on('close', close)
      upstream.on('error', close).on('close', close)
    })
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    const addr = this.server.address()
    return typeof addr === 'object' && addr !== null ? addr.port : 0
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** Resolves once 127.0.0.1:port accepts connections; rejects with the peer's output if it exits or times out. */
export async function waitForPort(port: number, peer: PeerProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => (s.destroy(), resolve(true)))
      s.once('error', () => resolve(false))
    })
    if (open) return
    if (peer.code() !== undefined) throw new Error(`the peer exited (${String(peer.code())}):\n${peer.logs()}`)
    if (Date.now() > until) throw new Error(`port ${port} did not open in ${timeoutMs} ms:\n${peer.logs()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** The Collector's own telemetry: warnings only, no :8888 metrics listener (tests run several Collectors at once). */
const QUIET_TELEMETRY = ['  telemetry:', '    logs:', '      level: warn', '    metrics:', '      level: none']

/**
 * Starts the Collector with `receivers`, `exporters`, `connectors` (optional) and `pipelines` (YAML
 * lines, already indented under their section) and waits until every port in `ports` listens.
 */
export async function startCollector(dir: string, c: { receivers: string[]; exporters: string[]; connectors?: string[]; pipelines: string[]; ports: number[] }): Promise<PeerProcess> {
  const file = path.join(dir, 'otelcol.yaml')
  const connectors = c.connectors !== undefined ? ['connectors:', ...c.connectors] : []
  writeFileSync(file, ['receivers:', ...c.receivers, 'exporters:', ...c.exporters, ...connectors, 'service:', ...QUIET_TELEMETRY, '  pipelines:', ...c.pipelines, ''].join('\n'))
  const collector = new PeerProcess(peerPath('OTELCOL_BIN'), ['--config', `file:${file}`])
  try {
    for (const port of c.ports) await waitForPort(port, collector, 30_000)
  } catch (err) {
    await collector.stop()
    throw err
  }
  return collector
}

/** A kafka exporter section (YAML lines) writing traces to `topic` on the test broker. */
export function kafkaTracesExporter(id: string, brokers: string, topic: string, encoding: 'otlp_proto' | 'otlp_json', partitionTracesById: boolean): string[] {
  return [`  ${id}:`, `    brokers: [${brokers}]`, '    traces:', `      topic: ${topic}`, `      encoding: ${encoding}`, `    partition_traces_by_id: ${String(partitionTracesById)}`]
}
