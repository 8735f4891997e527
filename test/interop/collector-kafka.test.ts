/**
 * The real producer of the `otlp_spans` topic: the OpenTelemetry Collector's kafka exporter (built by
 * tools/peers/build.sh), fed by telemetrygen over OTLP/gRPC, writing to the real broker; pullback's
 * Kafka span receiver consumes the topic. Four shapes of the stream, one Collector pipeline each:
 * otlp_proto and otlp_json, each with and without `partition_traces_by_id` (one record per trace,
 * keyed by the trace ID in hex). Every span telemetrygen sent must be counted exactly once, and no
 * record may be poison. A raw reader of each topic checks the record shape the test relies on (keys),
 * so a changed Collector default shows here and not as a puzzling count.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import type { Consumer } from '../../src/kafka/types.js'
import type { SpanEncoding } from '../../src/receivers/kafka-spans/receiver.js'
import { KafkaSpansReceiver } from '../../src/receivers/kafka-spans/receiver.js'
import { kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { CountingConsumer, eventually } from '../receivers/helpers.js'
import { type PeerProcess, describePeers, freePort, kafkaTracesExporter, peerPath, runPeer, startCollector } from './peers.js'

interface Case {
  name: string
  label: string
  encoding: SpanEncoding
  keyed: boolean
}

/** a Collector pipeline (its own OTLP port and topic) per case */
interface Shape extends Case {
  topic: string
  otlpPort: number
}

const CASES: Case[] = [
  { name: 'proto', label: 'otlp_proto', encoding: 'otlp_proto', keyed: false },
  { name: 'proto_keyed', label: 'otlp_proto + partition_traces_by_id', encoding: 'otlp_proto', keyed: true },
  { name: 'json', label: 'otlp_json', encoding: 'otlp_json', keyed: false },
  { name: 'json_keyed', label: 'otlp_json + partition_traces_by_id', encoding: 'otlp_json', keyed: true },
]

const WORKERS = 2
const TRACES_PER_WORKER = 40
const CHILD_SPANS = 3
const TRACES = WORKERS * TRACES_PER_WORKER
const SPANS = TRACES * (1 + CHILD_SPANS)

describePeers('interop: Collector kafka exporter -> broker -> pullback Kafka span receiver', ['OTELCOL_BIN', 'TELEMETRYGEN_BIN'], () => {
  const transport = new ConfluentTransport({ brokers: [kafkaBrokers()], clientId: uniqueName('interop') })
  const admin = transport.admin()
  const shapes: Shape[] = []
  // made in beforeAll: a skipped suite runs its body but not its hooks
  let dir = ''
  let collector: PeerProcess | undefined

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-interop-'))
    for (const c of CASES) shapes.push({ ...c, topic: uniqueName(`otlp_spans-${c.name}`), otlpPort: await freePort() })
    await admin.connect()
    await admin.ensureTopics(shapes.map((s) => ({ topic: s.topic, numPartitions: 3 })))
    collector = await startCollector(dir, {
      receivers: shapes.flatMap((s) => [`  otlp/${s.name}:`, '    protocols:', '      grpc:', `        endpoint: 127.0.0.1:${s.otlpPort}`]),
      exporters: shapes.flatMap((s) => kafkaTracesExporter(`kafka/${s.name}`, kafkaBrokers(), s.topic, s.encoding, s.keyed)),
      pipelines: shapes.flatMap((s) => [`    traces/${s.name}:`, `      receivers: [otlp/${s.name}]`, `      exporters: [kafka/${s.name}]`]),
      ports: shapes.map((s) => s.otlpPort),
    })
  })

  afterAll(async () => {
    await collector?.stop()
    await admin.deleteTopics(shapes.map((s) => s.topic)).catch(() => undefined)
    await admin.disconnect()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  for (const c of CASES) {
    it(`${c.label}: every span telemetrygen sent through the Collector is counted once`, async () => {
      const shape = shapes.find((s) => s.name === c.name)
      if (shape === undefined) throw new Error(`no Collector pipeline for ${c.name}`)
      const stops: Array<() => Promise<void>> = []
      try {
        const counting = new CountingConsumer()
        const receiver = new KafkaSpansReceiver({ transport, consumer: counting, topic: shape.topic, groupId: uniqueName('interop-g'), encoding: shape.encoding, startFrom: 'earliest' })
        await receiver.start()
        stops.push(() => receiver.shutdown())
        const keys: Array<string | null> = []
        const raw: Consumer = transport.consumer({ groupId: uniqueName('interop-raw'), topics: [shape.topic], fromBeginning: true, commit: false })
        await raw.start(async (b) => void keys.push(...b.messages.map((m) => (m.key === null ? null : m.key.toString('utf8')))))
        stops.push(() => raw.stop())

        const service = `collector-${shape.name}`
        const args = ['traces', '--otlp-endpoint', `127.0.0.1:${shape.otlpPort}`, '--otlp-insecure', '--workers', String(WORKERS), '--traces', String(TRACES_PER_WORKER), '--child-spans', String(CHILD_SPANS), '--rate', '0', '--service', service]
        const res = await runPeer(peerPath('TELEMETRYGEN_BIN'), args, { timeoutMs: 60_000 })
        expect(res.code, `telemetrygen failed:\n${res.stderr}`).toBe(0)

        await eventually(() => counting.spans >= SPANS, 45_000).catch(() => undefined)
        // a late duplicate would land here: wait a little past the expected count
        await new Promise((r) => setTimeout(r, 500))
        const stats = receiver.stats()
        expect(
          { spans: counting.spans, acceptedSpans: stats.acceptedSpans, rejectedSpans: stats.rejectedSpans, poison: stats.poison, services: [...counting.services] },
          `Collector log:\n${collector?.logs() ?? ''}`,
        ).toEqual({ spans: SPANS, acceptedSpans: SPANS, rejectedSpans: 0, poison: { decode: 0, empty: 0 }, services: [service] })

        await eventually(() => keys.length === stats.messages, 15_000)
        if (shape.keyed) {
          // every record holds one trace and is keyed by its ID in hex; a trace whose spans telemetrygen
          // exported in two batches reaches the Collector twice and makes two records with one key
          expect(keys.every((k) => k !== null && /^[0-9a-f]{32}$/.test(k))).toBe(true)
          expect(new Set(keys).size).toBe(TRACES)
          expect(keys.length).toBeGreaterThanOrEqual(TRACES)
        } else {
          expect(keys.every((k) => k === null)).toBe(true)
        }
      } finally {
        for (const stop of stops.reverse()) await stop()
      }
    })
  }
},
  // describeKafka's condition: no broker at all (outside CI only; the global setup fails CI without one)
  kafkaBrokers() === '' ? ['no Kafka broker'] : [],
)
