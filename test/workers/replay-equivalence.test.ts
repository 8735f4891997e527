/**
 * Decode workers change nothing downstream: a scenario recording (src/sim) is sent line by line
 * through the real OTLP/gRPC receiver into a Pipeline, once decoding inline (receivers.workers 0)
 * and once in 2 worker threads; the verdicts, every tick's statuses, the store's and the
 * normalizer's counters and every series' windows must be identical. Metrics lines go through the
 * same receiver (decoded inline either way), so the span-source preference between the two paths
 * is exercised too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as grpc from '@grpc/grpc-js'
import { parseConfig } from '../../src/config/load.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { OtlpGrpcReceiver, metricsServiceDefinition, traceServiceDefinition } from '../../src/receivers/otlp-grpc/receiver.js'
import { decodeMetricsJson, decodeTracesJson } from '../../src/receivers/otlp/json.js'
import { seriesKeyOf } from '../../src/normalize/normalizer.js'
import type { SeriesKey } from '../../src/normalize/observations.js'
import { alignDown } from '../../src/signals/view.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { WorkerPool } from '../../src/workers/pool.js'
import { MetricsReq, TraceReq } from '../receivers/oracle.js'
import { bundleDecodeWorker, type BundledWorker } from './bundle-worker.js'

type Raw = grpc.Client & { Export(req: Buffer, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }
const TraceClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService')
const MetricsClient = grpc.makeGenericClientConstructor(metricsServiceDefinition, 'MetricsService')

interface Line {
  kind: 'traces' | 'metrics'
  bytes: Buffer
  maxMs: number
  keys: SeriesKey[]
}

let bundle: BundledWorker
const recordings = new Map<string, Line[]>()

async function linesOf(name: string): Promise<Line[]> {
  const scenario = findScenario(name)
  if (scenario === undefined) throw new Error(`no scenario ${name}`)
  const out: Line[] = []
  for (const text of await recordToLines(scenario)) {
    const obj = JSON.parse(text) as Record<string, unknown>
    if ('resourceSpans' in obj) {
      const req = decodeTracesJson(obj)
      let maxMs = -Infinity
      for (const rs of req.resourceSpans) for (const s of rs.spans) maxMs = Math.max(maxMs, s.endTimeMs)
      out.push({ kind: 'traces', bytes: Buffer.from(TraceReq.encode(TraceReq.fromObject(obj)).finish()), maxMs, keys: req.resourceSpans.flatMap((r) => seriesKeyOf(r.resource) ?? []) })
    } else {
      const req = decodeMetricsJson(obj)
      let maxMs = -Infinity
      for (const rm of req.resourceMetrics) for (const m of rm.metrics) for (const p of m.points) maxMs = Math.max(maxMs, p.timeMs)
      out.push({ kind: 'metrics', bytes: Buffer.from(MetricsReq.encode(MetricsReq.fromObject(obj)).finish()), maxMs, keys: req.resourceMetrics.flatMap((r) => seriesKeyOf(r.resource) ?? []) })
    }
  }
  return out
}

function call(c: Raw, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => c.Export(body, new grpc.Metadata(), (err, res) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0)))))
}

/** Replays `lines` through a receiver with `threads` decode workers (0 = inline); returns everything observable downstream. */
async function run(lines: Line[], threads: number): Promise<Record<string, unknown>> {
  const cfg = parseConfig({})
  const pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
  const workers = threads > 0 ? new WorkerPool({ threads, retryAfterMs: 1000, script: bundle.file }) : undefined
  await workers?.start()
  const receiver = new OtlpGrpcReceiver({ consumer: pipeline, endpoint: '127.0.0.1:0', ...(workers !== undefined ? { workers } : {}) })
  await receiver.start()
  const traces = new TraceClient(`127.0.0.1:${receiver.port}`, grpc.credentials.createInsecure()) as unknown as Raw
  const metrics = new MetricsClient(`127.0.0.1:${receiver.port}`, grpc.credentials.createInsecure()) as unknown as Raw
  const lateness = cfg.engine.lateness
  const bucketMs = pipeline.store.bucketMs
  const ticks: string[] = []
  const verdicts: string[] = []
  const responses: string[] = []
  const keys = new Map<string, SeriesKey>()
  let now = -Infinity
  let lastTick = -Infinity
  let first = Infinity
  const tick = (watermark: number) => {
    const res = pipeline.tick(Math.floor(now), watermark)
    for (const v of res.verdicts) verdicts.push(JSON.stringify(v))
    ticks.push(JSON.stringify(res.statuses))
  }
  try {
    for (const line of lines) {
      // sequential, as a recording is ordered: the normalizer's state depends on the order
      const res = await call(line.kind === 'traces' ? traces : metrics, line.bytes)
      responses.push(res.toString('hex'))
      for (const k of line.keys) keys.set(`${k.namespace}/${k.service}/${k.version}`, k)
      if (Number.isFinite(line.maxMs)) {
        first = Math.min(first, line.maxMs)
        now = Math.max(now, line.maxMs)
        const wb = alignDown(now - lateness, bucketMs)
        if (wb > lastTick) {
          lastTick = wb
          tick(now - lateness)
        }
      }
    }
    tick(now)
    const windows: Record<string, unknown> = {}
    for (const [id, k] of [...keys].sort()) {
      const w = pipeline.store.window(k, alignDown(first, bucketMs) - bucketMs, alignDown(now, bucketMs) + bucketMs)
      windows[id] = {
        requests: w.requests,
        errors: w.errors,
        latency: [w.latency.count, w.latency.valueAtQuantile(0.5), w.latency.valueAtQuantile(0.99), w.latency.countAbove(100_000)],
        buckets: w.buckets.map((b) => [b.startMs, b.requests, b.errors, b.latencyCount, b.latencyAtQuantile(0.99)]),
        resources: w.resources,
        probes: w.probes,
      }
    }
    const st = receiver.stats()
    return {
      verdicts,
      ticks,
      responses,
      windows,
      store: pipeline.store.stats(),
      normalizer: pipeline.normalizer.stats(),
      receiver: st,
      engine: pipeline.stats(),
      decodedByWorkers: workers?.stats().completed ?? 0,
    }
  } finally {
    traces.close()
    metrics.close()
    await receiver.shutdown()
    await workers?.shutdown()
    pipeline.shutdown()
  }
}

beforeAll(async () => {
  bundle = await bundleDecodeWorker()
}, 60_000)

afterAll(() => bundle?.remove())

describe('decode workers: identical downstream (scenario recordings through OTLP/gRPC)', () => {
  for (const name of ['canary-bad-10pct', 'error-spike']) {
    it(`${name}: workers 0 and 2 give the same verdicts, statuses, counters and windows`, async () => {
      let lines = recordings.get(name)
      if (lines === undefined) {
        lines = await linesOf(name)
        recordings.set(name, lines)
      }
      expect(lines.filter((l) => l.kind === 'traces').length).toBeGreaterThan(10)
      const inline = await run(lines, 0)
      const pooled = await run(lines, 2)
      // the comparison can fail: the recording carries spans and ends in a verdict
      expect((inline.receiver as { acceptedSpans: number }).acceptedSpans).toBeGreaterThan(1000)
      expect((inline.verdicts as string[]).length).toBeGreaterThan(0)
      expect(pooled.decodedByWorkers).toBe(lines.filter((l) => l.kind === 'traces').length)
      expect(pooled.verdicts).toEqual(inline.verdicts)
      expect(pooled.ticks).toEqual(inline.ticks)
      expect(pooled.responses).toEqual(inline.responses)
      expect(pooled.windows).toEqual(inline.windows)
      expect(pooled.store).toEqual(inline.store)
      expect(pooled.normalizer).toEqual(inline.normalizer)
      expect(pooled.receiver).toEqual(inline.receiver)
      expect(pooled.engine).toEqual(inline.engine)
    }, 240_000)
  }
})
