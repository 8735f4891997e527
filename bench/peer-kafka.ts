/**
 * pullback's Kafka span path vs the OpenTelemetry Collector's kafka receiver + span_metrics
 * connector, on the same topic and the same records, on the same machine (issue 16 items 2 and 5).
 *
 *   npm run build && OTELCOL_BIN=/path/to/otelcol KAFKA_BROKERS=127.0.0.1:19092 node dist/bench/peer-kafka.js \
 *     [--spans 3000000] [--runs 3] [--partitions 3] [--rates 150000,300000,450000,600000] \
 *     [--sustain-seconds 30] [--after-seconds 30] [--only collector|pullback] [--no-sustained] [--no-drain]
 *     [--refine 1]
 *     [--backlog-topic NAME: reuse a topic an earlier run filled; it is kept] [--pullback-buffer 16MiB]
 *     [--workers N: receivers.workers for pullback, default 0] [--node-options '...': pullback's NODE_OPTIONS]
 *     [--spans-per-record 512]
 *
 * Records: otlp_proto ExportTraceServiceRequests of 512 SERVER spans x 10 attributes (16 distinct
 * ones, bench/peer-common.ts), one per record, as the Collector's kafka exporter writes a batch.
 * `--spans-per-record 32`: records of 32 spans (~12 KB), as a Collector whose kafka exporter
 * partitions by trace id (`partition_traces_by_id`) writes them; the same span shapes.
 *
 * 1. Backlog drain: each run fills a fresh topic with `--spans` spans (3 M: 5,860 records, fresh
 *    timestamps) before either target starts, then starts each target on it (alternating first,
 *    so that noise from other load spreads evenly) as a child process with a new consumer group
 *    from the earliest offset, and reads:
 *    - drain rate: spans / (time from the first consumed span to the last),
 *    - the target's CPU seconds per million spans over that time (utime+stime, all threads),
 *    - peak RSS during the drain (VmRSS sampled every 100 ms from start to the last span; VmHWM
 *      too, which also covers the start), and RSS `--after-seconds` after the drain ended (memory
 *      given back, or not).
 *    Progress: pullback commits offset last+1 after each handled batch, so its group's committed
 *    offsets x spans per record are its consumed spans (exact); the Collector commits on a timer, so its own
 *    `otelcol_receiver_accepted_spans` (Prometheus, pull) is read instead.
 * 2. Sustained rate: each target consumes a new, empty topic while this process produces a steady
 *    offered load (records at `rate / spans per record` per second, paced every 20 ms) for `--sustain-seconds`,
 *    stepping up the `--rates` ladder; a step holds when the lag (produced minus consumed) at its
 *    end is not more than one second of offered load above the lag 2 s into it, and consumed >= 97 %
 *    of produced. The sustained rate is the highest step that held: the ladder stops at the first
 *    that did not, then `--refine` times (default 1) offers the rate half way between the highest
 *    held and the lowest not held, so the figure's resolution is a rung / 2^refine (a 80 k ladder
 *    read 320 k in one record and 400 k in the next for the same Collector: a rung is 25 % there,
 *    more than the 20 % a reproduced figure may move). A ladder whose top held reports its top: a
 *    floor, said so in the table (`>=`). The producer shares the 2 cores with the target (as do the
 *    broker and the Collector): it is the same for both targets. `--no-drain`: the sustained rates
 *    only (the backlog drain is its own entry in bench/run.ts, on a 3 M-span backlog; the drain of
 *    the 256 k spans this run would fill lasts under a second, too short to be a figure).
 *
 * The targets:
 *   (a) the Collector: kafka receiver (group per run, initial_offset earliest, otlp_proto,
 *       max_fetch_size and max_partition_fetch_size `--collector-fetch`, default 4 MiB: the fetch
 *       sizes pullback used at a 16 MiB budget (at its default 4 MiB it fetches 1 MB); with the
 *       receiver's own 1 MiB defaults it drained at a fraction of a core) ->
 *       span_metrics connector (defaults) -> nop exporter; its telemetry: metrics on a local
 *       Prometheus pull port (progress), logs at warn.
 *   (b) `node <build>/src/cli/main.js sidecar`: Kafka span receiver (startFrom earliest) -> lazy decoder
 *       (inline, or in `--workers` decode worker threads) -> normalize -> signal windows -> engine
 *       ticks; OTLP receivers, admin and self-telemetry off. Started with the container image's
 *       environment (bench/peer-common.ts CONTAINER_ENV: glibc's MALLOC_* and V8's
 *       --max-semi-space-size=2); `--node-options` replaces its NODE_OPTIONS (`''`: node's defaults).
 *
 * OTELCOL_BIN: `bash tools/peers/build.sh` (kafkareceiver v0.165.1, spanmetricsconnector v0.165.1,
 * nopexporter v0.165.0; built from the Go module proxy into ~/.cache/pullback-peers, never committed).
 * Without OTELCOL_BIN only pullback is measured. Topics are deleted at the end; every child is
 * stopped (SIGTERM, SIGKILL after 30 s) before the next starts; the process exits when done.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { kafkaClient } from '../src/kafka/client.js'
import { generateKeyPairFiles } from '../src/publish/signing.js'
import { CONTAINER_ENV, SIDECAR_MAIN, SPANS_PER_REQUEST, cpuSeconds, fmt, freePort, median, payloads, spread, statusKiB } from './peer-common.js'
import { spread as figure } from './stats.js'
import { flags, exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

type TargetName = 'collector' | 'pullback'

interface Options {
  spans: number
  runs: number
  partitions: number
  rates: number[]
  sustainSeconds: number
  afterSeconds: number
  sustained: boolean
  only: TargetName | undefined
  brokers: string
  /** an existing topic filled by an earlier run (kept, not deleted); unset: a new one is filled and deleted */
  backlogTopic: string | undefined
  /** the Collector kafka receiver's max_fetch_size and max_partition_fetch_size */
  collectorFetch: number
  /** receivers.kafkaSpans.maxBufferedBytes for pullback; unset: its default */
  pullbackBuffer: string | undefined
  /** receivers.workers for pullback */
  workers: number
  /** NODE_OPTIONS of the pullback child */
  nodeOptions: string
  /** spans per record (one ExportTraceServiceRequest each): 512 as a Collector batch, 32 as a Collector with partition_traces_by_id writes */
  spansPerRecord: number
  /** measure the backlog drain (false: `--no-drain`, sustained rates only) */
  drain: boolean
  /** steps half way between the highest held and the lowest not held rate, after the ladder */
  refine: number
}

function parseOptions(argv: string[]): Options {
  const { get, int: num } = flags(argv)
  const only = get('only')
  if (only !== undefined && only !== 'collector' && only !== 'pullback') throw new Error('--only must be collector or pullback')
  const spansPerRecord = num('spans-per-record', SPANS_PER_REQUEST, 1, 8192)
  if (argv.includes('--no-drain') && argv.includes('--no-sustained')) throw new Error('--no-drain with --no-sustained leaves nothing to measure')
  const rates = (get('rates') ?? '150000,300000,450000,600000').split(',').map(Number)
  if (rates.some((r) => !Number.isInteger(r) || r < spansPerRecord || r > 5_000_000)) throw new Error(`--rates: spans/s, each ${spansPerRecord}..5000000`)
  return {
    spansPerRecord,
    spans: num('spans', 3_000_000, spansPerRecord, 50_000_000),
    runs: num('runs', 3, 1, 10),
    partitions: num('partitions', 3, 1, 64),
    rates: rates.sort((a, b) => a - b),
    sustainSeconds: num('sustain-seconds', 30, 5, 600),
    afterSeconds: num('after-seconds', 30, 0, 600),
    sustained: !argv.includes('--no-sustained'),
    drain: !argv.includes('--no-drain'),
    refine: num('refine', 1, 0, 4),
    only,
    brokers: process.env.KAFKA_BROKERS ?? '127.0.0.1:19092',
    backlogTopic: get('backlog-topic'),
    pullbackBuffer: get('pullback-buffer'),
    collectorFetch: num('collector-fetch', 4 * 1024 * 1024, 65_536, 1_000_000_000),
    workers: num('workers', 0, 0, 64),
    nodeOptions: get('node-options') ?? (CONTAINER_ENV.NODE_OPTIONS as string),
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** librdkafka's RD_KAFKA_RESP_ERR__QUEUE_FULL ("Local: Queue full") */
const QUEUE_FULL = -184

/** children still running: killed when this process exits or is interrupted, so that no target outlives the bench */
const children = new Set<ChildProcess>()
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130))

/*
 * The part of the client library's KafkaJS API this bench uses beyond src/kafka/client.ts's: the
 * library is an optional dependency loaded on first use (kafkaClient()), so `npm run build` never
 * needs its types.
 */
interface BenchAdmin {
  connect(): Promise<void>
  createTopics(o: { topics: { topic: string; numPartitions: number; replicationFactor: number }[] }): Promise<unknown>
  fetchTopicOffsets(topic: string): Promise<{ partition: number; high: string; low: string }[]>
  fetchOffsets(o: { groupId: string; topics: string[] }): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>
  deleteTopics(o: { topics: string[] }): Promise<void>
  disconnect(): Promise<void>
}
interface BenchProducer {
  connect(): Promise<void>
  send(r: { topic: string; messages: { value: Buffer }[] }): Promise<unknown>
  disconnect(): Promise<void>
}
interface BenchKafka {
  admin(): BenchAdmin
  producer(config: Record<string, unknown>): BenchProducer
}

/** The bench's own Kafka clients: a producer to fill and feed topics, an admin for topics and committed offsets. */
class Bus {
  private readonly kafka: BenchKafka
  readonly admin: BenchAdmin
  readonly producer: BenchProducer
  constructor(brokers: string) {
    const { KafkaJS } = kafkaClient()
    // ERROR = 1 in the library's logLevel enum (NOTHING 0, ERROR 1, WARN 2, INFO 3, DEBUG 4)
    this.kafka = new KafkaJS.Kafka({ kafkaJS: { brokers: brokers.split(','), clientId: 'bench-peer-kafka', logLevel: KafkaJS.logLevel.WARN - 1 } }) as unknown as BenchKafka
    this.admin = this.kafka.admin()
    this.producer = this.kafka.producer({ 'linger.ms': 5, 'compression.type': 'none', 'batch.size': 1_000_000, 'queue.buffering.max.kbytes': 262_144 })
  }
  async connect(): Promise<void> {
    await this.admin.connect()
    await this.producer.connect()
  }
  async createTopic(topic: string, partitions: number): Promise<void> {
    await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }] })
  }
  /** `records` records, round-robin over `bodies`, `chunk` per send; resolves when all are acknowledged. */
  async produce(topic: string, bodies: Buffer[], records: number, from = 0, chunk = 64): Promise<void> {
    const sends: Promise<unknown>[] = []
    for (let i = 0; i < records; i += chunk) {
      const n = Math.min(chunk, records - i)
      sends.push(this.send(topic, Array.from({ length: n }, (_, j) => ({ value: bodies[(from + i + j) % bodies.length] as Buffer }))))
      // a bounded number of sends in flight: the producer's queue is the bound, not this process's heap
      if (sends.length >= 8) await sends.shift()
    }
    await Promise.all(sends)
  }
  /**
   * One send; librdkafka's local queue full (an offered rate beyond what the broker takes on this
   * machine) waits and retries instead of failing the bench: the producer then falls short of the
   * offered rate, which the sustained step sees and reports (`producerShort`).
   */
  private async send(topic: string, messages: { value: Buffer }[]): Promise<void> {
    for (;;) {
      try {
        await this.producer.send({ topic, messages })
        return
      } catch (err) {
        if ((err as { code?: number }).code !== QUEUE_FULL) throw err
        await sleep(20)
      }
    }
  }
  /** records in `topic` (high minus low watermarks) */
  async records(topic: string): Promise<number> {
    let n = 0
    for (const p of await this.admin.fetchTopicOffsets(topic)) n += Number(p.high) - Number(p.low)
    return n
  }
  /** records committed by `group` on `topic`, summed over partitions */
  async committed(group: string, topic: string): Promise<number> {
    const res = await this.admin.fetchOffsets({ groupId: group, topics: [topic] })
    let n = 0
    for (const t of res) for (const p of t.partitions) n += Math.max(0, Number(p.offset))
    return n
  }
  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length > 0) await this.admin.deleteTopics({ topics }).catch(() => undefined)
  }
  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined)
    await this.admin.disconnect().catch(() => undefined)
  }
}

interface Target {
  name: TargetName
  child: ChildProcess
  dir: string
  /** spans consumed so far */
  consumed(): Promise<number>
  /** topics the target created for itself (the sidecar's `<groupPrefix>.engine.state`), deleted after it stopped */
  ownTopics: string[]
}

async function startTarget(name: TargetName, topic: string, group: string, opts: Options, bus: Bus): Promise<Target> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `pb-peer-kafka-${name}-`))
  const log = openSync(path.join(dir, 'target.log'), 'w')
  let child: ChildProcess
  let consumed: () => Promise<number>
  if (name === 'collector') {
    const metricsPort = await freePort()
    const cfg = path.join(dir, 'otelcol.yaml')
    writeFileSync(
      cfg,
      `receivers:
  kafka:
    brokers: [${opts.brokers}]
    group_id: ${group}
    initial_offset: earliest
    max_fetch_size: ${opts.collectorFetch}
    max_partition_fetch_size: ${opts.collectorFetch}
    traces:
      topics: [${topic}]
      encoding: otlp_proto
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
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: ${metricsPort}
  pipelines:
    traces:
      receivers: [kafka]
      exporters: [span_metrics]
    metrics:
      receivers: [span_metrics]
      exporters: [nop]
`,
    )
    child = spawn(process.env.OTELCOL_BIN as string, ['--config', `file:${cfg}`], { stdio: ['ignore', log, log] })
    const re = /^otelcol_receiver_accepted_spans(?:_total)?\{[^}]*receiver="kafka"[^}]*\}\s+([0-9.e+]+)/gm
    consumed = async () => {
      try {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
        let n = 0
        for (const m of text.matchAll(re)) n += Number(m[1])
        return n
      } catch {
        return 0
      }
    }
  } else {
    const cfg = path.join(dir, 'pullback.yaml')
    const keys = generateKeyPairFiles(dir, 'bench')
    writeFileSync(
      cfg,
      JSON.stringify({
        kafka: { brokers: [opts.brokers], groupPrefix: group, clientId: `bench-${group}`, topics: { spans: topic } },
        publish: { signingKey: keys.privateKeyFile, wal: { file: path.join(dir, 'decisions.wal') } },
        receivers: { workers: opts.workers, otlp: { grpc: { enabled: false }, http: { enabled: false } }, kafkaSpans: { enabled: true, startFrom: 'earliest', ...(opts.pullbackBuffer !== undefined ? { maxBufferedBytes: opts.pullbackBuffer } : {}) }, deployments: { enabled: false } },
        runtime: { admin: { enabled: false }, telemetry: { enabled: false } },
      }),
    )
    // PULLBACK_NODE_FLAGS (space-separated, e.g. "--trace-gc"): node flags for the pullback child only,
    // for flags NODE_OPTIONS does not allow; PULLBACK_KEEP_LOGS=1 keeps its log (path on stderr)
    const nodeFlags = (process.env.PULLBACK_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '')
    child = spawn(process.execPath, [...nodeFlags, SIDECAR_MAIN, 'sidecar', '--config', cfg], { stdio: ['ignore', log, log], env: { ...process.env, ...CONTAINER_ENV, NODE_OPTIONS: opts.nodeOptions } })
    consumed = async () => {
      try {
        return (await bus.committed(`${group}.spans`, topic)) * opts.spansPerRecord
      } catch {
        return 0
      }
    }
  }
  closeSync(log)
  children.add(child)
  child.once('exit', () => children.delete(child))
  return { name, child, dir, consumed, ownTopics: name === 'pullback' ? [`${group}.engine.state`] : [] }
}

function alive(t: Target): boolean {
  return t.child.exitCode === null && t.child.signalCode === null
}

function logTail(t: Target): string {
  try {
    return readFileSync(path.join(t.dir, 'target.log'), 'utf8').slice(-2000)
  } catch {
    return ''
  }
}

async function stopTarget(t: Target, bus: Bus): Promise<void> {
  if (alive(t)) {
    const exited = new Promise<void>((r) => t.child.once('exit', () => r()))
    t.child.kill('SIGTERM')
    const hard = setTimeout(() => t.child.kill('SIGKILL'), 30_000)
    await exited
    clearTimeout(hard)
  }
  if (process.env.PULLBACK_KEEP_LOGS === '1') {
    const kept = path.join(os.tmpdir(), `peer-kafka-${path.basename(t.dir)}.log`)
    copyFileSync(path.join(t.dir, 'target.log'), kept)
    process.stderr.write(`peer-kafka: log kept in ${kept}\n`)
  }
  rmSync(t.dir, { recursive: true, force: true })
  await bus.deleteTopics(t.ownTopics)
}

interface DrainResult {
  target: TargetName
  run: number
  spans: number
  drainSeconds: number
  spansPerSec: number
  cpuSecPerMillion: number
  /** the same for the main thread alone (pullback's event loop; the Collector's is not meaningful) */
  mainCpuSecPerMillion: number
  peakRssMiB: number
  hwmMiB: number
  afterRssMiB: number
  /** 1-minute load average when the target started */
  load: number
}

/** Starts the target on the filled topic and follows it until every span was consumed, then `afterSeconds` more. */
async function drain(name: TargetName, run: number, topic: string, total: number, opts: Options, bus: Bus): Promise<DrainResult> {
  const group = `pb-peer-kafka-${name}-${run}-${Date.now()}`
  const load = os.loadavg()[0] as number
  const t = await startTarget(name, topic, group, opts, bus)
  const pid = t.child.pid as number
  try {
    let peak = 0
    const sampler = setInterval(() => {
      if (alive(t)) peak = Math.max(peak, statusKiB(pid, 'VmRSS'))
    }, 100)
    let first: { ms: number; cpu: number; mainCpu: number; spans: number } | undefined
    let done = 0
    const deadline = Date.now() + 600_000
    try {
      for (;;) {
        if (!alive(t)) throw new Error(`${name} exited (${t.child.exitCode ?? t.child.signalCode}): ${logTail(t)}`)
        if (Date.now() > deadline) throw new Error(`${name} consumed ${done} of ${total} spans in 10 minutes`)
        done = await t.consumed()
        if (first === undefined && done > 0) first = { ms: performance.now(), cpu: cpuSeconds(pid), mainCpu: cpuSeconds(pid, true), spans: done }
        if (done >= total) break
        await sleep(100)
      }
    } finally {
      clearInterval(sampler)
    }
    const endMs = performance.now()
    const cpu = cpuSeconds(pid)
    const mainCpu = cpuSeconds(pid, true)
    peak = Math.max(peak, statusKiB(pid, 'VmRSS'))
    const hwm = statusKiB(pid, 'VmHWM')
    const f = first as { ms: number; cpu: number; mainCpu: number; spans: number }
    // the first poll that saw progress already saw f.spans: count from there
    const spans = total - f.spans
    const secs = (endMs - f.ms) / 1000
    await sleep(opts.afterSeconds * 1000)
    const after = alive(t) ? statusKiB(pid, 'VmRSS') : NaN
    return {
      target: name,
      run,
      spans: total,
      drainSeconds: secs,
      spansPerSec: spans / secs,
      cpuSecPerMillion: ((cpu - f.cpu) / spans) * 1e6,
      mainCpuSecPerMillion: ((mainCpu - f.mainCpu) / spans) * 1e6,
      peakRssMiB: peak / 1024,
      hwmMiB: hwm / 1024,
      afterRssMiB: after / 1024,
      load,
    }
  } finally {
    await stopTarget(t, bus)
  }
}

interface StepResult {
  rate: number
  held: boolean
  /** produced under 97 % of the offered rate: the step measures the producer, not the target */
  producerShort: boolean
  produced: number
  consumed: number
  lagStart: number
  lagEnd: number
  cores: number
  rssMiB: number
}

interface SustainResult {
  target: TargetName
  run: number
  /** the highest rate held (0: none) */
  sustained: number
  /** every rate of the ladder held, or the producer fell short of the next one: `sustained` is a floor of the target's rate */
  atTop: boolean
  steps: StepResult[]
}

/**
 * Offers each rate of the ladder for `sustainSeconds` on a new empty topic until one does not hold,
 * then `refine` rates half way between the highest held (0 when none) and the lowest not held.
 */
async function sustain(name: TargetName, run: number, bodies: Buffer[], opts: Options, bus: Bus, topics: string[]): Promise<SustainResult> {
  const topic = `pb-peer-kafka-live-${name}-${run}-${Date.now()}`
  topics.push(topic)
  await bus.createTopic(topic, opts.partitions)
  const t = await startTarget(name, topic, `${topic}-g`, opts, bus)
  const pid = t.child.pid as number
  const steps: StepResult[] = []
  let produced = 0
  const step = async (rate: number): Promise<StepResult> => {
    const perTick = rate / opts.spansPerRecord / 50 // records per 20 ms
    let owed = 0
    const t0 = performance.now()
    const end = t0 + opts.sustainSeconds * 1000
    let lagStart: number | undefined
    let consumedStart = 0
    let producedStart = 0
    let cpuStart = 0
    const sends: Promise<void>[] = []
    // a send the broker never acknowledged ("Local: Message timed out": the broker itself could not
    // keep up on these 2 cores): the step measured the broker, not the target, and ends the ladder
    let sendError: unknown
    while (performance.now() < end) {
      const tick = performance.now()
      owed += perTick
      const n = Math.floor(owed)
      owed -= n
      if (n > 0) {
        sends.push(
          bus.produce(topic, bodies, n, produced, n).catch((err: unknown) => {
            sendError ??= err
          }),
        )
        produced += n
      }
      if (sends.length > 16) await sends.shift()
      if (lagStart === undefined && tick - t0 >= 2_000) {
        consumedStart = (await t.consumed()) / opts.spansPerRecord
        producedStart = produced
        lagStart = produced - consumedStart
        cpuStart = cpuSeconds(pid)
      }
      const wait = 20 - (performance.now() - tick)
      if (wait > 0) await sleep(wait)
    }
    await Promise.all(sends)
    const consumedEnd = (await t.consumed()) / opts.spansPerRecord
    const secs = (performance.now() - t0 - 2_000) / 1000
    const lagEnd = produced - consumedEnd
    const ls = lagStart ?? 0
    const p = produced - producedStart
    const c = consumedEnd - consumedStart
    const held = lagEnd - ls <= rate / opts.spansPerRecord && c >= 0.97 * p
    const producerShort = sendError !== undefined || (p * opts.spansPerRecord) / secs < 0.97 * rate
    if (sendError !== undefined) console.error(`  ${name} run ${run}: a send failed at ${fmt(rate)} spans/s offered: ${String(sendError)}`)
    const r: StepResult = { rate, held, producerShort, produced: p * opts.spansPerRecord, consumed: c * opts.spansPerRecord, lagStart: ls * opts.spansPerRecord, lagEnd: lagEnd * opts.spansPerRecord, cores: (cpuSeconds(pid) - cpuStart) / secs, rssMiB: statusKiB(pid, 'VmRSS') / 1024 }
    steps.push(r)
    console.error(`  ${name} run ${run} offered ${fmt(rate)} spans/s (produced ${fmt((p * opts.spansPerRecord) / secs)}): consumed ${fmt((c * opts.spansPerRecord) / secs)} spans/s, lag ${fmt(ls * opts.spansPerRecord)} -> ${fmt(lagEnd * opts.spansPerRecord)} spans: ${producerShort ? 'the producer fell short of the offered rate: the ladder ends here' : held ? 'held' : 'NOT held'}`)
    // the next step starts from an empty lag (after a step not held, as far as 60 s of draining gets)
    const settle = Date.now() + (held ? 30_000 : 60_000)
    while ((await t.consumed()) / opts.spansPerRecord < produced && Date.now() < settle) await sleep(200)
    return r
  }
  let held = 0
  let failed: number | undefined
  // the ladder's top held, or the producer could not offer the next rung: `held` is a floor
  let capped = false
  try {
    // joined: one record consumed
    await bus.produce(topic, bodies, 1)
    produced = 1
    const joinBy = Date.now() + 60_000
    while ((await t.consumed()) < opts.spansPerRecord) {
      if (!alive(t)) throw new Error(`${name} exited: ${logTail(t)}`)
      if (Date.now() > joinBy) throw new Error(`${name} did not consume from ${topic} within 60 s`)
      await sleep(100)
    }
    for (const rate of opts.rates) {
      const r = await step(rate)
      if (r.producerShort) {
        capped = true
        break
      }
      if (!r.held) {
        failed = rate
        break
      }
      held = rate
    }
    for (let i = 0; i < opts.refine && failed !== undefined; i++) {
      const rate = Math.round((held + failed) / 2)
      if (rate <= held || rate >= failed) break
      const r = await step(rate)
      if (r.producerShort) break
      if (r.held) held = rate
      else failed = rate
    }
  } finally {
    await stopTarget(t, bus)
    // deleted now, not at the end: a ladder to 400 k spans/s writes ~9 GB per target and run, and
    // six of them held by the broker at once filled this machine's disk
    await bus.deleteTopics([topic])
    topics.splice(topics.indexOf(topic), 1)
  }
  return { target: name, run, sustained: held, atTop: (capped || failed === undefined) && steps.length > 0, steps }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2))
  const targets: TargetName[] = []
  if (opts.only !== 'pullback') {
    if (process.env.OTELCOL_BIN === undefined || process.env.OTELCOL_BIN === '') {
      if (opts.only === 'collector') throw new Error('OTELCOL_BIN is not set')
      console.log('OTELCOL_BIN not set: measuring pullback only')
    } else targets.push('collector')
  }
  if (opts.only !== 'collector') targets.push('pullback')

  const bus = new Bus(opts.brokers)
  await bus.connect()
  const topics: string[] = []
  const drains: DrainResult[] = []
  const sustains: SustainResult[] = []
  let recordBytes = 0
  try {
    const records = Math.ceil(opts.spans / opts.spansPerRecord)
    for (let run = 1; run <= opts.runs; run++) {
      // fresh span timestamps per run: pullback's windows drop spans older than their retention (10 min) as late, cheaply
      const bodies = payloads(BigInt(Date.now()) * 1_000_000n, 'peer-kafka-bench/1.0', opts.spansPerRecord)
      recordBytes = Math.round(bodies.reduce((a, b) => a + b.length, 0) / bodies.length)
      const order = run % 2 === 1 ? targets : [...targets].reverse()
      if (!opts.drain) {
        for (const name of order) sustains.push(await sustain(name, run, bodies, opts, bus, topics))
        continue
      }
      const backlog = opts.backlogTopic ?? `pb-peer-kafka-backlog-${run}-${Date.now()}`
      // --backlog-topic: kept for the next invocation and reused when it holds the backlog (development only: its timestamps age)
      if (opts.backlogTopic === undefined) topics.push(backlog)
      const held = opts.backlogTopic === undefined ? 0 : await bus.records(backlog).catch(() => 0)
      if (held < records) {
        if (held === 0) await bus.createTopic(backlog, opts.partitions).catch(() => undefined)
        const f0 = performance.now()
        await bus.produce(backlog, bodies, records - held)
        console.error(`run ${run}: filled ${backlog}: ${records - held} records (${fmt(((records - held) * recordBytes) / 1048576)} MiB) in ${fmt((performance.now() - f0) / 1000, 1)} s`)
      } else console.error(`run ${run}: reusing ${backlog}: ${fmt(held)} records (their span timestamps are from when it was filled)`)
      const total = Math.max(held, records) * opts.spansPerRecord
      for (const name of order) {
        const r = await drain(name, run, backlog, total, opts, bus)
        drains.push(r)
        console.error(
          `${name} run ${run}: drain ${fmt(r.spansPerSec)} spans/s (${fmt(r.drainSeconds, 1)} s), ${fmt(r.cpuSecPerMillion, 2)} CPU-s/M spans (main thread ${fmt(r.mainCpuSecPerMillion, 2)}), peak RSS ${fmt(r.peakRssMiB)} MiB (VmHWM ${fmt(r.hwmMiB)}), ${opts.afterSeconds} s after ${fmt(r.afterRssMiB)} MiB`,
        )
      }
      if (opts.backlogTopic === undefined) {
        await bus.deleteTopics([backlog])
        topics.splice(topics.indexOf(backlog), 1)
      }
      if (opts.sustained) for (const name of order) sustains.push(await sustain(name, run, bodies, opts, bus, topics))
    }
  } finally {
    await bus.deleteTopics(topics)
    await bus.close()
  }

  console.log(
    `node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at the end; ` +
      `${opts.drain ? `${fmt(opts.spans)} spans backlog in ` : 'sustained rates only, '}records of ${opts.spansPerRecord} spans (${fmt(recordBytes)} B), ${opts.partitions} partitions, ${opts.runs} runs${opts.sustained ? `, ladder ${opts.rates.map((r) => fmt(r / 1000)).join(' / ')} k spans/s for ${opts.sustainSeconds} s each, refined ${opts.refine} time(s)` : ''}; ` +
      `pullback: receivers.workers ${opts.workers}, NODE_OPTIONS '${opts.nodeOptions}'`,
  )
  const floor = (x: SustainResult) => `${x.atTop ? '>= ' : ''}${fmt(x.sustained)}`
  if (drains.length > 0) {
    console.log('| target | run | drain spans/s | drain s | CPU-s / M spans | peak RSS MiB (sampled) | VmHWM MiB | RSS MiB 30 s after | sustained spans/s | cores busy at it | RSS MiB at it | load at start |')
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for (const r of drains) {
      const s = sustains.find((x) => x.target === r.target && x.run === r.run)
      const top = s?.steps.filter((x) => x.held && x.rate === s.sustained).at(-1)
      console.log(
        `| ${r.target} | ${r.run} | ${fmt(r.spansPerSec)} | ${fmt(r.drainSeconds, 1)} | ${fmt(r.cpuSecPerMillion, 2)} | ${fmt(r.peakRssMiB)} | ${fmt(r.hwmMiB)} | ${fmt(r.afterRssMiB)} | ${s ? floor(s) : '-'} | ${top ? fmt(top.cores, 2) : '-'} | ${top ? fmt(top.rssMiB) : '-'} | ${r.load.toFixed(1)} |`,
      )
    }
  } else {
    console.log('| target | run | sustained spans/s | steps (offered k spans/s: held or not) | cores busy at it | RSS MiB at it |')
    console.log('|---|---|---|---|---|---|')
    for (const s of sustains) {
      const top = s.steps.filter((x) => x.held && x.rate === s.sustained).at(-1)
      const steps = s.steps.map((x) => `${fmt(x.rate / 1000)}${x.producerShort ? ' (producer short)' : x.held ? '' : ' not'}`).join(', ')
      console.log(`| ${s.target} | ${s.run} | ${floor(s)} | ${steps} | ${top ? fmt(top.cores, 2) : '-'} | ${top ? fmt(top.rssMiB) : '-'} |`)
    }
  }
  console.log(`\nmin / median / max over runs${sustains.some((x) => x.atTop) ? " (a sustained rate marked >= held the ladder's top, or the producer could not offer the next rung: a floor)" : ''}:`)
  console.log('| target | drain spans/s | CPU-s / M spans | main-thread CPU-s / M spans | peak RSS MiB | RSS MiB after | sustained spans/s |')
  console.log('|---|---|---|---|---|---|---|')
  for (const name of targets) {
    const d = drains.filter((r) => r.target === name)
    const s = sustains.filter((r) => r.target === name)
    const sus = s.length > 0 ? `${s.some((x) => x.atTop) ? '>= ' : ''}${spread(s.map((r) => r.sustained))}` : '-'
    console.log(
      `| ${name} | ${spread(d.map((r) => r.spansPerSec))} | ${spread(d.map((r) => r.cpuSecPerMillion), 2)} | ${spread(d.map((r) => r.mainCpuSecPerMillion), 2)} | ${spread(d.map((r) => r.peakRssMiB))} | ${spread(d.map((r) => r.afterRssMiB))} | ${sus} |`,
    )
  }
  // the same figures as one JSON line (min / median / max objects), for run.ts's results file and compare.js
  const perTarget: Record<string, unknown> = {}
  for (const name of targets) {
    const d = drains.filter((r) => r.target === name)
    const s = sustains.filter((r) => r.target === name)
    perTarget[name] = {
      ...(d.length > 0
        ? {
            drainSpansPerSec: figure(d.map((r) => r.spansPerSec)),
            cpuSecPerMillion: figure(d.map((r) => r.cpuSecPerMillion)),
            peakRssMiB: figure(d.map((r) => r.peakRssMiB)),
            afterRssMiB: figure(d.map((r) => r.afterRssMiB)),
          }
        : {}),
      ...(s.length > 0 ? { sustainedSpansPerSec: figure(s.map((r) => r.sustained)), sustainedAtLadderTop: s.filter((r) => r.atTop).length } : {}),
    }
  }
  console.log(JSON.stringify({ bench: 'peer-kafka', spansPerRecord: opts.spansPerRecord, ...(opts.drain ? { spans: opts.spans } : {}), runs: opts.runs, targets: perTarget }))
  const of = (name: TargetName) => drains.filter((r) => r.target === name)
  if (of('collector').length > 0 && of('pullback').length > 0) {
    const ratio = (f: (r: DrainResult) => number) => median(of('pullback').map(f)) / median(of('collector').map(f))
    console.log(`medians, pullback/collector: drain rate ${fmt(ratio((r) => r.spansPerSec), 2)}x, CPU per span ${fmt(ratio((r) => r.cpuSecPerMillion), 2)}x, peak RSS ${fmt(ratio((r) => r.peakRssMiB), 2)}x`)
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
