/**
 * The real OpenTelemetry Collector's spanmetrics connector (built by tools/peers/build.sh) as a
 * request source: telemetrygen sends traces (each a CLIENT span with SERVER children) over
 * OTLP/gRPC to one Collector whose traces pipeline feeds the connector and a file exporter; the
 * connector's metrics (its defaults: `traces.span.metrics.duration` in ms, cumulative, the spans'
 * resource attributes copied) go to a second file exporter. Read back through the recording reader
 * and the normalizer as `pullback replay` reads them, the metrics must count exactly the SERVER
 * spans telemetrygen sent, their errors exactly the SERVER spans sent with status ERROR, under the
 * service and version of the spans' resource; the CLIENT points are not requests. And where the
 * spans themselves reach pullback too (both files, one replay), the requests are counted once.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { Observation, RequestObservation } from '../../src/normalize/observations.js'
import { decodeRecorded, readRecording } from '../../src/receivers/otlp-file/recording.js'
import { type PeerProcess, describePeers, freePort, peerPath, runPeer, startCollector } from './peers.js'

const SERVICE = 'sm-checkout'
const VERSION = 'v2.4.1'
const TRACES_OK = 40
const TRACES_ERROR = 10
const CHILD_SPANS = 2
const SERVER_SPANS = (TRACES_OK + TRACES_ERROR) * CHILD_SPANS
const SERVER_ERRORS = TRACES_ERROR * CHILD_SPANS

/** Every request observation the normalizer makes of a recording, with its counters. */
async function normalized(files: string[]): Promise<{ requests: RequestObservation[]; stats: ReturnType<Normalizer['stats']> }> {
  const obs: Observation[] = []
  const n = new Normalizer({}, { record: (o) => obs.push(o) })
  // spans first, as a replay that meets both sorted by time would for spans ending before the flush
  for (const file of files) {
    for await (const item of readRecording(file)) {
      if (item === '') continue
      const d = decodeRecorded(item)
      if (d.type === 'traces') n.traces(d.request)
      else if (d.type === 'metrics') n.metrics(d.request)
    }
  }
  return { requests: obs.filter((o): o is RequestObservation => o.kind === 'request'), stats: n.stats() }
}

const sum = (rs: RequestObservation[], f: (r: RequestObservation) => number) => rs.reduce((a, r) => a + f(r), 0)

describePeers("interop: the Collector's spanmetrics connector -> pullback", ['OTELCOL_BIN', 'TELEMETRYGEN_BIN'], () => {
  let dir = ''
  let collector: PeerProcess | undefined
  let collectorLog = ''

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-interop-spanmetrics-'))
    const port = await freePort()
    collector = await startCollector(dir, {
      receivers: ['  otlp:', '    protocols:', '      grpc:', `        endpoint: 127.0.0.1:${port}`],
      exporters: ['  file/spans:', `    path: ${path.join(dir, 'spans.jsonl')}`, '  file/metrics:', `    path: ${path.join(dir, 'metrics.jsonl')}`],
      // every default but the flush interval (60 s by default): the test waits for one flush after the spans
      connectors: ['  spanmetrics:', '    metrics_flush_interval: 1s'],
      pipelines: ['    traces:', '      receivers: [otlp]', '      exporters: [spanmetrics, file/spans]', '    metrics:', '      receivers: [spanmetrics]', '      exporters: [file/metrics]'],
      ports: [port],
    })
    const common = ['--otlp-endpoint', `127.0.0.1:${port}`, '--otlp-insecure', '--workers', '1', '--rate', '0', '--child-spans', String(CHILD_SPANS), '--span-duration', '20ms', '--otlp-attributes', `service.name="${SERVICE}"`, '--otlp-attributes', `service.version="${VERSION}"`, '--otlp-attributes', 'k8s.pod.name="sm-checkout-7d9f-abcde"']
    for (const args of [
      ['traces', ...common, '--traces', String(TRACES_OK)],
      ['traces', ...common, '--traces', String(TRACES_ERROR), '--status-code', 'Error'],
    ]) {
      const res = await runPeer(peerPath('TELEMETRYGEN_BIN'), args, { timeoutMs: 60_000 })
      expect(res.code, `telemetrygen ${args.join(' ')} failed:\n${res.stderr}`).toBe(0)
    }
    // the connector flushes every second: wait until its cumulative points hold every SERVER span
    // (or 30 s), then stop the Collector gracefully (its file exporters flush and close)
    const deadline = Date.now() + 30_000
    for (;;) {
      const file = path.join(dir, 'metrics.jsonl')
      if (existsSync(file)) {
        const { requests } = await normalized([file])
        if (sum(requests, (r) => r.count) >= SERVER_SPANS) break
      }
      if (Date.now() > deadline) break
      await sleep(500)
    }
    await collector.stop()
    collectorLog = collector.logs()
  }, 120_000)

  afterAll(async () => {
    await collector?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('counts the SERVER spans as requests of their service-version, their ERROR status as errors; CLIENT points are not requests', async () => {
    const { requests, stats } = await normalized([path.join(dir, 'metrics.jsonl')])
    const keys = new Set(requests.map((r) => `${r.key.service}@${r.key.version}`))
    expect([...keys], collectorLog).toEqual([`${SERVICE}@${VERSION}`])
    expect({ requests: sum(requests, (r) => r.count), errors: sum(requests, (r) => r.errors) }, collectorLog).toEqual({ requests: SERVER_SPANS, errors: SERVER_ERRORS })
    expect(stats.nonServerPoints).toBeGreaterThan(0)
    // the spans last 20 ms: every request in the connector's default bucket (10, 50] ms (its
    // bounds 2, 4, 6, 8, 10, 50, 100, ... ms), whose midpoint is 30 ms: read in ms, the metric's unit
    for (const r of requests) for (const us of r.latenciesUs) expect(us).toBe(30_000)
  })

  it('counts every request once when the spans reach pullback as well (the spans count, the connector points are duplicates)', async () => {
    const { requests, stats } = await normalized([path.join(dir, 'spans.jsonl'), path.join(dir, 'metrics.jsonl')])
    expect({ requests: sum(requests, (r) => r.count), errors: sum(requests, (r) => r.errors) }).toEqual({ requests: SERVER_SPANS, errors: SERVER_ERRORS })
    expect(requests.every((r) => r.startMs === undefined)).toBe(true)
    expect(stats.deduplicatedPoints).toBeGreaterThan(0)
  })

  it('`pullback replay` of the connector output reads it as request durations, not as an unread histogram', async () => {
    let err = ''
    const code = await main(['replay', path.join(dir, 'metrics.jsonl'), '--no-actuator'], { out: () => undefined, err: (x) => (err += x) })
    expect(code, err).toBe(0)
    expect(err).toMatch(/replay: lines=\d+ spans=0 points=\d+ malformed=0 /)
    expect(err).not.toMatch(/histograms not read[^\n]*traces\.span\.metrics\.duration/)
  })
})
