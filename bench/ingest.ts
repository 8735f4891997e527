/**
 * Ingest benchmarks (build with `npm run build`, run `node dist/bench/ingest.js [--seconds 3] [--runs 3]`).
 * Each measurement runs `--runs` times (default 3) for `--seconds` each; rates are min / median / max
 * over the runs, the target judged on the median:
 *
 * 1. decode: otlp_proto ExportTraceServiceRequests of 512 SERVER spans x 10 attributes, decoded by
 *    the lazy decoder on one core (target >= 1,000,000 spans/s); protobufjs reflection for reference.
 * 2. decode + record: the same, then Normalizer -> SignalStore (the span hot path); the runs of 1
 *    and 2 are interleaved, so a drift in the machine's speed moves both alike.
 * 3. OTLP/gRPC metrics: pre-encoded ExportMetricsServiceRequests (1,000 points each) sent by grpc-js
 *    clients in a worker thread to the real OtlpGrpcReceiver on the main thread, whose consumer
 *    counts points (target >= 200,000 points/s).
 * 4. with `--kafka host:port`: end to end through the real broker: the same 512-span records are
 *    produced to a fresh 2-partition topic first, then KafkaSpansReceiver -> Normalizer ->
 *    SignalStore consumes them; the rate is spans / (first start() to last span recorded). A drain
 *    of 600 records in about a second says little: the backlog (3 M spans), sustained-rate and
 *    memory figures of the Kafka path come from bench/peer-kafka.ts.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import * as grpc from '@grpc/grpc-js'
import protobuf from 'protobufjs'
import type { ConsumeResult, TelemetryConsumer } from '../src/receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../src/receivers/otlp/model.js'
import { countPoints, countSpans, decodeTracesProto } from '../src/receivers/otlp/proto.js'
import { MemoryGuard } from '../src/receivers/memory.js'
import { OtlpGrpcReceiver, metricsServiceDefinition } from '../src/receivers/otlp-grpc/receiver.js'
import { Normalizer } from '../src/normalize/normalizer.js'
import { SignalStore } from '../src/signals/store.js'
import { fmtSpread, spread } from './stats.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const HERE = path.dirname(fileURLToPath(import.meta.url))
// dist/bench/ingest.js -> <repo>/proto
const PROTO_DIR = path.resolve(HERE, '../../proto')

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root()
  root.resolvePath = (_o, target) => path.join(PROTO_DIR, target)
  root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/metrics/v1/metrics_service.proto'])
  root.resolveAll()
  return root
}

const str = (key: string, v: string) => ({ key, value: { stringValue: v } })
const int = (key: string, v: number) => ({ key, value: { intValue: v } })

function spanPayload(root: protobuf.Root, nowNs: bigint): Buffer {
  const T = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
  const spans = Array.from({ length: 512 }, (_, i) => {
    const start = nowNs - BigInt(1_000_000 + i * 997)
    return {
      traceId: Buffer.alloc(16, i & 0xff),
      spanId: Buffer.alloc(8, (i * 7) & 0xff),
      parentSpanId: Buffer.alloc(8, 3),
      name: 'GET /api/v1/orders/{id}',
      kind: 2,
      startTimeUnixNano: start.toString(),
      endTimeUnixNano: (start + BigInt(200_000 + ((i * 7919) % 5_000_000))).toString(),
      attributes: [
        str('http.request.method', 'GET'),
        str('http.route', '/api/v1/orders/{id}'),
        int('http.response.status_code', i % 50 === 0 ? 503 : 200),
        str('url.scheme', 'https'),
        str('url.path', `/api/v1/orders/${100000 + i}`),
        str('server.address', 'orders.shop.svc.cluster.local'),
        int('server.port', 8080),
        str('network.protocol.version', '1.1'),
        str('user_agent.original', 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0'),
        str('client.address', `10.1.${i & 0xff}.${(i >> 8) & 0xff}`),
      ],
      status: i % 50 === 0 ? { code: 2 } : {},
    }
  })
  const obj = {
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'orders'), str('service.version', '1.4.2'), str('k8s.namespace.name', 'shop'), str('k8s.pod.name', 'orders-7d9c-abcde')] },
        scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.200.0' }, spans }],
      },
    ],
  }
  return Buffer.from(T.encode(T.fromObject(obj)).finish())
}

function metricsPayload(root: protobuf.Root, nowNs: bigint): Buffer {
  const T = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest')
  const attrs = (i: number) => [str('http.route', `/r/${i}`), str('http.request.method', 'GET'), int('http.response.status_code', 200)]
  const t = { startTimeUnixNano: (nowNs - 60_000_000_000n).toString(), timeUnixNano: nowNs.toString() }
  const sumPoints = Array.from({ length: 500 }, (_, i) => ({ ...t, asInt: 1000 + i, attributes: attrs(i) }))
  const gaugePoints = Array.from({ length: 250 }, (_, i) => ({ ...t, asDouble: 0.5 + i, attributes: attrs(i) }))
  const histPoints = Array.from({ length: 250 }, (_, i) => ({
    ...t,
    count: 110,
    sum: 12.5,
    explicitBounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    bucketCounts: [1, 2, 3, 4, 50, 40, 5, 3, 1, 1],
    attributes: attrs(i),
  }))
  const obj = {
    resourceMetrics: [
      {
        resource: { attributes: [str('service.name', 'orders'), str('service.version', '1.4.2'), str('k8s.namespace.name', 'shop')] },
        scopeMetrics: [
          {
            metrics: [
              { name: 'http.server.requests', unit: '1', sum: { dataPoints: sumPoints, aggregationTemporality: 2, isMonotonic: true } },
              { name: 'queue.depth', unit: '1', gauge: { dataPoints: gaugePoints } },
              { name: 'http.server.request.duration', unit: 's', histogram: { dataPoints: histPoints, aggregationTemporality: 2 } },
            ],
          },
        ],
      },
    ],
  }
  return Buffer.from(T.encode(T.fromObject(obj)).finish())
}

interface Row {
  bench: string
  rate: string
  detail: string
  target: string
  met: string
}

/** items per second of `body` (which returns the items it handled) over `seconds`, after a 300 ms warm-up */
function timed(seconds: number, body: () => number): number {
  const warmEnd = performance.now() + 300
  while (performance.now() < warmEnd) body()
  let items = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  while (performance.now() < end) items += body()
  return items / ((performance.now() - t0) / 1000)
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US')


async function main(): Promise<void> {
  const secIdx = process.argv.indexOf('--seconds')
  const seconds = secIdx > 0 ? Number(process.argv[secIdx + 1]) : 3
  const runsIdx = process.argv.indexOf('--runs')
  const runs = runsIdx > 0 ? Number(process.argv[runsIdx + 1]) : 3
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be an integer >= 1')
  const root = loadRoot()
  const nowNs = BigInt(Date.now()) * 1_000_000n
  const spans = spanPayload(root, nowNs)
  const rows: Row[] = []

  // 1. decode only, 2. protobufjs for reference, 3. decode + normalize + record. The runs are
  // interleaved (A B C, A B C, ...) so that a drift in the machine's speed during the bench moves
  // every measurement alike and their ratios stay meaningful.
  const T = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
  const store = new SignalStore({})
  const normalizer = new Normalizer({}, store)
  const [decode, reference, record] = [
    { seconds, body: () => countSpans(decodeTracesProto(spans)), rates: [] as number[] },
    {
      seconds: Math.min(seconds, 2),
      body: () => {
        T.decode(spans)
        return 512
      },
      rates: [] as number[],
    },
    { seconds, body: () => normalizer.traces(decodeTracesProto(spans)).accepted, rates: [] as number[] },
  ]
  for (let run = 0; run < runs; run++) for (const b of [decode, reference, record]) b.rates.push(timed(b.seconds, b.body))
  const d = spread(decode.rates)
  rows.push({
    bench: 'decode otlp_proto spans (lazy decoder, 1 core)',
    rate: `${fmtSpread(d, fmt)} spans/s`,
    detail: `${spans.length} B/request, ${fmt((d.median / 512) * spans.length / 1e6)} MB/s (median)`,
    target: '>= 1,000,000 spans/s',
    met: d.median >= 1e6 ? 'yes' : 'NO',
  })
  const p = spread(reference.rates)
  rows.push({ bench: 'decode, protobufjs 8 reflection (reference)', rate: `${fmtSpread(p, fmt)} spans/s`, detail: `x${(d.median / p.median).toFixed(1)} slower than lazy (medians)`, target: '-', met: '-' })
  const r = spread(record.rates)
  rows.push({
    bench: 'decode + normalize + record into windows (1 core)',
    rate: `${fmtSpread(r, fmt)} spans/s`,
    detail: `store series=${store.stats().series}; ${((100 * r.median) / d.median).toFixed(0)} % of decode alone (medians)`,
    target: '>= 1,000,000 spans/s',
    met: r.median >= 1e6 ? 'yes' : 'NO',
  })

  // 3. OTLP/gRPC metrics through the real receiver
  const metrics = metricsPayload(root, nowNs)
  let points = 0
  const consumer: TelemetryConsumer = {
    consumeTraces: (req: TracesRequest): ConsumeResult => ({ accepted: countSpans(req), rejected: 0 }),
    consumeMetrics: (req: MetricsRequest): ConsumeResult => {
      const n = countPoints(req)
      points += n
      return { accepted: n, rejected: 0 }
    },
  }
  const receiver = new OtlpGrpcReceiver({ consumer, endpoint: '127.0.0.1:0', memoryGuard: new MemoryGuard({ highWaterBytes: 0, retryAfterMs: 1000 }) })
  await receiver.start()
  const rates: number[] = []
  let ok = 0
  let failed = 0
  for (let run = 0; run < runs; run++) {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { port: receiver.port, payload: metrics, seconds, concurrency: 16 } })
    let p0 = points
    let t0 = performance.now()
    // the first 0.5 s (connections, the receiver's JIT) is not counted
    const warm = setTimeout(() => {
      p0 = points
      t0 = performance.now()
    }, 500)
    const result = await new Promise<{ ok: number; failed: number }>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    clearTimeout(warm)
    rates.push((points - p0) / ((performance.now() - t0) / 1000))
    ok += result.ok
    failed += result.failed
    await worker.terminate()
  }
  await receiver.shutdown()
  const m = spread(rates)
  rows.push({
    bench: 'OTLP/gRPC metrics through OtlpGrpcReceiver',
    rate: `${fmtSpread(m, fmt)} points/s`,
    detail: `${metrics.length} B/request (1,000 points), ${ok} ok / ${failed} failed over the runs, client in a worker thread`,
    target: '>= 200,000 points/s',
    met: m.median >= 200_000 ? 'yes' : 'NO',
  })

  const kIdx = process.argv.indexOf('--kafka')
  if (kIdx > 0) rows.push(await kafkaEndToEnd(process.argv[kIdx + 1] as string, spans))

  // the figures as one JSON line (min / median / max objects), for run.ts's results file and compare.js
  console.log(JSON.stringify({ bench: 'ingest', runs, seconds, figures: { decodeSpansPerSec: d, protobufjsSpansPerSec: p, recordSpansPerSec: r, grpcMetricPointsPerSec: m } }))
  const cols: Array<keyof Row> = ['bench', 'rate', 'detail', 'target', 'met']
  console.log(`node ${process.version}, ${runs} runs of ${seconds} s per measurement; rates min / median / max over the runs`)
  console.log(`| ${cols.join(' | ')} |`)
  console.log(`|${cols.map(() => '---').join('|')}|`)
  for (const r of rows) console.log(`| ${cols.map((c) => r[c]).join(' | ')} |`)
}

async function kafkaEndToEnd(brokers: string, record: Buffer): Promise<Row> {
  const { ConfluentTransport } = await import('../src/kafka/confluent.js')
  const { KafkaSpansReceiver } = await import('../src/receivers/kafka-spans/receiver.js')
  const transport = new ConfluentTransport({ brokers: brokers.split(','), clientId: 'bench-ingest' })
  const topic = `bench-spans-${Date.now()}`
  const admin = transport.admin()
  await admin.connect()
  await admin.ensureTopics([{ topic, numPartitions: 2 }])
  const producer = transport.producer()
  await producer.connect()
  const records = 600
  for (let i = 0; i < records; i += 50) await producer.send(topic, Array.from({ length: 50 }, () => ({ value: record })))
  await producer.disconnect()
  const normalizer = new Normalizer({}, new SignalStore({}))
  const total = records * 512
  let done = 0
  let firstMs = 0
  let finished: () => void = () => undefined
  const all = new Promise<void>((r) => (finished = r))
  const consumer: TelemetryConsumer = {
    consumeTraces: (req) => {
      if (firstMs === 0) firstMs = performance.now()
      const res = normalizer.traces(req)
      done += countSpans(req)
      if (done >= total) finished()
      return res
    },
    consumeMetrics: () => ({ accepted: 0, rejected: 0 }),
  }
  const receiver = new KafkaSpansReceiver({ transport, consumer, topic, groupId: `${topic}-g`, maxBatchSize: 100, startFrom: 'earliest' })
  const t0 = performance.now()
  await receiver.start()
  // the give-up timer is cleared once the spans are in: left pending it kept the process alive for 2 minutes after printing
  let giveUp: NodeJS.Timeout | undefined
  await Promise.race([all, new Promise((r) => (giveUp = setTimeout(r, 120_000)))])
  clearTimeout(giveUp)
  const endMs = performance.now()
  const secs = (endMs - t0) / 1000
  const steady = done / ((endMs - firstMs) / 1000)
  await receiver.shutdown()
  await admin.deleteTopics([topic]).catch(() => undefined)
  await admin.disconnect()
  const rate = done / secs
  return {
    bench: 'Kafka otlp_proto -> KafkaSpansReceiver -> normalize -> windows (real broker)',
    rate: `${fmt(steady)} spans/s`,
    detail: `first to last span; ${fmt(rate)} spans/s counting the group join; ${records} records x 512 spans, ${((records * record.length) / 1e6).toFixed(0)} MB, 2 partitions; ${done}/${total} spans`,
    target: '>= 300,000 spans/s',
    met: steady >= 300_000 ? 'yes' : 'NO',
  }
}

/** Worker: grpc-js clients keeping `concurrency` Export calls in flight for `seconds`. */
async function client(): Promise<void> {
  const { port, payload, seconds, concurrency } = workerData as { port: number; payload: Uint8Array; seconds: number; concurrency: number }
  const body = Buffer.from(payload)
  const Ctor = grpc.makeGenericClientConstructor(metricsServiceDefinition, 'MetricsService')
  const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as {
    Export(b: Buffer, cb: (err: grpc.ServiceError | null) => void): void
    close(): void
  }
  const end = Date.now() + seconds * 1000 + 500
  let ok = 0
  let failed = 0
  const loop = async () => {
    while (Date.now() < end) {
      await new Promise<void>((resolve) =>
        c.Export(body, (err) => {
          if (err) failed++
          else ok++
          resolve()
        }),
      )
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  c.close()
  parentPort?.postMessage({ ok, failed })
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  void client()
}
