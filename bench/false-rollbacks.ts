/**
 * False-rollback bench: many simulated BENIGN deployments of varied traffic, each replayed through
 * the real pipeline (`replayLines`, as `pullback replay` runs it); every rollback is a false one.
 *
 *   npm run build && node dist/bench/false-rollbacks.js [--runs 1000] [--seed 1] [--workers 2] [--slower F] [--errors F] [--span-export aligned|per-pod] [--rps 1-500] [--clock telemetry|export] [--skew-ms=N] [--histograms explicit|exponential|micrometer|spanmetrics] [--temporality cumulative|cumulativetodelta] [--history-s 360] [--drift F] [--cold-start S] [--intervals 10,15,60] [--config FILE] [--json]
 *
 * Each deployment is one service (1-500 req/s, log-uniform; 2-6 pods; 1-4 routes with their own
 * median latency; a long tail; a baseline 5xx ratio of 0-2 %; a daily-shaped traffic swing) with
 * 6 min of history, then a rolling deployment of a new version that behaves exactly like the old
 * one, watched for 11 min. Telemetry is either SERVER spans (5 s batches) or metrics only
 * (`http.server.request.duration`, cumulative, the SDK's default bucket bounds, on each pod's own
 * export schedule), with k8s memory/CPU/readiness gauges every 10, 15 or 60 s. The OTLP/JSON is
 * written directly (not through the SDK, for speed) in the shape the SDK and the Collector's file
 * exporter write: the same resource attributes, SERVER spans, int64 as strings.
 *
 * `--span-export per-pod`: each pod exports its spans every 5 s on its own millisecond phase (as
 * BatchSpanProcessors do), one resource per line, so most buckets arrive split over several lines
 * and early firing (engine.earlyFiring) judges buckets before all pods' batches are in; `aligned`
 * (the default, the figure of record before this flag) exports every pod's spans at each 5 s edge.
 *
 * `--clock export [--skew-ms=N]`: each line handed over at the instant it was exported, a tick every
 * second of the sidecar's clock (bench/export-clock.ts), that clock N ms ahead of the applications'
 * (negative: behind); the default `telemetry` replays as `pullback replay` does (now = the newest
 * telemetry read). The sidecar's clock is where early firing looks at buckets whose batches are
 * still in flight (src/engine/cadence.ts earlyEnd), and a skewed one moves when it looks.
 *
 * Prints the count and rate of false rollbacks (and of incidents, also wrong here), the breakdown
 * by interval, telemetry and traffic, min/median/max run time, and a progress line on stderr.
 * Target (issue 10, printed, not asserted): false rollbacks <= 0.5 %.
 *
 * `--history-s N` (default 360): seconds of the old version's history before the deployment; an
 * hour or more (3900) fills the store's retention and its long history, which the engine pools
 * with the baseline window to bound a quiet service's baseline (src/engine/history-pool.ts).
 * `--drift F`: over that history the old version's 5xx ratio and slow-tail share rise linearly
 * from 1/F of their value to it, and stay there through the watch: the pooled hour is better than
 * the service is now, the case in which pooling could cost a false rollback.
 *
 * `--cold-start S`: every pod, old and new, is 6x slower and fails 3 % of its requests over its
 * first S seconds of serving (a JIT warming, cold caches and pools), then behaves as its version
 * does: the library's `cold-start-spike` over the varied services and cadences here. A rolling
 * deployment starts one new pod after another, so the new version shows one such burst per pod
(the old pods started an hour before the recording).
 * Default 0 (none; the recordings keep their bytes).
 *
 * `--intervals LIST` (default 10,15,60): the export intervals (seconds) each service's metrics and
 * gauges are drawn from, uniformly; the default keeps the draws of before the flag. Users export at
 * 20 s, 30 s (a common scrape interval), 45 s as well: e.g. `--intervals 20,30,45`. With `--errors`
 * each drawn interval gets a cadence target (bench/targets.ts: the issue's at 15 and 60 s, a
 * derived one elsewhere).
 *
 * `--histograms exponential`: the metrics-only services export base-2 exponential duration
 * histograms (scale 3) instead of the SDK's default explicit bounds (EXP_SCALE below).
 * `--histograms micrometer`: they export Micrometer's server timer as its OTLP registry does for a
 * Spring Boot application without a configured histogram: `http.server.requests` in milliseconds,
 * one bucket (count and sum: each interval's mean is its only latency), Spring's tags.
 * `--histograms spanmetrics`: they export what the Collector's spanmetrics connector makes of their
 * spans (src/sim/spanmetrics.ts, test/interop/spanmetrics.test.ts): `traces.span.metrics.duration`
 * in ms with the connector's default bounds (one bucket from 10 to 50 ms), its dimensions, a CLIENT
 * point beside each SERVER one, cumulative from the connector's start an hour before the recording
 * (a new pod's first report only primes its streams), on each pod's schedule as the SDK's.
 *
 * `--temporality cumulativetodelta`: the metrics reach pullback through a Collector's
 * cumulativetodelta processor (src/sim/cumulative-to-delta.ts): delta points, a stream's first
 * one whole from its start when it started after the processor, else dropped.
 *
 * `--rps LO-HI`: the traffic range drawn from, log-uniform (default 1-500; the same draws as before
 * the flag). `--rps 0.1-1` asks the question for quiet services: those under `minSamples` per
 * `baselineWindow` (0.17 req/s) reach back for their baseline (src/engine/cadence.ts baselineSpan),
 * as far as the 6 min of history; the judged count says how many got a verdict-worthy reading.
 *
 * `--slower F` (e.g. 2): the new version's every request takes F times as long and nothing else
 * changes: a one-signal regression below latency.critical (3x). A rollback then needs the latency
 * beyond its critical level over a span (held), or beyond its threshold in every report for
 * `singleSignalHold` (a metric's p99 at its bucket's lower bound in both), or the error rate, which
 * is noise here, as a witness: the bench counts the rollbacks and, apart, those with an error-rate witness (leading, at
 * most alpha, or corroborating, src/engine/rules.ts corroborationBound, at most sqrt(alpha) by its
 * evidence alone). The version is worse, so a rollback is not wrong; no target, the counts are printed.
 *
 * `--errors F` (e.g. 0.05): the new version also fails a share F of its requests (fast 5xx, beside
 * its old ratio); with `--slower 2` each run is the scenario library's plain bad deploy (5 % errors,
 * 2x latency) in a service drawn as above: the detection counterpart of the benign runs, on traffic
 * and cadences the library does not make. A worse version (`--slower` > 1 or `--errors` > 0) also
 * prints, per stratum, the decision time from the new version's first export (spans: its first
 * faulty request; metrics: the first new pod's first report, one interval after it started) as
 * median / 90th percentile / worst over the runs rolled back, and with `--errors` the issue-10
 * targets for 60 s and 15 s metrics (3 intervals + lateness; 90 s) over them, and the same decision
 * times by telemetry (spans; metrics per export interval) and traffic band, median / worst with the
 * runs rolled back of the runs in each cell: the README's "what to expect" table. Printed, not asserted.
 */
import { fork } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config/load.js'
import type { PullbackConfig } from '../src/config/schema.js'
import { replayLines } from '../src/cli/commands/replay.js'
import type { Verdict } from '../src/engine/verdict.js'
import type { DeploymentTimeline } from '../src/report/model.js'
import { HISTOGRAM_AGGREGATIONS, isHistogramAggregation, type HistogramAggregation } from '../src/sim/model.js'
import { CumulativeToDelta } from '../src/sim/cumulative-to-delta.js'
import { hash32, Rng } from '../src/sim/random.js'
import { nextSpanExportMs, springOutcome } from '../src/sim/telemetry.js'
import { replayAtExportTimes } from './export-clock.js'
import { quantile } from './stats.js'
import { cadenceLimits } from './targets.js'
import { exitOnHelp } from './args.js'

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
/** `--histograms spanmetrics`: the Collector's spanmetrics connector's default bounds, seconds (it writes them in ms) */
const SPANMETRICS_BOUNDS = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000].map((ms) => ms / 1000)
/**
 * `--histograms exponential`: the base-2 exponential histogram an SDK set to
 * base2_exponential_bucket_histogram exports, at one fixed scale for every point: 3, whose 160
 * buckets of 2^(1/8) = 9 % cover every latency this bench draws (0.2 ms .. ~40 s). Coarser than the
 * SDK, which picks each stream's scale from the range it has seen (4-7 in the library's
 * recordings, `quality.js --histograms exponential`), so the bench's latency is the less precise.
 */
const EXP_SCALE = 3
const EXP_OFFSET = Math.ceil(Math.log2(0.0002) * 2 ** EXP_SCALE) - 1
const EXP_BUCKETS = 160
/** the bucket index (OTLP: (base^index, base^(index+1)]) of `sec`, relative to EXP_OFFSET, clamped */
function expBucket(sec: number): number {
  const i = Math.ceil(Math.log2(sec) * 2 ** EXP_SCALE) - 1 - EXP_OFFSET
  return Math.min(EXP_BUCKETS - 1, Math.max(0, i))
}
const START_MS = Date.UTC(2026, 0, 15, 9, 0, 0)
const PRE_S = 360
/** seconds from a pod's start to its first request (its readiness) */
const READY_S = 5
/** --cold-start: latency factor and 5xx share of a pod over its first seconds of serving (the library's cold-start-spike) */
const COLD_SLOWER = 6
const COLD_ERRORS = 0.03
const WATCH_S = 660
const SPAN_BATCH_S = 5
const MIB = 1024 * 1024
const TARGET_RATE = 0.005
/** export intervals drawn from (`--intervals`); this list keeps the draws, and so the recordings, of before the flag */
const DEFAULT_INTERVALS_S: readonly number[] = [10, 15, 60]

type Telemetry = 'spans' | 'metrics'

export interface Params {
  run: number
  rps: number
  intervalS: number
  telemetry: Telemetry
  pods: number
  routes: { method: string; route: string; weight: number; medianMs: number }[]
  sigma: number
  tailP: number
  errorRate: number
  amplitude: number
  stepS: number
  /** the new version's latency factor (1: benign; see --slower) */
  slower?: number
  /** the new version's extra 5xx ratio (0: benign; see --errors) */
  errors?: number
  /** span export schedule (see --span-export; default aligned) */
  spanExport?: 'aligned' | 'per-pod'
  /** aggregation of the duration histograms (see --histograms; default explicit) */
  histograms?: HistogramAggregation
  /** seconds of the old version's history before the deployment (see --history-s; default PRE_S) */
  historyS?: number
  /** the old version's error ratio and slow-tail share rise F-fold over its history (see --drift; default 1) */
  drift?: number
  /** seconds of each pod's serving that are a cold start (see --cold-start; default 0) */
  coldStartS?: number
}

export function paramsOf(seed: number, run: number, rps: readonly [number, number] = [1, 500], intervals: readonly number[] = DEFAULT_INTERVALS_S): Params {
  const r = new Rng(hash32(`false-rollbacks:${seed}:${run}`))
  const nRoutes = 1 + r.int(4)
  const methods = ['GET', 'GET', 'POST', 'PUT']
  const routes = Array.from({ length: nRoutes }, (_, i) => ({
    method: methods[i % methods.length]!,
    route: `/api/r${i}/{id}`,
    weight: 1 + r.int(8),
    medianMs: Math.exp(Math.log(5) + r.next() * (Math.log(300) - Math.log(5))),
  }))
  return {
    run,
    rps: Math.exp(Math.log(rps[0]) + r.next() * (Math.log(rps[1]) - Math.log(rps[0]))),
    intervalS: intervals[r.int(intervals.length)]!,
    telemetry: r.next() < 0.5 ? 'spans' : 'metrics',
    pods: 2 + r.int(5),
    routes,
    sigma: 0.25 + 0.35 * r.next(),
    tailP: 0.005 + 0.015 * r.next(),
    // a quarter of the services never fail; the others 0.01 % .. 2 %
    errorRate: r.next() < 0.25 ? 0 : Math.exp(Math.log(1e-4) + r.next() * (Math.log(0.02) - Math.log(1e-4))),
    amplitude: 0.3 * r.next(),
    stepS: 10 + r.int(21),
  }
}

interface SimPod {
  name: string
  version: string
  startS: number
  stopS: number
  phase: number
  memBase: number
  /** per attribute set "method route status" -> cumulative [count, sum, buckets...] */
  /** `client`: a spanmetrics CLIENT point (the request's downstream call), not the service's request */
  hist: Map<string, { method: string; route: string; status: number; count: number; sum: number; min: number; max: number; buckets: number[]; client?: true }>
  lastRequests: number
}

const kv = (k: string, v: string) => `{"key":"${k}","value":{"stringValue":"${v}"}}`
/** unix ms (microsecond precision) -> nanoseconds as a decimal string, without BigInt (the hot path) */
function ns(ms: number): string {
  const whole = Math.floor(ms)
  const micros = Math.round((ms - whole) * 1000)
  return micros >= 1000 ? `${whole + 1}000000` : `${whole}${String(micros).padStart(3, '0')}000`
}

function resource(svc: string, p: SimPod): string {
  return `{"attributes":[${[
    kv('service.name', svc),
    kv('service.namespace', 'bench'),
    kv('service.version', p.version),
    kv('service.instance.id', p.name),
    kv('k8s.namespace.name', 'bench'),
    kv('k8s.deployment.name', svc),
    kv('k8s.pod.name', p.name),
    kv('k8s.container.name', svc),
    kv('container.image.name', `registry.example.com/bench/${svc}`),
    kv('container.image.tag', p.version),
  ].join(',')}]}`
}

/**
 * The recording of one benign deployment, line by line, in telemetry-time order. `onExport(atMs)`
 * is called before each line is yielded with the epoch ms it was exported at (the applications' clock).
 */
export function* benignDeployment(p: Params, seed: number, onExport?: (atMs: number) => void): Generator<string> {
  const r = new Rng(hash32(`false-rollbacks:traffic:${seed}:${p.run}`))
  const svc = `svc-${p.run}`
  const preS = p.historyS ?? PRE_S
  const durationS = preS + WATCH_S
  const drift = p.drift ?? 1
  const coldS = p.coldStartS ?? 0
  // --drift: the share at second s of the history, relative to the one at the deployment and after
  const rise = (s: number) => (s >= preS ? 1 : 1 / drift + (1 - 1 / drift) * (s / preS))
  const exponential = p.histograms === 'exponential'
  const micrometer = p.histograms === 'micrometer'
  const spanmetrics = p.histograms === 'spanmetrics'
  const bounds = spanmetrics ? SPANMETRICS_BOUNDS : BOUNDS
  // the connector's cumulative streams start at its own start, an hour before the recording
  const connectorStart = ns(START_MS - 3_600_000)
  const pods: SimPod[] = []
  const mkPod = (version: string, startS: number): SimPod => ({
    name: `${svc}-${hash32(`${svc}:${version}`).toString(36).slice(0, 8)}-${r.podSuffix()}`,
    version,
    startS,
    stopS: Number.POSITIVE_INFINITY,
    phase: startS < 0 ? r.int(p.intervalS) : startS % p.intervalS,
    memBase: 200 + 100 * r.next(),
    hist: new Map(),
    lastRequests: 0,
  })
  for (let i = 0; i < p.pods; i++) pods.push(mkPod('v1', -3600))
  // rolling, maxSurge 1: new pod i starts at preS + i*step, old pod i stops once it is ready (5 s)
  for (let i = 0; i < p.pods; i++) {
    const at = preS + i * p.stepS
    pods.push(mkPod('v2', at))
    pods[i]!.stopS = at + READY_S
  }
  const perPod = p.telemetry === 'spans' && p.spanExport === 'per-pod'
  let totalWeight = 0
  for (const rt of p.routes) totalWeight += rt.weight
  const pending: { pod: SimPod; end: number; json: string }[] = []
  // ids only need to be unique hex of the right length: a counter is much cheaper than 48 random digits
  const idPrefix = (hash32(`ids:${seed}:${p.run}`) >>> 0).toString(16).padStart(8, '0')
  let nextId = 0
  const t = (s: number) => START_MS + s * 1000
  for (let s = 0; s < durationS; s++) {
    const ready = pods.filter((x) => x.startS + READY_S <= s && s < x.stopS)
    const rate = p.rps * (1 + p.amplitude * Math.sin((2 * Math.PI * s) / (2 * durationS)))
    const f = drift === 1 ? 1 : rise(s)
    for (const pod of ready) {
      const n = r.poisson(rate / ready.length)
      pod.lastRequests = n
      for (let k = 0; k < n; k++) {
        let pick = r.next() * totalWeight
        let rt = p.routes[0]!
        for (const x of p.routes) {
          pick -= x.weight
          if (pick < 0) {
            rt = x
            break
          }
        }
        let lat = r.logNormal(rt.medianMs, p.sigma)
        if (r.next() < p.tailP * f) lat *= 1.5 + 10 * r.next() ** 3
        const u = r.next()
        let status = u < p.errorRate * f ? 500 : u < p.errorRate * f + 0.01 ? 404 : 200
        // drawn only for a faulty version: the benign recordings keep their bytes
        if (pod.version === 'v2' && (p.errors ?? 0) > 0 && status !== 500 && r.next() < (p.errors as number)) status = 500
        if (status === 500) lat *= 0.5
        if (pod.version === 'v2') lat *= p.slower ?? 1
        // drawn only with --cold-start: the other recordings keep their bytes
        if (coldS > 0 && s < pod.startS + READY_S + coldS) {
          lat *= COLD_SLOWER
          if (status !== 500 && r.next() < COLD_ERRORS) status = 500
        }
        const startMs = t(s + r.next())
        const endMs = startMs + Math.max(0.2, lat)
        if (p.telemetry === 'spans') {
          const json =
            `{"traceId":"${idPrefix}${(++nextId).toString(16).padStart(24, '0')}","spanId":"${nextId.toString(16).padStart(16, '0')}","name":"${rt.method} ${rt.route}","kind":2,"startTimeUnixNano":"${ns(startMs)}","endTimeUnixNano":"${ns(endMs)}",` +
            `"attributes":[${kv('http.request.method', rt.method)},${kv('http.route', rt.route)},{"key":"http.response.status_code","value":{"intValue":"${status}"}},${kv('url.scheme', 'http')}],` +
            `"status":${status >= 500 ? '{"code":2}' : '{}'},"flags":257}`
          pending.push({ pod, end: endMs, json })
        } else {
          const observe = (key: string, sec: number, client?: true) => {
            let h = pod.hist.get(key)
            if (h === undefined) {
              h = { method: rt.method, route: rt.route, status, count: 0, sum: 0, min: Infinity, max: -Infinity, buckets: new Array<number>(exponential ? EXP_BUCKETS : micrometer ? 1 : bounds.length + 1).fill(0), ...(client ? { client } : {}) }
              pod.hist.set(key, h)
            }
            h.count++
            h.sum += sec
            if (sec < h.min) h.min = sec
            if (sec > h.max) h.max = sec
            if (exponential) h.buckets[expBucket(sec)]!++
            else if (micrometer) h.buckets[0]!++
            else {
              let b = 0
              while (b < bounds.length && sec > bounds[b]!) b++
              h.buckets[b]!++
            }
          }
          const sec = Math.max(0.2, lat) / 1000
          observe(`${rt.method} ${rt.route} ${status}`, sec)
          // the connector aggregates every span kind: each request's downstream call (half its time, failing with it)
          if (spanmetrics) observe(`client ${status >= 500}`, sec / 2, true)
        }
      }
    }
    const now = s + 1
    if (perPod) {
      // each pod's batch timer: due in (s, now], or each second once it stopped (its shutdown drains
      // the in-flight requests), or at the end of the recording
      const due: { at: number; pod: SimPod }[] = []
      for (const pod of pods) {
        if (pod.startS > s) continue
        if (pod.stopS <= now || now === durationS) {
          due.push({ at: now * 1000, pod })
          continue
        }
        // seeded by the pod's name, not drawn from the traffic's generator: the aligned recordings keep their bytes
        const at = nextSpanExportMs(pod.name, pod.startS, SPAN_BATCH_S * 1000, s)
        if (at <= now * 1000) due.push({ at, pod })
      }
      due.sort((a, b) => a.at - b.at)
      for (const d of due) {
        const cutoff = START_MS + d.at
        const spans: string[] = []
        let w = 0
        for (const x of pending) {
          if (x.pod === d.pod && x.end <= cutoff) spans.push(x.json)
          else pending[w++] = x
        }
        pending.length = w
        if (spans.length > 0) {
          onExport?.(cutoff)
          yield `{"resourceSpans":[{"resource":${resource(svc, d.pod)},"scopeSpans":[{"scope":{"name":"bench-sdk","version":"1.0.0"},"spans":[${spans.join(',')}]}]}]}`
        }
      }
    } else if (p.telemetry === 'spans' && (now % SPAN_BATCH_S === 0 || now === durationS)) {
      const cutoff = t(now)
      const by = new Map<SimPod, string[]>()
      const keep: typeof pending = []
      for (const x of pending) {
        if (x.end > cutoff) keep.push(x)
        else {
          let l = by.get(x.pod)
          if (l === undefined) by.set(x.pod, (l = []))
          l.push(x.json)
        }
      }
      pending.length = 0
      pending.push(...keep)
      if (by.size > 0) {
        const rs = [...by].map(([pod, spans]) => `{"resource":${resource(svc, pod)},"scopeSpans":[{"scope":{"name":"bench-sdk","version":"1.0.0"},"spans":[${spans.join(',')}]}]}`)
        onExport?.(cutoff)
        yield `{"resourceSpans":[${rs.join(',')}]}`
      }
    }
    // each pod exports on its own schedule, and once more as it stops (the reader's shutdown flush)
    const due = pods.filter((x) => x.stopS === now || (x.startS < now && now < x.stopS && (((now - x.phase) % p.intervalS) + p.intervalS) % p.intervalS === 0))
    if (due.length > 0) {
      const rms = due.map((pod) => {
        const start = ns(t(Math.max(pod.startS, 0)))
        const at = ns(t(now))
        const warm = Math.min(1, Math.max(0, now - pod.startS) / 120)
        const mem = Math.round((pod.memBase * (0.85 + 0.15 * warm) + 3 * r.normal()) * MIB)
        const cpu = Math.max(0.001, 0.05 + 0.004 * pod.lastRequests + 0.01 * r.normal())
        const gauge = (name: string, unit: string, v: string) => `{"name":"${name}","unit":"${unit}","gauge":{"dataPoints":[{"startTimeUnixNano":"${start}","timeUnixNano":"${at}",${v}}]}}`
        const metrics = [
          gauge('k8s.pod.memory.working_set', 'By', `"asInt":"${mem}"`),
          gauge('k8s.pod.cpu.usage', '{cpu}', `"asDouble":${cpu}`),
          gauge('k8s.container.memory_request', 'By', `"asInt":"${512 * MIB}"`),
          gauge('k8s.container.cpu_request', '{cpu}', `"asDouble":0.5`),
          gauge('k8s.container.ready', '1', `"asInt":"1"`),
        ]
        const scopes = [`{"scope":{"name":"bench-k8s","version":"1.0.0"},"metrics":[${metrics.join(',')}]}`]
        if (pod.hist.size > 0) {
          // Micrometer's OTLP registry (`--histograms micrometer`): Spring's tags, milliseconds, one bucket, no min/max
          // the spanmetrics connector (`--histograms spanmetrics`): its dimensions, ms, its bounds, from its start
          const sm = (h: SimPod['hist'] extends Map<string, infer V> ? V : never) =>
            `{"attributes":[${kv('service.name', svc)},${kv('span.name', h.client ? 'GET downstream' : `${h.method} ${h.route}`)},${kv('span.kind', h.client ? 'SPAN_KIND_CLIENT' : 'SPAN_KIND_SERVER')},${kv('status.code', h.status >= 500 ? 'STATUS_CODE_ERROR' : 'STATUS_CODE_UNSET')}],` +
            `"bucketCounts":[${h.buckets.map((c) => `"${c}"`).join(',')}],"explicitBounds":[${bounds.map((b) => b * 1000).join(',')}],` +
            `"count":"${h.count}","sum":${h.sum * 1000},"min":${h.min * 1000},"max":${h.max * 1000},"startTimeUnixNano":"${connectorStart}","timeUnixNano":"${at}"}`
          const dps = [...pod.hist.values()].map((h) =>
            spanmetrics
              ? sm(h)
              : micrometer
              ? `{"attributes":[${kv('method', h.method)},${kv('uri', h.route)},${kv('status', String(h.status))},${kv('outcome', springOutcome(h.status))},${kv('exception', 'none')}],` +
                `"bucketCounts":["${h.count}"],"explicitBounds":[],"count":"${h.count}","sum":${h.sum * 1000},"startTimeUnixNano":"${start}","timeUnixNano":"${at}"}`
              : `{"attributes":[${kv('http.request.method', h.method)},${kv('http.route', h.route)},{"key":"http.response.status_code","value":{"intValue":"${h.status}"}}],` +
              (exponential
                ? `"positive":{"offset":${EXP_OFFSET},"bucketCounts":[${h.buckets.map((c) => `"${c}"`).join(',')}]},"negative":{"offset":0,"bucketCounts":[]},"scale":${EXP_SCALE},"zeroCount":"0",`
                : `"bucketCounts":[${h.buckets.map((c) => `"${c}"`).join(',')}],"explicitBounds":[${BOUNDS.join(',')}],`) +
              `"count":"${h.count}","sum":${h.sum},"min":${h.min},"max":${h.max},"startTimeUnixNano":"${start}","timeUnixNano":"${at}"}`,
          )
          const kind = exponential ? 'exponentialHistogram' : 'histogram'
          const [name, unit] = micrometer ? ['http.server.requests', 'milliseconds'] : spanmetrics ? ['traces.span.metrics.duration', 'ms'] : ['http.server.request.duration', 's']
          scopes.unshift(`{"scope":{"name":"${spanmetrics ? 'spanmetricsconnector' : 'bench-sdk'}","version":"1.0.0"},"metrics":[{"name":"${name}","unit":"${unit}","${kind}":{"aggregationTemporality":2,"dataPoints":[${dps.join(',')}]}}]}`)
        }
        return `{"resource":${resource(svc, pod)},"scopeMetrics":[${scopes.join(',')}]}`
      })
      onExport?.(t(now))
      yield `{"resourceMetrics":[${rms.join(',')}]}`
    }
  }
}

export interface RunResult {
  run: number
  rps: number
  intervalS: number
  telemetry: Telemetry
  rollbacks: number
  /** rollbacks with the error rate among the witnesses (noise here: errors never change) */
  errorWitness: number
  /** rollbacks with a corroborating witness (evidence short of 1/alpha, src/engine/rules.ts corroborationBound) */
  corroborated: number
  incidents: number
  ms: number
  lines: number
  /** seconds from the new version's first export (see --errors) to its first rollback; absent without one */
  decideS?: number
  /** the new version was watched (a deploy timeline exists) */
  watched: boolean
  /** ... and judged at least once on enough data (a request signal healthy or breaching), not insufficient throughout */
  judged: boolean
}

interface RunOptions {
  slower: number
  errors: number
  spanExport: 'aligned' | 'per-pod'
  rps: readonly [number, number]
  /** replay on the telemetry's clock (`pullback replay`) or the sidecar's (bench/export-clock.ts) */
  clock: 'telemetry' | 'export'
  /** with the export clock: the sidecar's clock minus the applications' */
  skewMs: number
  histograms: HistogramAggregation
  /** cumulativetodelta: the metrics pass a Collector's cumulativetodelta processor (src/sim/cumulative-to-delta.ts) */
  temporality: 'cumulative' | 'cumulativetodelta'
  historyS: number
  drift: number
  coldStartS: number
  intervals: readonly number[]
}

/** the recording as pullback receives it: through a Collector's cumulativetodelta, or as the SDK wrote it */
function* received(lines: Iterable<string>, o: RunOptions): Generator<string> {
  if (o.temporality === 'cumulative') return yield* lines
  const c = new CumulativeToDelta()
  for (const l of lines) yield c.line(l)
}

async function runOne(seed: number, run: number, cfg: PullbackConfig, o: RunOptions): Promise<RunResult> {
  const p = { ...paramsOf(seed, run, o.rps, o.intervals), slower: o.slower, errors: o.errors, spanExport: o.spanExport, histograms: o.histograms, historyS: o.historyS, drift: o.drift, coldStartS: o.coldStartS }
  const began = performance.now()
  const sink = { out: () => undefined, err: () => undefined }
  let res: { verdicts: Verdict[]; timelines: DeploymentTimeline[]; lines: number }
  if (o.clock === 'export') {
    const lines: string[] = []
    const atMs: number[] = []
    for (const l of received(benignDeployment(p, seed, (at) => atMs.push(at)), o)) lines.push(l)
    res = { ...replayAtExportTimes(lines, atMs, cfg, { skewMs: o.skewMs, recordTimeline: true }), lines: lines.length }
  } else {
    const r = await replayLines(received(benignDeployment(p, seed), o), cfg, sink, { actuator: false, recordTimeline: true }, `benign-${run}`)
    res = { verdicts: r.verdicts, timelines: r.report?.timelines ?? [], lines: r.lines }
  }
  const live = res.verdicts.filter((v) => !v.dryRun)
  // a benign deployment that was never judged is no evidence of restraint: count both
  const deploys = res.timelines.filter((t) => t.kind === 'deploy')
  const firstRollback = Math.min(...live.filter((v) => v.kind === 'rollback').map((v) => v.decidedAt))
  const judged = deploys.some((t) => t.ticks.some((k) => k.signals.some((r) => (r.signal === 'error_rate' || r.signal === 'latency') && (r.state === 'healthy' || r.state === 'breach'))))
  return {
    run,
    rps: p.rps,
    intervalS: p.intervalS,
    telemetry: p.telemetry,
    rollbacks: live.filter((v) => v.kind === 'rollback').length,
    errorWitness: live.filter((v) => v.kind === 'rollback' && v.signals.some((x) => x.signal === 'error_rate' && x.state === 'breach')).length,
    corroborated: live.filter((v) => v.kind === 'rollback' && v.signals.some((x) => x.state === 'breach' && x.evidenceBound !== undefined && x.evidenceBound < 1 / cfg.engine.defaults.alpha)).length,
    incidents: live.filter((v) => v.kind === 'incident').length,
    ...(Number.isFinite(firstRollback) ? { decideS: (firstRollback - START_MS) / 1000 - firstExportS(p) } : {}),
    ms: performance.now() - began,
    lines: res.lines,
    watched: deploys.length > 0,
    judged,
  }
}

/**
 * Second of the recording at which the new version's first export can hold a faulty request: spans,
 * when its first pod starts serving (5 s after it starts); metrics, that pod's first report, one
 * interval after it started (its schedule's phase is its start).
 */
function firstExportS(p: Params): number {
  const at = p.historyS ?? PRE_S
  return p.telemetry === 'spans' ? at + READY_S : at + p.intervalS
}

/** median / 90th percentile / worst of `xs` in seconds, '-' when empty */
function timeSpread(xs: number[]): string {
  if (xs.length === 0) return '-'
  return `${median(xs).toFixed(0)} / ${quantile(xs, 0.9).toFixed(0)} / ${Math.max(...xs).toFixed(0)} s`
}

/**
 * Rows: spans (whatever the resource metrics' interval), then metrics-only runs per export
 * interval; columns: traffic bands. A cell is median / worst decision time over the runs rolled
 * back, and how many of its runs were: the "what to expect" table of the README.
 */
export function expectationMatrix(results: RunResult[], band: (rps: number) => string): string[][] {
  // bands ordered by their slowest run, rows by export interval after spans (-1)
  const bandOrder = new Map<string, number>()
  const rowOrder = new Map<string, number>()
  const rowOf = (r: RunResult) => (r.telemetry === 'spans' ? 'spans' : `metrics every ${r.intervalS} s`)
  for (const r of results) {
    const b = band(r.rps)
    bandOrder.set(b, Math.min(bandOrder.get(b) ?? Infinity, r.rps))
    rowOrder.set(rowOf(r), r.telemetry === 'spans' ? -1 : r.intervalS)
  }
  const bands = [...bandOrder.keys()].sort((a, b) => (bandOrder.get(a) as number) - (bandOrder.get(b) as number))
  const rows = [...rowOrder.keys()].sort((a, b) => (rowOrder.get(a) as number) - (rowOrder.get(b) as number))
  const out: string[][] = [['telemetry', ...bands]]
  for (const row of rows) {
    out.push([
      row,
      ...bands.map((b) => {
        const g = results.filter((r) => rowOf(r) === row && band(r.rps) === b)
        const t = g.flatMap((r) => (r.decideS !== undefined ? [r.decideS] : []))
        return g.length === 0 ? '-' : `${t.length > 0 ? `${median(t).toFixed(0)} / ${Math.max(...t).toFixed(0)}` : '-'} (${t.length} of ${g.length})`
      }),
    ])
  }
  return out
}

function fmtRps(x: number): string {
  return x < 1 ? x.toFixed(2) : x.toFixed(1)
}

/** the run's clock, and its histograms when not the default */
function clockOf(o: RunOptions): string {
  const clock = o.clock === 'telemetry' ? 'telemetry clock' : `sidecar clock${o.skewMs !== 0 ? ` ${o.skewMs > 0 ? '+' : ''}${o.skewMs} ms from the applications'` : ''}`
  const shape =
    (o.historyS !== PRE_S || o.drift !== 1 ? `, ${o.historyS} s of history${o.drift !== 1 ? ` over which errors and slow tail rise ${o.drift}x` : ''}` : '') +
    (o.coldStartS > 0 ? `, each pod ${COLD_SLOWER}x slower with ${100 * COLD_ERRORS} % errors over its first ${o.coldStartS} s` : '')
  const delta = o.temporality === 'cumulativetodelta' ? ", metrics through a Collector's cumulativetodelta" : ''
  return (o.histograms !== 'explicit' ? `${clock}, ${o.histograms} duration histograms` : clock) + delta + shape
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y)
  const m = Math.floor(a.length / 2)
  return a.length === 0 ? Number.NaN : a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

async function child(seed: number, runs: number[], configPath: string | undefined, o: RunOptions): Promise<void> {
  const cfg = loadConfig(configPath)
  for (const run of runs) {
    const r = await runOne(seed, run, cfg, o)
    process.stdout.write(`${JSON.stringify(r)}\n`)
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      seed: { type: 'string' },
      workers: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      slower: { type: 'string' },
      errors: { type: 'string' },
      'span-export': { type: 'string' },
      rps: { type: 'string' },
      clock: { type: 'string' },
      'skew-ms': { type: 'string' },
      histograms: { type: 'string' },
      temporality: { type: 'string' },
      'history-s': { type: 'string' },
      drift: { type: 'string' },
      'cold-start': { type: 'string' },
      intervals: { type: 'string' },
      child: { type: 'string' },
    },
  })
  const seed = Number(values.seed ?? 1)
  const slower = Number(values.slower ?? 1)
  if (!(slower >= 1) || !Number.isFinite(slower)) throw new Error(`--slower expects a factor >= 1, got ${values.slower}`)
  const errors = Number(values.errors ?? 0)
  if (!(errors >= 0 && errors < 1)) throw new Error(`--errors expects a 5xx share from 0 to under 1, got ${values.errors}`)
  const worse = slower !== 1 || errors > 0
  const spanExport = values['span-export'] ?? 'aligned'
  if (spanExport !== 'aligned' && spanExport !== 'per-pod') throw new Error(`--span-export expects aligned or per-pod, got ${spanExport}`)
  const rpsArg = values.rps ?? '1-500'
  const rps = rpsArg.split('-').map(Number)
  if (rps.length !== 2 || !(rps[0]! > 0) || !(rps[1]! >= rps[0]!) || !Number.isFinite(rps[1])) throw new Error(`--rps expects LO-HI req/s with 0 < LO <= HI, got ${rpsArg}`)
  const clock = values.clock ?? 'telemetry'
  if (clock !== 'telemetry' && clock !== 'export') throw new Error(`--clock expects telemetry or export, got ${clock}`)
  const skewMs = Number(values['skew-ms'] ?? 0)
  if (!Number.isFinite(skewMs)) throw new Error(`--skew-ms expects milliseconds, got ${values['skew-ms']}`)
  if (skewMs !== 0 && clock !== 'export') throw new Error('--skew-ms needs --clock export (the telemetry clock has no sidecar clock to skew)')
  const histograms = values.histograms ?? 'explicit'
  if (!isHistogramAggregation(histograms)) throw new Error(`--histograms expects ${HISTOGRAM_AGGREGATIONS.join(', ')}, got ${histograms}`)
  const temporality = values.temporality ?? 'cumulative'
  if (temporality !== 'cumulative' && temporality !== 'cumulativetodelta') throw new Error(`--temporality expects cumulative or cumulativetodelta, got ${temporality}`)
  const historyS = Number(values['history-s'] ?? PRE_S)
  // bounded: a run simulates every second of it
  if (!Number.isInteger(historyS) || historyS < 60 || historyS > 7200) throw new Error(`--history-s expects whole seconds from 60 to 7200, got ${values['history-s']}`)
  const drift = Number(values.drift ?? 1)
  if (!(drift >= 1) || !Number.isFinite(drift)) throw new Error(`--drift expects a factor >= 1, got ${values.drift}`)
  const coldStartS = Number(values['cold-start'] ?? 0)
  if (!(coldStartS >= 0) || !Number.isFinite(coldStartS)) throw new Error(`--cold-start expects seconds >= 0, got ${values['cold-start']}`)
  const intervalsArg = values.intervals ?? DEFAULT_INTERVALS_S.join(',')
  const intervals = intervalsArg.split(',').map(Number)
  if (intervals.length === 0 || intervals.some((x) => !Number.isInteger(x) || x < 1 || x > 300)) throw new Error(`--intervals expects whole seconds from 1 to 300, comma separated, got ${intervalsArg}`)
  const opts: RunOptions = { slower, errors, spanExport, rps: [rps[0]!, rps[1]!], clock, skewMs, histograms, temporality, historyS, drift, coldStartS, intervals }
  if (values.child !== undefined) {
    await child(seed, values.child.split(',').map(Number), values.config, opts)
    return 0
  }
  const runs = Number(values.runs ?? 1000)
  const workers = Math.max(1, Math.min(runs, Number(values.workers ?? Math.min(2, availableParallelism()))))
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) throw new Error('--runs and --seed expect integers')
  const began = performance.now()
  const results: RunResult[] = []
  const self = fileURLToPath(import.meta.url)
  const progressEvery = Math.max(1, Math.round(runs / 40))
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const mine = Array.from({ length: runs }, (_, i) => i).filter((i) => i % workers === w)
      const args = ['--seed', String(seed), '--slower', String(slower), '--errors', String(errors), '--span-export', spanExport, '--rps', rpsArg, '--clock', clock, `--skew-ms=${skewMs}`, '--histograms', histograms, '--temporality', temporality, '--history-s', String(historyS), '--drift', String(drift), '--cold-start', String(coldStartS), '--intervals', intervalsArg, '--child', mine.join(','), ...(values.config !== undefined ? ['--config', values.config] : [])]
      const cp = fork(self, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
      const exited = new Promise<number>((resolve) => cp.on('exit', (code) => resolve(code ?? 1)))
      for await (const line of createInterface({ input: cp.stdout! })) {
        const r = JSON.parse(line) as RunResult
        results.push(r)
        if (r.rollbacks > 0) process.stderr.write(`false-rollbacks: run #${r.run} rolled back (${r.telemetry}, ${r.intervalS} s, ${fmtRps(r.rps)} req/s)\n`)
        if (results.length % progressEvery === 0 || results.length === runs) {
          const fr = results.filter((x) => x.rollbacks > 0).length
          process.stderr.write(`false-rollbacks: ${results.length}/${runs} runs, ${fr} ${worse ? '' : 'false '}rollbacks, ${((performance.now() - began) / 1000).toFixed(0)} s\n`)
        }
      }
      const code = await exited
      if (code !== 0) throw new Error(`worker ${w} exited with ${code}`)
    }),
  )
  results.sort((a, b) => a.run - b.run)
  const rolledBack = results.filter((r) => r.rollbacks > 0)
  const incidents = results.filter((r) => r.incidents > 0)
  const rate = rolledBack.length / results.length
  const ms = results.map((r) => r.ms)
  const strata: string[][] = [['stratum', 'runs', worse ? 'rollbacks' : 'false rollbacks', 'incidents', 'judged', ...(worse ? ['from 1st export: median / p90 / worst'] : [])]]
  const rpsBand = (x: number) => (x < 1 ? 'under 1 req/s' : x < 5 ? '1-5 req/s' : x < 50 ? '5-50 req/s' : '50-500 req/s')
  const groups = new Map<string, RunResult[]>()
  for (const r of results) {
    for (const k of [`${r.telemetry}, ${r.intervalS} s`, rpsBand(r.rps)]) {
      let g = groups.get(k)
      if (g === undefined) groups.set(k, (g = []))
      g.push(r)
    }
  }
  for (const [k, g] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    const times = g.flatMap((r) => (r.decideS !== undefined ? [r.decideS] : []))
    strata.push([k, String(g.length), String(g.filter((r) => r.rollbacks > 0).length), String(g.filter((r) => r.incidents > 0).length), String(g.filter((r) => r.judged).length), ...(worse ? [timeSpread(times)] : [])])
  }
  // what a user should expect: decision time by how the service exports and how busy it is
  const matrix = worse ? expectationMatrix(results, rpsBand) : []
  // issue 10's cadence targets over the metrics-only runs, when the version is a step regression
  // with errors (a slower version alone may be within the contract: --slower 1.3)
  const cadence: string[][] = []
  // the runs that missed a cadence target (not rolled back, or later than its limit): where to look next
  const late: { intervalS: number; limitS: number; runs: RunResult[] }[] = []
  if (errors > 0) {
    const latenessS = loadConfig(values.config).engine.lateness / 1000
    for (const { intervalS: interval, limitS: limit, derived } of cadenceLimits(latenessS, intervals)) {
      const g = results.filter((r) => r.telemetry === 'metrics' && r.intervalS === interval)
      if (g.length === 0) continue
      const got = g.flatMap((r) => (r.decideS !== undefined ? [r.decideS] : []))
      const within = got.filter((x) => x <= limit).length
      cadence.push([`${interval} s metrics: rolled back within ${limit} s of the first export${derived ? ' (derived target)' : ''}`, `${within} of ${g.length} (${got.length} rolled back at all)`])
      late.push({ intervalS: interval, limitS: limit, runs: g.filter((r) => r.decideS === undefined || r.decideS > limit) })
    }
  }
  if (values.json === true) {
    const times = results.flatMap((r) => (r.decideS !== undefined ? [r.decideS] : []))
    const decide = worse && times.length > 0 ? { decideS: { median: median(times), p90: quantile(times, 0.9), max: Math.max(...times) }, cadence, byTelemetryAndTraffic: matrix } : {}
    process.stdout.write(`${JSON.stringify({ seed, slower, errors, spanExport, clock, skewMs, histograms, temporality, coldStartS, ...(intervalsArg !== DEFAULT_INTERVALS_S.join(',') ? { intervals } : {}), rps: opts.rps, runs: results.length, falseRollbacks: rolledBack.length, rate, incidents: incidents.length, runMs: { min: Math.min(...ms), median: median(ms), max: Math.max(...ms) }, rolledBack: rolledBack.map((r) => r.run), incidentRuns: incidents.map((r) => r.run), ...decide, ...(late.length > 0 ? { lateRuns: late.map((l) => ({ intervalS: l.intervalS, limitS: l.limitS, runs: l.runs.map((r) => ({ run: r.run, rps: r.rps, decideS: r.decideS ?? null })) })) } : {}) })}\n`)
  } else {
    const out = [
      !worse
        ? `false rollbacks over ${results.length} simulated benign deployments (${rpsArg} req/s, seed ${seed}, span exports ${spanExport}, ${clockOf(opts)}, ${workers} workers, ${((performance.now() - began) / 1000).toFixed(1)} s)`
        : errors > 0
          ? `rollbacks over ${results.length} simulated deployments whose new version fails ${(100 * errors).toFixed(1)} % more of its requests${slower !== 1 ? ` and is ${slower}x slower` : ''} (${rpsArg} req/s, seed ${seed}, span exports ${spanExport}, ${clockOf(opts)}, ${workers} workers, ${((performance.now() - began) / 1000).toFixed(1)} s)`
          : `rollbacks over ${results.length} simulated deployments whose new version is ${slower}x slower and otherwise unchanged: latency alone at its critical level or held for singleSignalHold, or beside the error rate, here noise, as a witness (seed ${seed}, ${clockOf(opts)}, ${workers} workers, ${((performance.now() - began) / 1000).toFixed(1)} s)`,
      '',
      table([
        ['', 'value', 'target'],
        !worse
          ? ['false rollbacks', `${rolledBack.length} (${(100 * rate).toFixed(2)} %)`, `<= ${(100 * TARGET_RATE).toFixed(1)} %: ${rate <= TARGET_RATE ? 'met' : 'NOT met'}`]
          : errors > 0
            ? ['rollbacks', `${rolledBack.length} (${(100 * rate).toFixed(2)} %)`, 'every run is a bad deploy: each one not rolled back is a miss']
            : ['rollbacks', `${rolledBack.length} (${(100 * rate).toFixed(2)} %)`, 'a worse version: a rollback is not wrong, only its witnesses can be'],
        ...(!worse || errors > 0
          ? []
          : [
              ['... with the error rate (noise) as a witness', `${results.filter((r) => r.errorWitness > 0).length}`, 'at most alpha as a leader, sqrt(alpha) as a corroborating witness'],
              ['... with a corroborating witness', `${results.filter((r) => r.corroborated > 0).length}`, ''],
            ]),
        ['incidents (also wrong here)', `${incidents.length} (${((100 * incidents.length) / results.length).toFixed(2)} %)`, ''],
        ['deployments watched / judged', `${results.filter((r) => r.watched).length} / ${results.filter((r) => r.judged).length} of ${results.length}`, 'judged: a request signal healthy or breaching at least once'],
        ['run time min / median / max', `${(Math.min(...ms) / 1000).toFixed(2)} / ${(median(ms) / 1000).toFixed(2)} / ${(Math.max(...ms) / 1000).toFixed(2)} s`, ''],
      ]),
      '',
      table(strata),
      ...(matrix.length > 0 ? ['', 'decision time from the first export (spans: the first faulty request) by telemetry and traffic: median / worst s (runs rolled back of runs)', '', table(matrix)] : []),
      ...(cadence.length > 0 ? ['', table([['target (issue 10), metrics-only runs', 'value'], ...cadence])] : []),
    ]
    if (rolledBack.length > 0) {
      out.push('', `rolled back: ${rolledBack.slice(0, 30).map((r) => `#${r.run} (${r.telemetry} ${r.intervalS} s, ${fmtRps(r.rps)} req/s)`).join(', ')}${rolledBack.length > 30 ? ', ...' : ''}`)
    }
    for (const l of late) {
      if (l.runs.length === 0) continue
      const shown = l.runs.slice(0, 30).map((r) => `#${r.run} (${fmtRps(r.rps)} req/s, ${r.decideS === undefined ? 'no rollback' : `${r.decideS.toFixed(0)} s`})`)
      out.push('', `${l.intervalS} s metrics over ${l.limitS} s: ${shown.join(', ')}${l.runs.length > 30 ? ', ...' : ''}`)
    }
    if (incidents.length > 0) {
      out.push('', `incidents: ${incidents.slice(0, 30).map((r) => `#${r.run} (${r.telemetry} ${r.intervalS} s, ${fmtRps(r.rps)} req/s)`).join(', ')}${incidents.length > 30 ? ', ...' : ''}`)
    }
    process.stdout.write(`${out.join('\n')}\n`)
  }
  return worse || rate <= TARGET_RATE ? 0 : 1
}

// a module too (generator and parameters for tests and profiling): run only when invoked
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  exitOnHelp(import.meta.url)
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`false-rollbacks: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
