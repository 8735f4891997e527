/**
 * `pullback replay FILE [--config FILE] [--report FILE.html] [--no-actuator]`
 *
 * Feeds recorded OTLP (the OpenTelemetry Collector file exporter's output: one
 * ExportTraceServiceRequest or ExportMetricsServiceRequest per JSON line, or its length-prefixed
 * `format: proto` and zstd-compressed forms, src/receivers/otlp-file) through the real pipeline
 * (normalize -> signals -> engine) on a virtual clock taken from the telemetry, and prints every
 * verdict as one JSON line on stdout.
 *
 * Clock: now = the newest telemetry time read so far; watermark = now - engine.lateness, so lines
 * may be up to `lateness` out of order. The engine is ticked whenever the watermark crosses a bucket
 * boundary, and once more at the end of the file with the watermark at `now` (no more data can come).
 * Watches still running at the end of the file produce no verdict (replay never invents time).
 *
 * Actuator stand-in (unless --no-actuator): after a non-dry `rollback` verdict, replay announces a
 * deployment event of kind `rollback` restoring `baselineVersion` at `decidedAt` (as the actuator
 * would after its cutover), so `recovered` / `not-recovered` verdicts appear when the recording
 * shows the restored version serving.
 *
 * `--nodes N` replays the recording as a DaemonSet of N sidecars and one decider (replayLinesOnNodes).
 *
 * Exit: 0 when the file was read (malformed lines are reported on stderr and skipped), 2 on usage
 * errors (incl. an invalid --config), 1 when the file cannot be read.
 */
import { LocalCoverageShare } from '../../normalize/span-coverage.js'
import { writeFile } from 'node:fs/promises'
import { parseFlags, UsageError, type Command, type Io } from '../args.js'
import { ConfigError, loadConfig } from '../../config/load.js'
import type { PullbackConfig } from '../../config/schema.js'
import { errorMessage } from '../../common/errors.js'
import { decodeRecorded, readRecording, RecordingReadError, type RecordedItem } from '../../receivers/otlp-file/recording.js'
import type { MetricsRequest, TracesRequest } from '../../receivers/otlp/model.js'
import { Pipeline } from '../../runtime/pipeline.js'
import type { Verdict } from '../../engine/verdict.js'
import type { DeploymentEvent } from '../../engine/events.js'
import type { ReportInput } from '../../report/model.js'
import { alignDown } from '../../signals/view.js'
import { Decider } from '../../decider/decider.js'
import { splitMetrics, splitTraces } from '../../decider/daemonset.js'
import { IngestNode } from '../../partials/ingest.js'
import { decodeBatch, encodeBatch } from '../../partials/codec.js'
import type { PartialBatch } from '../../partials/types.js'
import { PartialsPublisher } from '../../partials/publisher.js'
import { DeciderService } from '../../decider/service.js'
import type { KafkaTransport } from '../../kafka/types.js'
import { silentLogger } from '../../common/logger.js'
import { MemoryBus } from '../../kafka/memory.js'
import { createTransport } from '../../kafka/index.js'
import { configSchema } from '../../config/schema.js'
import { randomUUID } from 'node:crypto'
import { sleep } from '../../common/sleep.js'

const USAGE = `usage: pullback replay FILE [--config FILE] [--report FILE.html] [--no-actuator] [--nodes N] [--deciders K] [--kafka HOST:PORT]

Runs recorded OTLP through normalize, signals and the engine on telemetry time, and prints one
JSON line per verdict on stdout.

  FILE             the recording; "-" reads stdin. The OpenTelemetry Collector file exporter's
                   output: OTLP/JSON lines (format: json; pretty-printed objects too),
                   length-prefixed messages (format: proto), either zstd-compressed
                   (compression: zstd; needs Node.js 22.15+, as in the container image)
  --config FILE    pullback.yaml with the threshold contracts (default: built-in defaults)
  --report FILE    also write an HTML report of every watched deployment
  --no-actuator    do not simulate the actuator's rollback event after a rollback verdict
                   (then no recovered/not-recovered verdicts)
  --nodes N        replay as a DaemonSet of N sidecars: each pod's telemetry goes to node
                   FNV-1a32(k8s.pod.name | service.instance.id | host.name) mod N (no identity: node 0),
                   each node pre-aggregates into partials, one decider merges them and decides
  --deciders K     the broker path: the nodes publish their partials to a partials topic
                   (decider.partitions partitions) and K deciders in one consumer group merge and
                   decide; on an embedded bus unless --kafka
  --kafka H:P      run --nodes/--deciders through the real broker (topic and groups named for the
                   run, the topic deleted at the end); --config's kafka.tls and kafka.auth apply

A malformed line (or message) is reported on stderr with its number and skipped; so is a truncated
last message. A long replay prints a progress line on stderr every 10 s (records read, telemetry
time reached); a summary line goes to stderr at the end. Exit 0 when the file was read, 2 on usage
errors, 1 when it cannot be read.
`

export interface ReplayOptions {
  /** simulate the actuator's rollback announcement (default true) */
  actuator?: boolean
  /** record timelines for a report */
  recordTimeline?: boolean
  /** elapsed-time source for the summary line; injected so tests stay deterministic */
  elapsedMs?: () => number
  /** with `elapsedMs`: a progress line on stderr at most this often (wall ms); absent or 0: none */
  progressEveryMs?: number
  /** the engine's evaluation mode (PipelineOptions.evaluation; replayLines only) */
  evaluation?: 'full' | 'incremental'
  /**
   * judges only every `tickStride`th bucket the watermark enters (default 1: every one), as a
   * loaded event loop or a burst of partials on the decider does; the verdicts must not change
   * (replayLines only; test/engine/tick-cadence.test.ts)
   */
  tickStride?: number
}

/** Lines in a row that must agree before the replay clock jumps more than the store's future skew. */
const JUMP_LINES = 3

/**
 * Replay's clock: the newest telemetry time read so far, but one line cannot move it by more than
 * `skew` (the store's future skew): a jump is taken only when JUMP_LINES lines in a row confirm it (a
 * gap in the recording), and a clock that the following lines all contradict (a first line dated
 * 2300, then real data) comes back to them. `see` answers 'back' when the clock went back.
 */
export class ReplayClock {
  now = -Infinity
  private ahead = 0
  private behind = 0
  constructor(private readonly skew: number) {}

  see(maxMs: number): 'ok' | 'back' {
    // a line without telemetry times (logs, an empty request) says nothing about the clock
    if (!Number.isFinite(maxMs)) return 'ok'
    if (!Number.isFinite(this.now) || (maxMs <= this.now + this.skew && maxMs >= this.now - this.skew)) {
      this.ahead = 0
      this.behind = 0
      if (maxMs > this.now) this.now = maxMs
      return 'ok'
    }
    if (maxMs > this.now + this.skew) {
      this.behind = 0
      if (++this.ahead >= JUMP_LINES) {
        this.ahead = 0
        this.now = maxMs
      }
      return 'ok'
    }
    this.ahead = 0
    if (++this.behind < JUMP_LINES) return 'ok'
    this.behind = 0
    this.now = maxMs
    return 'back'
  }
}

/** What a recording held, line by line. */
interface LineCounts {
  n: number
  spans: number
  points: number
  malformed: number
}

type RecordedRequest = { type: 'traces'; request: TracesRequest } | { type: 'metrics'; request: MetricsRequest }

/** hands a recorded request to the ingest nodes its resources belong to, as a DaemonSet would (daemonset.ts) */
const splitToNodes =
  (nodes: readonly IngestNode[]) =>
  (d: RecordedRequest): void => {
    if (d.type === 'traces') splitTraces(d.request, nodes.length).forEach((r, i) => r !== undefined && nodes[i]?.consumeTraces(r))
    else splitMetrics(d.request, nodes.length).forEach((r, i) => r !== undefined && nodes[i]?.consumeMetrics(r))
  }

/**
 * Reads a recording for both replay paths: decodes each record (a JSON line or a length-prefixed
 * message, src/receivers/otlp-file), counts it, hands it to `consume`, then calls `after` with its
 * newest telemetry time. A record that fails to decode (or that `consume` refuses by throwing), and
 * a defect of the file's framing, is counted malformed and reported with its number; `after` is not
 * called for it.
 */
async function eachRecordedLine(
  lines: AsyncIterable<RecordedItem> | Iterable<RecordedItem>,
  io: Pick<Io, 'err'>,
  c: LineCounts,
  consume: (d: RecordedRequest) => void,
  after: (maxMs: number) => void | Promise<void>,
  opts: Pick<ReplayOptions, 'elapsedMs' | 'progressEveryMs'> = {},
): Promise<void> {
  // a long recording says how far it got on stderr, by wall time (the CLI's clock; tests pass none)
  const clock = opts.progressEveryMs !== undefined && opts.progressEveryMs > 0 ? opts.elapsedMs : undefined
  const every = opts.progressEveryMs ?? Infinity
  let nextReport = clock !== undefined ? clock() + every : Infinity
  let newest = -Infinity
  for await (const raw of lines) {
    const wall = clock?.() ?? -Infinity
    if (wall >= nextReport) {
      nextReport = wall + every
      const upTo = Number.isFinite(newest) ? `, telemetry up to ${new Date(newest).toISOString()}` : ''
      io.err(`replay: progress: ${c.n} records read (spans=${c.spans} points=${c.points} malformed=${c.malformed})${upTo}\n`)
    }
    c.n += 1
    const item = typeof raw === 'string' ? raw.trim() : raw
    if (item === '') continue
    let maxMs = -Infinity
    try {
      const d = decodeRecorded(item)
      if (d.type === 'traces') {
        const t = requestTimes(d.request)
        c.spans += t.spans
        maxMs = t.maxMs
        consume(d)
      } else if (d.type === 'metrics') {
        const t = metricTimes(d.request)
        c.points += t.points
        maxMs = t.maxMs
        consume(d)
      }
    } catch (err) {
      c.malformed += 1
      io.err(`${typeof raw === 'string' ? 'line' : 'record'} ${c.n}: ${errorMessage(err).slice(0, 500)}\n`)
      continue
    }
    if (maxMs > newest) newest = maxMs
    await after(maxMs)
  }
}

export interface ReplaySummary {
  lines: number
  spans: number
  points: number
  malformed: number
  verdicts: Verdict[]
  elapsedMs: number
  report: ReportInput | undefined
}

function requestTimes(req: TracesRequest): { spans: number; maxMs: number } {
  let spans = 0
  let maxMs = -Infinity
  for (const rs of req.resourceSpans) {
    spans += rs.spans.length
    for (const s of rs.spans) if (s.endTimeMs > maxMs) maxMs = s.endTimeMs
  }
  return { spans, maxMs }
}

function metricTimes(req: MetricsRequest): { points: number; maxMs: number } {
  let points = 0
  let maxMs = -Infinity
  for (const rm of req.resourceMetrics) {
    for (const m of rm.metrics) {
      points += m.points.length
      for (const p of m.points) if (p.timeMs > maxMs) maxMs = p.timeMs
    }
  }
  return { points, maxMs }
}

/** The actuator stand-in: the rollback event the actuator announces after its cutover, for a non-dry rollback verdict. */
function actuatorEvent(v: Verdict): DeploymentEvent | undefined {
  if (v.kind !== 'rollback' || v.dryRun || v.baselineVersion === '') return undefined
  return {
    namespace: v.namespace,
    service: v.service,
    version: v.baselineVersion,
    time: v.decidedAt,
    kind: 'rollback',
    previousVersion: v.version,
    source: 'pullback-replay',
    decisionId: v.id,
    ...(v.artifact !== undefined ? { artifact: v.artifact } : {}),
  }
}

/**
 * The replay loop, independent of files and processes (tests call it with arrays of lines).
 * Verdict lines go to `io.out`; malformed-line reports and the summary to `io.err`.
 */
export async function replayLines(
  lines: AsyncIterable<RecordedItem> | Iterable<RecordedItem>,
  cfg: PullbackConfig,
  io: Io,
  opts: ReplayOptions = {},
  source = 'replay',
): Promise<ReplaySummary> {
  const started = opts.elapsedMs?.() ?? 0
  const pipeline = new Pipeline({
    engine: cfg.engine,
    signals: cfg.signals,
    normalize: (cfg as { normalize?: object }).normalize ?? {},
    recordTimeline: opts.recordTimeline === true,
    ...(opts.evaluation !== undefined ? { evaluation: opts.evaluation } : {}),
  })
  const lateness = cfg.engine.lateness
  const bucketMs = pipeline.store.bucketMs
  const actuator = opts.actuator !== false
  const stride = Math.max(1, Math.floor(opts.tickStride ?? 1))
  const verdicts: Verdict[] = []
  let now = -Infinity
  let lastTickBucket = -Infinity
  const clock = new ReplayClock(pipeline.store.config.maxFutureSkew)
  const c: LineCounts = { n: 0, spans: 0, points: 0, malformed: 0 }

  const runTick = (watermark: number) => {
    const res = pipeline.tick(Math.floor(now), watermark)
    for (const v of res.verdicts) {
      verdicts.push(v)
      io.out(`${JSON.stringify(v)}\n`)
      if (actuator) {
        const ev = actuatorEvent(v)
        if (ev !== undefined) pipeline.deployment(ev)
      }
    }
  }

  try {
    await eachRecordedLine(
      lines,
      io,
      c,
      (d) => (d.type === 'traces' ? pipeline.consumeTraces(d.request) : pipeline.consumeMetrics(d.request)),
      (maxMs) => {
        if (clock.see(maxMs) === 'back') lastTickBucket = -Infinity
        now = clock.now
        const wb = alignDown(now - lateness, bucketMs)
        if (wb >= lastTickBucket + stride * bucketMs) {
          lastTickBucket = wb
          runTick(now - lateness)
        }
      },
      opts,
    )
    // end of the recording: everything that will ever arrive has arrived
    if (Number.isFinite(now)) {
      runTick(now)
      // the actuator stand-in may just have announced a rollback: let the engine register it
      runTick(now)
    }
    const report = opts.recordTimeline === true
      ? pipeline.report({ title: `pullback replay of ${source}`, source, generatedAt: Number.isFinite(now) ? now : 0, input: { lines: c.n, spans: c.spans, points: c.points, malformed: c.malformed, verdicts: verdicts.length } })
      : undefined
    const elapsedMs = (opts.elapsedMs?.() ?? 0) - started
    io.err(`replay: lines=${c.n} spans=${c.spans} points=${c.points} malformed=${c.malformed} verdicts=${verdicts.length} elapsed=${elapsedMs.toFixed(0)}ms\n`)
    const ns = pipeline.normalizer.stats()
    if (ns.warmupExcluded > 0) io.err(`replay: ${ns.warmupExcluded} requests left out as their process's warm-up (normalize.warmup.duration)\n`)
    const unread = pipeline.normalizer.unreadHistograms()
    if (unread.names.length > 0) {
      const list = unread.names.slice(0, 8).map((u) => `${u.name} (${u.type}${u.unit !== '' ? `, ${u.unit}` : ''}, ${u.points} points)`)
      const more = unread.names.length - list.length
      const dropped = unread.droppedPoints > 0 ? `; ${unread.droppedPoints} more points under names not kept` : ''
      io.err(`replay: histograms not read as request durations (a server one under another name goes in normalize.requestMetrics): ${list.join(', ')}${more > 0 ? ` and ${more} more` : ''}${dropped}\n`)
    }
    return { lines: c.n, spans: c.spans, points: c.points, malformed: c.malformed, verdicts, elapsedMs, report }
  } finally {
    pipeline.shutdown()
  }
}

export interface NodesReplayOptions extends ReplayOptions {
  /** simulated ingest nodes (>= 1) */
  nodes: number
  /** decider: a node silent this long is ignored (default 30 s) */
  nodeTimeoutMs?: number
  /** nodes emit their open buckets with each watermark announcement (PartialAggregator flushOpen, default true) */
  flushOpen?: boolean
}

export interface NodesSummary {
  nodes: number
  batches: number
  partials: number
  /** encoded bytes of every batch (src/partials/codec.ts) */
  bytes: number
  /** encoded bytes of the batches that held partials, divided by their partials */
  bytesPerPartial: number
  reopened: number
  overflowObservations: number
  latePartials: number
}

/**
 * `replay --nodes N`: the recording as a DaemonSet of N sidecars sees it (src/decider/daemonset.ts:
 * each resource to the node of its pod), each node's normalizer pre-aggregating into partials
 * (src/partials), every batch encoded and decoded as on the wire, and one decider (src/decider)
 * merging them and deciding. Same clock as `replayLines` (ReplayClock), given to every node as the
 * cluster's shared wall clock;
 * the decider ticks when the minimum of the nodes' watermarks enters a new bucket, and twice at the
 * end. Verdicts print as `replay` prints them. Not reproduced: replay's clock going back after a
 * garbage future jump (a node's clock never goes back).
 *
 * The nodes' batches of one line reach the decider together (`receiveAll`).
 */
export async function replayLinesOnNodes(
  lines: AsyncIterable<RecordedItem> | Iterable<RecordedItem>,
  cfg: PullbackConfig,
  io: Io,
  opts: NodesReplayOptions,
  source = 'replay',
): Promise<ReplaySummary & { nodes: NodesSummary }> {
  if (!(Number.isInteger(opts.nodes) && opts.nodes >= 1)) throw new RangeError(`nodes must be an integer >= 1, got ${opts.nodes}`)
  const started = opts.elapsedMs?.() ?? 0
  const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals, recordTimeline: opts.recordTimeline === true })
  const normalize = (cfg as { normalize?: object }).normalize ?? {}
  const actuator = opts.actuator !== false
  const verdicts: Verdict[] = []
  const wire = { batches: 0, bytes: 0, withPartials: 0, bytesWithPartials: 0, partials: 0 }
  const decider = new Decider({
    pipeline,
    ...(opts.nodeTimeoutMs !== undefined ? { nodeTimeoutMs: opts.nodeTimeoutMs } : {}),
    onTick: (res) => {
      for (const v of res.verdicts) {
        verdicts.push(v)
        io.out(`${JSON.stringify(v)}\n`)
        if (actuator) {
          const ev = actuatorEvent(v)
          if (ev !== undefined) pipeline.deployment(ev)
        }
      }
    },
  })
  // the batches of one round (every node advanced to the same time) reach the decider together
  let round: PartialBatch[] = []
  const deliver = (b: PartialBatch) => {
    const buf = encodeBatch(b)
    wire.batches += 1
    wire.bytes += buf.length
    if (b.partials.length > 0) {
      wire.withPartials += 1
      wire.bytesWithPartials += buf.length
      wire.partials += b.partials.length
    }
    round.push(decodeBatch(buf))
  }
  const endRound = () => {
    if (round.length === 0) return
    const r = round
    round = []
    decider.receiveAll(r)
  }
  // the simulated cluster's wall clock is plain replay's clock (ReplayClock)
  const clock = new ReplayClock(pipeline.store.config.maxFutureSkew)
  // the sidecars' span-coverage topic, in process: one node's judgement is every node's
  const coverageShare = new LocalCoverageShare()
  const nodes = Array.from(
    { length: opts.nodes },
    (_, i) =>
      new IngestNode({
        node: `node-${i}`,
        normalize,
        normalizeHooks: { coverageShare },
        bucketMs: pipeline.store.bucketMs,
        lateness: cfg.engine.lateness,
        flushOpen: opts.flushOpen !== false,
        emit: deliver,
      }),
  )
  let now = -Infinity
  const c: LineCounts = { n: 0, spans: 0, points: 0, malformed: 0 }
  try {
    await eachRecordedLine(
      lines,
      io,
      c,
      splitToNodes(nodes),
      (maxMs) => {
        clock.see(maxMs)
        now = clock.now
        if (Number.isFinite(now)) for (const node of nodes) node.advance(now)
        endRound()
      },
      opts,
    )
    if (Number.isFinite(now)) {
      for (const node of nodes) node.flush()
      endRound()
      decider.finish()
    }
    const report = opts.recordTimeline === true
      ? pipeline.report({ title: `pullback replay of ${source}`, source, generatedAt: Number.isFinite(now) ? now : 0, input: { lines: c.n, spans: c.spans, points: c.points, malformed: c.malformed, verdicts: verdicts.length } })
      : undefined
    const elapsedMs = (opts.elapsedMs?.() ?? 0) - started
    let reopened = 0
    let overflowObservations = 0
    for (const node of nodes) {
      const st = node.stats().partials
      reopened += st.reopened
      overflowObservations += st.overflowObservations
    }
    const ds = decider.stats()
    const summary: NodesSummary = {
      nodes: nodes.length,
      batches: wire.batches,
      partials: wire.partials,
      bytes: wire.bytes,
      bytesPerPartial: wire.partials > 0 ? wire.bytesWithPartials / wire.partials : 0,
      reopened,
      overflowObservations,
      latePartials: ds.latePartials,
    }
    io.err(
      `replay: lines=${c.n} spans=${c.spans} points=${c.points} malformed=${c.malformed} verdicts=${verdicts.length} elapsed=${elapsedMs.toFixed(0)}ms` +
        ` nodes=${summary.nodes} batches=${summary.batches} partials=${summary.partials} bytes=${summary.bytes} bytesPerPartial=${summary.bytesPerPartial.toFixed(1)}` +
        ` reopened=${summary.reopened} latePartials=${summary.latePartials} overflow=${summary.overflowObservations}\n`,
    )
    return { lines: c.n, spans: c.spans, points: c.points, malformed: c.malformed, verdicts, elapsedMs, report, nodes: summary }
  } finally {
    pipeline.shutdown()
  }
}

export interface TopicReplayOptions extends ReplayOptions {
  /** simulated ingest nodes (>= 1) */
  nodes: number
  /** decider processes, in-process members of one consumer group (>= 1) */
  deciders: number
  /** the transport carrying the partials topic: the real broker (--kafka) or an embedded bus */
  transport: KafkaTransport
  /** how long the end may take to be judged after the last record was sent; default 120 s */
  timeoutMs?: number
  /** persist and restore the deciders' engine state (decider state topic); default false, as plain replay */
  state?: boolean
  /** every verdict with the index of the decider that issued it (after it was printed) */
  onVerdict?: (v: Verdict, decider: number) => void
  /** after each line was handed to the nodes (tests: kill a decider at a telemetry time) */
  afterLine?: (nowMs: number, deciders: readonly DeciderService[]) => Promise<void>
}

export interface TopicSummary {
  nodes: number
  deciders: number
  partitions: number
  partials: number
  dataRecords: number
  heartbeats: number
  dataBytes: number
  heartbeatBytes: number
  latePartials: number
  /** ms from the first record sent to the end judged */
  wallMs: number
}

/**
 * `replay --nodes N --deciders K [--kafka HOST:PORT]`: the broker path end to end. N ingest nodes
 * (as replayLinesOnNodes: split by pod, own normalizer, telemetry clock) publish their partials with
 * PartialsPublisher to `cfg.kafka.topics.partials`; K DeciderServices in the group
 * `<groupPrefix>.decider` merge and judge them on the per-partition watermark. The deciders join and
 * the group settles (every partition owned) before the first record is sent, so no rebalance
 * happens mid-stream. Engine state persistence is off (plain replay has none). The end is judged by
 * each decider once every node announced the end of its stream (`finishWhenAllFinal`). Verdicts
 * print as they come (from K deciders: in no global order).
 */
export async function replayLinesOnTopic(
  lines: AsyncIterable<RecordedItem> | Iterable<RecordedItem>,
  cfg: PullbackConfig,
  io: Io,
  opts: TopicReplayOptions,
): Promise<ReplaySummary & { topic: TopicSummary }> {
  if (!(Number.isInteger(opts.nodes) && opts.nodes >= 1)) throw new RangeError(`nodes must be an integer >= 1, got ${opts.nodes}`)
  if (!(Number.isInteger(opts.deciders) && opts.deciders >= 1)) throw new RangeError(`deciders must be an integer >= 1, got ${opts.deciders}`)
  const started = opts.elapsedMs?.() ?? 0
  const logger = silentLogger
  const actuator = opts.actuator !== false
  const verdicts: Verdict[] = []
  const partitions = cfg.decider.partitions
  const deciders = Array.from(
    { length: opts.deciders },
    (_, i) =>
      new DeciderService({
        config: cfg,
        transport: opts.transport,
        logger,
        state: opts.state === true,
        finishWhenAllFinal: true,
        onTick: (res, _now, _w, pipeline) => {
          for (const v of res.verdicts) {
            verdicts.push(v)
            io.out(`${JSON.stringify(v)}\n`)
            opts.onVerdict?.(v, i)
            if (actuator) {
              const ev = actuatorEvent(v)
              if (ev !== undefined) pipeline.deployment(ev)
            }
          }
        },
      }),
  )
  const probe = new Pipeline({ engine: cfg.engine, signals: cfg.signals })
  const bucketMs = probe.store.bucketMs
  const clock = new ReplayClock(probe.store.config.maxFutureSkew)
  probe.shutdown()
  const publishers = Array.from(
    { length: opts.nodes },
    () => new PartialsPublisher({ producer: opts.transport.producer(), topic: cfg.kafka.topics.partials, partitions, logger, maxQueue: 10_000_000 }),
  )
  const coverageShare = new LocalCoverageShare()
  const nodes = publishers.map(
    (pub, i) =>
      new IngestNode({
        node: `node-${i}`,
        normalize: (cfg as { normalize?: object }).normalize ?? {},
        normalizeHooks: { coverageShare },
        bucketMs,
        lateness: cfg.engine.lateness,
        emit: (b) => pub.publish(b),
      }),
  )
  const timeoutMs = opts.timeoutMs ?? 120_000
  let now = -Infinity
  let sentBucket = -Infinity
  const c: LineCounts = { n: 0, spans: 0, points: 0, malformed: 0 }
  let t0 = Date.now()
  try {
    for (const d of deciders) await d.start()
    for (const p of publishers) await p.start()
    publishers.forEach((p, i) => p.hello(`node-${i}`))
    for (const p of publishers) await p.flush(timeoutMs)
    // the group settles before the first record: every partition owned, every decider holding some
    await waitUntil(() => {
      const owned = deciders.map((d) => d.stats().partitions.length)
      return owned.reduce((a, b) => a + b, 0) === partitions && owned.every((n) => n > 0 || opts.deciders > partitions)
    }, 60_000, 'the decider group to settle')
    t0 = Date.now()
    await eachRecordedLine(
      lines,
      io,
      c,
      splitToNodes(nodes),
      async (maxMs) => {
        clock.see(maxMs)
        now = clock.now
        if (!Number.isFinite(now)) return
        for (const node of nodes) node.advance(now)
        // the nodes stay within a bucket of each other on the topic, as live nodes on one wall clock
        // do (a node further than decider.nodeTimeout behind the others would be judged silent)
        const b = alignDown(now, bucketMs)
        if (b > sentBucket) {
          sentBucket = b
          for (const p of publishers) await p.flush(timeoutMs)
        }
        await opts.afterLine?.(now, deciders)
      },
      opts,
    )
    if (Number.isFinite(now)) {
      for (const node of nodes) node.flush()
      for (const p of publishers) {
        const f = await p.flush(timeoutMs)
        if (f.kind === 'timeout') throw new Error(`partials not acknowledged within ${timeoutMs} ms (${f.pending} pending)`)
      }
      await waitUntil(() => deciders.every((d) => d.stats().partitions.length === 0 || d.stats().decider?.finished === true), timeoutMs, 'the deciders to judge the end')
    }
    const wallMs = Date.now() - t0
    const elapsedMs = (opts.elapsedMs?.() ?? 0) - started
    const ps = publishers.map((p) => p.stats())
    const sum = (f: (x: (typeof ps)[number]) => number) => ps.reduce((a, x) => a + f(x), 0)
    const topic: TopicSummary = {
      nodes: nodes.length,
      deciders: deciders.length,
      partitions,
      partials: sum((x) => x.partials),
      dataRecords: sum((x) => x.dataRecords),
      heartbeats: sum((x) => x.heartbeats),
      dataBytes: sum((x) => x.dataBytes),
      heartbeatBytes: sum((x) => x.heartbeatBytes),
      latePartials: deciders.reduce((a, d) => a + (d.stats().decider?.latePartials ?? 0), 0),
      wallMs,
    }
    io.err(
      `replay: lines=${c.n} spans=${c.spans} points=${c.points} malformed=${c.malformed} verdicts=${verdicts.length} elapsed=${elapsedMs.toFixed(0)}ms` +
        ` nodes=${topic.nodes} deciders=${topic.deciders} partitions=${topic.partitions} partials=${topic.partials} dataRecords=${topic.dataRecords} dataBytes=${topic.dataBytes}` +
        ` bytesPerPartial=${topic.partials > 0 ? (topic.dataBytes / topic.partials).toFixed(1) : '0'} heartbeats=${topic.heartbeats} heartbeatBytes=${topic.heartbeatBytes} latePartials=${topic.latePartials} wall=${wallMs}ms\n`,
    )
    return { lines: c.n, spans: c.spans, points: c.points, malformed: c.malformed, verdicts, elapsedMs, report: undefined, topic }
  } finally {
    for (const p of publishers) await p.shutdown(0)
    for (const d of deciders) await d.shutdown()
  }
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

/**
 * `--deciders K` / `--kafka HOST:PORT`: the broker path, on the real broker or an embedded bus of its
 * own; topics and groups are named for this run (`pullback-replay-<random>`) and the topic deleted at the end.
 */
async function replayOnTopicCommand(file: string, base: PullbackConfig, io: Io, ropts: ReplayOptions, nodes: number, deciders: number, kafka: string | undefined): Promise<ReplaySummary> {
  const prefix = `pullback-replay-${randomUUID().slice(0, 8)}`
  const cfg = configSchema.parse({ ...base, kafka: { ...base.kafka, groupPrefix: prefix, topics: { ...base.kafka.topics, partials: `${prefix}.partials` } } })
  const transport: KafkaTransport =
    kafka === undefined
      ? new MemoryBus({ defaultPartitions: cfg.decider.partitions })
      : // through createTransport: the config's kafka.tls / kafka.auth apply to --kafka's brokers too
        await createTransport({ ...cfg.kafka, brokers: kafka.split(','), clientId: 'pullback-replay' })
  try {
    return await replayLinesOnTopic(readRecording(file), cfg, io, { ...ropts, nodes, deciders, transport })
  } finally {
    const admin = transport.admin()
    await admin.deleteTopics([cfg.kafka.topics.partials]).catch(() => undefined)
    await admin.disconnect().catch(() => undefined)
  }
}

type RenderReport = (input: ReportInput) => string

async function loadRenderer(): Promise<RenderReport> {
  // resolved at run time: the report renderer is an optional part of the build
  const spec = '../../report/html.js'
  const mod = (await import(spec)) as { renderReport?: RenderReport }
  if (typeof mod.renderReport !== 'function') throw new Error('src/report/html.js does not export renderReport')
  return mod.renderReport
}

export const command: Command = {
  name: 'replay',
  summary: 'run recorded OTLP/JSON lines through the engine on telemetry time; one verdict per line',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      { config: { type: 'string' }, report: { type: 'string' }, 'no-actuator': { type: 'boolean' }, nodes: { type: 'string' }, deciders: { type: 'string' }, kafka: { type: 'string' } },
      true,
    )
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing FILE' : `expected one FILE, got ${positionals.length}`)
    const file = positionals[0] as string
    const nodes = values.nodes === undefined ? undefined : Number(values.nodes)
    if (nodes !== undefined && !(Number.isInteger(nodes) && nodes >= 1 && nodes <= 1024)) {
      throw new UsageError(`--nodes expects an integer from 1 to 1024, got ${JSON.stringify(values.nodes)}`)
    }
    const deciders = values.deciders === undefined ? undefined : Number(values.deciders)
    if (deciders !== undefined && !(Number.isInteger(deciders) && deciders >= 1 && deciders <= 64)) {
      throw new UsageError(`--deciders expects an integer from 1 to 64, got ${JSON.stringify(values.deciders)}`)
    }
    if (values.kafka !== undefined && !/^[^\s:,]+:\d+(,[^\s:,]+:\d+)*$/.test(values.kafka)) throw new UsageError(`--kafka expects HOST:PORT[,HOST:PORT...], got ${JSON.stringify(values.kafka)}`)
    const onTopic = deciders !== undefined || values.kafka !== undefined
    if (onTopic && values.report !== undefined) throw new UsageError('--report is not available with --deciders/--kafka')
    let cfg: PullbackConfig
    try {
      cfg = loadConfig(values.config)
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    let render: RenderReport | undefined
    if (values.report !== undefined) {
      try {
        render = await loadRenderer()
      } catch (err) {
        io.err(`pullback replay: --report is not available in this build (${errorMessage(err)})\n`)
        return 1
      }
    }
    let summary: ReplaySummary
    try {
      const ropts: ReplayOptions = { actuator: values['no-actuator'] !== true, recordTimeline: render !== undefined, elapsedMs: () => performance.now(), progressEveryMs: 10_000 }
      if (onTopic) summary = await replayOnTopicCommand(file, cfg, io, ropts, nodes ?? 1, deciders ?? 1, values.kafka)
      else summary = nodes === undefined ? await replayLines(readRecording(file), cfg, io, ropts, file) : await replayLinesOnNodes(readRecording(file), cfg, io, { ...ropts, nodes }, file)
    } catch (err) {
      if (err instanceof RecordingReadError) {
        io.err(`pullback replay: cannot read ${file}: ${err.message}\n`)
        return 1
      }
      // cross-section checks (engine windows vs signal buckets) surface when the pipeline is built
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    if (render !== undefined && values.report !== undefined && summary.report !== undefined) {
      try {
        await writeFile(values.report, render(summary.report))
      } catch (err) {
        io.err(`pullback replay: cannot write report ${values.report}: ${errorMessage(err)}\n`)
        return 1
      }
    }
    return 0
  },
}
