/**
 * The Prometheus HTTP API as a HistorySource: `/api/v1/query_range` with configurable PromQL
 * templates, one service at a time, each range query cut into chunks of at most
 * MAX_POINTS_PER_QUERY steps (Prometheus refuses a range query of more than 11,000 points per series).
 *
 * Templates are plain PromQL in which `$selector` (the service's request-metric selector, by default
 * `job="ns/name"`, the OpenTelemetry -> Prometheus job of service.namespace/service.name),
 * `$namespace`, `$service` and `$step` (the step as a PromQL duration, e.g. `60s`) are replaced.
 * Label values are escaped for a PromQL string.
 *
 * Failures (HTTP errors, Prometheus `status: error`, a malformed or oversized answer) are classified
 * once here into a `failed` outcome naming the query; nothing is thrown to the caller's loop.
 */
import { errorMessage } from '../common/errors.js'
import { emptyRequests, dataSpan, type HistoryOutcome, type HistoryRange, type HistorySource, type PodResourceSeries, type Resource, type ServiceRef } from './history.js'

/** Prometheus' own limit is 11,000 points per series in a range query; stay under it. */
export const MAX_POINTS_PER_QUERY = 10_000
/** an answer larger than this is refused (one service's chunk should be a few MB at most) */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/** pods (x resource) kept per service; more are counted in `podsDropped` */
export const MAX_PODS_PER_SERVICE = 512
/** latency window queries of one service in flight at once (latencyWindows) */
export const LATENCY_CONCURRENCY = 4
/** a pod's request is read from the range's last hour first (podSeries) */
export const REQUEST_TAIL_MS = 3_600_000
/** services listed at most; more are counted in `servicesDropped` */
export const MAX_SERVICES = 100_000

export interface PromTemplates {
  /** the metric whose `serviceLabel` values name the services (discovery) */
  servicesMatch: string
  /** label holding "ns/name" (OpenTelemetry -> Prometheus: job) */
  serviceLabel: string
  /** the service's selector inside the request metrics' braces */
  selector: string
  requests: string
  errors: string
  /** by (le): cumulative bucket counts per step */
  latency: string
  /** by (pod, container) */
  memory: string
  /** by (pod) */
  memoryRequest: string
  cpu: string
  cpuRequest: string
  /** audit requests: every container's usage by (namespace, pod, container) */
  auditMemory: string
  auditCpu: string
  /** by (namespace, pod, container, resource) */
  auditRequests: string
}

export const DEFAULT_TEMPLATES: PromTemplates = {
  servicesMatch: 'http_server_request_duration_seconds_count',
  serviceLabel: 'job',
  selector: 'job="$namespace/$service"',
  requests: 'sum(increase(http_server_request_duration_seconds_count{$selector}[$step]))',
  errors: 'sum(increase(http_server_request_duration_seconds_count{$selector,http_response_status_code=~"5.."}[$step]))',
  latency: 'sum by (le) (increase(http_server_request_duration_seconds_bucket{$selector}[$step]))',
  // cAdvisor's series, else the OpenTelemetry kubeletstats receiver's pod-level series
  memory:
    'max by (pod, container) (container_memory_working_set_bytes{namespace="$namespace",container="$service"})' +
    ' or max by (pod, container) (label_replace(k8s_pod_memory_working_set_bytes{k8s_namespace_name="$namespace",k8s_deployment_name="$service"}, "pod", "$1", "k8s_pod_name", "(.*)"))',
  memoryRequest: 'sum by (pod) (kube_pod_container_resource_requests{namespace="$namespace",container="$service",resource="memory"})',
  cpu: 'sum by (pod, container) (rate(container_cpu_usage_seconds_total{namespace="$namespace",container="$service"}[$step]))',
  cpuRequest: 'sum by (pod) (kube_pod_container_resource_requests{namespace="$namespace",container="$service",resource="cpu"})',
  auditMemory: 'max by (namespace, pod, container) (container_memory_working_set_bytes{container!="",container!="POD"})',
  auditCpu: 'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[$step]))',
  auditRequests: 'max by (namespace, pod, container, resource) (kube_pod_container_resource_requests{resource=~"memory|cpu"})',
}

const TEMPLATE_KEYS = Object.keys(DEFAULT_TEMPLATES) as (keyof PromTemplates)[]

/** Overrides from a user file (JSON or YAML object of template strings); an unknown key is an error naming it. */
export function templatesFrom(raw: unknown): PromTemplates {
  if (raw === undefined || raw === null) return { ...DEFAULT_TEMPLATES }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError('query templates must be an object of strings')
  const out = { ...DEFAULT_TEMPLATES }
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!(TEMPLATE_KEYS as string[]).includes(k)) throw new TypeError(`query templates: unknown key ${JSON.stringify(k)} (known: ${TEMPLATE_KEYS.join(', ')})`)
    if (typeof v !== 'string' || v.trim() === '') throw new TypeError(`query templates: ${k} must be a non-empty string`)
    out[k as keyof PromTemplates] = v
  }
  return out
}

function promString(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
}

/** `$name` placeholders only; other `$` (regex groups like "$1") are left as written. */
export function expand(template: string, vars: Record<string, string>): string {
  return template.replace(/\$(selector|namespace|service|step)\b/g, (_, k: string) => vars[k] ?? '')
}

export function promDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

export interface MatrixSeries {
  metric: Record<string, string>
  values: [number, string][]
}

/** one series of a range answer as columns */
export interface ColumnSeries {
  metric: Record<string, string>
  /** unix ms */
  times: Float64Array
  /** NaN where the answer held no finite number ("NaN", "+Inf") */
  values: Float64Array
}

function toColumns(s: MatrixSeries): ColumnSeries {
  const times = new Float64Array(s.values.length)
  const values = new Float64Array(s.values.length)
  for (let i = 0; i < s.values.length; i++) {
    const [t, v] = s.values[i] as [number, string]
    times[i] = t * 1000
    const x = Number(v)
    values[i] = Number.isFinite(x) ? x : Number.NaN
  }
  return { metric: s.metric, times, values }
}

const Q = 34 // "
const BS = 92 // backslash

/** index just past the JSON string starting at text[i] (a quote), or -1 */
function skipString(text: string, i: number): number {
  if (text.charCodeAt(i) !== Q) return -1
  for (let k = i + 1; k < text.length; k++) {
    const c = text.charCodeAt(k)
    if (c === BS) k++
    else if (c === Q) return k + 1
  }
  return -1
}

/** a JSON number (or the content of a quoted sample value) from a to b; NaN when not finite */
function numberAt(text: string, a: number, b: number): number {
  // integers and plain decimals, the common case, without a substring
  let i = a
  let neg = false
  if (text.charCodeAt(i) === 45) {
    neg = true
    i++
  }
  let n = 0
  let digits = 0
  for (; i < b; i++) {
    const c = text.charCodeAt(i) - 48
    if (c < 0 || c > 9) break
    n = n * 10 + c
    digits++
  }
  if (i < b && text.charCodeAt(i) === 46) {
    let scale = 1
    let frac = 0
    for (i++; i < b; i++) {
      const c = text.charCodeAt(i) - 48
      if (c < 0 || c > 9) break
      frac = frac * 10 + c
      scale *= 10
      digits++
    }
    // beyond 15 significant digits the sum is not exact: let Number() round it
    if (digits > 15) i = -1
    else n += frac / scale
  }
  if (i === b && digits > 0 && digits <= 15) return neg ? -n : n
  const x = Number(text.slice(a, b))
  return Number.isFinite(x) ? x : Number.NaN
}

/**
 * Scans a successful `query_range` matrix answer as Prometheus writes it
 * ({"status":"success","data":{"resultType":"matrix","result":[{"metric":{..},"values":[[t,"v"],..]},..]}},
 * with or without whitespace) into columns. Anything else (an error, warnings, native histograms,
 * another layout) answers undefined: the caller then parses it with JSON.parse.
 */
export function parseMatrix(text: string): ColumnSeries[] | undefined {
  const head = /^\s*\{\s*"status"\s*:\s*"success"\s*,\s*"data"\s*:\s*\{\s*"resultType"\s*:\s*"matrix"\s*,\s*"result"\s*:\s*\[/y
  if (!head.test(text)) return undefined
  let i = head.lastIndex
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i)
      if (c === 32 || c === 10 || c === 13 || c === 9) i++
      else return
    }
  }
  const lit = (s: string): boolean => {
    ws()
    if (!text.startsWith(s, i)) return false
    i += s.length
    return true
  }
  const out: ColumnSeries[] = []
  const ts: number[] = []
  const vs: number[] = []
  ws()
  if (text.charCodeAt(i) === 93) i++
  else {
    for (;;) {
      if (!lit('{') || !lit('"metric"') || !lit(':')) return undefined
      ws()
      // the label set: strings only, parsed by JSON.parse (small)
      const m0 = i
      if (text.charCodeAt(i) !== 123) return undefined
      i++
      for (;;) {
        ws()
        const c = text.charCodeAt(i)
        if (c === 125) {
          i++
          break
        }
        if (c === 44 || c === 58) {
          i++
          continue
        }
        const e = skipString(text, i)
        if (e < 0) return undefined
        i = e
      }
      let metric: Record<string, string>
      try {
        metric = JSON.parse(text.slice(m0, i)) as Record<string, string>
      } catch {
        return undefined
      }
      if (!lit(',') || !lit('"values"') || !lit(':') || !lit('[')) return undefined
      ts.length = 0
      vs.length = 0
      ws()
      if (text.charCodeAt(i) === 93) i++
      else {
        for (;;) {
          if (!lit('[')) return undefined
          ws()
          const t0 = i
          while (i < text.length && text.charCodeAt(i) !== 44 && text.charCodeAt(i) !== 32) i++
          const t = numberAt(text, t0, i)
          if (!lit(',')) return undefined
          ws()
          const e = skipString(text, i)
          if (e < 0) return undefined
          ts.push(t * 1000)
          vs.push(numberAt(text, i + 1, e - 1))
          i = e
          if (!lit(']')) return undefined
          ws()
          const c = text.charCodeAt(i)
          i++
          if (c === 93) break
          if (c !== 44) return undefined
        }
      }
      if (ts.some((t) => Number.isNaN(t))) return undefined
      out.push({ metric, times: Float64Array.from(ts), values: Float64Array.from(vs) })
      if (!lit('}')) return undefined
      ws()
      const c = text.charCodeAt(i)
      i++
      if (c === 93) break
      if (c !== 44) return undefined
    }
  }
  // the rest: the data object and the envelope closing (anything more, e.g. warnings: the slow path)
  if (!lit('}') || !lit('}')) return undefined
  ws()
  return i === text.length ? out : undefined
}

/**
 * The two selectors of DEFAULT_TEMPLATES.memory, read raw: Prometheus answers a range query of a
 * bare selector from its series directly, while `max by` / `or` / `label_replace` are evaluated
 * step by step (on a 30-day, 3-pod service here: 0.05 CPU-s for the raw selector, 0.30 for the
 * template). memoryMaxOr then computes the template's answer from them.
 */
export const RAW_MEMORY = ['container_memory_working_set_bytes{namespace="$namespace",container="$service"}', 'k8s_pod_memory_working_set_bytes{k8s_namespace_name="$namespace",k8s_deployment_name="$service"}'] as const

/** Prometheus' labels.Compare on label sets without empty values: by name, then value, pair by pair; the shorter first */
function compareLabels(a: [string, string][], b: [string, string][]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [an, av] = a[i] as [string, string]
    const [bn, bv] = b[i] as [string, string]
    if (an !== bn) return an < bn ? -1 : 1
    if (av !== bv) return av < bv ? -1 : 1
  }
  return a.length - b.length
}

/**
 * `max by (pod, container) (A) or max by (pod, container) (label_replace(B, "pod", "$1",
 * "k8s_pod_name", "(.*)"))` evaluated over one chunk of A's and B's raw answers (every series on
 * the same step grid), as Prometheus 2.42 evaluates it: per step, each side's groups by (pod,
 * container) (an empty label is no label; B's pod is its k8s_pod_name) take the max of their
 * series' values in the answer's order (a NaN is replaced by the next value, as Prometheus' max
 * does); `or` keeps A's groups and adds B's whose label set A lacks at that step; the result's
 * series are ordered as Prometheus sorts a range query's matrix (labels.Compare), each in time order.
 */
export function memoryMaxOr(a: readonly ColumnSeries[], b: readonly ColumnSeries[]): ColumnSeries[] {
  const groups = (series: readonly ColumnSeries[], podOf: (m: Record<string, string>) => string) => {
    const out = new Map<string, { labels: [string, string][]; at: Map<number, number> }>()
    for (const s of series) {
      const labels: [string, string][] = []
      const container = s.metric.container ?? ''
      const pod = podOf(s.metric)
      if (container !== '') labels.push(['container', container])
      if (pod !== '') labels.push(['pod', pod])
      const key = JSON.stringify(labels)
      let g = out.get(key)
      if (g === undefined) {
        g = { labels, at: new Map() }
        out.set(key, g)
      }
      for (let k = 0; k < s.times.length; k++) {
        const t = s.times[k] as number
        const v = s.values[k] as number
        const cur = g.at.get(t)
        if (cur === undefined || cur < v || Number.isNaN(cur)) g.at.set(t, v)
      }
    }
    return out
  }
  const ga = groups(a, (m) => m.pod ?? '')
  const gb = groups(b, (m) => m.k8s_pod_name ?? '')
  const result = new Map<string, { labels: [string, string][]; at: Map<number, number> }>()
  for (const [k, g] of ga) result.set(k, { labels: g.labels, at: new Map(g.at) })
  for (const [k, g] of gb) {
    const left = ga.get(k)
    let r = result.get(k)
    for (const [t, v] of g.at) {
      if (left?.at.has(t) === true) continue
      if (r === undefined) {
        r = { labels: g.labels, at: new Map() }
        result.set(k, r)
      }
      r.at.set(t, v)
    }
  }
  return [...result.values()]
    .filter((r) => r.at.size > 0)
    .sort((x, y) => compareLabels(x.labels, y.labels))
    .map((r) => {
      const ts = [...r.at.keys()].sort((x, y) => x - y)
      return { metric: Object.fromEntries(r.labels), times: Float64Array.from(ts), values: Float64Array.from(ts, (t) => r.at.get(t) as number) }
    })
}

export type PromAnswer<T> = { kind: 'ok'; data: T } | { kind: 'failed'; reason: string }

export interface PromStats {
  queries: number
  chunks: number
  failures: number
  podsDropped: number
  servicesDropped: number
  bytes: number
}

export interface PrometheusOptions {
  url: string
  templates?: PromTemplates
  /** per request */
  timeoutMs?: number
  fetch?: typeof fetch
  /**
   * given a service's data span (from the request counts, read first), the spans in which to read
   * its latency buckets, by far the costliest query (one series per bucket and status code); absent:
   * every step. `pullback calibrate` passes the pseudo-deploy windows (backtest.ts deployWindows):
   * the backtests read nothing else, and the read costs a few percent of the full month.
   */
  latencyWindows?: (service: ServiceRef, span: { firstMs: number; lastMs: number }, range: HistoryRange) => { startMs: number; endMs: number }[]
  /**
   * ask for gzip-compressed answers (default false: `accept-encoding: identity`). Measured on a
   * loopback Prometheus (bench/calibrate.ts --prometheus), gunzipping the answers was about a third
   * of the calibrating process's read CPU, and compressing them a share of Prometheus' own; over a
   * slow link to a remote Prometheus, compression may pay for itself.
   */
  compress?: boolean
}

export class PrometheusClient {
  readonly stats: PromStats = { queries: 0, chunks: 0, failures: 0, podsDropped: 0, servicesDropped: 0, bytes: 0 }
  private readonly base: string
  private readonly timeoutMs: number
  private readonly doFetch: typeof fetch
  private readonly headers: Record<string, string>

  constructor(opts: PrometheusOptions) {
    this.headers = opts.compress === true ? { accept: 'application/json' } : { accept: 'application/json', 'accept-encoding': 'identity' }
    this.base = opts.url.replace(/\/+$/, '')
    this.timeoutMs = opts.timeoutMs ?? 60_000
    this.doFetch = opts.fetch ?? fetch
  }

  async get<T>(path: string, params: Record<string, string | string[]>, signal?: AbortSignal): Promise<PromAnswer<T>> {
    const t = await this.fetchText(path, params, signal)
    if (t.kind === 'failed') return t
    return this.parseAnswer<T>(path, t.data.status, t.data.text)
  }

  private async fetchText(path: string, params: Record<string, string | string[]>, signal?: AbortSignal): Promise<PromAnswer<{ text: string; status: number }>> {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, x)
    const url = `${this.base}${path}?${q.toString()}`
    this.stats.queries += 1
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const sig = signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout
    try {
      const res = await this.doFetch(url, { signal: sig, headers: this.headers })
      const len = Number(res.headers.get('content-length') ?? '0')
      if (len > MAX_RESPONSE_BYTES) {
        await res.body?.cancel()
        return this.fail(`${path}: answer of ${len} bytes exceeds ${MAX_RESPONSE_BYTES}`)
      }
      const buf = await res.arrayBuffer()
      if (buf.byteLength > MAX_RESPONSE_BYTES) return this.fail(`${path}: answer of ${buf.byteLength} bytes exceeds ${MAX_RESPONSE_BYTES}`)
      this.stats.bytes += buf.byteLength
      return { kind: 'ok', data: { text: Buffer.from(buf).toString('utf8'), status: res.status } }
    } catch (err) {
      // fetch's own message is only "fetch failed"; the reason (ECONNREFUSED, a timeout) is its cause
      const cause = err instanceof Error && err.cause !== undefined ? `: ${errorMessage(err.cause)}` : ''
      return this.fail(`${path}: ${errorMessage(err)}${cause}`)
    }
  }

  private parseAnswer<T>(path: string, status: number, text: string): PromAnswer<T> {
    let body: { status?: string; data?: unknown; error?: string; errorType?: string }
    try {
      body = JSON.parse(text) as typeof body
    } catch {
      return this.fail(`${path}: HTTP ${status}, not JSON: ${text.slice(0, 200)}`)
    }
    if (body.status !== 'success') return this.fail(`${path}: HTTP ${status} ${body.errorType ?? ''}: ${body.error ?? text.slice(0, 200)}`)
    return { kind: 'ok', data: body.data as T }
  }

  /**
   * As rangeChunks, but each chunk's series as columns (times in unix ms, values as numbers; NaN for
   * what is not a finite number): a successful matrix answer is scanned directly (parseMatrix),
   * without building a JSON tree of [time, "value"] pairs, which cost most of the read's CPU and
   * garbage; any other answer goes through JSON.parse and is classified as rangeChunks does.
   */
  async rangeColumns(query: string, range: HistoryRange, each: (series: ColumnSeries[]) => void, signal?: AbortSignal, maxPoints = MAX_POINTS_PER_QUERY): Promise<PromAnswer<true>> {
    const span = (Math.min(maxPoints, MAX_POINTS_PER_QUERY) - 1) * range.stepMs
    const path = '/api/v1/query_range'
    for (let from = range.startMs; from <= range.endMs; from += span + range.stepMs) {
      const to = Math.min(range.endMs, from + span)
      this.stats.chunks += 1
      const t = await this.fetchText(path, { query, start: (from / 1000).toString(), end: (to / 1000).toString(), step: (range.stepMs / 1000).toString() }, signal)
      if (t.kind === 'failed') return { kind: 'failed', reason: `${t.reason} (query: ${query})` }
      const fast = t.data.status === 200 ? parseMatrix(t.data.text) : undefined
      if (fast !== undefined) {
        each(fast)
        continue
      }
      const a = this.parseAnswer<{ resultType: string; result: MatrixSeries[] }>(path, t.data.status, t.data.text)
      if (a.kind === 'failed') return { kind: 'failed', reason: `${a.reason} (query: ${query})` }
      if (a.data.resultType !== 'matrix') return this.fail(`query_range answered ${a.data.resultType}, not a matrix (query: ${query})`)
      each(a.data.result.map(toColumns))
    }
    return { kind: 'ok', data: true }
  }

  /** A range query cut into chunks of at most MAX_POINTS_PER_QUERY steps; `each` gets every chunk's series. */
  async rangeChunks(query: string, range: HistoryRange, each: (series: MatrixSeries[]) => void, signal?: AbortSignal, maxPoints = MAX_POINTS_PER_QUERY): Promise<PromAnswer<true>> {
    const span = (Math.min(maxPoints, MAX_POINTS_PER_QUERY) - 1) * range.stepMs
    for (let from = range.startMs; from <= range.endMs; from += span + range.stepMs) {
      const to = Math.min(range.endMs, from + span)
      this.stats.chunks += 1
      const a = await this.get<{ resultType: string; result: MatrixSeries[] }>(
        '/api/v1/query_range',
        { query, start: (from / 1000).toString(), end: (to / 1000).toString(), step: (range.stepMs / 1000).toString() },
        signal,
      )
      if (a.kind === 'failed') return { kind: 'failed', reason: `${a.reason} (query: ${query})` }
      if (a.data.resultType !== 'matrix') return this.fail(`query_range answered ${a.data.resultType}, not a matrix (query: ${query})`)
      each(a.data.result)
    }
    return { kind: 'ok', data: true }
  }

  private fail(reason: string): { kind: 'failed'; reason: string } {
    this.stats.failures += 1
    return { kind: 'failed', reason }
  }
}

export class PrometheusHistorySource implements HistorySource {
  readonly client: PrometheusClient
  private readonly t: PromTemplates
  private readonly latencyWindows: PrometheusOptions['latencyWindows']

  constructor(opts: PrometheusOptions) {
    this.client = new PrometheusClient(opts)
    this.t = opts.templates ?? DEFAULT_TEMPLATES
    this.latencyWindows = opts.latencyWindows
  }

  async services(range: HistoryRange, signal?: AbortSignal): Promise<ServiceRef[]> {
    const a = await this.client.get<string[]>(
      `/api/v1/label/${encodeURIComponent(this.t.serviceLabel)}/values`,
      { 'match[]': this.t.servicesMatch, start: (range.startMs / 1000).toString(), end: (range.endMs / 1000).toString() },
      signal,
    )
    if (a.kind === 'failed') throw new Error(`cannot list services: ${a.reason}`)
    const out: ServiceRef[] = []
    for (const v of a.data) {
      if (out.length >= MAX_SERVICES) {
        this.client.stats.servicesDropped += 1
        continue
      }
      const i = v.indexOf('/')
      out.push(i < 0 ? { namespace: '', name: v } : { namespace: v.slice(0, i), name: v.slice(i + 1) })
    }
    return out
  }

  async history(service: ServiceRef, range: HistoryRange, signal?: AbortSignal): Promise<HistoryOutcome> {
    const vars = { namespace: promString(service.namespace), service: promString(service.name), step: promDuration(range.stepMs), selector: '' }
    vars.selector = service.namespace === '' ? expand(this.t.selector, vars).replace(/^job="\//, 'job="') : expand(this.t.selector, vars)
    const q = (tpl: string) => expand(tpl, vars)
    const idx = (tMs: number) => Math.round((tMs - range.startMs) / range.stepMs)

    const req = emptyRequests(range, [])
    const steps = req.counts.length
    const put = (arr: Float64Array, nanIsGap: boolean) => (series: ColumnSeries[]) => {
      for (const s of series) {
        for (let k = 0; k < s.times.length; k++) {
          const i = idx(s.times[k] as number)
          const x = s.values[k] as number
          if (i < 0 || i >= steps || !Number.isFinite(x)) continue
          const cur = arr[i] as number
          arr[i] = (nanIsGap && Number.isNaN(cur) ? 0 : cur) + Math.max(0, Math.round(x))
        }
      }
    }
    let a = await this.client.rangeColumns(q(this.t.requests), range, put(req.counts, true), signal)
    if (a.kind === 'failed') return { kind: 'failed', service, reason: a.reason }
    const span = dataSpan(req)
    if (Number.isNaN(span.firstMs)) return { kind: 'empty', service, reason: 'no request history in the range' }
    a = await this.client.rangeColumns(q(this.t.errors), range, put(req.errors, false), signal)
    if (a.kind === 'failed') return { kind: 'failed', service, reason: a.reason }

    // latency: cumulative counts per `le` per step, turned into per-bucket counts once every chunk is in;
    // with latencyWindows only in those spans (merged, on the grid), the other steps marked unknown
    let spans: HistoryRange[] = [range]
    let known: Uint8Array | undefined
    if (this.latencyWindows !== undefined) {
      const ws = this.latencyWindows(service, span, range)
        .map((w) => ({ startMs: Math.max(range.startMs, range.startMs + Math.floor((w.startMs - range.startMs) / range.stepMs) * range.stepMs), endMs: Math.min(range.endMs, range.startMs + Math.ceil((w.endMs - range.startMs) / range.stepMs) * range.stepMs) }))
        .filter((w) => w.endMs >= w.startMs)
        .sort((x, y) => x.startMs - y.startMs)
      spans = []
      for (const w of ws) {
        const last = spans[spans.length - 1]
        if (last !== undefined && w.startMs <= last.endMs + range.stepMs) last.endMs = Math.max(last.endMs, w.endMs)
        else spans.push({ ...w, stepMs: range.stepMs })
      }
      known = new Uint8Array(steps)
      for (const w of spans) known.fill(1, idx(w.startMs), idx(w.endMs) + 1)
    }
    const byLe = new Map<string, Float64Array>()
    const onSeries = (series: ColumnSeries[]) => {
      for (const s of series) {
        const le = s.metric.le
        if (le === undefined) continue
        let arr = byLe.get(le)
        if (arr === undefined) {
          // bounded by the histogram's bucket layout; a pathological layout stops at 256 bounds
          if (byLe.size >= 256) continue
          arr = new Float64Array(steps)
          byLe.set(le, arr)
        }
        put(arr, false)([s])
      }
    }
    // the windows' queries are small: LATENCY_CONCURRENCY in flight, so the read is not a chain of round trips
    let next = 0
    let failed: string | undefined
    const lane = async () => {
      while (failed === undefined && next < spans.length) {
        const part = spans[next++] as HistoryRange
        const r = await this.client.rangeColumns(q(this.t.latency), part, onSeries, signal)
        if (r.kind === 'failed') failed ??= r.reason
      }
    }
    await Promise.all(Array.from({ length: Math.min(LATENCY_CONCURRENCY, spans.length) }, lane))
    if (failed !== undefined) return { kind: 'failed', service, reason: failed }
    const les = [...byLe.keys()].map((k) => ({ k, v: k === '+Inf' ? Infinity : Number(k) })).filter((e) => !Number.isNaN(e.v)).sort((x, y) => x.v - y.v)
    const bounds = les.filter((e) => e.v !== Infinity).map((e) => e.v)
    const width = bounds.length + 1
    const lat = new Float64Array(steps * width)
    for (let i = 0; i < steps; i++) {
      if (known !== undefined && known[i] === 0) continue
      let prev = 0
      for (let j = 0; j < width; j++) {
        const e = les[j]
        // without a +Inf series the overflow bucket is the request count above the last bound
        const cum = e !== undefined ? ((byLe.get(e.k) as Float64Array)[i] as number) : Math.max(prev, Number.isNaN(req.counts[i] as number) ? prev : (req.counts[i] as number))
        lat[i * width + j] = Math.max(0, cum - prev)
        prev = Math.max(prev, cum)
      }
    }
    byLe.clear()
    const requests = { ...req, boundsS: bounds, latency: lat, ...(known !== undefined ? { latencyKnown: known } : {}) }
    for (let i = 0; i < steps; i++) if ((requests.errors[i] as number) > (requests.counts[i] as number)) requests.errors[i] = requests.counts[i] as number

    const resources: PodResourceSeries[] = []
    for (const [resource, usageTpl, requestTpl] of [
      ['memory', this.t.memory, this.t.memoryRequest],
      ['cpu', this.t.cpu, this.t.cpuRequest],
    ] as [Resource, string, string][]) {
      // the default memory template: evaluated here from its raw series (memoryMaxOr), the same answer for a fraction of Prometheus' work
      const usage = resource === 'memory' && usageTpl === DEFAULT_TEMPLATES.memory ? { raw: [q(RAW_MEMORY[0]), q(RAW_MEMORY[1])] as const } : q(usageTpl)
      const r = await this.podSeries(resource, usage, q(requestTpl), range, signal, resources.length)
      if (r.kind === 'failed') return { kind: 'failed', service, reason: r.reason }
      resources.push(...r.data)
    }
    return { kind: 'ok', history: { service, requests, resources, firstDataMs: span.firstMs, lastDataMs: span.lastMs } }
  }

  /** a range query's chunks, or (raw) the default memory template's answer evaluated from its two raw selectors, chunk by chunk */
  private async usageColumns(usageQ: string | { raw: readonly [string, string] }, range: HistoryRange, each: (series: ColumnSeries[]) => void, signal: AbortSignal | undefined): Promise<PromAnswer<true>> {
    if (typeof usageQ === 'string') return this.client.rangeColumns(usageQ, range, each, signal)
    const chunks: ColumnSeries[][][] = [[], []]
    for (const b of [0, 1]) {
      const a = await this.client.rangeColumns(usageQ.raw[b] as string, range, (series) => void (chunks[b] as ColumnSeries[][]).push(series), signal)
      if (a.kind === 'failed') return a
    }
    const [ca, cb] = chunks as [ColumnSeries[][], ColumnSeries[][]]
    for (let i = 0; i < Math.max(ca.length, cb.length); i++) each(memoryMaxOr(ca[i] ?? [], cb[i] ?? []))
    return { kind: 'ok', data: true }
  }

  private async podSeries(resource: Resource, usageQ: string | { raw: readonly [string, string] }, requestQ: string, range: HistoryRange, signal: AbortSignal | undefined, have: number): Promise<PromAnswer<PodResourceSeries[]>> {
    const pods = new Map<string, { container: string; t: number[]; v: number[] }>()
    let a = await this.usageColumns(
      usageQ,
      range,
      (series) => {
        for (const s of series) {
          const pod = s.metric.pod ?? ''
          let p = pods.get(pod)
          if (p === undefined) {
            if (pods.size + have >= MAX_PODS_PER_SERVICE) {
              this.client.stats.podsDropped += 1
              continue
            }
            p = { container: s.metric.container ?? '', t: [], v: [] }
            pods.set(pod, p)
          }
          for (let k = 0; k < s.times.length; k++) {
            const x = s.values[k] as number
            if (Number.isFinite(x)) {
              p.t.push(s.times[k] as number)
              p.v.push(x)
            }
          }
        }
      },
      signal,
    )
    if (a.kind === 'failed') return a
    const requests = new Map<string, number>()
    const keep = (series: ColumnSeries[]) => {
      for (const s of series) {
        const pod = s.metric.pod ?? ''
        if (!pods.has(pod)) continue
        // a request changed in place is rare; the newest one read is the pod's request
        for (const x of s.values) if (Number.isFinite(x) && x > 0) requests.set(pod, x)
      }
    }
    // Only the newest positive request per pod with usage is kept, so: no pods, no query; else the
    // range's tail first (REQUEST_TAIL_MS, on the same step grid, so its newest step holding a value
    // is the whole range's), and the whole range only when a pod has no positive request in the tail
    // (gone before the end, or a request of 0). The same requests as reading the whole range: on
    // 1,000 services the whole-range request query was ~0.18 CPU-s of Prometheus per service.
    if (pods.size > 0) {
      const total = Math.floor((range.endMs - range.startMs) / range.stepMs)
      const tailSteps = Math.min(total, Math.max(10, Math.ceil(REQUEST_TAIL_MS / range.stepMs)))
      const tail: HistoryRange = { startMs: range.startMs + (total - tailSteps) * range.stepMs, endMs: range.startMs + total * range.stepMs, stepMs: range.stepMs }
      a = await this.client.rangeColumns(requestQ, tail, keep, signal)
      if (a.kind === 'failed') return a
      if (tail.startMs > range.startMs && [...pods.entries()].some(([pod, p]) => p.t.length > 0 && !requests.has(pod))) {
        requests.clear()
        a = await this.client.rangeColumns(requestQ, range, keep, signal)
        if (a.kind === 'failed') return a
      }
    }
    const out: PodResourceSeries[] = []
    for (const [pod, p] of pods) {
      if (p.t.length === 0) continue
      out.push({ pod, container: p.container, resource, timesMs: Float64Array.from(p.t), values: Float64Array.from(p.v), request: requests.get(pod) ?? Number.NaN })
    }
    return { kind: 'ok', data: out }
  }
}
