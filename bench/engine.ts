/**
 * Engine benchmark. Build with `npm run build`, run with `node dist/bench/engine.js`.
 *
 * (a) Evaluation ticks over N watched deployments (default 10,000) on the real SignalStore, live-like
 *     and with every tick counted: each service has a baseline version (1 req/s for 6 min) and a new
 *     version (2 req/s, enough for the 50-request floor, so every rule runs its full path), both with
 *     two pods' memory and readiness readings every 10 s (so the resource and probe rules run their
 *     full paths too). The watermark trails the newest telemetry by the engine's lateness. Tick 0 is
 *     the detection tick (the new versions' first 5 s: N deployments detected at once); the
 *     baselines are frozen in the ticks after it; the first confirmation span completes 15 s after
 *     the deployment; the resource rule's slope window is complete 4 min after it. `--ticks`
 *     (default 60: 5 min) ticks in all.
 *     Each tick is what the sidecar runs: a Pipeline pass as bounded event-loop turns through the
 *     EvaluationScheduler (runtime.evaluation defaults; `--max-watches-per-turn N`, `--turn-budget
 *     MS`), while the next 5 s of telemetry arrive in chunks of 500 services (5,000 spans and 2,000
 *     metric readings, about one Collector batch) between its turns, offered at `--feed-rate`
 *     spans/s (default 300,000, the target's rate; 0: one chunk per turn, as fast as the loop
 *     goes; `--feed-before`: before the pass, outside the figures). `--single`: the
 *     old way, each tick one engine call (Pipeline.tick()). Figures: the longest event-loop turn
 *     spent evaluating (every turn of every tick, detection included; wall, and process CPU, which
 *     shows the work bound apart from the machine's load), the pass duration (first turn to last),
 *     the time spent evaluating per pass, and the event-loop delay p99 / max during the detection
 *     phase (ticks 0-8: detection, freezes, the first full spans; perf_hooks.monitorEventLoopDelay).
 *     Each run is a child process (fresh JIT and heap); `--runs` (default 3) runs per evaluation mode
 *     (`--evaluation full|incremental|both`, default both), every figure printed as min / median /
 *     max over the runs, then one JSON line. Also the heap per service-version after the fill
 *     (target <= 64 KiB). Each child first runs the same ticks over 500 services (its own store) so
 *     that the engine is JIT-compiled, as in a running sidecar; `--cold` skips that. Targets: no
 *     turn >= 50 ms, event-loop delay p99 < 20 ms.
 *     `--telemetry metrics`: the same deployments sending metrics only, as an SDK without tracing
 *     does: `--pods N` (default 4) pods per version each exporting a delta histogram every
 *     `--export-interval S` (default 60) seconds on its own phase, the new version's pods started
 *     over its first 30 s; each pod's report completes its version's data and is judged as it lands
 *     (src/engine/cadence.ts), so a version is judged up to once per pod per interval. Its feed
 *     chunks hold 500 services' reports (at 16 pods, about 670 reports in one callback: the loop's
 *     largest delays in that mode are the chunks, `--trace` shows them).
 * (b) Replay of a generated one-hour, 100 requests/s OTLP/JSON file (Collector file-exporter
 *     format, written to /tmp) through `pullback replay`'s command. Target: < 20 s.
 *
 * `--trace`: a 1 ms timer during the detection phase; each firing >= 20 ms late is attributed to what
 * ran meanwhile (engine calls, feed chunks, GC pauses from perf_hooks, the rest), with the process
 * CPU of the interval (wall far above CPU: the machine's other load). Run the child under
 * `--trace-gc` to see scavenges and incremental marking steps, which perf_hooks does not report.
 *
 * Options: --services N, --ticks N, --runs N, --evaluation MODE, --telemetry spans|metrics, --pods N, --export-interval S, --single, --max-watches-per-turn N,
 * --turn-budget MS, --feed-rate N, --no-state, --feed-before, --trace, --cold, --skip-replay, --skip-tick, --engine-only, --file PATH
 * (reuse a generated file). Exit code 1 when a target is missed. The children inherit node's flags
 * and NODE_OPTIONS and set the pullback process's runtime V8 flags (src/cli/v8-flags.ts; printed): `node --max-semi-space-size=2 dist/bench/engine.js` measures under the
 * container image's heap setting (smaller, more frequent scavenges; more GC time in all).
 */
import { existsSync, statSync, writeFileSync, appendFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises'
import type { SignalView, VersionInfo, WindowStats } from '../src/signals/view.js'
import type { LatencyBuckets } from '../src/normalize/observations.js'
import { evaluate, initialState } from '../src/engine/evaluate.js'
import { Pipeline, type PassRunner, type TickResult } from '../src/runtime/pipeline.js'
import { EvaluationScheduler, evaluationTurnsSchema, type EvaluationTurnsConfig, type PassReport } from '../src/runtime/evaluation-scheduler.js'
import { defaultEngineConfig } from '../src/engine/config.js'
import { stateSchema } from '../src/state/config.js'
import type { StateChanges } from '../src/engine/persist.js'
import { command as replay } from '../src/cli/commands/replay.js'
import { applyRuntimeV8Flags, runtimeV8Flags } from '../src/cli/v8-flags.js'
import { generate } from '../test/support/otlp-fixtures.js'
import { fmtSpread, spread } from './stats.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const D = 1_767_225_600_000
/**
 * What the services send (--telemetry spans|metrics, default spans). 'metrics': each version's
 * `--pods` pods (default 4) export an `http.server.request.duration` delta histogram (the SDK's
 * default bucket bounds, one point per status class) every `--export-interval` s (default 60, the
 * SDK's default) on their own phases; the new version's pods start at random over the deployment's
 * first ROLL_S seconds (a rolling update) and first report one interval after their start (the
 * deployments are detected at tick 0 from the pods' resource readings, as in the spans mode), and
 * each pod's report completes its version's data on its own phase (a 60 s series is judged as each
 * report lands, src/engine/cadence.ts).
 */
const TELEMETRY: 'spans' | 'metrics' = arg('--telemetry') === 'metrics' ? 'metrics' : 'spans'
const EXPORT_S = Number(arg('--export-interval') ?? 60)
const PODS = Number(arg('--pods') ?? 4)
/** a bad flag names itself and exits 2 before anything runs */
function badFlag(problem: string | undefined): void {
  if (problem === undefined) return
  console.error(`engine bench: ${problem} (--help for the flags)`)
  process.exit(2)
}
badFlag(arg('--telemetry') !== undefined && arg('--telemetry') !== 'spans' && arg('--telemetry') !== 'metrics' ? `--telemetry: spans or metrics, not ${arg('--telemetry')}` : undefined)
badFlag(!(Number.isInteger(EXPORT_S) && EXPORT_S >= 5 && EXPORT_S <= 300) ? `--export-interval: whole seconds in 5..300, not ${arg('--export-interval')}` : undefined)
badFlag(!(Number.isInteger(PODS) && PODS >= 1 && PODS <= 64) ? `--pods: 1..64, not ${arg('--pods')}` : undefined)
/** metrics: the new version's pods start over the deployment's first ROLL_S seconds */
const ROLL_S = 30
/**
 * ticks 0..DETECTION_PHASE-1 form the detection phase (detection, freezes, first full spans); with
 * metrics, the ticks in which the first reports land and the 9 after them
 */
const DETECTION_PHASE = TELEMETRY === 'spans' ? 9 : Math.ceil((EXPORT_S + ROLL_S) / 5) + 9
/** the OTel SDKs' default explicit bounds for http.server.request.duration, in µs */
const SDK_BOUNDS_US = [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000].map((ms) => ms * 1000)
const SDK_LAYOUT: LatencyBuckets = { kind: 'explicit', boundsUs: SDK_BOUNDS_US }
const TARGET_MS = 50
const EL_TARGET_MS = 20
/** services whose next 5 s of telemetry are recorded per event-loop turn while a pass runs */
const FEED_CHUNK = 500
/** runtime.evaluation: the defaults, or --max-watches-per-turn N / --turn-budget MS */
const TURNS: EvaluationTurnsConfig = evaluationTurnsSchema.parse({
  ...(arg('--max-watches-per-turn') !== undefined ? { maxWatchesPerTurn: Number(arg('--max-watches-per-turn')) } : {}),
  ...(arg('--turn-budget') !== undefined ? { turnBudget: Number(arg('--turn-budget')) } : {}),
})
const CONCURRENT = !process.argv.includes('--feed-before')
/**
 * spans/s offered while a tick's telemetry arrives (--feed-rate N, default the target's 300,000):
 * chunks are spaced in wall time at this rate, each in its own timer callback (as an OTLP request is
 * its own I/O callback in the sidecar); a chunk that is due already waits for one event-loop turn
 * at least. 0: as fast as the loop goes, one chunk per turn (the bench before --feed-rate).
 */
const FEED_RATE = Number(arg('--feed-rate') ?? 300_000)
/** the engine state exported after each pass, as runtime.state (enabled by default) does; --no-state: not */
const STATE = !process.argv.includes('--no-state')
/** --trace: during the detection phase, attribute every late timer (>= EL_TARGET_MS) to what ran meanwhile */
const TRACE = process.argv.includes('--trace')

/** What ran on the loop, as [start, end) intervals of performance.now() (--trace). */
class ActivityLog {
  static readonly KINDS = ['engine', 'beginPass', 'feed', 'onPass', 'gc'] as const
  readonly starts: number[] = []
  readonly ends: number[] = []
  readonly kinds: number[] = []
  /** late probe fires: when, and how late */
  readonly lateAt: number[] = []
  readonly lateBy: number[] = []
  /** process CPU ms between the late fire and the one before it (the loop's own work and GC threads; preemption by other processes is not in it) */
  readonly lateCpu: number[] = []
  /** per kind: the most process CPU one interval took, ms */
  readonly maxCpu: Record<string, number> = {}
  cpu(kind: string, ms: number): void {
    if (ms > (this.maxCpu[kind] ?? 0)) this.maxCpu[kind] = ms
  }
  samples = 0
  add(kind: (typeof ActivityLog.KINDS)[number], start: number, end: number): void {
    this.starts.push(start)
    this.ends.push(end)
    this.kinds.push(ActivityLog.KINDS.indexOf(kind))
  }
  /** per late fire: ms of each kind within the blocked interval [at - by - 1, at) */
  summary(min: number): { samples: number; late: number; byKind: Record<string, number>; unaccounted: number; worst: string[]; maxCpu: Record<string, number>; lateCpu: number[] } {
    const byKind: Record<string, number> = {}
    let unaccounted = 0
    const worst: { by: number; text: string }[] = []
    for (let i = 0; i < this.lateAt.length; i++) {
      const by = this.lateBy[i] as number
      if (by < min) continue
      const hi = this.lateAt[i] as number
      const lo = hi - by - 1
      const parts: Record<string, number> = {}
      let covered = 0
      for (let j = 0; j < this.starts.length; j++) {
        const a = Math.max(lo, this.starts[j] as number)
        const b = Math.min(hi, this.ends[j] as number)
        if (b <= a) continue
        const k = ActivityLog.KINDS[this.kinds[j] as number] as string
        parts[k] = (parts[k] ?? 0) + (b - a)
        if (k !== 'gc') covered += b - a
      }
      for (const [k, v] of Object.entries(parts)) byKind[k] = (byKind[k] ?? 0) + v
      const rest = Math.max(0, by - covered)
      unaccounted += rest
      worst.push({ by, text: `${by.toFixed(1)} ms late (${(this.lateCpu[i] as number).toFixed(1)} ms CPU): ${Object.entries(parts).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}, other ${rest.toFixed(1)}` })
    }
    worst.sort((p, q) => q.by - p.by)
    const lateCpu = this.lateCpu.filter((_, i) => (this.lateBy[i] as number) >= min).sort((p, q) => q - p)
    return { samples: this.samples, late: worst.length, byKind, unaccounted, worst: worst.slice(0, 12).map((w) => w.text), maxCpu: this.maxCpu, lateCpu }
  }
}

/** What one child run reports (one JSON line on stdout, prefixed RESULT). */
interface TickRun {
  evaluation: 'full' | 'incremental'
  /** 'turns': each tick a pass of bounded event-loop turns (EvaluationScheduler); 'single': Pipeline.tick(), one call */
  scheduling: 'turns' | 'single'
  services: number
  fillS: number
  /** heap (JS heap + array buffers) per service-version after the fill, bytes */
  heapPerSeries: number
  /** per tick (tick 0 = detection): the longest event-loop turn spent evaluating, ms (single: the call) */
  maxTurn: number[]
  /** per tick: the pass from its first turn to its last, ms (I/O and feed turns in between included) */
  passWall: number[]
  /** per tick: ms spent evaluating, summed over the pass's turns */
  busy: number[]
  /** per tick: event-loop turns of the pass */
  turns: number[]
  /** per tick: the most process CPU time one of the pass's turns took, ms (the work bound, whatever the machine's load) */
  maxTurnCpu: number[]
  /** per tick: the most process CPU time one engine call (at most SLICE_EVALUATIONS evaluations' worth) took, ms */
  maxCallCpu: number[]
  /** per tick: wall ms from the first to the last chunk of the next tick's telemetry (concurrent feed) */
  feedWall: number[]
  /** the longest garbage-collection pause during the ticks, ms (perf_hooks 'gc' entries) */
  gcMax: number
  /** GC pauses during the detection phase (ticks 0-8): young-generation (scavenges) and full (mark-compact) counts, and their summed ms */
  gcMinor: number
  gcMajor: number
  gcMs: number
  /** event-loop delay during the detection phase (ticks 0-8), ms */
  elP99: number
  elMax: number
  statuses: number[]
  last: Record<string, number>
  counters: Record<string, number>
  /** --trace: what the late timers of the detection phase waited for */
  trace?: ReturnType<ActivityLog['summary']>
}

interface TickOptions {
  scheduling: 'turns' | 'single'
  turns: EvaluationTurnsConfig
  /** the next tick's telemetry arrives in chunks between the pass's turns (default) instead of before it */
  concurrentFeed: boolean
}

async function tickRun(n: number, nTicks: number, evaluation: 'full' | 'incremental', o: TickOptions): Promise<TickRun> {
  const cfg = defaultEngineConfig()
  // runtime.state as the sidecar runs it by default (enabled): each pass's changed watches are
  // encoded for the state topic at the pass's end (Pipeline.passDone, inside its last engine call);
  // the sink accepts everything (the Kafka producer is not part of this bench). --no-state: none.
  const st = stateSchema.parse({})
  const state = STATE
    ? { sink: { write: (c: StateChanges) => ({ accepted: c.upserts.length + c.deletes.length, refused: [] }) }, minWriteIntervalMs: st.minWriteInterval, versions: { maxServices: st.versions.maxServices, maxPerService: st.versions.maxPerService, refreshMs: st.versions.refresh } }
    : undefined
  const pipeline = new Pipeline({ engine: cfg, signals: { maxSeries: 2 * n + 10 }, evaluation, ...(state !== undefined ? { state } : {}) })
  const store = pipeline.store
  const t0 = performance.now()
  let x = 12345
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
  const E = EXPORT_S * 1000
  const keyOf = (i: number, version: string) => ({ namespace: `ns${i % 100}`, service: `svc${i}`, version })
  // metrics: per service, its pods' first report times (v1: its phases, v2: its start + one interval)
  const v1First = TELEMETRY === 'metrics' ? Array.from({ length: n }, () => Array.from({ length: PODS }, () => D - 360_000 + Math.floor(rnd() * E) + E)) : []
  const v2Start = TELEMETRY === 'metrics' ? Array.from({ length: n }, () => Array.from({ length: PODS }, () => D + Math.floor(rnd() * ROLL_S * 1000))) : []
  const ok = new Array<number>(SDK_BOUNDS_US.length + 1)
  const bad = new Array<number>(SDK_BOUNDS_US.length + 1)
  /** one pod's report of `count` requests over (startMs, timeMs], as the normalizer emits a delta histogram: one point per status class */
  const report = (key: ReturnType<typeof keyOf>, startMs: number, timeMs: number, count: number, streamStart: boolean) => {
    ok.fill(0)
    bad.fill(0)
    for (let j = 0; j < count; j++) {
      const us = 20_000 * Math.exp(0.4 * (rnd() - 0.5))
      let b = 0
      while (b < SDK_BOUNDS_US.length && us > (SDK_BOUNDS_US[b] as number)) b++
      const c = rnd() < 0.005 ? bad : ok
      c[b] = (c[b] as number) + 1
    }
    for (const c of [ok, bad]) {
      const lats: number[] = []
      const ns: number[] = []
      let total = 0
      for (let b = 0; b < c.length; b++) {
        const k = c[b] as number
        if (k === 0) continue
        lats.push(b === 0 ? (SDK_BOUNDS_US[0] as number) / 2 : b === SDK_BOUNDS_US.length ? (SDK_BOUNDS_US[b - 1] as number) : ((SDK_BOUNDS_US[b - 1] as number) + (SDK_BOUNDS_US[b] as number)) / 2)
        ns.push(k)
        total += k
      }
      if (total === 0) continue
      store.record({ kind: 'request', key, timeMs, startMs, ...(streamStart ? { streamStart: true as const } : {}), count: total, errors: c === bad ? total : 0, latenciesUs: lats, latencyCounts: ns, latencyBuckets: SDK_LAYOUT })
    }
  }
  /** metrics: the reports of `firsts` pods (each every E ms from its first) in [fromMs, toMs), `rps` requests/s over the version */
  const reports = (key: ReturnType<typeof keyOf>, firsts: readonly number[], fromMs: number, toMs: number, rps: number, startOf?: readonly number[]) => {
    for (let p = 0; p < firsts.length; p++) {
      const f = firsts[p] as number
      for (let t = f + Math.max(0, Math.ceil((fromMs - f) / E)) * E; t < toMs; t += E) {
        const fresh = startOf !== undefined && t === f
        const start = fresh ? (startOf[p] as number) : t - E
        report(key, start, t, Math.round((rps * (t - start)) / 1000 / firsts.length), fresh)
      }
    }
  }
  for (let i = 0; i < n; i++) {
    if (TELEMETRY === 'metrics') {
      reports(keyOf(i, 'v1'), v1First[i] as number[], D - 360_000, D, 1)
      continue
    }
    const r1 = store.series(keyOf(i, 'v1'))
    for (let s = -360; s < 0; s++) r1.recordRequest(D + s * 1000 + 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
  }
  store.drainNewVersions() // the baseline versions are first versions of new services: not deployments
  const handles = TELEMETRY === 'spans' ? Array.from({ length: n }, (_, i) => store.series(keyOf(i, 'v2'))) : []
  const v2Key = TELEMETRY === 'metrics' ? Array.from({ length: n }, (_, i) => keyOf(i, 'v2')) : []
  const v2First = v2Start.map((starts) => starts.map((s) => s + E))
  // resource and probe readings of both versions, as a kubeletstats receiver sends them every 10 s:
  // two pods per version, memory working set against a 512 MiB request, container readiness
  const MiB = 1024 * 1024
  const side = (fromS: number, secs: number, version: string, from = 0, to = n) => {
    for (let i = from; i < to; i++) {
      const key = { namespace: `ns${i % 100}`, service: `svc${i}`, version }
      for (let s = fromS; s < fromS + secs; s++) {
        if (s % 10 !== 0) continue
        for (let p = 0; p < 2; p++) {
          const pod = `svc${i}-${version}-${p}`
          store.record({ kind: 'resource', key, pod, resource: 'memory', timeMs: D + s * 1000, value: (200 + rnd()) * MiB, request: 512 * MiB })
          store.record({ kind: 'probe', key, pod, container: 'app', timeMs: D + s * 1000, ready: true })
        }
      }
    }
  }
  side(-360, 360, 'v1')
  // the new version, 2 req/s, `secs` seconds from `fromS`, services [from, to)
  const feed = (fromS: number, secs: number, from = 0, to = n) => {
    for (let i = from; i < to; i++) {
      if (TELEMETRY === 'metrics') {
        reports(v2Key[i] as ReturnType<typeof keyOf>, v2First[i] as number[], D + fromS * 1000, D + (fromS + secs) * 1000, 2, v2Start[i])
        continue
      }
      const r2 = handles[i] as (typeof handles)[number]
      for (let s = fromS; s < fromS + secs; s++) for (let j = 0; j < 2; j++) r2.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
    }
    side(fromS, secs, 'v2', from, to)
  }
  /** the same, in chunks of FEED_CHUNK services with an event-loop turn between them (as OTLP requests would arrive) */
  const feedInTurns = async (fromS: number, secs: number) => {
    const f0 = performance.now()
    const spansPerChunk = FEED_CHUNK * secs * 2
    for (let from = 0, k = 0; from < n; from += FEED_CHUNK, k++) {
      if (FEED_RATE > 0 && from > 0) {
        const wait = f0 + (k * spansPerChunk * 1000) / FEED_RATE - performance.now()
        await (wait >= 1 ? sleep(wait) : turn())
      }
      const c0 = trace !== undefined ? performance.now() : 0
      const u0 = trace !== undefined ? process.cpuUsage() : undefined
      feed(fromS, secs, from, Math.min(n, from + FEED_CHUNK))
      if (trace !== undefined) {
        trace.add('feed', c0, performance.now())
        const u = process.cpuUsage(u0)
        trace.cpu('feed', (u.user + u.system) / 1000)
      }
      if (FEED_RATE <= 0) await turn()
    }
    run.feedWall.push(performance.now() - f0)
  }
  const fill = performance.now() - t0
  const mem = process.memoryUsage()
  const heapPerSeries = (mem.heapUsed + mem.arrayBuffers) / (2 * n)
  const el = monitorEventLoopDelay({ resolution: 1 })
  const trace = TRACE && n > FEED_CHUNK ? new ActivityLog() : undefined
  let probe: NodeJS.Timeout | undefined
  let probeLast = 0
  const run: TickRun = { evaluation, scheduling: o.scheduling, services: n, fillS: fill / 1000, heapPerSeries, maxTurn: [], passWall: [], busy: [], turns: [], maxTurnCpu: [], maxCallCpu: [], feedWall: [], gcMax: 0, gcMinor: 0, gcMajor: 0, gcMs: 0, elP99: 0, elMax: 0, statuses: [], last: {}, counters: {} }
  let wm = -Infinity
  let passed: ((r: { res: TickResult; report: PassReport }) => void) | undefined
  let failure: unknown
  // the pipeline seen through a probe that times each turn's engine calls in process CPU: a new turn
  // is the first call after the check phase ran (a setImmediate queued at a turn's first call runs
  // before the scheduler's next turn)
  let turnCpu = 0
  let passMaxCpu = 0
  let passMaxCall = 0
  let inTurn = false
  const runner: PassRunner = {
    get passOpen() {
      return pipeline.passOpen
    },
    beginPass: (now, w) => {
      const b0 = performance.now()
      try {
        return pipeline.beginPass(now, w)
      } finally {
        trace?.add('beginPass', b0, performance.now())
      }
    },
    stepPass: (max) => {
      if (!inTurn) {
        inTurn = true
        turnCpu = 0
        setImmediate(() => (inTurn = false))
      }
      const c0 = process.cpuUsage()
      const w0 = trace !== undefined ? performance.now() : 0
      try {
        return pipeline.stepPass(max)
      } finally {
        trace?.add('engine', w0, performance.now())
        const c = process.cpuUsage(c0)
        const ms = (c.user + c.system) / 1000
        trace?.cpu('engine', ms)
        turnCpu += ms
        if (turnCpu > passMaxCpu) passMaxCpu = turnCpu
        if (ms > passMaxCall) passMaxCall = ms
      }
    },
  }
  const sched = new EvaluationScheduler({
    runner,
    clock: { now: () => wm },
    intervalMs: 3_600_000,
    watermark: () => wm,
    turns: o.turns,
    onPass: (res, _now, report) => {
      const p0 = performance.now()
      passed?.({ res, report })
      trace?.add('onPass', p0, performance.now())
    },
    onFailure: (err) => {
      failure = err
      passed?.({ res: { verdicts: [], statuses: [] }, report: { wallMs: 0, busyMs: 0, turns: 0, maxTurnMs: 0, calls: 0 } })
    },
  })
  feed(0, 5)
  // GC pauses land inside whatever turn runs: they explain a turn longer than its engine work
  let inDetection = true
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration > run.gcMax) run.gcMax = e.duration
      if (inDetection) {
        const kind = (e as { detail?: { kind?: number } }).detail?.kind
        if (kind === constants.NODE_PERFORMANCE_GC_MINOR) run.gcMinor += 1
        else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) run.gcMajor += 1
        run.gcMs += e.duration
      }
      trace?.add('gc', e.startTime, e.startTime + e.duration)
    }
  })
  gc.observe({ entryTypes: ['gc'] })
  for (let i = 0; i < nTicks; i++) {
    const newest = D + (i + 1) * 5000
    wm = newest - cfg.lateness
    if (i < DETECTION_PHASE) el.enable()
    if (i === 0 && trace !== undefined) {
      // lines for matching --trace-gc output (ms since the process began) to the ticks
      console.error(`trace: ticks begin at ${performance.now().toFixed(0)} ms`)
      probeLast = performance.now()
      let cpuLast = process.cpuUsage()
      probe = setInterval(() => {
        const t = performance.now()
        const late = t - probeLast - 1
        probeLast = t
        const c = process.cpuUsage()
        const cpu = (c.user - cpuLast.user + c.system - cpuLast.system) / 1000
        cpuLast = c
        trace.samples += 1
        if (late >= EL_TARGET_MS) {
          trace.lateAt.push(t)
          trace.lateBy.push(late)
          trace.lateCpu.push(cpu)
        }
      }, 1)
    }
    // the loop turns before each tick, as the sidecar's would between its timer and the next request
    await turn()
    let res: TickResult
    let report: PassReport
    if (o.scheduling === 'single') {
      const t = performance.now()
      const c0 = process.cpuUsage()
      res = pipeline.tick(wm, wm)
      const dt = performance.now() - t
      const c = process.cpuUsage(c0)
      passMaxCpu = (c.user + c.system) / 1000
      passMaxCall = passMaxCpu
      report = { wallMs: dt, busyMs: dt, turns: 1, maxTurnMs: dt, calls: 1 }
      if (i + 1 < nTicks) await (o.concurrentFeed ? feedInTurns((i + 1) * 5, 5) : Promise.resolve(feed((i + 1) * 5, 5)))
    } else {
      const done = new Promise<{ res: TickResult; report: PassReport }>((r) => (passed = r))
      passMaxCpu = 0
      passMaxCall = 0
      sched.fire()
      // the next 5 s of telemetry arrive while the pass runs, between its turns
      if (o.concurrentFeed && i + 1 < nTicks) await feedInTurns((i + 1) * 5, 5)
      ;({ res, report } = await done)
      if (failure !== undefined) throw failure instanceof Error ? failure : new Error(String(failure))
      if (!o.concurrentFeed && i + 1 < nTicks) {
        el.disable()
        feed((i + 1) * 5, 5)
      }
    }
    run.maxTurn.push(report.maxTurnMs)
    run.passWall.push(report.wallMs)
    run.busy.push(report.busyMs)
    run.turns.push(report.turns)
    run.maxTurnCpu.push(passMaxCpu)
    run.maxCallCpu.push(passMaxCall)
    run.statuses.push(res.statuses.length)
    if (i === nTicks - 1) run.last = Object.fromEntries(['healthy', 'insufficient', 'breach'].map((k) => [k, res.statuses.filter((s) => s.status === k).length]))
    await turn()
    if (i === DETECTION_PHASE - 1) {
      inDetection = false
      el.disable()
      run.elP99 = el.percentile(99) / 1e6
      run.elMax = el.max / 1e6
      if (probe !== undefined) clearInterval(probe)
      if (trace !== undefined) {
        run.trace = trace.summary(EL_TARGET_MS)
        console.error(`trace: detection phase ends at ${performance.now().toFixed(0)} ms`)
      }
    }
  }
  if (probe !== undefined) clearInterval(probe)
  await sched.shutdown()
  gc.disconnect()
  run.counters = { ...pipeline.stats().engine }
  pipeline.shutdown()
  return run
}

const median = (a: readonly number[]) => spread(a).median
const fmt = (a: readonly number[]) => fmtSpread(spread(a), (x) => x.toFixed(1))
const mmm = spread

/** Runs `runs` children per mode and prints min / median / max over the runs. Returns whether the target held in every run. */
function tickBench(n: number, nTicks: number, runs: number, modes: readonly ('full' | 'incremental')[], scheduling: 'turns' | 'single'): boolean {
  let ok = true
  // the children inherit both: V8's heap flags move the GC figures (the image runs --max-semi-space-size=2);
  // each child then sets the pullback process's own runtime flags (src/cli/v8-flags.ts)
  const nodeFlags = [...process.execArgv, process.env.NODE_OPTIONS ?? '', ...runtimeV8Flags(process.execArgv)].join(' ').trim()
  const summary: Record<string, unknown> = { bench: 'engine-tick', services: n, ticks: nTicks, runs, scheduling, nodeFlags, telemetry: TELEMETRY, ...(TELEMETRY === 'metrics' ? { exportIntervalS: EXPORT_S, pods: PODS } : {}) }
  const sent =
    TELEMETRY === 'spans'
      ? 'spans (tick 0 = detection)'
      : `metrics only, ${PODS} pods per version each reporting every ${EXPORT_S} s on its own phase (the new pods start over ${ROLL_S} s; the deployments are detected at tick 0 from their pods' resource readings, their first request reports land in ticks ${Math.floor(EXPORT_S / 5)}-${Math.ceil((EXPORT_S + ROLL_S) / 5)}), detection phase ticks 0-${DETECTION_PHASE - 1}`
  console.log(
    `engine tick: ${n} watched deployments, ${nTicks} ticks of 5 s each, ${sent}, ${runs} runs per mode, ` +
      (scheduling === 'turns' ? `each tick a pass of bounded event-loop turns (${TURNS.maxWatchesPerTurn} evaluations / ${TURNS.turnBudget} ms per turn)` : 'each tick one engine call (Pipeline.tick)') +
      `${STATE ? ', the state export of runtime.state (default) after each pass' : ', no state export (--no-state)'}` +
      `${CONCURRENT ? `, the next 5 s of telemetry fed between the turns (${FEED_RATE > 0 ? `offered at ${FEED_RATE / 1000} k spans/s` : 'one chunk per turn, as fast as the loop goes'})` : ''}; node flags: ${nodeFlags === '' ? "node's defaults" : nodeFlags}; figures min / median / max over the runs`,
  )
  for (const mode of modes) {
    const rs: TickRun[] = []
    for (let r = 0; r < runs; r++) {
      const passOn = process.argv.slice(2).filter((a) => a !== '--skip-replay')
      const cp = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child-tick', '--mode', mode, ...passOn, '--skip-replay'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
      const line = cp.stdout.split('\n').find((l) => l.startsWith('RESULT '))
      if (cp.status !== 0 || line === undefined) {
        console.log(`  run ${r + 1} (${mode}) failed: exit ${cp.status} ${cp.stderr.slice(-2000)}`)
        return false
      }
      rs.push(JSON.parse(line.slice('RESULT '.length)) as TickRun)
    }
    const maxTurn = rs.map((r) => Math.max(...r.maxTurn))
    const maxTurnCpu = rs.map((r) => Math.max(...r.maxTurnCpu))
    const argmaxCpu = rs.map((r) => r.maxTurnCpu.indexOf(Math.max(...r.maxTurnCpu)))
    const argmax = rs.map((r) => r.maxTurn.indexOf(Math.max(...r.maxTurn)))
    const detectTurn = rs.map((r) => r.maxTurn[0] as number)
    const detectPass = rs.map((r) => r.passWall[0] as number)
    const medPass = rs.map((r) => median(r.passWall))
    const maxPass = rs.map((r) => Math.max(...r.passWall))
    const medBusy = rs.map((r) => median(r.busy))
    // the mean as well: passes with and without a state export alternate (persist.ts
    // minWriteInterval), and the median falls between the two groups and jumps with their balance
    const meanBusy = rs.map((r) => r.busy.reduce((a, b) => a + b, 0) / Math.max(1, r.busy.length))
    const maxBusy = rs.map((r) => Math.max(...r.busy))
    const pass = maxTurn.every((m) => m < TARGET_MS)
    const elPass = rs.every((r) => r.elP99 < EL_TARGET_MS)
    ok &&= pass && elPass
    const r0 = rs[0] as TickRun
    console.log(`  evaluation ${mode}:`)
    console.log(`    max event-loop turn evaluating (every turn of every tick, incl. tick 0): ${fmt(maxTurn)} ms at ticks ${argmax.join(', ')}; target < ${TARGET_MS} ms: ${pass ? 'PASS' : 'FAIL'}`)
    console.log(`    the same in process CPU time (the work bound, load aside): ${fmt(maxTurnCpu)} ms at ticks ${argmaxCpu.join(', ')}`)
    console.log(`    detection tick (tick 0):       max turn ${fmt(detectTurn)} ms, pass ${fmt(detectPass)} ms`)
    console.log(`    pass duration (first turn to last): median ${fmt(medPass)} ms, max ${fmt(maxPass)} ms`)
    console.log(`    evaluating per pass (turns summed): median ${fmt(medBusy)} ms, mean ${fmt(meanBusy)} ms, max ${fmt(maxBusy)} ms`)
    console.log(`    event-loop delay, ticks 0-${DETECTION_PHASE - 1}:  p99 ${fmt(rs.map((r) => r.elP99))} ms, max ${fmt(rs.map((r) => r.elMax))} ms; target p99 < ${EL_TARGET_MS} ms: ${elPass ? 'PASS' : 'FAIL'}`)
    if (CONCURRENT) {
      // requests of the new versions fed per tick: n services x 5 s x 2 req/s
      const rate = rs.map((r) => (n * 10) / (median(r.feedWall) / 1000) / 1000)
      if (TELEMETRY === 'spans') console.log(`    telemetry arriving meanwhile:  ${n * 10} spans per tick in chunks of ${FEED_CHUNK} services, median ${fmt(rate)} k spans/s while fed`)
      else console.log(`    telemetry arriving meanwhile:  about ${Math.round((n * PODS * 5) / EXPORT_S)} pod reports (${n * 10} requests) per tick in chunks of ${FEED_CHUNK} services, paced as ${fmt(rate)} k requests/s`)
    }
    console.log(`    longest GC pause during the ticks: ${fmt(rs.map((r) => r.gcMax))} ms`)
    console.log(`    GC pauses in ticks 0-${DETECTION_PHASE - 1}: ${fmt(rs.map((r) => r.gcMinor))} scavenges, ${fmt(rs.map((r) => r.gcMajor))} mark-compacts, ${fmt(rs.map((r) => r.gcMs))} ms in all`)
    console.log(`    per-tick max turn ms of run 1: ${r0.maxTurn.map((t) => t.toFixed(0)).join(' ')}`)
    console.log(`    per-tick max turn CPU ms of run 1: ${r0.maxTurnCpu.map((t) => t.toFixed(0)).join(' ')}`)
    console.log(`    per-tick max engine-call CPU ms of run 1: ${r0.maxCallCpu.map((t) => t.toFixed(0)).join(' ')}`)
    console.log(`    per-tick pass ms of run 1:     ${r0.passWall.map((t) => t.toFixed(0)).join(' ')}`)
    console.log(`    per-tick turns of run 1:       ${r0.turns.join(' ')}`)
    console.log(`    statuses per tick of run 1:    ${r0.statuses.join(' ')}; at the last tick ${JSON.stringify(r0.last)}`)
    console.log(`    engine counters of run 1:      ${JSON.stringify(r0.counters)}`)
    for (const [k, r] of rs.entries()) {
      if (r.trace === undefined) continue
      const t = r.trace
      console.log(`    trace run ${k + 1}: ${t.late} of ${t.samples} 1-ms probe fires >= ${EL_TARGET_MS} ms late in ticks 0-${DETECTION_PHASE - 1}; their blocked ms by activity: ${Object.entries(t.byKind).map(([a, v]) => `${a} ${v.toFixed(0)}`).join(', ')}, other ${t.unaccounted.toFixed(0)}`)
      console.log(`      most process CPU of one interval: ${Object.entries(t.maxCpu).map(([a, v]) => `${a} ${v.toFixed(1)}`).join(', ')} ms; CPU of the late fires' intervals (largest first): ${t.lateCpu.slice(0, 20).map((v) => v.toFixed(0)).join(' ')}`)
      for (const w of t.worst) console.log(`      ${w}`)
    }
    console.log(`    heap per service-version after the fill: ${fmt(rs.map((r) => r.heapPerSeries / 1024))} KiB (target <= 64 KiB)`)
    summary[mode] = {
      maxTurnMs: mmm(maxTurn),
      maxTurnCpuMs: mmm(maxTurnCpu),
      detectionMaxTurnMs: mmm(detectTurn),
      detectionPassMs: mmm(detectPass),
      medianPassMs: mmm(medPass),
      maxPassMs: mmm(maxPass),
      medianBusyMs: mmm(medBusy),
      meanBusyMs: mmm(meanBusy),
      eventLoopDelayP99Ms: mmm(rs.map((r) => r.elP99)),
      eventLoopDelayMaxMs: mmm(rs.map((r) => r.elMax)),
      gcMaxMs: mmm(rs.map((r) => r.gcMax)),
      detectionScavenges: mmm(rs.map((r) => r.gcMinor)),
      detectionMarkCompacts: mmm(rs.map((r) => r.gcMajor)),
      detectionGcMs: mmm(rs.map((r) => r.gcMs)),
      pass: pass && elPass,
    }
  }
  console.log(JSON.stringify(summary))
  return ok
}

/** The engine alone: the same tick against a view that answers from precomputed constant windows. */
function engineOnlyBench(n: number): void {
  const mk = (requests: number, errors: number, p99Us: number, from: number, to: number): WindowStats => ({
    fromMs: from,
    toMs: to,
    requests,
    errors,
    latency: { count: requests, valueAtQuantile: () => p99Us, upperAtQuantile: () => p99Us, countAbove: () => 0 },
    buckets: Array.from({ length: (to - from) / 5000 }, (_, i) => ({
      startMs: from + i * 5000,
      endMs: from + (i + 1) * 5000,
      requests: requests / ((to - from) / 5000),
      errors: 0,
      latencyCount: requests / ((to - from) / 5000),
      latencyAtQuantile: () => p99Us,
      latencyCountAbove: () => 0,
    })),
    resources: [],
    probes: { readings: 0, failures: 0, firstFailureMs: undefined, lastFailureMs: undefined, failing: [] },
  })
  const versions = new Map<string, VersionInfo[]>()
  const cache = new Map<string, WindowStats>()
  const view: SignalView = {
    bucketMs: 5000,
    coarseBucketMs: 60_000,
    fineRetentionMs: 60_000,
    versions: (ns, svc) => versions.get(`${ns}/${svc}`) ?? [],
    retainedFromMs: () => D - 600_000,
    coverage: () => undefined,
    window: (k, from, to) => {
      // answers are cached per range: this measures the engine, not the allocation of fake answers
      const id = `${k.version === 'v1' ? (from < D ? 'b' : 'o') : 'n'}${from}-${to}`
      let w = cache.get(id)
      if (w === undefined) cache.set(id, (w = k.version === 'v1' ? mk(from < D ? 300 : 0, 1, 25_000, from, to) : mk(60, 0, 25_000, from, to)))
      return w
    },
  }
  const newVersions: VersionInfo[] = []
  for (let i = 0; i < n; i++) {
    const ns = `ns${i % 100}`
    const service = `svc${i}`
    const v1 = { namespace: ns, service, version: 'v1', firstSeenMs: D - 600_000, lastSeenMs: D - 1 }
    const v2 = { namespace: ns, service, version: 'v2', firstSeenMs: D, lastSeenMs: D + 600_000 }
    versions.set(`${ns}/${service}`, [v1, v2])
    newVersions.push(v2)
  }
  const cfg = defaultEngineConfig()
  let state = evaluate(cfg, initialState(), { now: D + 5000, watermark: D + 5000, view, newVersions }).state
  const ticks: number[] = []
  for (let i = 0; i < 12; i++) {
    const wm = D + 35_000 + i * 5000
    const t = performance.now()
    state = evaluate(cfg, state, { now: wm, watermark: wm, view }).state
    if (i >= 2) ticks.push(performance.now() - t)
  }
  ticks.sort((a, b) => a - b)
  console.log(`engine alone (constant-answer view): steady tick over ${n} deployments: median ${(ticks[ticks.length >> 1] as number).toFixed(1)} ms`)
}

async function replayBench(file: string): Promise<void> {
  if (!existsSync(file)) {
    const t = performance.now()
    writeFileSync(file, '')
    // one hour in 10 chunks of 6 minutes, so the generator never holds the whole hour in memory
    const chunkS = 360
    for (let c = 0; c < 10; c++) {
      const lines = generate({
        seed: 100 + c,
        start: D + c * chunkS * 1000,
        durationS: chunkS,
        // a benign deployment half-way: the replay also detects and watches one release
        load: () => [{ version: c < 5 ? 'v1' : 'v2', rps: 100, errorRate: 0.005, medianMs: 40 }],
        // each chunk restarts the generator's clock: pods are ready from the start, except the new version's first 10 s
        ready: (t, _v, _p, first) => (c === 5 ? t - first >= 10 : true),
      })
      appendFileSync(file, lines.join('\n') + '\n')
    }
    console.log(`generated ${file}: ${(statSync(file).size / 1e6).toFixed(0)} MB in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
  const runs = Math.max(1, Number(arg('--runs') ?? 3))
  const secs: number[] = []
  for (let r = 0; r < runs; r++) {
    let summary = ''
    const t = performance.now()
    const code = await replay.run([file], { out: () => undefined, err: (s) => (summary += s) }, new AbortController().signal)
    secs.push((performance.now() - t) / 1000)
    if (code !== 0) process.exitCode = 1
    console.log(`replay run ${r + 1}/${runs}: ${summary.trim()} exit=${code}`)
  }
  const s = spread(secs)
  console.log(`  one hour at 100 req/s replayed in ${fmtSpread(s, (x) => x.toFixed(1))} s (min / median / max over ${runs} runs), target < 20 s: ${s.max < 20 ? 'PASS' : 'FAIL'}`)
}

/**
 * Runs one part in a child process: the engine's optimized code depends on the shapes it has seen,
 * and in production it only ever sees the store's windows, so the constant-answer view (plain
 * objects) must not share a process with the real tick.
 */
function inChild(part: string): void {
  const passOn = process.argv.slice(2).filter((a) => a !== '--skip-replay')
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), part, ...passOn, '--skip-replay'], { stdio: 'inherit' })
  if (r.status !== 0) process.exitCode = 1
}

async function main(): Promise<void> {
  const services = Number(arg('--services') ?? 10_000)
  // metrics: the first reports land one interval and up to ROLL_S after the deployment; 4 min of watch after them
  const ticks = Number(arg('--ticks') ?? (TELEMETRY === 'spans' ? 60 : Math.ceil((EXPORT_S + ROLL_S) / 5) + 48))
  // a child measures what the pullback process runs: the same V8 settings it applies to itself
  if (process.argv.includes('--child-engine-only') || process.argv.includes('--child-tick')) applyRuntimeV8Flags()
  if (process.argv.includes('--child-engine-only')) return engineOnlyBench(services)
  if (process.argv.includes('--child-tick')) {
    const mode = arg('--mode') === 'incremental' ? 'incremental' : 'full'
    // a running sidecar's engine is compiled by the JIT long before a mass rollout: warm it up on a
    // small fleet first (its own store), so the detection tick measures the work, not the compiler
    const o: TickOptions = { scheduling: process.argv.includes('--single') ? 'single' : 'turns', turns: TURNS, concurrentFeed: CONCURRENT }
    if (!process.argv.includes('--cold')) await tickRun(Math.min(500, services), ticks, mode, o)
    const r = await tickRun(services, ticks, mode, o)
    console.log(`RESULT ${JSON.stringify(r)}`)
    return
  }
  if (!process.argv.includes('--skip-tick')) {
    inChild('--child-engine-only')
    if (!process.argv.includes('--engine-only')) {
      const e = arg('--evaluation') ?? 'both'
      const modes = e === 'both' ? (['full', 'incremental'] as const) : e === 'incremental' ? (['incremental'] as const) : (['full'] as const)
      if (!tickBench(services, ticks, Math.max(1, Number(arg('--runs') ?? 3)), modes, process.argv.includes('--single') ? 'single' : 'turns')) process.exitCode = 1
    }
  }
  if (!process.argv.includes('--skip-replay')) await replayBench(arg('--file') ?? '/tmp/pullback-bench-1h-100rps.jsonl')
}

await main()
