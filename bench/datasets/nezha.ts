/**
 * Converter: the Nezha dataset (IntelligentDDS/Nezha, FSE'23; MIT licence) -> OTLP/JSON lines as
 * the Collector's file exporter writes them, one file per case, for `pullback replay`.
 *
 *   npm run build && node dist/bench/datasets/nezha.js --data bench/datasets/data/nezha --out bench/datasets/data/nezha-otlp
 *
 * What the dataset holds (per day, Online Boutique 2022-08-22/23 and Train Ticket 2023-01-29/30):
 * `rca_data/<day>/<day>-fault_list.json` (injection time, pod, type: cpu_contention, cpu_consumed,
 * network_delay, and the code-level `return` and `exception`), and `rca_data/<day>/metric/
 * <pod>_metric.csv`: one row per pod every 60 s over the whole day (CPU, memory, server latency
 * P90/P95/P99, workload in ops/s; the per-pod success rate column is always 0, i.e. not measured),
 * plus `front_service.csv`: the entry service's success rate and latency P50..P99.
 *
 * What is written, per case (a JSON manifest `cases.json` lists them):
 * - one service (the injected pod's), metrics only, every 60 s: `http.server.request.duration`
 *   (cumulative, the SDK's default bucket bounds) and the k8s memory/CPU/readiness gauges;
 * - a `service.version` change (v1 -> v2, a new pod name, a fresh cumulative stream) at the fault
 *   injection time; code-level faults are labelled `rollback`, the others are reported per type;
 * - quiet cases: the same change in fault-free hours (after the day's last fault), labelled `none`.
 *
 * Approximations, stated because they shape the figures: the dataset has quantiles, not
 * histograms, so each minute's requests (workload x 60) are spread over the buckets of a
 * log-normal fitted through the minute's P50 (entry service) or P90 and its P99; errors exist only
 * for the entry service (its service-level success rate); nothing else in the metrics says a
 * request failed (the code-level faults show as errors at the entry service: its success rate
 * falls to 20-95 % for 3-4 min, whichever service was injected). A case covers 6 min before the
 * injection up to the next injection (at most 10 min after it). Faults come every ~8 min and last
 * ~4-6 min, so those 6 min usually hold the tail of the previous fault: `--splice` replaces them
 * with the same service's first 6 fault-free minutes of the day (after the last injection),
 * shifted in time, for a clean baseline (the manifest says which: `baseline`).
 *
 * Held out: a deterministic 30 % of the cases by FNV-1a hash of the case id (`split: "held-out"`);
 * never look at their figures while tuning. See bench/datasets/README.md.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { hash32 } from '../../src/sim/random.js'

const BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const MIB = 1024 * 1024
const PRE_MS = 6 * 60_000
const MAX_POST_MS = 10 * 60_000
/** quiet cases start this long after the day's last injection, and one begins every QUIET_STEP */
const QUIET_AFTER_MS = 20 * 60_000
const QUIET_STEP_MS = 30 * 60_000
const QUIET_LEN_MS = PRE_MS + MAX_POST_MS
const HELD_OUT_PERCENT = 30
const CODE_LEVEL = new Set(['return', 'exception'])
const Z99 = 2.3263
const Z90 = 1.2816

export type CaseKind = 'fault' | 'quiet'

export interface CaseInfo {
  id: string
  file: string
  split: 'tuning' | 'held-out'
  kind: CaseKind
  system: 'online-boutique' | 'train-ticket'
  day: string
  service: string
  /** fault type, or 'quiet' */
  type: string
  /** 'rollback' for code-level faults, 'none' for quiet cases, undefined where the dataset gives no deploy-level label */
  expected: 'rollback' | 'none' | undefined
  /** the version change (= fault injection), unix ms */
  deployMs: number
  fromMs: number
  untilMs: number
  /** where the pre-deploy history comes from: the real timeline, or fault-free minutes spliced in (--splice) */
  baseline: 'contiguous' | 'spliced'
}

interface Row {
  ms: number
  cpuM: number
  cpuRate: number
  memMi: number
  memRate: number
  p50: number | undefined
  p90: number
  p99: number
  ops: number
  /** entry service only: failed fraction 0..1 */
  errorRatio: number | undefined
}

/** "2022-08-22 03:51:19.607158889 +0000 UTC m=+0.11" -> unix ms (the TimeStamp column is offset on some days) */
function parseTime(s: string): number {
  return Date.parse(`${s.slice(0, 10)}T${s.slice(11, 23)}Z`)
}

function readCsv(path: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '')
  const cols = head!.split(',')
  return lines.map((l) => {
    const v = l.split(',')
    const o: Record<string, string> = {}
    cols.forEach((c, i) => (o[c] = v[i] ?? ''))
    return o
  })
}

const num = (s: string | undefined) => {
  const x = Number(s)
  return Number.isFinite(x) ? x : 0
}

/** `ts-auth-service-7f8d7d756d-k7b9j` -> `ts-auth-service` */
export function serviceOfPod(pod: string): string {
  return pod.split('-').slice(0, -2).join('-')
}

function isEntry(service: string): boolean {
  return service === 'frontend' || service === 'ts-ui-dashboard'
}

function podRows(path: string, front: Map<number, { ok: number; p50: number; p99: number }>, entry: boolean): Row[] {
  const frontTimes = [...front.keys()].sort((a, b) => a - b)
  const nearest = (ms: number) => {
    let best: number | undefined
    for (const t of frontTimes) if (best === undefined || Math.abs(t - ms) < Math.abs(best - ms)) best = t
    return best !== undefined && Math.abs(best - ms) < 30_000 ? front.get(best) : undefined
  }
  return readCsv(path)
    .map((r) => {
      const ms = parseTime(r.Time ?? '')
      const f = entry ? nearest(ms) : undefined
      return {
        ms,
        cpuM: num(r['CpuUsage(m)']),
        cpuRate: num(r['CpuUsageRate(%)']),
        memMi: num(r['MemoryUsage(Mi)']),
        memRate: num(r['MemoryUsageRate(%)']),
        p50: f?.p50,
        p90: num(r['PodServerLatencyP90(s)']),
        p99: f?.p99 ?? num(r['PodServerLatencyP99(s)']),
        ops: num(r['PodWorkload(Ops)']),
        errorRatio: f === undefined ? undefined : Math.min(1, Math.max(0, 1 - f.ok / 100)),
      }
    })
    .filter((r) => Number.isFinite(r.ms))
    .sort((a, b) => a.ms - b.ms)
}

/** standard normal CDF (Abramowitz-Stegun 7.1.26 on erf) */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * x)
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x)
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf)
}

/** n requests spread over the default buckets by a log-normal through the row's quantiles (largest remainder) */
function spread(n: number, row: Row): { buckets: number[]; sum: number } {
  const buckets = new Array<number>(BOUNDS.length + 1).fill(0)
  if (n <= 0) return { buckets, sum: 0 }
  const p99 = Math.max(row.p99, 1e-4)
  let mu: number
  let sigma: number
  if (row.p50 !== undefined && row.p50 > 0 && p99 > row.p50) {
    mu = Math.log(row.p50)
    sigma = Math.log(p99 / row.p50) / Z99
  } else {
    const p90 = Math.max(Math.min(row.p90, p99 * 0.95), 1e-4)
    sigma = Math.max(0.05, Math.log(p99 / p90) / (Z99 - Z90))
    mu = Math.log(p90) - Z90 * sigma
  }
  const cdf = BOUNDS.map((b) => phi((Math.log(b) - mu) / sigma))
  const exact = buckets.map((_, i) => n * ((i < BOUNDS.length ? cdf[i]! : 1) - (i > 0 ? cdf[i - 1]! : 0)))
  let given = 0
  for (let i = 0; i < exact.length; i++) given += buckets[i] = Math.floor(exact[i]!)
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0])
  for (let k = 0; given < n; k++, given++) buckets[order[k % order.length]![1]]!++
  return { buckets, sum: n * Math.exp(mu + (sigma * sigma) / 2) }
}

const kv = (k: string, v: string) => `{"key":"${k}","value":{"stringValue":"${v}"}}`
const nsOf = (ms: number) => `${BigInt(Math.round(ms)) * 1_000_000n}`

interface Stream {
  pod: string
  version: string
  startMs: number
  ok: { count: number; sum: number; buckets: number[] }
  err: { count: number; sum: number; buckets: number[] }
}

function addTo(h: Stream['ok'], s: { buckets: number[]; sum: number }): void {
  for (let i = 0; i < s.buckets.length; i++) h.buckets[i]! += s.buckets[i]!
  h.count += s.buckets.reduce((a, b) => a + b, 0)
  h.sum += s.sum
}

function line(ns: string, service: string, st: Stream, row: Row): string {
  const res = `{"attributes":[${[
    kv('service.name', service),
    kv('service.namespace', ns),
    kv('service.version', st.version),
    kv('service.instance.id', st.pod),
    kv('k8s.namespace.name', ns),
    kv('k8s.deployment.name', service),
    kv('k8s.pod.name', st.pod),
    kv('k8s.container.name', service),
  ].join(',')}]}`
  const start = nsOf(st.startMs)
  const at = nsOf(row.ms)
  const dp = (status: number, h: Stream['ok']) =>
    `{"attributes":[${kv('http.request.method', 'GET')},{"key":"http.response.status_code","value":{"intValue":"${status}"}}],"bucketCounts":[${h.buckets.map((c) => `"${c}"`).join(',')}],` +
    `"explicitBounds":[${BOUNDS.join(',')}],"count":"${h.count}","sum":${h.sum},"startTimeUnixNano":"${start}","timeUnixNano":"${at}"}`
  const points = [dp(200, st.ok), ...(st.err.count > 0 ? [dp(500, st.err)] : [])]
  const gauge = (name: string, unit: string, v: string) => `{"name":"${name}","unit":"${unit}","gauge":{"dataPoints":[{"startTimeUnixNano":"${start}","timeUnixNano":"${at}",${v}}]}}`
  const gauges = [gauge('k8s.pod.memory.working_set', 'By', `"asInt":"${Math.round(row.memMi * MIB)}"`), gauge('k8s.pod.cpu.usage', '{cpu}', `"asDouble":${row.cpuM / 1000}`)]
  // the dataset gives usage and usage/limit; the limit stands in for the request
  if (row.memRate > 0) gauges.push(gauge('k8s.container.memory_request', 'By', `"asInt":"${Math.round((row.memMi / (row.memRate / 100)) * MIB)}"`))
  if (row.cpuRate > 0) gauges.push(gauge('k8s.container.cpu_request', '{cpu}', `"asDouble":${row.cpuM / 1000 / (row.cpuRate / 100)}`))
  gauges.push(gauge('k8s.container.ready', '1', `"asInt":"1"`))
  return (
    `{"resourceMetrics":[{"resource":${res},"scopeMetrics":[` +
    `{"scope":{"name":"nezha-converter","version":"1"},"metrics":[{"name":"http.server.request.duration","unit":"s","histogram":{"aggregationTemporality":2,"dataPoints":[${points.join(',')}]}}]},` +
    `{"scope":{"name":"nezha-converter/k8s","version":"1"},"metrics":[${gauges.join(',')}]}]}]}`
  )
}

/** The lines of one case: the service's rows in [fromMs, untilMs), v1 before deployMs, v2 from it. */
export function caseLines(ns: string, service: string, pod: string, rows: readonly Row[], c: { fromMs: number; deployMs: number; untilMs: number }): string[] {
  const fresh = (version: string, podName: string, startMs: number): Stream => ({
    pod: podName,
    version,
    startMs,
    ok: { count: 0, sum: 0, buckets: new Array<number>(BOUNDS.length + 1).fill(0) },
    err: { count: 0, sum: 0, buckets: new Array<number>(BOUNDS.length + 1).fill(0) },
  })
  const old = fresh('v1', pod, c.fromMs - 60_000)
  const neu = fresh('v2', `${service}-${hash32(`${pod}:v2`).toString(36).slice(0, 9)}-${hash32(pod).toString(36).slice(0, 5)}`, c.deployMs)
  const out: string[] = []
  for (const row of rows) {
    if (row.ms < c.fromMs || row.ms >= c.untilMs) continue
    const st = row.ms < c.deployMs ? old : neu
    const n = Math.round(row.ops * 60)
    const e = row.errorRatio === undefined ? 0 : Math.round(n * row.errorRatio)
    addTo(st.ok, spread(n - e, row))
    addTo(st.err, spread(e, row))
    out.push(line(ns, service, st, row))
  }
  return out
}

export function splitOf(id: string): 'tuning' | 'held-out' {
  return hash32(`split:${id}`) % 100 < HELD_OUT_PERCENT ? 'held-out' : 'tuning'
}

interface Fault {
  inject_timestamp: string
  inject_pod: string
  inject_type: string
}

function main(): void {
  const { values } = parseArgs({ options: { data: { type: 'string' }, out: { type: 'string' }, splice: { type: 'boolean' } } })
  const splice = values.splice === true
  const data = values.data ?? 'bench/datasets/data/nezha'
  const outDir = values.out ?? 'bench/datasets/data/nezha-otlp'
  const root = join(data, 'rca_data')
  if (!existsSync(root)) throw new Error(`${root} not found: fetch the dataset first (bench/datasets/README.md)`)
  const cases: CaseInfo[] = []
  const skipped: string[] = []
  for (const day of readdirSync(root).filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort()) {
    const system = day.startsWith('2022') ? 'online-boutique' : 'train-ticket'
    const ns = system
    const faults = Object.values(JSON.parse(readFileSync(join(root, day, `${day}-fault_list.json`), 'utf8')) as Record<string, Fault[]>)
      .flat()
      .map((f) => ({ ms: Number(f.inject_timestamp) * 1000, pod: f.inject_pod, type: f.inject_type }))
      .sort((a, b) => a.ms - b.ms)
    const frontRows = readCsv(join(root, day, 'metric', 'front_service.csv'))
    const front = new Map(frontRows.map((r) => [parseTime(r.Time ?? ''), { ok: num(r['SuccessRate(%)']), p50: num(r['LatencyP50(s)']), p99: num(r['LatencyP99(s)']) }]))
    const podFiles = readdirSync(join(root, day, 'metric')).filter((f) => f.endsWith('_metric.csv'))
    const byService = new Map<string, { pod: string; rows: Row[] }>()
    for (const f of podFiles) {
      const pod = f.replace(/_metric\.csv$/, '')
      const service = serviceOfPod(pod)
      byService.set(service, { pod, rows: podRows(join(root, day, 'metric', f), front, isEntry(service)) })
    }
    const write = (info: Omit<CaseInfo, 'file' | 'split'>, lines: string[]) => {
      const split = splitOf(info.id)
      const file = join(split, `${info.id}.jsonl`)
      mkdirSync(join(outDir, split), { recursive: true })
      writeFileSync(join(outDir, file), `${lines.join('\n')}\n`)
      cases.push({ ...info, file, split })
    }
    for (const [i, f] of faults.entries()) {
      const service = serviceOfPod(f.pod)
      const svc = byService.get(service)
      const id = `${day}-${new Date(f.ms).toISOString().slice(11, 19).replace(/:/g, '')}-${f.type}-${service}`
      const next = faults.slice(i + 1).find((x) => x.ms > f.ms)?.ms ?? Number.POSITIVE_INFINITY
      const c = { fromMs: f.ms - PRE_MS, deployMs: f.ms, untilMs: Math.min(next, f.ms + MAX_POST_MS) }
      if (svc === undefined || svc.rows.length === 0 || svc.rows[0]!.ms > c.fromMs || svc.rows.at(-1)!.ms < c.untilMs - 60_000) {
        skipped.push(`${id}: no metrics cover ${new Date(c.fromMs).toISOString()}..${new Date(c.untilMs).toISOString()}`)
        continue
      }
      const expected = CODE_LEVEL.has(f.type) ? ('rollback' as const) : undefined
      let rows: readonly Row[] = svc.rows
      const firstQuiet = svc.rows.findIndex((r) => r.ms >= (faults.at(-1)?.ms ?? 0) + QUIET_AFTER_MS)
      if (splice && firstQuiet >= 0) {
        // the first fault-free minutes of the day, moved to end where the injection begins
        const shift = c.fromMs - svc.rows[firstQuiet]!.ms
        const pre = svc.rows.slice(firstQuiet).filter((r) => r.ms + shift < c.deployMs).map((r) => ({ ...r, ms: r.ms + shift }))
        rows = [...pre, ...svc.rows.filter((r) => r.ms >= c.deployMs)]
      }
      write({ id, kind: 'fault', system, day, service, type: f.type, expected, baseline: splice && firstQuiet >= 0 ? 'spliced' : 'contiguous', ...c }, caseLines(ns, service, svc.pod, rows, c))
    }
    // quiet cases: fault-free hours after the day's last injection, one service per window in turn
    const busy = [...byService.entries()].filter(([, s]) => s.rows.some((r) => r.ops > 0)).map(([name]) => name).sort()
    const lastFault = faults.at(-1)?.ms ?? 0
    const dayEnd = Math.max(...[...byService.values()].map((s) => s.rows.at(-1)?.ms ?? 0))
    let k = 0
    for (let from = lastFault + QUIET_AFTER_MS; from + QUIET_LEN_MS <= dayEnd; from += QUIET_STEP_MS, k++) {
      const service = busy[k % busy.length]
      if (service === undefined) break
      const svc = byService.get(service)!
      const c = { fromMs: from, deployMs: from + PRE_MS, untilMs: from + QUIET_LEN_MS }
      const id = `${day}-quiet-${new Date(c.deployMs).toISOString().slice(11, 16).replace(':', '')}-${service}`
      write({ id, kind: 'quiet', system, day, service, type: 'quiet', expected: 'none', baseline: 'contiguous', ...c }, caseLines(ns, service, svc.pod, svc.rows, c))
    }
  }
  writeFileSync(join(outDir, 'cases.json'), `${JSON.stringify(cases, null, 1)}\n`)
  const count = (split: string) => cases.filter((c) => c.split === split).length
  process.stdout.write(`nezha: ${cases.length} cases (${count('tuning')} tuning, ${count('held-out')} held out) in ${outDir}; ${skipped.length} faults without metric coverage skipped\n`)
  for (const s of skipped) process.stderr.write(`nezha: skipped ${s}\n`)
}

// a module too (the scorer and tests import its types and helpers): convert only when run
if (process.argv[1] === fileURLToPath(import.meta.url)) main()
