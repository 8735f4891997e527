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
}

export class PrometheusClient {
  readonly stats: PromStats = { queries: 0, chunks: 0, failures: 0, podsDropped: 0, servicesDropped: 0, bytes: 0 }
  private readonly base: string
  private readonly timeoutMs: number
  private readonly doFetch: typeof fetch

  constructor(opts: PrometheusOptions) {
    this.base = opts.url.replace(/\/+$/, '')
    this.timeoutMs = opts.timeoutMs ?? 60_000
    this.doFetch = opts.fetch ?? fetch
  }

  async get<T>(path: string, params: Record<string, string | string[]>, signal?: AbortSignal): Promise<PromAnswer<T>> {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, x)
    const url = `${this.base}${path}?${q.toString()}`
    this.stats.queries += 1
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const sig = signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout
    let text: string
    let status: number
    try {
      const res = await this.doFetch(url, { signal: sig, headers: { accept: 'application/json' } })
      status = res.status
      const len = Number(res.headers.get('content-length') ?? '0')
      if (len > MAX_RESPONSE_BYTES) {
        await res.body?.cancel()
        return this.fail(`${path}: answer of ${len} bytes exceeds ${MAX_RESPONSE_BYTES}`)
      }
      const buf = await res.arrayBuffer()
      if (buf.byteLength > MAX_RESPONSE_BYTES) return this.fail(`${path}: answer of ${buf.byteLength} bytes exceeds ${MAX_RESPONSE_BYTES}`)
      this.stats.bytes += buf.byteLength
      text = Buffer.from(buf).toString('utf8')
    } catch (err) {
      // fetch's own message is only "fetch failed"; the reason (ECONNREFUSED, a timeout) is its cause
      const cause = err instanceof Error && err.cause !== undefined ? `: ${errorMessage(err.cause)}` : ''
      return this.fail(`${path}: ${errorMessage(err)}${cause}`)
    }
    let body: { status?: string; data?: unknown; error?: string; errorType?: string }
    try {
      body = JSON.parse(text) as typeof body
    } catch {
      return this.fail(`${path}: HTTP ${status}, not JSON: ${text.slice(0, 200)}`)
    }
    if (body.status !== 'success') return this.fail(`${path}: HTTP ${status} ${body.errorType ?? ''}: ${body.error ?? text.slice(0, 200)}`)
    return { kind: 'ok', data: body.data as T }
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

  constructor(opts: PrometheusOptions) {
    this.client = new PrometheusClient(opts)
    this.t = opts.templates ?? DEFAULT_TEMPLATES
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
    const idx = (tSec: number) => Math.round((tSec * 1000 - range.startMs) / range.stepMs)

    const req = emptyRequests(range, [])
    const steps = req.counts.length
    const put = (arr: Float64Array, nanIsGap: boolean) => (series: MatrixSeries[]) => {
      for (const s of series) {
        for (const [t, v] of s.values) {
          const i = idx(t)
          const x = Number(v)
          if (i < 0 || i >= steps || !Number.isFinite(x)) continue
          const cur = arr[i] as number
          arr[i] = (nanIsGap && Number.isNaN(cur) ? 0 : cur) + Math.max(0, Math.round(x))
        }
      }
    }
    let a = await this.client.rangeChunks(q(this.t.requests), range, put(req.counts, true), signal)
    if (a.kind === 'failed') return { kind: 'failed', service, reason: a.reason }
    const span = dataSpan(req)
    if (Number.isNaN(span.firstMs)) return { kind: 'empty', service, reason: 'no request history in the range' }
    a = await this.client.rangeChunks(q(this.t.errors), range, put(req.errors, false), signal)
    if (a.kind === 'failed') return { kind: 'failed', service, reason: a.reason }

    // latency: cumulative counts per `le` per step, turned into per-bucket counts once every chunk is in
    const byLe = new Map<string, Float64Array>()
    a = await this.client.rangeChunks(
      q(this.t.latency),
      range,
      (series) => {
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
      },
      signal,
    )
    if (a.kind === 'failed') return { kind: 'failed', service, reason: a.reason }
    const les = [...byLe.keys()].map((k) => ({ k, v: k === '+Inf' ? Infinity : Number(k) })).filter((e) => !Number.isNaN(e.v)).sort((x, y) => x.v - y.v)
    const bounds = les.filter((e) => e.v !== Infinity).map((e) => e.v)
    const width = bounds.length + 1
    const lat = new Float64Array(steps * width)
    for (let i = 0; i < steps; i++) {
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
    const requests = { ...req, boundsS: bounds, latency: lat }
    for (let i = 0; i < steps; i++) if ((requests.errors[i] as number) > (requests.counts[i] as number)) requests.errors[i] = requests.counts[i] as number

    const resources: PodResourceSeries[] = []
    for (const [resource, usageTpl, requestTpl] of [
      ['memory', this.t.memory, this.t.memoryRequest],
      ['cpu', this.t.cpu, this.t.cpuRequest],
    ] as [Resource, string, string][]) {
      const r = await this.podSeries(resource, q(usageTpl), q(requestTpl), range, signal, resources.length)
      if (r.kind === 'failed') return { kind: 'failed', service, reason: r.reason }
      resources.push(...r.data)
    }
    return { kind: 'ok', history: { service, requests, resources, firstDataMs: span.firstMs, lastDataMs: span.lastMs } }
  }

  private async podSeries(resource: Resource, usageQ: string, requestQ: string, range: HistoryRange, signal: AbortSignal | undefined, have: number): Promise<PromAnswer<PodResourceSeries[]>> {
    const pods = new Map<string, { container: string; t: number[]; v: number[] }>()
    let a = await this.client.rangeChunks(
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
          for (const [t, v] of s.values) {
            const x = Number(v)
            if (Number.isFinite(x)) {
              p.t.push(t * 1000)
              p.v.push(x)
            }
          }
        }
      },
      signal,
    )
    if (a.kind === 'failed') return a
    const requests = new Map<string, number>()
    a = await this.client.rangeChunks(
      requestQ,
      range,
      (series) => {
        for (const s of series) {
          const pod = s.metric.pod ?? ''
          if (!pods.has(pod)) continue
          // a request changed in place is rare; the newest one read is the pod's request
          for (const [, v] of s.values) {
            const x = Number(v)
            if (Number.isFinite(x) && x > 0) requests.set(pod, x)
          }
        }
      },
      signal,
    )
    if (a.kind === 'failed') return a
    const out: PodResourceSeries[] = []
    for (const [pod, p] of pods) {
      if (p.t.length === 0) continue
      out.push({ pod, container: p.container, resource, timesMs: Float64Array.from(p.t), values: Float64Array.from(p.v), request: requests.get(pod) ?? Number.NaN })
    }
    return { kind: 'ok', data: out }
  }
}
