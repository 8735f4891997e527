/**
 * Cost of the identity check on the ingest path (src/identity, issue 13 item 4): per resource, in
 * enforce mode, with a node's worth of pods (110, the kubelet default maximum) and, for the map's
 * sake, maxPods (10,000) indexed. The consumer behind it does nothing, so the figure is the check's
 * own: association by peer IP, the four comparisons, and the copy that fills missing attributes.
 *
 *   node dist/bench/identity.js [--rounds 5]
 *
 * Target: under 2 us per resource (a 50-resource request under 0.1 ms), which keeps it below 5 % of
 * the decode + normalize cost of a typical span request (bench/ingest.ts).
 */
import { parseArgs } from 'node:util'
import { IdentityCheck, identityConsumer, type PodLookup } from '../src/identity/check.js'
import type { PodInfo } from '../src/identity/pods.js'
import type { ConsumeResult, TelemetryConsumer } from '../src/receivers/consumer.js'
import type { Attributes, TracesRequest } from '../src/receivers/otlp/model.js'
import { spread, type Spread } from './stats.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } })
const ROUNDS = Number(values.rounds)
const TARGET_US = 2

function index(n: number): PodLookup {
  const byIp = new Map<string, PodInfo[]>()
  const byUid = new Map<string, PodInfo>()
  for (let i = 0; i < n; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    const p: PodInfo = { uid: `uid-${i}`, namespace: `ns-${i % 20}`, name: `svc-${i % 50}-${i}`, ips: [ip], hostNetwork: false, labels: { 'app.kubernetes.io/name': `svc-${i % 50}`, 'app.kubernetes.io/version': '1.0.0' } }
    byIp.set(ip, [p])
    byUid.set(p.uid, p)
  }
  return { synced: () => true, byIp: (ip) => byIp.get(ip) ?? [], byUidOf: (u) => byUid.get(u) }
}

const sink: TelemetryConsumer = {
  consumeTraces: (r: TracesRequest): ConsumeResult => ({ accepted: r.resourceSpans.length, rejected: 0 }),
  consumeMetrics: () => ({ accepted: 0, rejected: 0 }),
}

function request(resources: number, attrs: (i: number) => Attributes): TracesRequest {
  return { resourceSpans: Array.from({ length: resources }, (_, i) => ({ resource: attrs(i), spans: [{ kind: 2, endTimeMs: 1, durationUs: 1, statusCode: 0, httpStatus: 200 }] })) }
}

/** every measurement's rounds as min / median / max (microseconds per resource), printed as one JSON line at the end */
const figures: Record<string, Spread & { unit: string }> = {}

function measure(label: string, pods: number, req: TracesRequest, peer: string): void {
  const consumer = identityConsumer(new IdentityCheck({ mode: 'enforce', pods: index(pods), serviceLabels: ['app.kubernetes.io/name'], versionLabels: ['app.kubernetes.io/version'], forwarders: [] }), sink)
  const origin = { transport: 'otlp' as const, peer }
  const perResource: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const iterations = 20_000
    for (let i = 0; i < 2000; i++) consumer.consumeTraces(req, origin) // warm-up
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) consumer.consumeTraces(req, origin)
    const ns = Number(process.hrtime.bigint() - t0)
    perResource.push(ns / iterations / req.resourceSpans.length / 1000)
  }
  const s = spread(perResource)
  console.log(`${label.padEnd(58)} us/resource min ${s.min.toFixed(3)} median ${s.median.toFixed(3)} max ${s.max.toFixed(3)} (${ROUNDS} rounds) ${s.median <= TARGET_US ? 'OK' : `MISSED (target ${TARGET_US})`}`)
  if (s.median > TARGET_US) process.exitCode = 1
  figures[label] = { ...s, unit: 'us' }
}

const peer = '10.0.0.7:40000' // pod svc-7-7 in ns-7
// an SDK-shaped resource with nothing to fill but the pod attributes
measure('110 pods, 50 resources, filled (SDK resource)', 110, request(50, () => ({ 'service.name': 'svc-7', 'service.version': '1.0.0', 'telemetry.sdk.language': 'nodejs' })), peer)
// k8sattributes-shaped resource: everything present, accepted as is
measure('110 pods, 50 resources, complete (accepted as is)', 110, request(50, () => ({ 'service.name': 'svc-7', 'service.version': '1.0.0', 'k8s.namespace.name': 'ns-7', 'k8s.pod.name': 'svc-7-7', 'k8s.pod.uid': 'uid-7' })), peer)
// the attack: every resource rejected
measure('110 pods, 50 resources, rejected (namespace)', 110, request(50, () => ({ 'service.name': 'svc-7', 'service.namespace': 'shop' })), peer)
measure('10,000 pods, 50 resources, filled', 10_000, request(50, () => ({ 'service.name': 'svc-7', 'service.version': '1.0.0' })), peer)
console.log(JSON.stringify({ bench: 'identity', rounds: ROUNDS, figures }))
