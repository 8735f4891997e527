/**
 * Cardinality benchmark (issue 4: "resident memory under 512 MiB while 1,000,000 distinct service
 * names arrive; overflow counted; watched services unaffected"). Build with `npm run build`, run
 * with `node dist/bench/cardinality.js` (options: --names N, default 1,000,000; --batch N names per
 * OTLP request, default 5,000).
 *
 * Two child processes run the same telemetry through the Pipeline (Normalizer + SignalStore +
 * engine, src/runtime/pipeline.ts) from decoded OTLP spans, with ticks every 5 s of telemetry time:
 * - a watched service `shop/checkout`: v1 for 6 minutes, then v2 (a deployment the engine detects,
 *   watches and pins), 20 requests/s;
 * - in the flood run only: from 60 s before the deployment (so the store is already full of flood
 *   series when v2 first appears and needs a series: issue 11 item 2) until 170 s after it, N
 *   distinct service names arrive, one SERVER span each.
 * Each child prints its peak RSS and a summary of the watched service (its windows, per-bucket
 * numbers and quantiles, and the engine's statuses); the parent compares the two summaries.
 * Default limits (signals.maxSeries 20,000, reserveForKnown 20 %) apply: the flood fills the store up
 * to maxSeries minus the reserve and the rest is counted in `overflowed` (`overflowUnknown`); v2 of
 * the known service takes a reserved place.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Pipeline } from '../src/runtime/pipeline.js'
import { defaultEngineConfig } from '../src/engine/config.js'
import type { DecodedSpan, ResourceSpansLite, TracesRequest } from '../src/receivers/otlp/model.js'
import type { SeriesKey } from '../src/normalize/observations.js'
import type { WatchStatus } from '../src/engine/evaluate.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const T0 = 1_767_225_600_000 // the deployment of v2 (minute aligned)
const S = 1000

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : def
}

function rng(seed: number): () => number {
  let s = seed
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
}

function span(endTimeMs: number, durationUs: number, error: boolean): DecodedSpan {
  return { kind: 2, endTimeMs, durationUs, statusCode: error ? 2 : 0, httpStatus: error ? 503 : 200 }
}

interface Summary {
  windows: unknown[]
  statuses: unknown[]
  verdicts: number
}

function child(flood: boolean, names: number, batch: number): void {
  const cfg = defaultEngineConfig()
  const p = new Pipeline({ engine: cfg })
  const rnd = rng(7)
  const floodRnd = rng(11)
  const watched = (version: string): ResourceSpansLite => ({
    resource: { 'service.name': 'checkout', 'k8s.namespace.name': 'shop', 'service.version': version, 'k8s.pod.name': `checkout-${version}-0` },
    spans: [],
  })
  const statuses: WatchStatus[] = []
  let verdicts = 0
  let peakRss = 0
  const sampleRss = () => {
    const r = process.memoryUsage.rss()
    if (r > peakRss) peakRss = r
  }
  // flood: names spread evenly over [T0 - 60 s, T0 + 170 s)
  const floodFrom = T0 - 60 * S
  const floodTo = T0 + 170 * S
  const perSecond = Math.ceil(names / ((floodTo - floodFrom) / S))
  let sent = 0
  const t0 = performance.now()
  for (let sec = -360; sec < 180; sec++) {
    const t = T0 + sec * S
    // one second of the watched service: 20 requests, 1 % errors, ~20 ms
    const rs = watched(sec < 0 ? 'v1' : 'v2')
    for (let j = 0; j < 20; j++) rs.spans.push(span(t + j * 50 + 25, 20_000 * Math.exp(0.5 * (rnd() - 0.5)), rnd() < 0.01))
    p.consumeTraces({ resourceSpans: [rs] })
    if (flood && t >= floodFrom && t < floodTo) {
      let left = Math.min(perSecond, names - sent)
      while (left > 0) {
        const n = Math.min(batch, left)
        const req: TracesRequest = { resourceSpans: [] }
        for (let k = 0; k < n; k++) {
          const i = sent + k
          req.resourceSpans.push({
            resource: { 'service.name': `flood-${i}`, 'k8s.namespace.name': `tenant-${i % 1000}`, 'service.version': `1.0.${i % 7}`, 'k8s.pod.name': `flood-${i}-0` },
            spans: [span(t + floodRnd() * 999, 1000 + floodRnd() * 50_000, floodRnd() < 0.05)],
          })
        }
        p.consumeTraces(req)
        sent += n
        left -= n
        sampleRss()
      }
    }
    if ((sec + 1) % 5 === 0) {
      const now = t + S
      const out = p.tick(now, now - cfg.lateness)
      verdicts += out.verdicts.length
      for (const s of out.statuses) if (s.service === 'checkout') statuses.push(s)
      sampleRss()
    }
  }
  const elapsed = (performance.now() - t0) / 1000
  const st = p.store.stats()
  const end = T0 + 175 * S
  const windows: unknown[] = []
  for (const version of ['v1', 'v2']) {
    const key: SeriesKey = { namespace: 'shop', service: 'checkout', version }
    for (const [from, to] of [
      [end - 30 * S, end],
      [T0 - 300 * S, T0],
      [T0, end],
    ] as const) {
      const w = p.store.window(key, from, to)
      windows.push({
        version,
        from: from - T0,
        to: to - T0,
        requests: w.requests,
        errors: w.errors,
        latency: [w.latency.count, ...[0.5, 0.9, 0.99, 1].map((q) => w.latency.valueAtQuantile(q))],
        buckets: w.buckets.map((b) => [b.startMs - T0, b.endMs - T0, b.requests, b.errors, b.latencyCount, b.latencyAtQuantile(0.99)]),
      })
    }
  }
  const summary: Summary = {
    windows,
    statuses: statuses.map((s) => [s.t - T0, s.status, s.signals.map((r) => [r.signal, r.state, r.value, r.samples])]),
    verdicts,
  }
  const ps = p.stats()
  process.stdout.write(
    `RESULT ${JSON.stringify({
      flood,
      names: sent,
      peakRssMiB: peakRss / 2 ** 20,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      heapUsedMiB: process.memoryUsage().heapUsed / 2 ** 20,
      seconds: elapsed,
      series: st.series,
      overflowed: st.overflowed,
      overflowUnknown: st.overflowUnknown,
      overflowFull: st.overflowFull,
      evicted: st.evicted,
      overflowRequests: st.overflowRequests,
      expired: st.expired,
      versionsDropped: st.versionsDropped,
      watched: ps.watched,
      pinned: st.pinned,
      summary,
    })}\n`,
  )
  p.shutdown()
}

interface Result {
  flood: boolean
  names: number
  peakRssMiB: number
  maxRssMiB: number
  heapUsedMiB: number
  seconds: number
  series: number
  overflowed: number
  overflowUnknown: number
  overflowFull: number
  evicted: number
  overflowRequests: number
  expired: number
  versionsDropped: number
  watched: number
  pinned: number
  summary: Summary
}

function main(): void {
  const names = arg('--names', 1_000_000)
  const batch = arg('--batch', 5_000)
  const mode = process.argv[2]
  if (mode === '--child') return child(process.argv[3] === 'flood', names, batch)
  const self = fileURLToPath(import.meta.url)
  const results: Result[] = []
  for (const m of ['quiet', 'flood']) {
    const r = spawnSync(process.execPath, [self, '--child', m, '--names', String(names), '--batch', String(batch)], { encoding: 'utf8', maxBuffer: 1 << 26 })
    if (r.status !== 0) {
      process.stderr.write(`child ${m} failed (${r.status}): ${r.stderr}\n`)
      process.exitCode = 1
      return
    }
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '))
    if (line === undefined) throw new Error(`child ${m} printed no result`)
    results.push(JSON.parse(line.slice(7)) as Result)
  }
  const [quiet, flood] = results as [Result, Result]
  const same = JSON.stringify(quiet.summary) === JSON.stringify(flood.summary)
  const lines = [
    `cardinality: ${flood.names.toLocaleString('en')} distinct service names through Pipeline (Normalizer + SignalStore + engine), default limits`,
    `  peak RSS with the flood: ${flood.peakRssMiB.toFixed(0)} MiB (process max RSS ${flood.maxRssMiB.toFixed(0)} MiB), without: ${quiet.peakRssMiB.toFixed(0)} MiB; target < 512 MiB: ${flood.maxRssMiB < 512 ? 'PASS' : 'FAIL'}`,
    `  series kept: ${flood.series} (maxSeries 20,000), overflowed observations counted: ${flood.overflowed.toLocaleString('en')} (${flood.overflowRequests.toLocaleString('en')} requests; unknown services ${flood.overflowUnknown.toLocaleString('en')}, store full ${flood.overflowFull}), evicted: ${flood.evicted}, expired: ${flood.expired}, new-version events dropped: ${flood.versionsDropped}`,
    `  watched deployments: ${flood.watched} (pinned series ${flood.pinned}); statuses of the watched service: ${flood.summary.statuses.length}, verdicts: ${flood.summary.verdicts}`,
    `  watched service's windows, buckets, quantiles and engine statuses identical to the run without the flood: ${same ? 'YES' : 'NO'}`,
    `  flood run took ${flood.seconds.toFixed(1)} s (${(flood.names / flood.seconds / 1000).toFixed(0)} k names/s incl. ticks)`,
  ]
  process.stdout.write(lines.join('\n') + '\n')
  if (!same) process.exitCode = 1
}

main()
