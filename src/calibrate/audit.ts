/**
 * `pullback audit requests`: per workload and container, the memory and CPU request against the
 * p70 and p95 of observed usage over the period. A request below the p70 of usage makes the
 * resource-trajectory signal (slope as a fraction of the request) fire on routine deploys.
 *
 * Streams the fleet's usage in time chunks of at most AUDIT_CHUNK_POINTS steps (every pod of the
 * cluster in one answer), folding each reading into a bounded quantile sketch per
 * (namespace, workload, container, resource); at most MAX_AUDIT_KEYS keys, more counted in
 * `keysDropped`.
 */
import { QuantileSketch } from './quantile.js'
import { expand, promDuration, type MatrixSeries, type PrometheusClient, type PromTemplates } from './prometheus.js'
import type { HistoryRange, HistorySource, Resource } from './history.js'

export const MAX_AUDIT_KEYS = 50_000
export const AUDIT_CHUNK_POINTS = 360

export interface AuditRow {
  namespace: string
  workload: string
  container: string
  resource: Resource
  /** the newest request seen (bytes, cores); NaN when none */
  request: number
  p70: number
  p95: number
  samples: number
  below: boolean
}

export type AuditOutcome = { kind: 'ok'; rows: AuditRow[]; keysDropped: number } | { kind: 'failed'; reason: string }

/** The workload behind a pod name: a Deployment's "-<replicaset hash>-<5>", a DaemonSet's "-<5>", a StatefulSet's "-<ordinal>" dropped. */
export function workloadOf(pod: string): string {
  const m = /^(.+?)(?:-[a-z0-9]{6,10})?-[a-z0-9]{5}$/.exec(pod) ?? /^(.+)-\d+$/.exec(pod)
  return m?.[1] ?? pod
}

interface Acc {
  sketch: QuantileSketch
  request: number
  requestAt: number
}

export async function auditRequests(client: PrometheusClient, t: PromTemplates, range: HistoryRange, signal?: AbortSignal): Promise<AuditOutcome> {
  const accs = new Map<string, Acc & { namespace: string; workload: string; container: string; resource: Resource }>()
  let keysDropped = 0
  const acc = (m: Record<string, string>, resource: Resource): Acc | undefined => {
    const namespace = m.namespace ?? ''
    const workload = workloadOf(m.pod ?? '')
    const container = m.container ?? ''
    const k = `${namespace}\u0000${workload}\u0000${container}\u0000${resource}`
    let a = accs.get(k)
    if (a === undefined) {
      if (accs.size >= MAX_AUDIT_KEYS) {
        keysDropped += 1
        return undefined
      }
      a = { namespace, workload, container, resource, sketch: new QuantileSketch(), request: Number.NaN, requestAt: -Infinity }
      accs.set(k, a)
    }
    return a
  }
  const vars = { step: promDuration(range.stepMs), namespace: '', service: '', selector: '' }
  for (const [resource, tpl] of [
    ['memory', t.auditMemory],
    ['cpu', t.auditCpu],
  ] as [Resource, string][]) {
    const r = await client.rangeChunks(
      expand(tpl, vars),
      range,
      (series: MatrixSeries[]) => {
        for (const s of series) {
          const a = acc(s.metric, resource)
          if (a === undefined) continue
          for (const [, v] of s.values) a.sketch.add(Number(v))
        }
      },
      signal,
      AUDIT_CHUNK_POINTS,
    )
    if (r.kind === 'failed') return r
  }
  const r = await client.rangeChunks(
    expand(t.auditRequests, vars),
    range,
    (series) => {
      for (const s of series) {
        const res = s.metric.resource
        if (res !== 'memory' && res !== 'cpu') continue
        const a = acc(s.metric, res)
        if (a === undefined) continue
        for (const [ts, v] of s.values) {
          const x = Number(v)
          if (Number.isFinite(x) && ts * 1000 >= a.requestAt) {
            a.request = x
            a.requestAt = ts * 1000
          }
        }
      }
    },
    signal,
    AUDIT_CHUNK_POINTS,
  )
  if (r.kind === 'failed') return r
  const rows: AuditRow[] = []
  for (const a of accs.values()) {
    if (a.sketch.count === 0) continue
    const p70 = a.sketch.quantile(0.7)
    rows.push({ namespace: a.namespace, workload: a.workload, container: a.container, resource: a.resource, request: a.request, p70, p95: a.sketch.quantile(0.95), samples: a.sketch.count, below: !Number.isNaN(a.request) && a.request < p70 })
  }
  rows.sort((x, y) => Number(y.below) - Number(x.below) || `${x.namespace}/${x.workload}/${x.container}/${x.resource}`.localeCompare(`${y.namespace}/${y.workload}/${y.container}/${y.resource}`))
  return { kind: 'ok', rows, keysDropped }
}

function human(v: number, resource: Resource): string {
  if (Number.isNaN(v)) return 'none'
  if (resource === 'cpu') return `${(v * 1000).toFixed(0)}m`
  return v >= 2 ** 30 ? `${(v / 2 ** 30).toFixed(2)}Gi` : `${(v / 2 ** 20).toFixed(0)}Mi`
}

export function auditTable(rows: readonly AuditRow[]): string {
  const out: string[][] = [['namespace/workload', 'container', 'resource', 'request', 'p70', 'p95', 'samples', 'finding']]
  for (const r of rows) {
    out.push([
      `${r.namespace}/${r.workload}`,
      r.container,
      r.resource,
      human(r.request, r.resource),
      human(r.p70, r.resource),
      human(r.p95, r.resource),
      String(r.samples),
      Number.isNaN(r.request) ? 'no request' : r.below ? 'BELOW p70: resource signal to observe' : r.request < r.p95 ? 'below p95' : 'ok',
    ])
  }
  const w = out[0]!.map((_, c) => Math.max(...out.map((row) => (row[c] ?? '').length)))
  return `${out.map((row) => row.map((cell, c) => cell.padEnd(w[c] as number)).join('  ').trimEnd()).join('\n')}\n`
}

/**
 * The audit over a HistorySource that keeps usage per service (the history topic's summaries): one
 * row per service and resource (workload = the service, container unknown: "-"), the request the
 * newest one seen among its pods. Services are read one at a time; failures are counted, not thrown.
 */
export async function auditFromHistory(source: HistorySource, range: HistoryRange, signal?: AbortSignal): Promise<AuditOutcome & { failed?: string[] }> {
  let services
  try {
    services = await source.services(range, signal)
  } catch (err) {
    return { kind: 'failed', reason: (err as Error).message }
  }
  const rows: AuditRow[] = []
  const failed: string[] = []
  for (const svc of services) {
    if (signal?.aborted === true) break
    const h = await source.history(svc, range, signal)
    if (h.kind !== 'ok') {
      failed.push(`${svc.namespace}/${svc.name}: ${h.reason}`)
      continue
    }
    for (const resource of ['memory', 'cpu'] as const) {
      const sk = h.history.usage?.[resource] ?? new QuantileSketch()
      if (h.history.usage === undefined) for (const s of h.history.resources) if (s.resource === resource) for (const v of s.values) sk.add(v)
      if (sk.count === 0) continue
      let request = Number.NaN
      let newest = -Infinity
      for (const s of h.history.resources) {
        const t = s.timesMs[s.timesMs.length - 1] ?? -Infinity
        if (s.resource === resource && Number.isFinite(s.request) && t >= newest) {
          request = s.request
          newest = t
        }
      }
      const p70 = sk.quantile(0.7)
      rows.push({ namespace: svc.namespace, workload: svc.name, container: '-', resource, request, p70, p95: sk.quantile(0.95), samples: sk.count, below: !Number.isNaN(request) && request < p70 })
    }
  }
  rows.sort((x, y) => Number(y.below) - Number(x.below) || `${x.namespace}/${x.workload}/${x.resource}`.localeCompare(`${y.namespace}/${y.workload}/${y.resource}`))
  return { kind: 'ok', rows, keysDropped: 0, failed }
}
