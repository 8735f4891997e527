/**
 * Partial traffic per node (issue 12): what an ingest node ships to the deciders instead of raw
 * telemetry, from measured encoded sizes. Build with `npm run build`, run with
 * `node dist/bench/partials.js [--minutes 10] [--runs 3]`.
 *
 * For each traffic profile, one (service, version, pod) of one node is simulated for `--minutes` of
 * telemetry time through the real PartialAggregator (src/partials; spans by the normalizer's fast
 * path, `series(key).recordRequest`, as on a live node), its clock advanced every second
 * as a live sidecar's wall clock is, and every batch it emits is encoded with the real wire codec
 * (`encodeBatch`, one batch per service as the broker path publishes it: one record per service
 * keyed namespace/service). Profiles:
 *   - spans at 1, 10, 100 and 1,000 requests/s (SERVER spans, lognormal latency, median 20 ms,
 *     1 % errors), with resource readings (memory and cpu, every 10 s: the kubeletstats receiver's
 *     default collection interval) and readiness probe readings (every 10 s: Kubernetes' default
 *     probe period);
 *   - metrics only, `http.server.request.duration` every 60 s (the OTel SDK default) with the SDK's
 *     default explicit buckets, plus the same resource and probe readings.
 * Printed per profile: payload bytes/s per active series, min/median/max over `--runs` seeds; plus the
 * heartbeat bytes (a batch with no partials, sent to every partition each bucket) and the totals for
 * 10,000 services x 3 pods over 100 nodes. Payload only: Kafka's record framing (about 70 bytes a
 * record before batching and compression) is added per record in the totals and said so.
 */
import { PartialAggregator } from '../src/partials/aggregator.js'
import { encodeBatch } from '../src/partials/codec.js'
import type { PartialBatch } from '../src/partials/types.js'
import type { Observation, SeriesKey } from '../src/normalize/observations.js'
import { Rng } from '../src/sim/random.js'
import { fmtSpread, spread } from './stats.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const BUCKET_MS = 5_000
const LATENESS_MS = 10_000
const T0 = 1_767_225_600_000
const RECORD_OVERHEAD = 70
/** OTel SDK default explicit bucket bounds of http.server.request.duration, in ms */
const SDK_BOUNDS_MS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name)
  const v = i >= 0 ? Number(process.argv[i + 1]) : def
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`)
  return v
}

interface Profile {
  name: string
  /** span requests per second; 0 = metrics only */
  rps: number
  /** metrics export interval (ms) when metrics only */
  metricsEveryMs?: number
  metricsRps?: number
}

const PROFILES: Profile[] = [
  { name: 'spans 1 req/s', rps: 1 },
  { name: 'spans 10 req/s', rps: 10 },
  { name: 'spans 100 req/s', rps: 100 },
  { name: 'spans 1000 req/s', rps: 1000 },
  { name: 'metrics 60 s, 100 req/s', rps: 0, metricsEveryMs: 60_000, metricsRps: 100 },
]

const KEY: SeriesKey = { namespace: 'shop', service: 'checkout', version: 'v1.4.0' }
const POD = 'checkout-6d9f8b7c5-x2k4q'

function latencyUs(rng: Rng): number {
  return Math.exp(Math.log(20_000) + 0.6 * rng.normal())
}

/** payload bytes over the run (batches with partials only) and the number of such batches */
function simulate(p: Profile, minutes: number, seed: number): { bytes: number; records: number; heartbeatBytes: number } {
  const rng = new Rng(seed)
  let bytes = 0
  let records = 0
  let heartbeatBytes = 0
  const emit = (b: PartialBatch) => {
    const size = encodeBatch(b).length
    if (b.partials.length === 0) heartbeatBytes = size
    else {
      bytes += size
      records += 1
    }
  }
  const agg = new PartialAggregator({ node: 'node-17.eu-west-1.compute.internal', bucketMs: BUCKET_MS, lateness: LATENESS_MS, emit })
  const end = T0 + minutes * 60_000
  let lastMetric = T0
  // SERVER spans take the normalizer's fast path into the aggregator, as on a live node (same partials as observations)
  const spans = agg.series(KEY)
  const spanT: number[] = []
  const spanErr: boolean[] = []
  const spanUs: number[] = []
  for (let sec = T0; sec < end; sec += 1000) {
    const obs: Observation[] = []
    spanT.length = spanErr.length = spanUs.length = 0
    if (p.rps > 0) {
      // Poisson-ish arrivals: the count per second varies, times spread over the second
      const n = Math.max(0, Math.round(p.rps + Math.sqrt(p.rps) * rng.normal()))
      for (let i = 0; i < n; i++) {
        spanT.push(sec + rng.next() * 1000)
        spanErr.push(rng.next() < 0.01)
        spanUs.push(latencyUs(rng))
      }
    }
    if (p.metricsEveryMs !== undefined && sec - lastMetric >= p.metricsEveryMs) {
      const total = Math.round(((p.metricsRps ?? 0) * (sec - lastMetric)) / 1000)
      const counts = new Array<number>(SDK_BOUNDS_MS.length + 1).fill(0)
      for (let i = 0; i < total; i++) {
        const ms = latencyUs(rng) / 1000
        let b = SDK_BOUNDS_MS.findIndex((x) => ms <= x)
        if (b < 0) b = SDK_BOUNDS_MS.length
        counts[b] = (counts[b] ?? 0) + 1
      }
      const values: number[] = []
      const vcounts: number[] = []
      counts.forEach((c, i) => {
        if (c === 0) return
        const lo = i === 0 ? 0 : SDK_BOUNDS_MS[i - 1]!
        const hi = SDK_BOUNDS_MS[i] ?? lo * 2
        values.push(((lo + hi) / 2) * 1000)
        vcounts.push(c)
      })
      obs.push({ kind: 'request', key: KEY, timeMs: sec, startMs: lastMetric, count: total, errors: Math.round(total * 0.01), latenciesUs: values, latencyCounts: vcounts })
      lastMetric = sec
    }
    if ((sec - T0) % 10_000 === 0) {
      obs.push({ kind: 'resource', key: KEY, pod: POD, resource: 'memory', timeMs: sec, value: 2.1e8 + rng.next() * 1e6, request: 2.68e8 })
      obs.push({ kind: 'resource', key: KEY, pod: POD, resource: 'cpu', timeMs: sec, value: 0.2 + rng.next() * 0.05, request: 0.5 })
      obs.push({ kind: 'probe', key: KEY, pod: POD, container: 'app', timeMs: sec, ready: true })
    }
    for (let i = 0; i < spanT.length; i++) spans.recordRequest(spanT[i]!, spanUs[i]!, spanErr[i]!)
    for (const o of obs) agg.record(o)
    agg.advance(sec + 1000)
  }
  agg.flush()
  return { bytes, records, heartbeatBytes }
}

function mmm(xs: number[]): string {
  return fmtSpread(spread(xs), (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)))
}

function human(bytesPerS: number): string {
  if (bytesPerS >= 1e6) return `${(bytesPerS / 1e6).toFixed(2)} MB/s`
  if (bytesPerS >= 1e3) return `${(bytesPerS / 1e3).toFixed(1)} kB/s`
  return `${bytesPerS.toFixed(0)} B/s`
}

function main(): void {
  const minutes = arg('--minutes', 10)
  const runs = arg('--runs', 3)
  const seconds = minutes * 60
  console.log(`partials: ${minutes} min of telemetry per run, ${runs} runs, bucket ${BUCKET_MS / 1000} s, encoded with the v1 wire codec`)
  console.log('profile                      payload B/s per series (min / median / max)   records/s   B/record (median)')
  const rows: { p: Profile; median: number; recPerS: number }[] = []
  let heartbeat = 0
  for (const p of PROFILES) {
    const per: number[] = []
    const recs: number[] = []
    for (let r = 0; r < runs; r++) {
      const x = simulate(p, minutes, 1000 + r)
      per.push(x.bytes / seconds)
      recs.push(x.records / seconds)
      heartbeat = x.heartbeatBytes
    }
    const median = [...per].sort((a, b) => a - b)[Math.floor(per.length / 2)]!
    const recPerS = [...recs].sort((a, b) => a - b)[Math.floor(recs.length / 2)]!
    rows.push({ p, median, recPerS })
    console.log(`${p.name.padEnd(28)} ${mmm(per).padEnd(46)} ${recPerS.toFixed(2).padStart(9)}   ${(median / recPerS).toFixed(0).padStart(8)}`)
  }
  console.log(`heartbeat batch (no partials): ${heartbeat} B, sent to every partition each ${BUCKET_MS / 1000} s`)
  const services = 10_000
  const pods = 3
  const nodes = 100
  const partitions = 48
  const series = services * pods
  console.log(`\ntotals for ${services} services x ${pods} pods (${series} series) over ${nodes} nodes, ${partitions} partitions, framing ${RECORD_OVERHEAD} B/record added:`)
  const hb = (nodes * partitions * (heartbeat + RECORD_OVERHEAD)) / (BUCKET_MS / 1000)
  for (const r of rows) {
    const data = series * (r.median + r.recPerS * RECORD_OVERHEAD)
    console.log(`  all at "${r.p.name}": ${human(data + hb)} in total (${human((data + hb) / nodes)} per node; heartbeats ${human(hb)} of it)`)
  }
}

main()
