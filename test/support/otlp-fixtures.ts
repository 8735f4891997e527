/**
 * A small deterministic generator of OTLP/JSON lines, shaped exactly like the OpenTelemetry
 * Collector file exporter's output (one ExportTraceServiceRequest / ExportMetricsServiceRequest per
 * line; hex ids; int64 as decimal strings; enums as integers). Seeded PRNG, log-normal latencies.
 *
 * Time runs in whole seconds t = 0..durationS-1 after `start`; each second yields one trace line
 * (SERVER spans of every version serving then) and every `metricsEveryS` one metrics line (per pod:
 * memory working set, memory request, container readiness).
 */

export interface VersionLoad {
  version: string
  /** requests per second (fractions are honoured on average) */
  rps: number
  /** probability that a request fails with HTTP 500 */
  errorRate: number
  /** median latency, ms (log-normal) */
  medianMs: number
  /** log-normal sigma (default 0.35: p99 ~ 2.3 x median) */
  sigma?: number
  /** pods serving this version (default 2) */
  pods?: number
}

export interface FixtureSpec {
  seed: number
  /** unix ms of t = 0 */
  start?: number
  durationS: number
  namespace?: string
  service?: string
  /** what serves at second t */
  load: (t: number) => VersionLoad[]
  /** a pod's memory working set at second t, bytes (default: flat 200 MiB with 0.3 % noise) */
  memory?: (t: number, version: string, pod: number) => number | undefined
  /** a pod's memory request, bytes (default 512 MiB) */
  memoryRequest?: number
  /** readiness of a pod's container at second t (default: ready 10 s after the version's first second) */
  ready?: (t: number, version: string, pod: number, firstSecond: number) => boolean | undefined
  metricsEveryS?: number
  /** exact error count overrides for the first requests of a version: e.g. { v2: [true, false, true] } */
  scripted?: Record<string, boolean[]>
}

export const MiB = 1024 * 1024
export const DEFAULT_START = 1_767_225_600_000 // 2026-01-01T00:00:00Z

/** mulberry32: tiny, seeded, good enough for fixtures. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12)
  const v = rand()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}

function hex(rand: () => number, bytes: number): string {
  let s = ''
  for (let i = 0; i < bytes; i++) s += Math.floor(rand() * 256).toString(16).padStart(2, '0')
  return s
}

const sattr = (key: string, v: string) => ({ key, value: { stringValue: v } })
const iattr = (key: string, v: number) => ({ key, value: { intValue: String(v) } })

function resource(ns: string, svc: string, version: string, pod?: string) {
  const attrs = [sattr('service.name', svc), sattr('service.version', version), sattr('k8s.namespace.name', ns)]
  if (pod !== undefined) attrs.push(sattr('k8s.pod.name', pod))
  return { attributes: attrs }
}

const msToNs = (ms: number): string => (BigInt(Math.round(ms * 1000)) * 1000n).toString()

export function podName(svc: string, version: string, i: number): string {
  return `${svc}-${version}-${i}`
}

export function generate(spec: FixtureSpec): string[] {
  const rand = prng(spec.seed)
  const start = spec.start ?? DEFAULT_START
  const ns = spec.namespace ?? 'shop'
  const svc = spec.service ?? 'checkout'
  const every = spec.metricsEveryS ?? 10
  const memReq = spec.memoryRequest ?? 512 * MiB
  const firstSecond = new Map<string, number>()
  const scripted = new Map(Object.entries(spec.scripted ?? {}).map(([k, v]) => [k, [...v]]))
  const lines: string[] = []
  for (let t = 0; t < spec.durationS; t++) {
    const loads = spec.load(t)
    const resourceSpans = []
    for (const l of loads) {
      if (!firstSecond.has(l.version)) firstSecond.set(l.version, t)
      const n = Math.floor(l.rps) + (rand() < l.rps - Math.floor(l.rps) ? 1 : 0)
      const spans = []
      const sigma = l.sigma ?? 0.35
      for (let i = 0; i < n; i++) {
        const endMs = start + t * 1000 + rand() * 1000
        const latMs = l.medianMs * Math.exp(sigma * gaussian(rand))
        const forced = scripted.get(l.version)?.shift()
        const err = forced ?? rand() < l.errorRate
        spans.push({
          traceId: hex(rand, 16),
          spanId: hex(rand, 8),
          name: 'POST /checkout',
          kind: 2,
          startTimeUnixNano: msToNs(endMs - latMs),
          endTimeUnixNano: msToNs(endMs),
          attributes: [sattr('http.request.method', 'POST'), iattr('http.response.status_code', err ? 500 : 200)],
          status: err ? { code: 2 } : {},
        })
      }
      if (spans.length > 0) resourceSpans.push({ resource: resource(ns, svc, l.version), scopeSpans: [{ scope: { name: 'fixture' }, spans }] })
    }
    if (resourceSpans.length > 0) lines.push(JSON.stringify({ resourceSpans }))
    if (t % every === 0) {
      const resourceMetrics = []
      const tNs = msToNs(start + t * 1000)
      for (const l of loads) {
        const first = firstSecond.get(l.version) ?? t
        for (let p = 0; p < (l.pods ?? 2); p++) {
          const pod = podName(svc, l.version, p)
          const mem = spec.memory ? spec.memory(t, l.version, p) : 200 * MiB * (1 + 0.003 * gaussian(rand))
          const ready = spec.ready ? spec.ready(t, l.version, p, first) : t - first >= 10
          const metrics: object[] = [
            { name: 'k8s.container.memory_request', unit: 'By', gauge: { dataPoints: [{ timeUnixNano: tNs, asInt: String(memReq), attributes: [sattr('k8s.container.name', 'app')] }] } },
          ]
          if (mem !== undefined) metrics.push({ name: 'k8s.pod.memory.working_set', unit: 'By', gauge: { dataPoints: [{ timeUnixNano: tNs, asInt: String(Math.round(mem)) }] } })
          if (ready !== undefined) {
            metrics.push({ name: 'k8s.container.ready', unit: '', gauge: { dataPoints: [{ timeUnixNano: tNs, asInt: ready ? '1' : '0', attributes: [sattr('k8s.container.name', 'app')] }] } })
          }
          resourceMetrics.push({ resource: resource(ns, svc, l.version, pod), scopeMetrics: [{ scope: { name: 'kubeletstats' }, metrics }] })
        }
      }
      if (resourceMetrics.length > 0) lines.push(JSON.stringify({ resourceMetrics }))
    }
  }
  return lines
}
