import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_START_MS, findScenario, recordScenario, recordToLines, SCENARIOS, type Scenario } from '../../src/sim/index.js'
import type { FleetSpec } from '../../src/sim/index.js'

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url))

function scenario(name: string): Scenario {
  const s = findScenario(name)
  if (s === undefined) throw new Error(`no scenario ${name}`)
  return s
}

type Json = Record<string, unknown>
interface KV {
  key: string
  value: Record<string, unknown>
}

function attrs(list: KV[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const kv of list ?? []) out[kv.key] = Object.values(kv.value)[0]
  return out
}

interface FlatSpan {
  service: string
  version: string
  pod: string
  startNs: bigint
  endNs: bigint
  status: number
  code: number | undefined
  kind: number
  traceId: string
  spanId: string
}

function spansOf(lines: string[]): FlatSpan[] {
  const out: FlatSpan[] = []
  for (const line of lines) {
    const req = JSON.parse(line) as { resourceSpans?: { resource: { attributes: KV[] }; scopeSpans: { spans: Json[] }[] }[] }
    for (const rs of req.resourceSpans ?? []) {
      const r = attrs(rs.resource.attributes)
      for (const ss of rs.scopeSpans) {
        for (const sp of ss.spans) {
          const a = attrs(sp.attributes as KV[])
          out.push({
            service: String(r['service.name']),
            version: String(r['service.version']),
            pod: String(r['k8s.pod.name']),
            startNs: BigInt(sp.startTimeUnixNano as string),
            endNs: BigInt(sp.endTimeUnixNano as string),
            status: Number(a['http.response.status_code']),
            code: (sp.status as { code?: number }).code,
            kind: sp.kind as number,
            traceId: sp.traceId as string,
            spanId: sp.spanId as string,
          })
        }
      }
    }
  }
  return out
}

const sec = (s: FlatSpan) => Number(s.startNs / 1_000_000n - BigInt(DEFAULT_START_MS)) / 1000

describe('scenario library', () => {
  it('has the required scenarios, each labelled', () => {
    const required = [
      'error-spike',
      'latency-regression',
      'memory-leak-leads-errors',
      'gradual-memory-leak',
      'probe-failure',
      'benign-deploy',
      'traffic-spike',
      'deploy-during-traffic-spike',
      'cold-start-spike',
      'low-traffic-two-errors',
      'pre-existing-breach',
      'slow-latency-creep',
      'canary-bad-10pct',
      'canary-good',
      'latent-defect-prior-version',
      'flapping-single-signal',
      'telemetry-outage',
    ]
    for (const name of required) expect(findScenario(name), name).toBeDefined()
    for (const s of SCENARIOS) {
      expect(s.description.length).toBeGreaterThan(10)
      expect(s.faultClass === 'none').toBe(s.faultOnsetS === undefined)
      // minutes each; the -hour variants first run the old version for an hour (bench/quality.ts, test/replay)
      expect(s.durationS).toBeLessThanOrEqual(s.name.includes('-hour-') ? 75 * 60 : 20 * 60)
    }
    expect(scenario('pre-existing-breach').expected).toBe('incident')
    expect(scenario('pre-existing-breach').faultOnsetS).toBeLessThan(scenario('pre-existing-breach').deployAtS)
  })
})

describe('sim record', () => {
  let canary: string[]
  beforeAll(async () => {
    canary = await recordToLines(scenario('canary-bad-10pct'))
  })

  it('is deterministic for a seed: same bytes twice, different bytes for another seed', async () => {
    const again = await recordToLines(scenario('canary-bad-10pct'))
    expect(again.join('\n')).toBe(canary.join('\n'))
    const other = await recordToLines(scenario('canary-bad-10pct'), { seed: 2 })
    expect(other.join('\n')).not.toBe(canary.join('\n'))
  })

  it('writes OTLP/JSON as the Collector file exporter does: hex ids, int64 as strings, enums as integers', () => {
    let traces = 0
    let metrics = 0
    for (const line of canary) {
      const req = JSON.parse(line) as Json
      const keys = Object.keys(req)
      expect(keys.length).toBe(1)
      if (keys[0] === 'resourceSpans') traces++
      else if (keys[0] === 'resourceMetrics') metrics++
      else throw new Error(`unexpected line ${line.slice(0, 80)}`)
    }
    expect(traces).toBeGreaterThan(100)
    expect(metrics).toBeGreaterThan(50)
    const spans = spansOf(canary)
    const sample = spans.slice(0, 2000)
    for (const s of sample) {
      expect(s.traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(s.spanId).toMatch(/^[0-9a-f]{16}$/)
      expect(s.kind).toBe(2) // SPAN_KIND_SERVER
      expect(s.endNs).toBeGreaterThan(s.startNs)
      expect(s.code).toBe(s.status >= 500 ? 2 : undefined) // STATUS_CODE_ERROR on 5xx only
    }
    // the raw text, not only the parsed values: int64 are quoted, enums are bare integers
    const line = canary.find((l) => l.startsWith('{"resourceSpans"'))!
    expect(line).toMatch(/"startTimeUnixNano":"\d{19}"/)
    expect(line).toMatch(/"intValue":"\d+"/)
    expect(line).toMatch(/"kind":2/)
    expect(line).not.toMatch(/"intValue":\d/)
    const mline = canary.find((l) => l.startsWith('{"resourceMetrics"'))!
    expect(mline).toMatch(/"asInt":"\d+"/)
    for (const name of ['k8s.pod.memory.working_set', 'k8s.pod.cpu.usage', 'k8s.container.memory_request', 'k8s.container.cpu_request', 'k8s.container.ready']) {
      expect(mline).toContain(`"name":"${name}"`)
    }
    const rattrs = attrs((JSON.parse(mline) as { resourceMetrics: { resource: { attributes: KV[] } }[] }).resourceMetrics[0]!.resource.attributes)
    for (const k of ['service.name', 'service.namespace', 'service.version', 'k8s.namespace.name', 'k8s.pod.name', 'container.image.tag']) {
      expect(rattrs[k], k).toBeTypeOf('string')
    }
  })

  it('round-trips through the opentelemetry-proto schema without losing a field', () => {
    const root = new protobuf.Root()
    root.resolvePath = (_origin, target) => PROTO_ROOT + target
    root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto'], {
      keepCase: false,
    })
    const T = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
    const M = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest')
    const hexToB64 = (k: string, v: unknown) => ((k === 'traceId' || k === 'spanId') && typeof v === 'string' ? Buffer.from(v, 'hex').toString('base64') : v)
    const b64ToHex = (k: string, v: unknown) => ((k === 'traceId' || k === 'spanId') && typeof v === 'string' ? Buffer.from(v, 'base64').toString('hex') : v)
    const opts = { longs: String, enums: Number, bytes: String, defaults: false, oneofs: false }
    const tl = canary.find((l) => l.startsWith('{"resourceSpans"'))!
    const ml = canary.find((l) => l.startsWith('{"resourceMetrics"'))!
    for (const [type, line] of [
      [T, tl],
      [M, ml],
    ] as const) {
      const obj = JSON.parse(line, hexToB64) as Json
      const msg = type.decode(type.encode(type.fromObject(obj)).finish())
      const back = JSON.parse(JSON.stringify(type.toObject(msg, opts)), b64ToHex) as unknown
      expect(back).toEqual(JSON.parse(line))
    }
  })

  it('optionally emits http.server.request.duration histograms, counts as int64 strings', async () => {
    const base = scenario('benign-deploy')
    const withHist: Scenario = { ...base, durationS: 60, build: (seed) => ({ ...base.build(seed), durationS: 60, histograms: true }) }
    const lines = await recordToLines(withHist)
    const line = lines.find((l) => l.includes('"http.server.request.duration"'))
    expect(line).toBeDefined()
    const req = JSON.parse(line!) as { resourceMetrics: { scopeMetrics: { metrics: { name: string; unit: string; histogram?: { aggregationTemporality: number; dataPoints: Json[] } }[] }[] }[] }
    const h = req.resourceMetrics.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics)).find((m) => m.name === 'http.server.request.duration')!
    expect(h.unit).toBe('s')
    expect(h.histogram!.aggregationTemporality).toBe(2) // cumulative
    const dp = h.histogram!.dataPoints[0]!
    expect(dp.count).toMatch(/^\d+$/)
    expect((dp.bucketCounts as unknown[]).every((c) => typeof c === 'string')).toBe(true)
    expect(dp.explicitBounds).toContain(0.25)
  })

  it('shows the deployment: the new service.version starts serving at the stated time, old and new overlap, canary weight holds', () => {
    const s = scenario('canary-bad-10pct')
    const spans = spansOf(canary).filter((x) => x.service === 'checkout')
    const fresh = spans.filter((x) => x.version === 'v1.5.0')
    const old = spans.filter((x) => x.version === 'v1.4.0')
    const first = Math.min(...fresh.map(sec))
    expect(first).toBeGreaterThanOrEqual(s.deployAtS)
    expect(first).toBeLessThan(s.deployAtS + 10)
    expect(Math.min(...old.map(sec))).toBeLessThan(1)
    // canary: old version keeps serving beside the new one, at ~90 % of traffic
    const after = spans.filter((x) => sec(x) > s.deployAtS + 30)
    const share = after.filter((x) => x.version === 'v1.5.0').length / after.length
    expect(share).toBeGreaterThan(0.07)
    expect(share).toBeLessThan(0.13)
    // the fault is on the canary only
    const errRate = (xs: FlatSpan[]) => xs.filter((x) => x.status >= 500).length / xs.length
    expect(errRate(after.filter((x) => x.version === 'v1.5.0'))).toBeGreaterThan(0.18)
    expect(errRate(after.filter((x) => x.version === 'v1.4.0'))).toBeLessThan(0.01)
  })

  it('rolls out pod by pod: the old version stops serving after an overlap', async () => {
    const s = scenario('benign-deploy')
    const spans = spansOf(await recordToLines(s)).filter((x) => x.service === 'checkout')
    const lastOld = Math.max(...spans.filter((x) => x.version === 'v1.4.0').map(sec))
    const firstNew = Math.min(...spans.filter((x) => x.version === 'v1.5.0').map(sec))
    expect(firstNew).toBeGreaterThanOrEqual(s.deployAtS)
    expect(lastOld).toBeGreaterThan(firstNew + 30) // overlap
    expect(lastOld).toBeLessThan(s.deployAtS + 120)
    expect(new Set(spans.filter((x) => x.version === 'v1.5.0').map((x) => x.pod)).size).toBe(4)
  })

  it('reports readiness failures of the new version in probe-failure, and a telemetry gap in telemetry-outage', async () => {
    const probe = await recordToLines(scenario('probe-failure'))
    let notReadyNew = 0
    for (const line of probe) {
      const req = JSON.parse(line) as { resourceMetrics?: { resource: { attributes: KV[] }; scopeMetrics: { metrics: { name: string; gauge?: { dataPoints: Json[] } }[] }[] }[] }
      for (const rm of req.resourceMetrics ?? []) {
        const r = attrs(rm.resource.attributes)
        for (const m of rm.scopeMetrics[0]!.metrics) {
          if (m.name !== 'k8s.container.ready') continue
          const dp = m.gauge!.dataPoints[0]!
          const t = Number(BigInt(dp.timeUnixNano as string) / 1_000_000n - BigInt(DEFAULT_START_MS)) / 1000
          if (r['service.version'] === 'v1.5.0' && dp.asInt === '0' && t > 300) notReadyNew++
          if (r['service.version'] === 'v1.4.0') expect(dp.asInt).toBe('1')
        }
      }
    }
    expect(notReadyNew).toBeGreaterThan(10)
    const gap = spansOf(await recordToLines(scenario('telemetry-outage')))
    expect(gap.filter((x) => sec(x) > 305 && sec(x) < 383)).toHaveLength(0)
    expect(gap.filter((x) => sec(x) > 395 && sec(x) < 420).length).toBeGreaterThan(100)
  })
})

/** a scenario cut short (the knobs under test show in the first minutes) */
function short(name: string, durationS: number): Scenario {
  const base = scenario(name)
  return { ...base, durationS, build: (seed) => ({ ...base.build(seed), durationS }) }
}

interface MetricsReq {
  resourceMetrics: { resource: { attributes: KV[] }; scopeMetrics: { metrics: { name: string; histogram?: { dataPoints: Json[] }; gauge?: { dataPoints: Json[] } }[] }[] }[]
}

function exportsOf(lines: string[]): { attrs: Record<string, unknown>; raw: string; atS: number; requests: number }[] {
  const out: { attrs: Record<string, unknown>; raw: string; atS: number; requests: number }[] = []
  for (const line of lines) {
    if (!line.startsWith('{"resourceMetrics"')) continue
    for (const rm of (JSON.parse(line) as MetricsReq).resourceMetrics) {
      const metrics = rm.scopeMetrics.flatMap((sm) => sm.metrics)
      const g = metrics.find((m) => m.gauge !== undefined)!.gauge!.dataPoints[0]!
      const h = metrics.find((m) => m.name === 'http.server.request.duration')?.histogram
      out.push({
        attrs: attrs(rm.resource.attributes),
        raw: JSON.stringify(rm.resource.attributes),
        atS: Number(BigInt(g.timeUnixNano as string) / 1_000_000n - BigInt(DEFAULT_START_MS)) / 1000,
        requests: (h?.dataPoints ?? []).reduce((a, dp) => a + Number(dp.count), 0),
      })
    }
  }
  return out
}

describe('scenario library: real-telemetry variants (issue 10)', () => {
  const ORIGINAL: Record<string, string> = {
    'error-spike': 'rollback',
    'error-spike-rolled-back': 'rollback+recovered',
    'latency-regression': 'rollback',
    'memory-leak-leads-errors': 'rollback',
    'gradual-memory-leak': 'none',
    'probe-failure': 'rollback',
    'benign-deploy': 'none',
    'traffic-spike': 'none',
    'deploy-during-traffic-spike': 'none',
    'cold-start-spike': 'none',
    'low-traffic-two-errors': 'none',
    'pre-existing-breach': 'incident',
    'slow-latency-creep': 'rollback',
    'canary-bad-10pct': 'rollback',
    'canary-good': 'none',
    'latent-defect-prior-version': 'rollback+not-recovered',
    'flapping-single-signal': 'none',
    'telemetry-outage': 'none',
  }

  it('keeps the 18 tuned scenarios and their verdicts, and labels every variant', () => {
    const tuned = SCENARIOS.filter((s) => s.tuned)
    expect(Object.fromEntries(tuned.map((s) => [s.name, s.expected]))).toEqual(ORIGINAL)
    for (const s of tuned) expect(s.telemetry).toEqual({ spans: true, metrics: false, metricExportS: 10, podIdentity: true, sampledSpans: false })
    const variants = SCENARIOS.filter((s) => !s.tuned)
    expect(variants.map((s) => s.name).sort()).toEqual(
      [
        'metrics-60s-bad-deploy',
        'metrics-60s-benign-deploy',
        'metrics-15s-bad-deploy',
        'metrics-15s-benign-deploy',
        'metrics-30s-bad-deploy',
        'metrics-30s-benign-deploy',
        'spans-and-metrics-bad-deploy',
        'spans-and-metrics-benign-deploy',
        'spans-and-metrics-head-sampled-bad-deploy',
        'spans-and-metrics-head-sampled-benign-deploy',
        'spans-and-metrics-tail-sampled-bad-deploy',
        'spans-and-metrics-tail-sampled-benign-deploy',
        'low-traffic-60s-bad-deploy',
        'low-traffic-60s-benign-deploy',
        'low-traffic-60s-hour-bad-deploy',
        'low-traffic-60s-hour-benign-deploy',
        'replicas-no-identity-bad-deploy',
        'replicas-no-identity-benign-deploy',
        'fast-failures-no-latency',
        'traffic-spike-60s',
        'mild-pre-existing-breach',
        'long-pre-existing-breach',
      ].sort(),
    )
    for (const s of variants) {
      expect(['rollback', 'none', 'incident']).toContain(s.expected)
      expect(s.faultOnsetS === undefined).toBe(s.expected === 'none')
    }
    // the long breach predates the deployment by more than the signal store's 10 min retention
    const long = scenario('long-pre-existing-breach')
    expect(long.deployAtS - long.faultOnsetS!).toBeGreaterThan(600)
    const mild = scenario('mild-pre-existing-breach')
    expect(mild.deployAtS - mild.faultOnsetS!).toBe(300)
  })

  it('sampled spans: a head sampler keeps whole traces at its ratio; tail sampling keeps every failed request', async () => {
    const base = short('spans-and-metrics-benign-deploy', 300)
    const as = (spanSampling: FleetSpec['spanSampling']): Scenario => ({ ...base, build: (seed) => ({ ...base.build(seed), spanSampling }) })
    const spans = (lines: string[]) => {
      const out: { trace: string; error: boolean }[] = []
      for (const l of lines) {
        if (!l.startsWith('{"resourceSpans"')) continue
        const req = JSON.parse(l) as { resourceSpans: { scopeSpans: { spans: { traceId: string; status?: { code?: number } }[] }[] }[] }
        for (const rs of req.resourceSpans) for (const ss of rs.scopeSpans) for (const sp of ss.spans) out.push({ trace: sp.traceId, error: sp.status?.code === 2 })
      }
      return out
    }
    // the same seed and scenario name: the same requests, so the sampled recordings are subsets of the full one
    const all = spans(await recordToLines(base))
    const head = spans(await recordToLines(as({ mode: 'head', ratio: 0.1 })))
    const tail = spans(await recordToLines(as({ mode: 'tail-errors', ratio: 0.1 })))
    const traces = new Set(all.map((s) => s.trace))
    expect(head.every((s) => traces.has(s.trace))).toBe(true)
    expect(head.length / all.length).toBeGreaterThan(0.08)
    expect(head.length / all.length).toBeLessThan(0.12)
    const errors = all.filter((s) => s.error).length
    expect(errors).toBeGreaterThan(10)
    expect(tail.filter((s) => s.error).length).toBe(errors)
    expect((tail.length - errors) / (all.length - errors)).toBeGreaterThan(0.08)
    expect((tail.length - errors) / (all.length - errors)).toBeLessThan(0.12)
  })

  it('metrics only every 60 s: no spans; each pod exports on its own schedule, one interval apart', async () => {
    const lines = await recordToLines(short('metrics-60s-benign-deploy', 200))
    expect(lines.some((l) => l.startsWith('{"resourceSpans"'))).toBe(false)
    const checkout = exportsOf(lines).filter((e) => e.attrs['service.name'] === 'checkout')
    const byPod = new Map<string, number[]>()
    for (const e of checkout) byPod.set(String(e.attrs['k8s.pod.name']), [...(byPod.get(String(e.attrs['k8s.pod.name'])) ?? []), e.atS])
    expect(byPod.size).toBe(4)
    for (const times of byPod.values()) {
      expect(times.length).toBeGreaterThanOrEqual(3)
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(60)
    }
    // phases are the pods' own, not one shared tick
    expect(new Set([...byPod.values()].map((t) => t[0]! % 60)).size).toBeGreaterThan(1)
    // cumulative: a pod's request count never decreases
    for (const pod of byPod.keys()) {
      const counts = checkout.filter((e) => e.attrs['k8s.pod.name'] === pod).map((e) => e.requests)
      expect([...counts].sort((a, b) => a - b)).toEqual(counts)
      expect(counts.at(-1)).toBeGreaterThan(1000)
    }
  })

  it('replicas without identity: two pods export under identical resource attributes', async () => {
    const lines = await recordToLines(short('replicas-no-identity-benign-deploy', 40))
    const checkout = exportsOf(lines).filter((e) => e.attrs['service.name'] === 'checkout')
    expect(new Set(checkout.map((e) => e.raw)).size).toBe(1)
    expect(checkout[0]!.attrs).not.toHaveProperty('k8s.pod.name')
    expect(checkout[0]!.attrs).not.toHaveProperty('service.instance.id')
    // two pods every 10 s over 40 s: eight exports of two separate cumulative streams
    expect(checkout.length).toBeGreaterThanOrEqual(7)
    expect(checkout.length).toBeLessThanOrEqual(9)
  })

  it('spans and metrics from the same SDK count the same requests', async () => {
    const lines = await recordToLines(short('spans-and-metrics-benign-deploy', 125))
    const spans = spansOf(lines).filter((x) => x.service === 'checkout' && sec(x) < 120)
    // every pod's cumulative count at its last export by 120 s, plus nothing after: compare totals
    const last = new Map<string, { atS: number; requests: number }>()
    for (const e of exportsOf(lines)) {
      if (e.attrs['service.name'] !== 'checkout' || e.atS > 120) continue
      const pod = String(e.attrs['k8s.pod.name'])
      if ((last.get(pod)?.atS ?? -1) < e.atS) last.set(pod, { atS: e.atS, requests: e.requests })
    }
    const counted = [...last.values()].reduce((a, x) => a + x.requests, 0)
    const spansBefore = spans.filter((x) => sec(x) < Math.min(...[...last.values()].map((v) => v.atS))).length
    expect(counted).toBeGreaterThan(spansBefore)
    expect(counted).toBeLessThanOrEqual(spans.length + 10)
  })

  it('per-pod span exports: one line per pod on its own millisecond phase, every span exactly once', async () => {
    const sc = short('error-spike', 200)
    const atS: number[] = []
    const lines: string[] = []
    await recordScenario(sc, { spanSchedule: 'per-pod', onLine: (l) => lines.push(l), onExport: (e) => (e.kind === 'spans' ? atS.push(e.atS) : undefined) })
    const spanLines = lines.filter((l) => l.startsWith('{"resourceSpans"'))
    expect(spanLines.length).toBe(atS.length)
    // the same requests as the aligned recording, none lost, none twice
    const aligned = spansOf(await recordToLines(sc)).map((x) => x.spanId)
    const perPod = spansOf(spanLines).map((x) => x.spanId)
    expect(new Set(perPod).size).toBe(perPod.length)
    expect([...perPod].sort()).toEqual([...aligned].sort())
    const byPod = new Map<string, number[]>()
    spanLines.forEach((line, i) => {
      const spans = spansOf([line])
      const pods = new Set(spans.map((x) => x.pod))
      expect(pods.size).toBe(1)
      // a line holds only spans ended by its export time
      const at = BigInt(DEFAULT_START_MS) * 1_000_000n + BigInt(Math.round(atS[i]! * 1000)) * 1_000_000n
      for (const x of spans) expect(x.endNs <= at).toBe(true)
      const pod = [...pods][0]!
      byPod.set(pod, [...(byPod.get(pod) ?? []), atS[i]!])
    })
    // a pod serving throughout exports every 5 s on its phase; phases differ and are not whole seconds
    const steady = [...byPod.entries()].filter(([, times]) => times[0]! <= 5 && times.at(-1)! >= 195)
    expect(steady.length).toBeGreaterThan(3)
    for (const [, times] of steady) {
      const gaps = times.slice(1).map((t, i) => +(t - times[i]!).toFixed(3))
      expect(gaps.filter((g) => g === 5).length).toBeGreaterThanOrEqual(gaps.length - 1)
    }
    const phases = new Set(steady.map(([, times]) => Math.round((times[0]! % 5) * 1000)))
    expect(phases.size).toBeGreaterThan(steady.length / 2)
    expect([...phases].some((p) => p % 1000 !== 0)).toBe(true)
    expect(atS).toEqual([...atS].sort((a, b) => a - b))
  })
})
