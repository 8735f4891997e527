/**
 * A synthetic, Prometheus-compatible `query_range` server for the calibration bench
 * (bench/calibrate.ts `--synthetic-prometheus`): a server without a backfill (1,000 services x 30
 * days from a real Prometheus: `--prometheus --data-dir`, test/calibrate/backfill.ts); it answers the default query templates of
 * src/calibrate/prometheus.ts (DEFAULT_TEMPLATES) for the bench's service mix from the same
 * generator the real-Prometheus bench backfills (test/calibrate/synthetic.ts `steps` and
 * `memoryAt`, seeded as test/calibrate/prometheus-fixture.ts seeds them), generated on the fly,
 * deterministically, one service at a time (the last few kept: calibrate reads a service's queries
 * back to back). It runs in its own process, so its CPU is reported apart from the calibrating one.
 *
 * Answers as Prometheus 2.42 answers the same data: `increase(x[60s])` at step t is the counter's
 * delta over (t - 60 s, t] (the samples sit on the step grid; no value at the first step, where
 * the window holds one sample), `sum by (le)` of the buckets is the cumulative count of both
 * status codes, gauges are the sample at t (memory rounded as the OpenMetrics file writes it),
 * the memory request is the pod's request at every step, CPU queries answer no series. Anything it
 * does not recognise is a Prometheus-style `bad_data` error naming the query.
 *
 * Run: `node dist/bench/promsim.js --services N --days D --end UNIX_MS [--port P]`; prints
 * `{"url": ...}` on stdout once listening; stops on SIGTERM.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { BOUNDS_S, memoryAt, rng, steps, type SynthService } from '../test/calibrate/synthetic.js'
import { flags } from './args.js'

/** The bench's service mix (bench/calibrate.ts): 1-40 req/s, every third service noisy. */
export function benchService(k: number): SynthService {
  return {
    namespace: 'bench',
    name: `svc-${k}`,
    rps: 1 + ((k * 7) % 40),
    errorRatio: 0.002 + (k % 5) * 0.002,
    medianS: 0.02 + (k % 7) * 0.02,
    sigma: 0.5,
    noisyHours: k % 3 === 0 ? 0.5 : 0.05,
    noisyMinutes: 20,
    noisyErrors: 6,
    noisyLatency: 1.8,
    pods: 3,
    memoryBytes: 200e6,
    memoryRequestBytes: 256e6,
  }
}

/** One service's month on the step grid, as the backfilled Prometheus holds it. */
interface Month {
  fromMs: number
  stepMs: number
  counts: Float64Array
  errors: Float64Array
  /** steps x (BOUNDS_S.length + 1), cumulative per step (the `le` buckets, +Inf last) */
  cum: Float64Array
  /** pods x steps, rounded */
  memory: Float64Array
  pods: string[]
  container: string
  memoryRequest: number
}

/** services kept generated (calibrate reads one service's queries back to back) */
const CACHE = 4

function generate(k: number, fromMs: number, endMs: number, stepMs: number, seed: number): Month {
  const s = benchService(k)
  const n = Math.floor((endMs - fromMs) / stepMs) + 1
  const w = BOUNDS_S.length + 1
  const counts = new Float64Array(n)
  const errors = new Float64Array(n)
  const cum = new Float64Array(n * w)
  let i = 0
  for (const st of steps(s, fromMs, endMs, stepMs, seed + k)) {
    counts[i] = st.count
    errors[i] = Math.min(st.errors, st.count)
    let c = 0
    for (let j = 0; j < w; j++) {
      c += st.buckets[j] as number
      cum[i * w + j] = c
    }
    i++
  }
  const r = rng((seed + k) ^ 0x5eed)
  const memory = new Float64Array(s.pods * n)
  const pods: string[] = []
  for (let p = 0; p < s.pods; p++) {
    pods.push(`${s.name}-7d4b9c8f6d-${String(p).padStart(5, 'x')}`)
    let x = 0
    for (let t = fromMs; t <= endMs; t += stepMs) memory[p * n + x++] = Math.round(memoryAt(s, p, t, r))
  }
  return { fromMs, stepMs, counts, errors, cum, memory, pods, container: s.name, memoryRequest: s.memoryRequestBytes }
}

type Kind = 'requests' | 'errors' | 'latency' | 'memory' | 'memoryRequest' | 'empty'

/** which default template a query is, and for which service index; undefined: not one of ours */
export function classify(query: string): { kind: Kind; k: number } | undefined {
  const svc = /(?:job="bench\/svc-|container="svc-|k8s_deployment_name="svc-)(\d+)"/.exec(query)
  if (svc === null) return undefined
  const k = Number(svc[1])
  // the kubeletstats selector read raw (prometheus.ts RAW_MEMORY): no such series here
  if (query.startsWith('k8s_pod_memory_working_set_bytes')) return { kind: 'empty', k }
  if (query.includes('container_cpu_usage_seconds_total') || query.includes('resource="cpu"')) return { kind: 'empty', k }
  if (query.includes('kube_pod_container_resource_requests')) return { kind: 'memoryRequest', k }
  if (query.includes('container_memory_working_set_bytes')) return { kind: 'memory', k }
  if (query.includes('http_server_request_duration_seconds_bucket')) return { kind: 'latency', k }
  if (query.includes('http_server_request_duration_seconds_count')) return { kind: query.includes('5..') ? 'errors' : 'requests', k }
  return undefined
}

function seriesJson(metric: Record<string, string>, from: number, to: number, step: number, m: Month, at: (i: number) => number | undefined): string | undefined {
  const parts: string[] = []
  for (let t = from; t <= to; t += step) {
    const i = Math.round((t - m.fromMs) / m.stepMs)
    if (i < 0 || i >= m.counts.length || (t - m.fromMs) % m.stepMs !== 0) continue
    const v = at(i)
    if (v === undefined) continue
    parts.push(`[${t / 1000},"${v}"]`)
  }
  if (parts.length === 0) return undefined
  return `{"metric":${JSON.stringify(metric)},"values":[${parts.join(',')}]}`
}

export function answer(m: Month, kind: Kind, fromMs: number, toMs: number, stepMs: number): string {
  const out: (string | undefined)[] = []
  const w = BOUNDS_S.length + 1
  // increase over one step: the delta at step i (none at the first step: one sample in the window)
  const delta = (arr: Float64Array) => (i: number) => (i === 0 ? undefined : (arr[i] as number))
  if (kind === 'requests') out.push(seriesJson({}, fromMs, toMs, stepMs, m, delta(m.counts)))
  else if (kind === 'errors') out.push(seriesJson({}, fromMs, toMs, stepMs, m, delta(m.errors)))
  else if (kind === 'latency') {
    for (let j = 0; j < w; j++) {
      const le = j < BOUNDS_S.length ? String(BOUNDS_S[j]) : '+Inf'
      out.push(seriesJson({ le }, fromMs, toMs, stepMs, m, (i) => (i === 0 ? undefined : (m.cum[i * w + j] as number))))
    }
  } else if (kind === 'memory') {
    const n = m.counts.length
    m.pods.forEach((pod, p) => out.push(seriesJson({ container: m.container, pod }, fromMs, toMs, stepMs, m, (i) => m.memory[p * n + i] as number)))
  } else if (kind === 'memoryRequest') {
    for (const pod of m.pods) out.push(seriesJson({ pod }, fromMs, toMs, stepMs, m, () => m.memoryRequest))
  }
  return `{"status":"success","data":{"resultType":"matrix","result":[${out.filter((x) => x !== undefined).join(',')}]}}`
}

function main(): void {
  const f = flags(process.argv)
  const n = f.int('services', 1000, 1, 100_000)
  const days = f.int('days', 30, 1, 400)
  const endMs = Number(f.get('end'))
  if (!Number.isFinite(endMs)) throw new Error('--end UNIX_MS is required')
  const stepMs = 60_000
  const fromMs = endMs - days * 86_400_000
  const seed = 1
  const cache = new Map<number, Month>()
  const month = (k: number): Month => {
    let m = cache.get(k)
    if (m === undefined) {
      m = generate(k, fromMs, endMs, stepMs, seed)
      if (cache.size >= CACHE) cache.delete(cache.keys().next().value as number)
      cache.set(k, m)
    }
    return m
  }
  const send = (res: ServerResponse, code: number, body: string) => {
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }
  const bad = (res: ServerResponse, msg: string) => send(res, 400, JSON.stringify({ status: 'error', errorType: 'bad_data', error: msg }))
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/-/ready') return send(res, 200, 'ready')
    if (url.pathname === '/api/v1/label/job/values') return send(res, 200, JSON.stringify({ status: 'success', data: Array.from({ length: n }, (_, k) => `bench/svc-${k}`) }))
    if (url.pathname !== '/api/v1/query_range') return bad(res, `not served: ${url.pathname}`)
    const q = url.searchParams.get('query') ?? ''
    const start = Number(url.searchParams.get('start')) * 1000
    const end = Number(url.searchParams.get('end')) * 1000
    const step = Number(url.searchParams.get('step')) * 1000
    if (!(step > 0) || !(end >= start) || (end - start) / step > 11_000) return bad(res, 'exceeded maximum resolution of 11,000 points per timeseries, or a bad range')
    const c = classify(q)
    if (c === undefined) return bad(res, `query not served by the synthetic server: ${q}`)
    if (c.k >= n) return send(res, 200, '{"status":"success","data":{"resultType":"matrix","result":[]}}')
    return send(res, 200, answer(month(c.k), c.kind, start, end, step))
  })
  server.listen(f.int('port', 0, 0, 65535), '127.0.0.1', () => {
    const a = server.address()
    const port = typeof a === 'object' && a !== null ? a.port : 0
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`)
  })
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
}

if (process.argv.includes('--serve')) main()
