/**
 * Decider failover, timed on the real broker (issue 12's target "decider failover: verdicts resume
 * within one window after the rebalance completes").
 *
 *   npm run build && KAFKA_BROKERS=127.0.0.1:19092 node dist/bench/failover.js \
 *     [--runs 3] [--nodes 3] [--scenario canary-bad-10pct] [--kill-at 50] [--lead 20] [--control]
 *     [--line-clock] [--sidecar [--no-restart] [--stop kill|term|both]]
 *
 * Per run (fresh topics `pullback-bench-failover-<id>.*`, deleted afterwards; children killed in a
 * finally):
 *   - 3 deciders: this file with `--role decider`, each one DeciderProcess (the assembly behind
 *     `pullback decider`: group member on the partials topic, restore + refill on assignment, engine,
 *     signed publisher), default config except admin, self-telemetry, history and deployment events
 *     off, and no wall-clock bound on telemetry time (the recording is dated 2026-01-15). Each prints
 *     its logs (pino JSON, `time` = its wall clock) and, per engine tick, the status of the watched
 *     service on stdout;
 *   - N ingest nodes in this process (IngestNode + PartialsPublisher, as the kill tests and
 *     `replay --nodes` run them): the recording is split by pod over the nodes as a DaemonSet would
 *     place it, fast-forwarded up to `--lead` seconds before the kill, then published **live**: a
 *     line goes out when the wall clock reaches its telemetry time, and the nodes' clock is the wall
 *     clock on telemetry time, ticking every second (a sidecar's runtime.tickInterval), so each 5 s
 *     bucket is announced once it is `engine.lateness` old, as live sidecars announce it.
 *     `--line-clock`: the nodes' clock moves with the recording's lines only (replay's clock); the
 *     recording's lines then close buckets two at a time every 10 s, and so does judging.
 * At `--kill-at` percent of the way from the deployment to plain replay's rollback (telemetry time),
 * the decider owning the service's partition (watching it, not yet decided) gets SIGKILL: no revoke,
 * no state flush, no leave; the group notices by `session.timeout.ms` (10 s).
 *
 * Timestamps (all wall clock of this machine, ms):
 *   kill      this process, just before `kill('SIGKILL')`;
 *   assigned  the heir's assignment callback (DeciderService's `onAssignment` -> assign, entered)
 *             whose partitions include the service's: the rebalance complete for that partition;
 *   restored  the heir's log "decider partitions assigned; refilling windows" (state restored);
 *   judging   the heir's log "decider windows refilled; judging" (restore + refill done);
 *   status    the heir's first engine tick after `assigned` that evaluated the watched deployment
 *             (the next verdict for the service, whatever its status);
 *   issued    the rollback envelope's `issuedAt` on the decisions topic (signed by the publisher).
 * Figures: (a) kill -> assigned; (b) assigned -> status (the target: <= the contract window,
 * engine.window, 15 s) and assigned -> judging, assigned -> issued; (c) the rollback's `decidedAt`
 * minus plain replay's (telemetry time) and its wall lag (issued minus the wall time at which live
 * telemetry reached replay's `decidedAt`; `--control` adds one run without a kill for the same lag
 * with no failover); (d) the rollback ids on the decisions topic (must be exactly replay's one).
 * Then min / median / max over the runs and PASS / FAIL against the window. Exit code 1 when a run
 * could not complete or the target is not met.
 *
 * `--sidecar`: an ingest sidecar killed mid-stream instead. 1 decider (as above) + N ingest sidecars,
 * each this file with `--role sidecar` (Sidecar in distributed mode: OTLP/HTTP -> IngestNode ->
 * partials topic; its clock is this process's telemetry clock, sent on stdin; tick 20 ms). At the
 * kill point the sidecar running the new version's pods gets SIGKILL (its open bucket is lost, no
 * final heartbeat) and is restarted at once under the same instance id; the requests meant for it
 * wait and are delivered when it listens again (an exporter retrying). Figures: kill -> restarted
 * sidecar listening, -> its first partials, -> the decider's next status of the watched deployment
 * (the decider's watermark waits for the dead node until it speaks again or `decider.nodeTimeout`),
 * listening -> that status (the target: <= one window), decision time vs replay, rollback ids.
 * `--sidecar --no-restart`: a node that does not run the new version's pods is stopped for good (its
 * pods' telemetry gone with it); figures from the signal. `--stop` (default `both` with
 * `--no-restart`, else `kill`): `kill` = SIGKILL (a crash: the decider waits `decider.nodeTimeout`),
 * `term` = SIGTERM (a graceful stop: the sidecar sends its open buckets and "leaving", the decider
 * waits `decider.leaveGrace`), `both` = `--runs` runs of each, reported apart. With a restart,
 * `--stop term` is a rolling update of the DaemonSet (SIGTERM, the new pod under the same node name);
 * `--restart-delay S` starts the new process S seconds after the old one exited (a slow pod start).
 * Extra figures: signal -> the decider lets the node go (its first `leavesExpired` / `timeouts`
 * count), the decider's late partials (data of judged buckets: what a restart lost to judging).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { silentLogger } from '../src/common/logger.js'
import { parseConfig } from '../src/config/load.js'
import { replayLines } from '../src/cli/commands/replay.js'
import { nodeOf, splitMetrics, splitTraces } from '../src/decider/daemonset.js'
import { deciderLeaveGrace } from '../src/decider/config.js'
import type { WatchStatus } from '../src/engine/evaluate.js'
import type { Verdict } from '../src/engine/verdict.js'
import { createTransport } from '../src/kafka/index.js'
import type { ConsumedMessage, KafkaTransport } from '../src/kafka/types.js'
import { IngestNode } from '../src/partials/ingest.js'
import { PartialsPublisher, servicePartition } from '../src/partials/publisher.js'
import { signerFromKey } from '../src/publish/signing.js'
import { decodeOtlpJsonLine } from '../src/receivers/otlp/json.js'
import { DeciderProcess } from '../src/runtime/decider-process.js'
import { Sidecar } from '../src/runtime/sidecar.js'
import { findScenario, recordToLines } from '../src/sim/index.js'
import { flags, exitOnHelp } from './args.js'
import { fmtSpread, spread, type Spread } from './stats.js'

exitOnHelp(import.meta.url)

const DECIDERS = 3
const BUCKET_MS = 5000
/** the live nodes' clock step: a sidecar's default runtime.tickInterval */
const TICK_MS = 1000
/** lines kept per child (its logs and tick statuses); past it lines are counted, not kept */
const MAX_CHILD_LINES = 20_000

interface Options {
  runs: number
  nodes: number
  scenario: string
  /** percent of the way from the deployment to replay's rollback at which the owner is killed */
  killAt: number
  /** seconds of live telemetry before the kill */
  lead: number
  control: boolean
  /** kill an ingest sidecar instead of a decider */
  sidecar: boolean
  /** the nodes' clock moves only with the recording's lines (replay's clock), not every second */
  lineClock: boolean
  /** --sidecar: kill a node that does not run the new version's pods and do not restart it */
  noRestart: boolean
  /** --sidecar: how the node is stopped (both: --runs runs of each) */
  stop: 'kill' | 'term' | 'both'
  /** --sidecar with a restart: seconds between the victim's exit and its new process (a slow pod start) */
  restartDelay: number
}

function parseOptions(argv: string[]): Options {
  const f = flags(argv)
  return {
    runs: f.int('runs', 3, 1, 20),
    nodes: f.int('nodes', 3, 1, 16),
    scenario: f.get('scenario') ?? 'canary-bad-10pct',
    killAt: f.int('kill-at', 50, 1, 99),
    lead: f.int('lead', 20, 5, 300),
    control: argv.includes('--control'),
    sidecar: argv.includes('--sidecar'),
    lineClock: argv.includes('--line-clock'),
    noRestart: argv.includes('--no-restart'),
    stop: stopOption(f.get('stop'), argv.includes('--no-restart')),
    restartDelay: f.int('restart-delay', 0, 0, 120),
  }
}

function stopOption(v: string | undefined, noRestart: boolean): Options['stop'] {
  if (v === undefined) return noRestart ? 'both' : 'kill'
  if (v === 'kill' || v === 'term' || v === 'both') return v
  throw new Error(`--stop must be kill, term or both, got ${v}`)
}

const progress = (msg: string) => process.stderr.write(`[failover ${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)))

// ---------------------------------------------------------------------------------------------
// decider role (a child process)

/** what a decider child prints on stdout besides its pino logs */
interface ChildLine {
  msg: string
  time: number
  partitions?: number[]
  watched?: number
  /** bench-status */
  deploymentId?: string
  status?: string
  t?: number
  /** pino 'decision' */
  verdict?: string
  id?: string
  restored?: number
  ms?: number
  /** sidecar role */
  port?: number
  partials?: number
  /** bench-nodes: the decider's node standings (src/decider/decider.ts "Nodes leaving") */
  leaves?: number
  leavesExpired?: number
  timeouts?: number
  returns?: number
  rejoins?: number
  latePartials?: number
}

async function deciderRole(): Promise<void> {
  const raw = JSON.parse(process.env.PULLBACK_BENCH_CONFIG ?? '{}') as object
  const service = process.env.PULLBACK_BENCH_SERVICE ?? ''
  const cfg = parseConfig(raw)
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
  // the process's lifecycle logs as JSON lines on stdout, stamped by pino with this wall clock
  const logger = pino({ level: 'info', base: null }, { write: (s: string) => void process.stdout.write(s) })
  const transport = await createTransport(cfg.kafka, silentLogger)
  const proc = new DeciderProcess({ config: cfg, transport, logger, headless: true, clock: null, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
  // every tick's status of the watched service (one line per 5 s bucket)
  const observe = proc.tracker.observe.bind(proc.tracker)
  proc.tracker.observe = (statuses: WatchStatus[], verdicts: Verdict[]) => {
    for (const s of statuses) {
      if (`${s.namespace}/${s.service}` === service) out({ msg: 'bench-status', time: Date.now(), deploymentId: s.deploymentId, status: s.status, t: s.t })
    }
    observe(statuses, verdicts)
  }
  // the moment Kafka hands this member its partitions (the rebalance callback, before the restore)
  const svc = proc.service as unknown as { assign(partitions: number[]): Promise<void> }
  const assign = svc.assign.bind(svc)
  svc.assign = (partitions: number[]) => {
    out({ msg: 'bench-assign', time: Date.now(), partitions })
    return assign(partitions)
  }
  await proc.start()
  let parts = ''
  let watched = -1
  // PULLBACK_BENCH_TRACE=1: the consumer's progress whenever it changes (diagnosis, not figures)
  const trace = process.env.PULLBACK_BENCH_TRACE === '1'
  let traced = ''
  let nodesSeen = ''
  const report = setInterval(() => {
    if (trace) {
      const st = proc.service.stats()
      const t = { records: st.records, refilledRuns: st.refilledRuns, refilling: st.refilling, aligned: st.aligned, ticks: st.decider?.ticks, judged: st.decider?.judgedWatermarkMs, notOwned: st.notOwned }
      const k = JSON.stringify(t)
      if (k !== traced) {
        traced = k
        out({ msg: 'bench-trace', time: Date.now(), ...t })
      }
    }
    const d = proc.service.stats().decider
    if (d !== undefined) {
      const n = { leaves: d.leaves, leavesExpired: d.leavesExpired, timeouts: d.timeouts, returns: d.returns, rejoins: d.rejoins, latePartials: d.latePartials }
      const k = JSON.stringify(n)
      if (k !== nodesSeen) {
        nodesSeen = k
        out({ msg: 'bench-nodes', time: Date.now(), ...n })
      }
    }
    const p = proc.service.stats().partitions
    const w = proc.service.pipeline()?.stats().watched ?? 0
    if (p.join(',') !== parts || w !== watched) {
      parts = p.join(',')
      watched = w
      out({ msg: 'bench-report', time: Date.now(), partitions: p, watched: w })
    }
  }, 20)
  const stop = () => {
    clearInterval(report)
    proc.shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

/**
 * `--sidecar` mode: one ingest sidecar (Sidecar, `decider.distributed: true`, `decider.enabled:
 * false`: OTLP/HTTP -> IngestNode -> partials topic). Its clock is the parent's telemetry clock
 * ("clock <ms>" lines on stdin, sent after each request was answered; PULLBACK_BENCH_CLOCK at start),
 * which is live (follows the wall clock) once the parent publishes live.
 */
async function sidecarRole(): Promise<void> {
  const cfg = parseConfig(JSON.parse(process.env.PULLBACK_BENCH_CONFIG ?? '{}') as object)
  let now = Number(process.env.PULLBACK_BENCH_CLOCK ?? '0')
  let pending = ''
  process.stdin.on('data', (c: Buffer) => {
    pending += c.toString()
    const ls = pending.split('\n')
    pending = ls.pop() ?? ''
    for (const l of ls) if (l.startsWith('clock ')) now = Math.max(now, Number(l.slice('clock '.length)))
  })
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
  const logger = pino({ level: 'info', base: null }, { write: (s: string) => void process.stdout.write(s) })
  const transport = await createTransport(cfg.kafka, silentLogger)
  const sidecar = new Sidecar({ config: cfg, transport, logger, headless: true, clock: { now: () => now } })
  await sidecar.start()
  out({ msg: 'bench-port', time: Date.now(), port: sidecar.receivers.http?.port ?? 0 })
  let partials = -1
  const report = setInterval(() => {
    const n = sidecar.partials?.stats().partials ?? 0
    if (n !== partials) {
      partials = n
      out({ msg: 'bench-partials', time: Date.now(), partials: n })
    }
  }, 20)
  const stop = () => {
    clearInterval(report)
    sidecar.shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

// ---------------------------------------------------------------------------------------------
// processes

interface Proc {
  name: string
  child: ChildProcess
  log: string
  lines: ChildLine[]
  dropped: number
  /** newest bench-report */
  partitions: number[]
  watched: number
  /** sidecar role: its OTLP/HTTP port once listening, partials published */
  port: number
  partials: number
}

const live = new Set<ChildProcess>()

function startChild(name: string, env: NodeJS.ProcessEnv, dir: string, role: 'decider' | 'sidecar' = 'decider'): Proc {
  const log = path.join(dir, `${name}.log`)
  const fd = openSync(log, 'a')
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--role', role], { env: { ...process.env, ...env }, stdio: [role === 'sidecar' ? 'pipe' : 'ignore', 'pipe', fd] })
  closeSync(fd)
  live.add(child)
  child.once('exit', () => live.delete(child))
  const p: Proc = { name, child, log, lines: [], dropped: 0, partitions: [], watched: 0, port: 0, partials: 0 }
  let buf = ''
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString()
    const ls = buf.split('\n')
    buf = ls.pop() ?? ''
    for (const l of ls) {
      let o: ChildLine
      try {
        o = JSON.parse(l) as ChildLine
      } catch {
        continue
      }
      if (o.msg === 'bench-report') {
        p.partitions = o.partitions ?? []
        p.watched = o.watched ?? 0
      }
      if (o.msg === 'bench-port') p.port = o.port ?? 0
      if (o.msg === 'bench-partials') p.partials = o.partials ?? 0
      if (p.lines.length < MAX_CHILD_LINES) p.lines.push(o)
      else p.dropped += 1
    }
  })
  return p
}

const alive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null
/** children stopped on purpose (SIGKILL, or SIGTERM: a clean exit): their exit is not a failure */
const stopped = new Set<ChildProcess>()

async function stopProc(p: Proc): Promise<void> {
  const c = p.child
  if (!alive(p)) return
  const exited = new Promise<void>((r) => c.once('exit', () => r()))
  c.kill('SIGTERM')
  const hard = setTimeout(() => c.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(hard)
}

async function waitFor(cond: () => boolean, what: string, procs: Proc[], timeoutMs: number): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    for (const p of procs) {
      if (!alive(p) && p.child.signalCode !== 'SIGKILL' && !stopped.has(p.child)) throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}): ${readFileSync(p.log, 'utf8').slice(-2000)}`)
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

// ---------------------------------------------------------------------------------------------
// one run

interface Line {
  raw: string
  /** newest telemetry time in the line */
  t: number
}

interface Envelope {
  id: string
  kind: string
  issuedAt: number
  decidedAt: number
  service: string
}

interface RunResult {
  run: number
  control: boolean
  loadBefore: number
  victim?: string
  heir?: string
  partition: number
  /** (a) kill -> the heir's assignment of the partition */
  killToAssigned?: number
  /** every survivor assigned (the whole group rebalanced) after the kill */
  killToAllAssigned?: number
  restored?: number
  /** the heir's state restore (assignment -> its "partitions assigned" log) */
  assignedToRestored?: number
  /** (b) */
  assignedToJudging?: number
  assignedToStatus?: number
  firstStatus?: string
  /** the first statuses of the watched deployment judged after the assignment (control: after the kill point), status@window end */
  statuses: string
  assignedToIssued?: number
  /** (c) telemetry ms, and wall ms */
  decidedDelta?: number
  wallLag?: number
  /** (d) */
  rollbackIds: string[]
  rollbackRecords: number
  ok: boolean
  note: string
}

async function oneRun(run: number, opts: Options, control: boolean, brokers: string, lines: Line[], base: Verdict): Promise<RunResult> {
  const prefix = `pullback-bench-failover-${randomUUID().slice(0, 8)}`
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-failover-'))
  const topics = benchTopics(prefix)
  const kafka = { brokers: brokers.split(','), groupPrefix: prefix, topics }
  const raw = deciderConfig(kafka)
  const cfg = parseConfig(raw)
  const partitions = cfg.decider.partitions
  const partition = servicePartition(base.namespace, base.service, partitions)
  const res: RunResult = { run, control, loadBefore: os.loadavg()[0] as number, partition, statuses: '', rollbackIds: [], rollbackRecords: 0, ok: false, note: '' }
  const procs: Proc[] = []
  let transport: KafkaTransport | undefined
  const pubs: PartialsPublisher[] = []
  let reader: { stop(): Promise<void> } | undefined
  let failed = true
  try {
    transport = await createTransport(cfg.kafka, silentLogger)
    progress(`run ${run}${control ? ' (control, no kill)' : ''}: ${DECIDERS} deciders on ${prefix}, ${partitions} partitions, the service on partition ${partition}; load ${res.loadBefore.toFixed(2)}`)
    for (let i = 0; i < DECIDERS; i++) {
      procs.push(startChild(`decider-${i}`, { PULLBACK_BENCH_CONFIG: JSON.stringify(raw), PULLBACK_BENCH_SERVICE: `${base.namespace}/${base.service}` }, dir))
    }
    await waitFor(() => procs.every((p) => p.partitions.length > 0) && procs.reduce((a, p) => a + p.partitions.length, 0) === partitions, 'the deciders to share the partitions', procs, 120_000)
    progress(`group settled: ${procs.map((p) => `${p.name} [${p.partitions.join(',')}]`).join(' ')}`)

    const envelopes: Envelope[] = []
    const consumer = transport.consumer({ groupId: `${prefix}.bench-read`, topics: [topics.decisions], fromBeginning: true, commit: false, onError: () => undefined })
    await consumer.start(async (b) => void envelopes.push(...parseEnvelopes(b.messages)))
    reader = consumer

    for (let i = 0; i < opts.nodes; i++) pubs.push(new PartialsPublisher({ producer: transport.producer(), topic: topics.partials, partitions, logger: silentLogger }))
    const nodes = pubs.map((p, i) => new IngestNode({ node: `node-${i}`, bucketMs: BUCKET_MS, lateness: cfg.engine.lateness, emit: (b) => p.publish(b) }))
    for (const p of pubs) await p.start()
    pubs.forEach((p, i) => p.hello(`node-${i}`))

    const killAt = base.deployedAt + ((base.decidedAt - base.deployedAt) * opts.killAt) / 100
    const liveFrom = killAt - opts.lead * 1000
    let wall0 = NaN
    const wallOf = (t: number) => wall0 + (t - liveFrom)
    let killMs = NaN
    let victim: Proc | undefined
    let now = -Infinity
    let sent = -Infinity
    const rollbacks = () => envelopes.filter((e) => e.kind === 'rollback' && e.service === base.service)
    progress(`fast-forwarding telemetry to ${opts.lead} s before the kill point (deployment + ${opts.killAt}% of replay's ${((base.decidedAt - base.deployedAt) / 1000).toFixed(1)} s)`)
    const advanceTo = async (t: number) => {
      if (!(t > now)) return
      now = t
      for (const n of nodes) n.advance(now)
      if (Math.floor(now / BUCKET_MS) > sent) {
        sent = Math.floor(now / BUCKET_MS)
        for (const p of pubs) await p.flush(30_000)
        if (process.env.PULLBACK_BENCH_TRACE === '1') progress(`flushed bucket at telemetry ${new Date(now).toISOString().slice(14, 23)}`)
      }
    }
    // the owner of the service's partition, watching it and undecided, gets SIGKILL once the nodes' clock reaches the kill point
    const maybeKill = () => {
      if (control || victim !== undefined || now < killAt) return
      victim = procs.find((p) => alive(p) && p.partitions.includes(partition))
      if (victim === undefined) throw new Error(`no live decider owns partition ${partition}`)
      if (victim.watched === 0) throw new Error(`${victim.name} owns partition ${partition} but watches nothing at the kill point`)
      if (victim.lines.some((l) => l.msg === 'decision' && l.verdict === 'rollback')) throw new Error(`${victim.name} decided before the kill point`)
      killMs = Date.now()
      victim.child.kill('SIGKILL')
      res.victim = victim.name
      progress(`SIGKILL ${victim.name} (owner of partition ${partition}, watching ${victim.watched}) at telemetry ${new Date(now).toISOString().slice(11, 21)}`)
    }
    for (const line of lines) {
      if (line.t >= liveFrom) {
        if (Number.isNaN(wall0)) {
          wall0 = Date.now()
          progress(`live from here: telemetry time advances with the wall clock${opts.lineClock ? ' (the nodes\' clock moves with the lines only)' : ', the nodes tick every second'}`)
        }
        // live: the nodes' clock is the wall clock (on telemetry time) and ticks every second, as a
        // sidecar's runtime.tickInterval; the line goes out when the wall clock reaches its time
        while (Date.now() < wallOf(line.t)) {
          await sleep(Math.min(TICK_MS, wallOf(line.t) - Date.now()))
          if (!opts.lineClock) await advanceTo(Math.min(line.t - 1, liveFrom + (Date.now() - wall0)))
          maybeKill()
        }
      }
      const d = decodeOtlpJsonLine(line.raw)
      if (d.type === 'traces') splitTraces(d.request, opts.nodes).forEach((r, i) => r !== undefined && nodes[i]!.consumeTraces(r))
      else if (d.type === 'metrics') splitMetrics(d.request, opts.nodes).forEach((r, i) => r !== undefined && nodes[i]!.consumeMetrics(r))
      if (!Number.isFinite(line.t)) continue
      await advanceTo(line.t)
      maybeKill()
      // the rollback is out: a few more seconds of live telemetry for duplicates, then stop
      const first = rollbacks()[0]
      if (first !== undefined && Date.now() > first.issuedAt + 5000) break
      if (!Number.isNaN(wall0) && Date.now() > wallOf(base.decidedAt) + 120_000) throw new Error('no rollback within 120 s of its live time')
    }
    const first = rollbacks()[0]
    if (first === undefined) throw new Error('the recording ended without a rollback on the decisions topic')
    progress(`rollback ${first.id} on the decisions topic (${rollbacks().length} record(s))`)

    // figures
    res.rollbackIds = [...new Set(rollbacks().map((e) => e.id))]
    res.rollbackRecords = rollbacks().length
    res.decidedDelta = first.decidedAt - base.decidedAt
    res.wallLag = first.issuedAt - wallOf(base.decidedAt)
    const after = (p: Proc, msg: string, from: number, pred: (l: ChildLine) => boolean = () => true) => p.lines.find((l) => l.msg === msg && l.time >= from && pred(l))
    const statusList = (p: Proc, from: number) =>
      p.lines
        .filter((l) => l.msg === 'bench-status' && l.deploymentId === base.deploymentId && l.time >= from)
        .slice(0, 3)
        .map((l) => `${l.status}@${new Date(l.t ?? 0).toISOString().slice(14, 21)}`)
        .join(' ')
    if (control) {
      const owner = procs.find((p) => p.partitions.includes(partition))
      if (owner !== undefined) res.statuses = statusList(owner, wallOf(killAt))
    }
    if (!control && victim !== undefined) {
      const survivors = procs.filter((p) => p !== victim)
      const assigned = survivors
        .map((p) => ({ p, l: after(p, 'bench-assign', killMs, (l) => (l.partitions ?? []).includes(partition)) }))
        .filter((x) => x.l !== undefined)
        .sort((x, y) => x.l!.time - y.l!.time)[0]
      if (assigned === undefined) throw new Error(`no survivor was assigned partition ${partition}`)
      const heir = assigned.p
      const tAssigned = assigned.l!.time
      res.heir = heir.name
      res.killToAssigned = tAssigned - killMs
      const everyone = survivors.map((p) => after(p, 'bench-assign', killMs)?.time)
      if (everyone.every((t) => t !== undefined)) res.killToAllAssigned = Math.max(...(everyone as number[])) - killMs
      const restored = after(heir, 'decider partitions assigned; refilling windows', tAssigned)
      if (restored !== undefined) {
        res.restored = restored.restored
        res.assignedToRestored = restored.time - tAssigned
      }
      const judging = after(heir, 'decider windows refilled; judging', tAssigned)
      if (judging !== undefined) res.assignedToJudging = judging.time - tAssigned
      const status = after(heir, 'bench-status', tAssigned, (l) => l.deploymentId === base.deploymentId)
      if (status !== undefined) {
        res.assignedToStatus = status.time - tAssigned
        res.firstStatus = status.status
      }
      res.statuses = statusList(heir, tAssigned)
      res.assignedToIssued = first.issuedAt - tAssigned
    }
    res.ok = res.rollbackIds.length === 1 && res.rollbackIds[0] === base.id && (control || res.assignedToStatus !== undefined)
    failed = false
    return res
  } catch (err) {
    res.note = err instanceof Error ? err.message : String(err)
    return res
  } finally {
    for (const p of pubs) await p.shutdown(3000).catch(() => undefined)
    await reader?.stop().catch(() => undefined)
    await cleanup(run, procs, dir, failed, transport, prefix)
  }
}

/** Every topic of a run under its own prefix (all deleted at the end by prefix). */
function benchTopics(prefix: string) {
  const t = (name: string) => `${prefix}.${name}`
  return { partials: t('partials'), decisions: t('decisions'), incidents: t('incidents'), deployments: t('deployments'), history: t('history'), spans: t('spans'), audit: t('audit'), artifacts: t('artifacts') }
}

/** The deciders' configuration: defaults (state topic, session timeout, retention, minWriteInterval) except what has no part here. */
function deciderConfig(kafka: object) {
  return {
    kafka,
    publish: { wal: { enabled: false } },
    receivers: { deployments: { enabled: false } },
    history: { enabled: false },
    runtime: { admin: { enabled: false }, telemetry: { enabled: false } },
  }
}

function parseEnvelopes(messages: ConsumedMessage[]): Envelope[] {
  const out: Envelope[] = []
  for (const m of messages) {
    try {
      const e = JSON.parse((m.value as Buffer).toString()) as { id: string; kind: string; issuedAt: number; payload: Verdict }
      out.push({ id: e.id, kind: e.kind, issuedAt: e.issuedAt, decidedAt: e.payload.decidedAt, service: e.payload.service })
    } catch {
      // not a decision envelope: ignored
    }
  }
  return out
}

/** Kills what is left of the run's children, removes its directory (kept when the run failed), deletes its topics. */
async function cleanup(run: number, procs: Proc[], dir: string, failed: boolean, transport: KafkaTransport | undefined, prefix: string): Promise<void> {
  for (const p of procs) if (alive(p)) p.child.kill('SIGKILL')
  await Promise.all(procs.map((p) => stopProc(p)))
  for (const p of procs) if (p.dropped > 0) progress(`${p.name}: ${p.dropped} stdout lines past the ${MAX_CHILD_LINES} kept were not kept (figures may be missing)`)
  if (failed || process.env.PULLBACK_BENCH_TRACE === '1') {
    progress(`run ${run}: the children's stderr (.log) and stdout lines (.log.out) kept in ${dir}`)
    for (const p of procs) writeFileSync(`${p.log}.out`, p.lines.map((l) => JSON.stringify(l)).join('\n'))
  }
  else rmSync(dir, { recursive: true, force: true })
  if (transport === undefined) return
  const admin = transport.admin()
  try {
    await admin.connect()
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`))
    if (mine.length > 0) await admin.deleteTopics(mine)
    progress(`deleted ${mine.length} topics of ${prefix}`)
  } catch (err) {
    progress(`could not delete the topics of ${prefix}: ${err instanceof Error ? err.message : String(err)}`)
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

// ---------------------------------------------------------------------------------------------
// --sidecar: an ingest sidecar killed mid-stream

interface JsonResource {
  resource?: { attributes?: { key: string; value: { stringValue?: string } }[] }
}
interface JsonLine {
  resourceSpans?: JsonResource[]
  resourceMetrics?: JsonResource[]
}

const jsonAttrs = (r: JsonResource): Record<string, string> => Object.fromEntries((r.resource?.attributes ?? []).map((a) => [a.key, a.value.stringValue ?? '']))

/** A recorded OTLP/JSON line as the bodies each node's sidecar receives (the DaemonSet split, nodeOf). */
function splitJson(raw: string, n: number): { path: '/v1/traces' | '/v1/metrics'; bodies: (string | undefined)[] } {
  const j = JSON.parse(raw) as JsonLine
  const field = j.resourceSpans !== undefined ? 'resourceSpans' : 'resourceMetrics'
  const parts: (JsonResource[] | undefined)[] = Array.from({ length: n }, () => undefined)
  for (const r of j[field] ?? []) (parts[nodeOf(jsonAttrs(r), n)] ??= []).push(r)
  return { path: field === 'resourceSpans' ? '/v1/traces' : '/v1/metrics', bodies: parts.map((p) => (p === undefined ? undefined : JSON.stringify({ [field]: p }))) }
}

interface SidecarResult {
  run: number
  loadBefore: number
  victim: number
  /** how the victim was stopped */
  stop: 'kill' | 'term'
  /** signal -> the decider's first count of the node let go (leavesExpired or timeouts) */
  killToLetGo?: number
  /** the decider's standings counts at the end (per partition x node) and late partials (total / after the signal) */
  standings: string
  latePartials?: number
  lateAfterKill?: number
  /** kill -> the restarted sidecar listening */
  killToReady?: number
  /** kill -> the restarted sidecar's first partials acknowledged */
  killToPartials?: number
  /** the decider's statuses of the watched deployment: the longest gap between two around the kill */
  statusGap?: number
  /** kill -> the first status after the kill; ready -> that status (the target) */
  killToStatus?: number
  readyToStatus?: number
  decidedDelta?: number
  wallLag?: number
  rollbackIds: string[]
  rollbackRecords: number
  ok: boolean
  note: string
}

async function sidecarRun(run: number, opts: Options, stop: 'kill' | 'term', brokers: string, lines: Line[], base: Verdict): Promise<SidecarResult> {
  const prefix = `pullback-bench-failover-${randomUUID().slice(0, 8)}`
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-failover-'))
  const topics = benchTopics(prefix)
  const kafka = { brokers: brokers.split(','), groupPrefix: prefix, topics }
  const raw = deciderConfig(kafka)
  const cfg = parseConfig(raw)
  const nodeRaw = (i: number) => ({
    kafka: { ...kafka, instanceId: `node-${i}` },
    decider: { distributed: true, enabled: false },
    receivers: { otlp: { grpc: { enabled: false }, http: { endpoint: '127.0.0.1:0' } }, deployments: { enabled: false } },
    history: { enabled: false },
    // ticks every 20 ms: each bucket is announced on its own while the recording is fast-forwarded
    runtime: { admin: { enabled: false }, telemetry: { enabled: false }, tickInterval: '20ms', state: { enabled: false } },
  })
  // the node running the new version's pods (--no-restart: the next node, whose pods need not be restored)
  const newNode = (() => {
    for (const l of lines) {
      const j = JSON.parse(l.raw) as JsonLine
      for (const r of j.resourceSpans ?? []) {
        const a = jsonAttrs(r)
        if (a['service.name'] === base.service && a['service.version'] === base.version) return nodeOf(a, opts.nodes)
      }
    }
    return 0
  })()
  const victimNode = opts.noRestart ? (newNode + 1) % opts.nodes : newNode
  const res: SidecarResult = { run, loadBefore: os.loadavg()[0] as number, victim: victimNode, stop, standings: '', rollbackIds: [], rollbackRecords: 0, ok: false, note: '' }
  const procs: Proc[] = []
  let transport: KafkaTransport | undefined
  let reader: { stop(): Promise<void> } | undefined
  let failed = true
  try {
    transport = await createTransport(cfg.kafka, silentLogger)
    progress(`sidecar run ${run} (${stop}): 1 decider + ${opts.nodes} ingest sidecars on ${prefix}; the new version's pods on node-${newNode}, node-${victimNode} will be ${stop === 'kill' ? 'killed (SIGKILL)' : 'stopped (SIGTERM)'}; load ${res.loadBefore.toFixed(2)}`)
    const decider = startChild('decider-0', { PULLBACK_BENCH_CONFIG: JSON.stringify(raw), PULLBACK_BENCH_SERVICE: `${base.namespace}/${base.service}` }, dir)
    procs.push(decider)
    let now = Math.min(...lines.map((l) => l.t).filter(Number.isFinite))
    const nodes: Proc[] = []
    const startNode = (i: number) => {
      const p = startChild(`node-${i}`, { PULLBACK_BENCH_CONFIG: JSON.stringify(nodeRaw(i)), PULLBACK_BENCH_CLOCK: String(now) }, dir, 'sidecar')
      procs.push(p)
      nodes[i] = p
      return p
    }
    for (let i = 0; i < opts.nodes; i++) startNode(i)
    await waitFor(() => nodes.every((p) => p.port > 0) && decider.partitions.length === cfg.decider.partitions, 'the sidecars to listen and the decider to own the partitions', procs, 120_000)
    progress('sidecars listening, decider owns every partition')

    const envelopes: Envelope[] = []
    const consumer = transport.consumer({ groupId: `${prefix}.bench-read`, topics: [topics.decisions], fromBeginning: true, commit: false, onError: () => undefined })
    await consumer.start(async (b) => void envelopes.push(...parseEnvelopes(b.messages)))
    reader = consumer

    const post = async (p: Proc, req: { path: string; body: string }) => {
      const r = await fetch(`http://127.0.0.1:${p.port}${req.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: req.body })
      await r.arrayBuffer()
      if (r.status !== 200) throw new Error(`${p.name} answered ${r.status}`)
    }
    // requests for a node that is down wait for it (an exporter retrying), in order
    const queued: { path: string; body: string }[][] = Array.from({ length: opts.nodes }, () => [])
    const down = new Array<boolean>(opts.nodes).fill(false)
    const killAt = base.deployedAt + ((base.decidedAt - base.deployedAt) * opts.killAt) / 100
    const liveFrom = killAt - opts.lead * 1000
    let wall0 = NaN
    const wallOf = (t: number) => wall0 + (t - liveFrom)
    let killMs = NaN
    let readyMs = NaN
    let restarted: Promise<void> | undefined
    let sentBucket = Math.floor(now / BUCKET_MS)
    const rollbacks = () => envelopes.filter((e) => e.kind === 'rollback' && e.service === base.service)
    progress(`fast-forwarding telemetry to ${opts.lead} s before the kill point`)
    const clockTo = (t: number) => {
      if (!(t > now)) return
      now = t
      nodes.forEach((n, i) => !down[i] && n.child.stdin!.write(`clock ${now}\n`))
    }
    for (const line of lines) {
      if (line.t >= liveFrom) {
        if (Number.isNaN(wall0)) {
          wall0 = Date.now()
          progress(`live from here: telemetry time advances with the wall clock${opts.lineClock ? " (the sidecars' clock moves with the lines only)" : ', the sidecars\' clock every second'}`)
        }
        while (Date.now() < wallOf(line.t)) {
          await sleep(Math.min(TICK_MS, wallOf(line.t) - Date.now()))
          if (!opts.lineClock) clockTo(Math.min(line.t - 1, liveFrom + (Date.now() - wall0)))
        }
      }
      const { path: p, bodies } = splitJson(line.raw, opts.nodes)
      await Promise.all(
        bodies.map(async (body, i) => {
          if (body === undefined) return
          // down: an exporter retries (restart) or the node is gone with its pods (--no-restart)
          if (down[i]) {
            if (!opts.noRestart) queued[i]!.push({ path: p, body })
          }
          else await post(nodes[i]!, { path: p, body })
        }),
      )
      if (Number.isFinite(line.t)) clockTo(line.t)
      const b = Math.floor(now / BUCKET_MS)
      if (b > sentBucket) {
        sentBucket = b
        // every node ticks (20 ms) before the next bucket's telemetry: each bucket announced on its own
        await sleep(40)
      }
      if (Number.isNaN(killMs) && now >= killAt) {
        if (decider.watched === 0) throw new Error('the decider watches nothing at the kill point')
        if (rollbacks().length > 0) throw new Error('the decider decided before the kill point')
        const dead = nodes[victimNode]!
        killMs = Date.now()
        stopped.add(dead.child)
        dead.child.kill(stop === 'kill' ? 'SIGKILL' : 'SIGTERM')
        down[victimNode] = true
        progress(`${stop === 'kill' ? 'SIGKILL' : 'SIGTERM'} node-${victimNode} at telemetry ${new Date(now).toISOString().slice(11, 19)}${opts.noRestart ? ', not restarted' : '; restarting it under the same instance id once it exited'}`)
        // the DaemonSet's new pod starts once the old one is gone; a node gone for good is not waited for
        if (!opts.noRestart) await new Promise<void>((r) => (alive(dead) ? dead.child.once('exit', () => r()) : r()))
        // --restart-delay: the new pod starts later (the line loop, and so live telemetry, go on meanwhile)
        const fresh = opts.noRestart ? undefined : opts.restartDelay > 0 ? undefined : startNode(victimNode)
        if (!opts.noRestart && opts.restartDelay > 0) {
          restarted = (async () => {
            await sleep(opts.restartDelay * 1000)
            const late = startNode(victimNode)
            await waitFor(() => late.port > 0, 'the restarted sidecar to listen', procs, 120_000)
            readyMs = Date.now()
            late.child.stdin!.write(`clock ${now}\n`)
            for (let q = queued[victimNode]!.shift(); q !== undefined; q = queued[victimNode]!.shift()) await post(late, q)
            down[victimNode] = false
            progress(`node-${victimNode} back after ${s1(readyMs - killMs)} s (started ${opts.restartDelay} s after the exit)`)
          })()
        }
        if (fresh !== undefined) restarted = (async () => {
          await waitFor(() => fresh.port > 0, 'the restarted sidecar to listen', procs, 120_000)
          readyMs = Date.now()
          fresh.child.stdin!.write(`clock ${now}\n`)
          // until the queue is empty: lines queued while posting are posted too, then the node is up
          for (let q = queued[victimNode]!.shift(); q !== undefined; q = queued[victimNode]!.shift()) await post(fresh, q)
          down[victimNode] = false
          progress(`node-${victimNode} back after ${s1(readyMs - killMs)} s`)
        })()
      }
      const first = rollbacks()[0]
      if (first !== undefined && Date.now() > first.issuedAt + 5000) break
      if (!Number.isNaN(wall0) && Date.now() > wallOf(base.decidedAt) + 120_000) throw new Error('no rollback within 120 s of its live time')
    }
    await restarted
    const first = rollbacks()[0]
    if (first === undefined) throw new Error('the recording ended without a rollback on the decisions topic')
    progress(`rollback ${first.id} on the decisions topic (${rollbacks().length} record(s))`)
    res.rollbackIds = [...new Set(rollbacks().map((e) => e.id))]
    res.rollbackRecords = rollbacks().length
    res.decidedDelta = first.decidedAt - base.decidedAt
    res.wallLag = first.issuedAt - wallOf(base.decidedAt)
    if (!Number.isNaN(killMs)) {
      if (!opts.noRestart) {
        const fresh = nodes[victimNode]!
        res.killToReady = readyMs - killMs
        const firstPartials = fresh.lines.find((l) => l.msg === 'bench-partials' && (l.partials ?? 0) > 0)
        if (firstPartials !== undefined) res.killToPartials = firstPartials.time - killMs
      }
      const standings = decider.lines.filter((l) => l.msg === 'bench-nodes')
      const gone = (l: ChildLine) => (l.leavesExpired ?? 0) + (l.timeouts ?? 0)
      const atKill = standings.filter((l) => l.time <= killMs).pop()
      const letGo = standings.find((l) => l.time > killMs && gone(l) > (atKill === undefined ? 0 : gone(atKill)))
      if (letGo !== undefined) res.killToLetGo = letGo.time - killMs
      const last = standings.at(-1)
      if (last !== undefined) {
        res.standings = `leaves ${last.leaves ?? 0}, expired ${last.leavesExpired ?? 0}, timeouts ${last.timeouts ?? 0}, returns ${last.returns ?? 0}, rejoins ${last.rejoins ?? 0}`
        res.latePartials = last.latePartials ?? 0
        res.lateAfterKill = res.latePartials - (atKill?.latePartials ?? 0)
      }
      const statuses = decider.lines.filter((l) => l.msg === 'bench-status' && l.deploymentId === base.deploymentId).map((l) => l.time)
      const before = statuses.filter((t) => t <= killMs).pop()
      const after = statuses.find((t) => t > killMs)
      if (after !== undefined) {
        res.killToStatus = after - killMs
        if (!opts.noRestart) res.readyToStatus = after - readyMs
        if (before !== undefined) res.statusGap = after - before
      }
    }
    res.ok = res.rollbackIds.length === 1 && res.rollbackIds[0] === base.id && (opts.noRestart ? res.killToStatus : res.readyToStatus) !== undefined
    failed = false
    return res
  } catch (err) {
    res.note = err instanceof Error ? err.message : String(err)
    return res
  } finally {
    await reader?.stop().catch(() => undefined)
    await cleanup(run, procs, dir, failed, transport, prefix)
  }
}

// ---------------------------------------------------------------------------------------------
// report

const s1 = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? 'n/a' : (ms / 1000).toFixed(1))
const finite = (xs: (number | undefined)[]): number[] => xs.filter((x): x is number => x !== undefined && Number.isFinite(x))
/** the printed spread: the same min / median / max (stats.ts spread) as the JSON line's */
const mmm = (xs: (number | undefined)[]) => {
  const s = finite(xs)
  return s.length === 0 ? 'n/a' : fmtSpread(spread(s), s1)
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2))
  const brokers = process.env.KAFKA_BROKERS
  if (brokers === undefined || brokers === '') {
    console.error('failover: KAFKA_BROKERS is not set (a real broker is needed)')
    return 2
  }
  const scenario = findScenario(opts.scenario)
  if (scenario === undefined) {
    console.error(`failover: unknown scenario ${opts.scenario}`)
    return 2
  }
  progress(`recording ${opts.scenario} and replaying it (plain replay: the reference verdict)`)
  const raws = await recordToLines(scenario)
  const base = (await replayLines(raws, parseConfig({}), { out: () => undefined, err: () => undefined }, { actuator: false })).verdicts.find((v) => v.kind === 'rollback')
  if (base === undefined) {
    console.error(`failover: ${opts.scenario} gives no rollback in plain replay`)
    return 2
  }
  const lines: Line[] = raws.map((raw) => {
    const d = decodeOtlpJsonLine(raw)
    let t = -Infinity
    if (d.type === 'traces') for (const rs of d.request.resourceSpans) for (const s of rs.spans) t = Math.max(t, s.endTimeMs)
    else if (d.type === 'metrics') for (const rm of d.request.resourceMetrics) for (const m of rm.metrics) for (const p of m.points) t = Math.max(t, p.timeMs)
    return { raw, t }
  })
  const windowMs = parseConfig({}).engine.defaults.window
  if (opts.sidecar) return sidecarMain(opts, brokers, lines, base, windowMs)
  const results: RunResult[] = []
  if (opts.control) results.push(await oneRun(0, opts, true, brokers, lines, base))
  for (let run = 1; run <= opts.runs; run++) {
    const r = await oneRun(run, opts, false, brokers, lines, base)
    results.push(r)
    progress(
      r.note !== ''
        ? `run ${run}: FAILED: ${r.note}`
        : `run ${run}: kill -> assigned ${s1(r.killToAssigned)} s, assigned -> judging ${s1(r.assignedToJudging)} s, -> status ${s1(r.assignedToStatus)} s (${r.firstStatus ?? 'none'}), -> rollback ${s1(r.assignedToIssued)} s; decidedAt - replay ${s1(r.decidedDelta)} s; ids ${r.rollbackIds.join(',')}`,
    )
  }
  const killed = results.filter((r) => !r.control)
  const ctl = results.find((r) => r.control)
  console.log(
    `node ${process.version}, ${os.cpus().length} cores, real broker ${brokers}; ${DECIDERS} deciders (child processes, DeciderProcess) + ${opts.nodes} ingest nodes (in this process), ` +
      `${parseConfig({}).decider.partitions} partitions, session.timeout.ms 10 s, default decider/state config; scenario ${opts.scenario}, ` +
      `rollback ${base.id} at deployment + ${s1(base.decidedAt - base.deployedAt)} s (plain replay); SIGKILL of the owner at ${opts.killAt}% of that, ${opts.lead} s into live telemetry`,
  )
  console.log('| run | load | victim -> heir | (a) kill -> assigned s | all survivors assigned s | restored records | assigned -> restored s | assigned -> judging s | (b) assigned -> next status s | status | assigned -> rollback s | (c) decidedAt - replay s | rollback wall lag s | (d) rollback ids (records) | ok |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    const ids = r.rollbackIds.map((id) => (id === base.id ? `replay's` : id)).join(', ') || 'none'
    console.log(
      `| ${r.control ? 'control' : r.run} | ${r.loadBefore.toFixed(2)} | ${r.control ? '(no kill)' : `${r.victim ?? '?'} -> ${r.heir ?? '?'}`} | ${s1(r.killToAssigned)} | ${s1(r.killToAllAssigned)} | ${r.restored ?? 'n/a'} | ${s1(r.assignedToRestored)} | ` +
        `${s1(r.assignedToJudging)} | ${s1(r.assignedToStatus)} | ${r.firstStatus ?? 'n/a'} | ${s1(r.assignedToIssued)} | ${s1(r.decidedDelta)} | ${s1(r.wallLag)} | ${ids} (${r.rollbackRecords}) | ${r.ok ? 'yes' : `NO ${r.note}`} |`,
    )
  }
  for (const r of results) console.log(`run ${r.control ? 'control' : r.run}: statuses of the watched deployment judged ${r.control ? 'from the kill point on' : "by the heir after its assignment"} (status@mm:ss.s window end): ${r.statuses || 'none'}`)
  console.log(`\nmin / median / max over ${killed.length} killed runs (s):`)
  console.log(`  (a) kill -> rebalance complete (heir assigned the partition): ${mmm(killed.map((r) => r.killToAssigned))}`)
  console.log(`      assigned -> state restored:                               ${mmm(killed.map((r) => r.assignedToRestored))}`)
  console.log(`      assigned -> first judged run (restore, refill to the end):     ${mmm(killed.map((r) => r.assignedToJudging))}`)
  console.log(`  (b) assigned -> next verdict for the service (status):        ${mmm(killed.map((r) => r.assignedToStatus))}`)
  console.log(`      assigned -> rollback issued:                              ${mmm(killed.map((r) => r.assignedToIssued))}`)
  console.log(`  (c) rollback decidedAt - plain replay's (telemetry):          ${mmm(killed.map((r) => r.decidedDelta))}`)
  console.log(`      rollback wall lag behind live telemetry:                  ${mmm(killed.map((r) => r.wallLag))}${ctl !== undefined ? ` (control run without a kill: ${s1(ctl.wallLag)})` : ''}`)
  console.log(`  (d) runs with exactly one rollback id, plain replay's:        ${killed.filter((r) => r.rollbackIds.length === 1 && r.rollbackIds[0] === base.id).length} / ${killed.length}`)
  console.log(`machine load average (1 min) before each run: ${results.map((r) => r.loadBefore.toFixed(2)).join(', ')}`)
  // the same spreads as one JSON line (ms), for npm run bench's results file and bench/compare.ts
  const ms = (pick: (r: RunResult) => number | undefined): Spread | undefined => {
    const xs = finite(killed.map(pick))
    return xs.length > 0 ? spread(xs) : undefined
  }
  console.log(
    JSON.stringify({
      bench: 'failover',
      runs: killed.length,
      figures: {
        killToAssignedMs: ms((r) => r.killToAssigned),
        assignedToRestoredMs: ms((r) => r.assignedToRestored),
        assignedToJudgingMs: ms((r) => r.assignedToJudging),
        assignedToStatusMs: ms((r) => r.assignedToStatus),
        assignedToIssuedMs: ms((r) => r.assignedToIssued),
        wallLagMs: ms((r) => r.wallLag),
      },
    }),
  )
  const worst = Math.max(...killed.map((r) => r.assignedToStatus ?? Infinity))
  const pass = killed.length > 0 && killed.every((r) => r.ok) && worst <= windowMs
  console.log(
    `${pass ? 'PASS' : 'FAIL'}: verdicts resume within one window (${windowMs / 1000} s) after the rebalance completes in ${killed.filter((r) => r.ok && (r.assignedToStatus ?? Infinity) <= windowMs).length} / ${killed.length} runs ` +
      `(worst ${s1(worst)} s), exactly one rollback id (replay's) in ${killed.filter((r) => r.ok).length} / ${killed.length}`,
  )
  return pass ? 0 : 1
}

async function sidecarMain(opts: Options, brokers: string, lines: Line[], base: Verdict, windowMs: number): Promise<number> {
  const kinds: ('kill' | 'term')[] = opts.stop === 'both' ? ['term', 'kill'] : [opts.stop]
  const results: SidecarResult[] = []
  for (const stop of kinds) {
    for (let run = 1; run <= opts.runs; run++) {
      const r = await sidecarRun(run, opts, stop, brokers, lines, base)
      results.push(r)
      progress(
        r.note !== ''
          ? `sidecar run ${run} (${stop}): FAILED: ${r.note}`
          : `sidecar run ${run} (${stop}): signal -> node let go ${s1(r.killToLetGo)} s, -> ready ${s1(r.killToReady)} s, -> partials ${s1(r.killToPartials)} s, -> next status ${s1(r.killToStatus)} s (ready -> status ${s1(r.readyToStatus)} s); late partials after the signal ${r.lateAfterKill ?? 'n/a'}; decidedAt - replay ${s1(r.decidedDelta)} s`,
      )
    }
  }
  const dc = parseConfig({}).decider
  const grace = deciderLeaveGrace(dc, parseConfig({}).signals.bucket, parseConfig({}).engine.lateness)
  console.log(
    `node ${process.version}, ${os.cpus().length} cores, real broker ${brokers}; 1 decider + ${opts.nodes} ingest sidecars (child processes, Sidecar in distributed mode, OTLP/HTTP, tick 20 ms), ` +
      `${dc.partitions} partitions, default decider config (nodeTimeout ${dc.nodeTimeout / 1000} s, leaveGrace ${grace / 1000} s); scenario ${opts.scenario}, rollback ${base.id} at deployment + ${s1(base.decidedAt - base.deployedAt)} s (plain replay); ` +
      (opts.noRestart
        ? `a sidecar not running the new version's pods stopped (${kinds.map((k) => (k === 'kill' ? 'SIGKILL' : 'SIGTERM')).join(', then ')}) at ${opts.killAt}% of that, ${opts.lead} s into live telemetry, never restarted (its pods' telemetry gone)`
        : `the sidecar running the new version's pods stopped (${kinds.map((k) => (k === 'kill' ? 'SIGKILL' : 'SIGTERM')).join(', then ')}) at ${opts.killAt}% of that, ${opts.lead} s into live telemetry, restarted ${opts.restartDelay > 0 ? `${opts.restartDelay} s after it exited` : 'once it exited'} under the same instance id (its requests queued meanwhile, as an exporter retrying)`),
  )
  console.log('| stop | run | load | signal -> node let go s | signal -> restarted sidecar listening s | signal -> its first partials s | signal -> next status s | listening -> next status s | status gap around the signal s | late partials after the signal | node standings (x partitions) | decidedAt - replay s | rollback wall lag s | rollback ids (records) | ok |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    const ids = r.rollbackIds.map((id) => (id === base.id ? `replay's` : id)).join(', ') || 'none'
    console.log(
      `| ${r.stop === 'kill' ? 'SIGKILL' : 'SIGTERM'} | ${r.run} | ${r.loadBefore.toFixed(2)} | ${s1(r.killToLetGo)} | ${s1(r.killToReady)} | ${s1(r.killToPartials)} | ${s1(r.killToStatus)} | ${s1(r.readyToStatus)} | ${s1(r.statusGap)} | ${r.lateAfterKill ?? 'n/a'} | ${r.standings || 'n/a'} | ${s1(r.decidedDelta)} | ${s1(r.wallLag)} | ${ids} (${r.rollbackRecords}) | ${r.ok ? 'yes' : `NO ${r.note}`} |`,
    )
  }
  const resume = (r: SidecarResult) => (opts.noRestart ? r.killToStatus : r.readyToStatus) ?? Infinity
  let pass = true
  for (const stop of kinds) {
    const rs = results.filter((r) => r.stop === stop)
    const name = stop === 'kill' ? 'SIGKILL (crash: decider.nodeTimeout)' : 'SIGTERM (graceful: decider.leaveGrace)'
    console.log(`\n${name}: min / median / max over ${rs.length} runs (s):`)
    console.log(`  signal -> the decider lets the node go:      ${mmm(rs.map((r) => r.killToLetGo))}`)
    console.log(`  signal -> next verdict (status):             ${mmm(rs.map((r) => r.killToStatus))}`)
    console.log(`  status gap around the signal (the stall):    ${mmm(rs.map((r) => r.statusGap))}`)
    if (!opts.noRestart) {
      console.log(`  signal -> restarted sidecar listening:       ${mmm(rs.map((r) => r.killToReady))}`)
      console.log(`  restarted sidecar listening -> next status:  ${mmm(rs.map((r) => r.readyToStatus))}`)
    }
    console.log(`  late partials after the signal (runs):       ${rs.map((r) => r.lateAfterKill ?? 'n/a').join(', ')}`)
    console.log(`  rollback decidedAt - plain replay's:         ${mmm(rs.map((r) => r.decidedDelta))}`)
    console.log(`  rollback wall lag behind live telemetry:     ${mmm(rs.map((r) => r.wallLag))}`)
    const worst = Math.max(...rs.map(resume))
    const ok = rs.every((r) => r.ok) && worst <= windowMs
    pass &&= ok
    console.log(
      `  ${ok ? 'PASS' : 'FAIL'}: verdicts resume within one window (${windowMs / 1000} s) after ${opts.noRestart ? 'the signal' : 'the restarted sidecar listens'} in ${rs.filter((r) => r.ok && resume(r) <= windowMs).length} / ${rs.length} runs (worst ${s1(worst)} s), ` +
        `exactly one rollback id (replay's) in ${rs.filter((r) => r.ok).length} / ${rs.length}`,
    )
  }
  console.log(`machine load average (1 min) before each run: ${results.map((r) => r.loadBefore.toFixed(2)).join(', ')}`)
  return pass ? 0 : 1
}

const killAll = () => {
  for (const c of live) c.kill('SIGKILL')
}

if (process.argv.includes('--role')) {
  ;(process.argv.includes('sidecar') ? sidecarRole() : deciderRole()).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  process.once('SIGINT', () => {
    killAll()
    process.exit(130)
  })
  process.once('SIGTERM', () => {
    killAll()
    process.exit(143)
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
