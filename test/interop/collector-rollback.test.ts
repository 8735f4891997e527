/**
 * A bad deployment inside the stream the real Collector writes: OTLP/JSON traces of a service whose
 * new version fails 40 % of its requests (test/support/otlp-fixtures, the restart-recovery test's
 * scenario) are posted to the Collector's OTLP/HTTP receiver; its kafka exporter writes them to
 * `otlp_spans` on the real broker; pullback's Kafka span receiver feeds a pipeline that is evaluated
 * on telemetry time (as `pullback replay` drives it, since the recording's clock is not the wall
 * clock). Counts must be exact and the engine must decide exactly one rollback, to the old version.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import type { ConsumeResult, TelemetryConsumer } from '../../src/receivers/consumer.js'
import { KafkaSpansReceiver, type SpanEncoding } from '../../src/receivers/kafka-spans/receiver.js'
import { decodeOtlpJsonLine } from '../../src/receivers/otlp/json.js'
import type { MetricsRequest, TracesRequest } from '../../src/receivers/otlp/model.js'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { alignDown } from '../../src/signals/view.js'
import { eventually } from '../receivers/helpers.js'
import { kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { generate, type VersionLoad } from '../support/otlp-fixtures.js'
import { type PeerProcess, describePeers, freePort, kafkaTracesExporter, startCollector } from './peers.js'

const cfg = parseConfig({})
const T0 = 320 // deploy second: more than the 5 min baseline window of v1 before it
const normal = (version: string, over: Partial<VersionLoad> = {}): VersionLoad => ({ version, rps: 50, errorRate: 0.005, medianMs: 40, ...over })

/** Spans into a pipeline ticked on the spans' own clock: a tick whenever the watermark enters a new bucket. */
class TelemetryTimePipeline implements TelemetryConsumer {
  readonly pipeline = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
  readonly verdicts: Verdict[] = []
  spans = 0
  private now = -Infinity
  private lastTickBucket = -Infinity

  consumeTraces(req: TracesRequest): ConsumeResult {
    let n = 0
    for (const rs of req.resourceSpans) {
      for (const s of rs.spans) {
        n++
        this.now = Math.max(this.now, s.endTimeMs)
      }
    }
    const result = this.pipeline.consumeTraces(req)
    this.spans += n
    const bucket = alignDown(this.now - cfg.engine.lateness, this.pipeline.store.bucketMs)
    if (bucket > this.lastTickBucket) {
      this.lastTickBucket = bucket
      this.verdicts.push(...this.pipeline.tick(Math.floor(this.now), this.now - cfg.engine.lateness).verdicts)
    }
    return result
  }

  consumeMetrics(req: MetricsRequest): ConsumeResult {
    return this.pipeline.consumeMetrics(req)
  }
}

const CASES: Array<{ encoding: SpanEncoding; keyed: boolean }> = [
  { encoding: 'otlp_proto', keyed: false },
  { encoding: 'otlp_json', keyed: true },
]

describePeers(
  'interop: a bad deployment in the Collector-written otlp_spans stream is rolled back',
  ['OTELCOL_BIN'],
  () => {
    const transport = new ConfluentTransport({ brokers: [kafkaBrokers()], clientId: uniqueName('interop-rollback') })
    const admin = transport.admin()
    // made in beforeAll: a skipped suite runs its body but not its hooks
    let dir = ''
    const topics = CASES.map((c) => uniqueName(`otlp_spans-rollback-${c.encoding}${c.keyed ? '-keyed' : ''}`))
    const httpPorts: number[] = []
    let collector: PeerProcess | undefined

    // v1 alone for T0 seconds, then v2 alone, failing; 120 s of v2 is well past a critical breach
    const traceLines = generate({ seed: 11, durationS: T0 + 120, load: (t) => (t < T0 ? [normal('v1')] : [normal('v2', { errorRate: 0.4 })]) }).filter((l) => decodeOtlpJsonLine(l).type === 'traces')
    const sentSpans = traceLines.reduce((n, l) => {
      const d = decodeOtlpJsonLine(l)
      return d.type === 'traces' ? n + d.request.resourceSpans.reduce((m, rs) => m + rs.spans.length, 0) : n
    }, 0)

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-interop-'))
      await admin.connect()
      // one partition: the pipeline is evaluated on the stream's own clock, which a topic read out of order across partitions would skew
      await admin.ensureTopics(topics.map((topic) => ({ topic, numPartitions: 1 })))
      for (const _ of CASES) httpPorts.push(await freePort())
      collector = await startCollector(dir, {
        receivers: CASES.flatMap((_, i) => [`  otlp/${i}:`, '    protocols:', '      http:', `        endpoint: 127.0.0.1:${httpPorts[i]}`]),
        exporters: CASES.flatMap((c, i) => kafkaTracesExporter(`kafka/${i}`, kafkaBrokers(), topics[i] as string, c.encoding, c.keyed)),
        pipelines: CASES.flatMap((_, i) => [`    traces/${i}:`, `      receivers: [otlp/${i}]`, `      exporters: [kafka/${i}]`]),
        ports: httpPorts,
      })
    })

    afterAll(async () => {
      await collector?.stop()
      await admin.deleteTopics(topics).catch(() => undefined)
      await admin.disconnect()
      if (dir !== '') rmSync(dir, { recursive: true, force: true })
    })

    for (const [i, c] of CASES.entries()) {
      it(`${c.encoding}${c.keyed ? ' + partition_traces_by_id' : ''}: every span counted, one rollback of v2 to v1`, async () => {
        const consumer = new TelemetryTimePipeline()
        const receiver = new KafkaSpansReceiver({ transport, consumer, topic: topics[i] as string, groupId: uniqueName('interop-rollback-g'), encoding: c.encoding, startFrom: 'earliest' })
        await receiver.start()
        try {
          // sequential posts: the Collector gets the recording in its order, as a live service would send it
          for (const line of traceLines) {
            const res = await fetch(`http://127.0.0.1:${httpPorts[i]}/v1/traces`, { method: 'POST', body: line, headers: { 'content-type': 'application/json' } })
            expect(res.status, await res.text()).toBe(200)
          }
          await eventually(() => consumer.spans >= sentSpans, 60_000).catch(() => undefined)
          await new Promise((r) => setTimeout(r, 500))
          expect({ spans: consumer.spans, poison: receiver.stats().poison }, `Collector log:\n${collector?.logs() ?? ''}`).toEqual({ spans: sentSpans, poison: { decode: 0, empty: 0 } })
          expect(consumer.verdicts.map((v) => ({ kind: v.kind, version: v.version, baselineVersion: v.baselineVersion, service: v.service }))).toEqual([
            { kind: 'rollback', version: 'v2', baselineVersion: 'v1', service: 'checkout' },
          ])
        } finally {
          await receiver.shutdown()
          consumer.pipeline.shutdown()
        }
      })
    }
  },
  kafkaBrokers() === '' ? ['no Kafka broker'] : [],
)
