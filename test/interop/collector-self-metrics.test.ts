/**
 * pullback's self-metrics into the real OpenTelemetry Collector: the assembled sidecar (embedded bus)
 * exports over OTLP/gRPC to the Collector's otlp receiver, whose prometheus exporter is scraped over
 * HTTP, the way a Prometheus behind a Collector would see pullback. telemetrygen feeds the sidecar's
 * own OTLP receiver and a deployment is watched, so the receiver, engine and signal metrics carry data.
 *
 * Checked against k8s/grafana-dashboard.json, after the Collector's OTLP-to-Prometheus translation
 * (suffixes, units, dots to underscores): every metric its queries read is exposed (except those that
 * need a decision: NEED_A_DECISION), and every label a query selects or groups by (its variables
 * included) is on the series it reads. This runs in seconds; dashboard-prometheus.test.ts evaluates
 * the queries themselves in a real Prometheus. Also: the gRPC receiver's message-buffer counters
 * (`pullback.component.events{pullback.component="otlp-grpc.buffers"}`) count telemetrygen's calls.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { type PeerProcess, describePeers, freePort, peerPath, runPeer, startCollector } from './peers.js'

/**
 * Metrics the dashboard queries that appear only after a decision (or with evidence against a
 * version): not required from a run without one.
 */
const NEED_A_DECISION = new Set(['pullback_decisions_total', 'pullback_actuator_outcomes_total', 'pullback_detection_duration_seconds', 'pullback_signal_evidence'])
/** target labels Prometheus adds at scrape time; not the exporter's to provide */
const TARGET_LABELS = new Set(['instance', 'job'])

interface Query {
  expr: string
  metrics: string[]
  labels: string[]
}

/** Every PromQL expression of the dashboard (panels, nested rows, variables) with its metric and label names. */
function dashboardQueries(dashboard: unknown): Query[] {
  const exprs: string[] = []
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'expr' || k === 'query' || k === 'definition') && typeof x === 'string') exprs.push(x)
        else walk(x)
      }
    }
  }
  walk(dashboard)
  return [...new Set(exprs)]
    .filter((e) => e.includes('pullback_'))
    .map((expr) => {
      const labels = new Set<string>()
      for (const sel of expr.match(/\{[^}]*\}/g) ?? []) for (const m of sel.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) labels.add(m[1] as string)
      for (const grp of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const l of (grp[1] as string).split(',')) if (l.trim() !== '') labels.add(l.trim())
      const lv = /label_values\([^,]*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/.exec(expr)
      if (lv) labels.add(lv[1] as string)
      const bare = expr.replace(/\{[^}]*\}/g, '').replace(/\b(?:by|without)\s*\([^)]*\)/g, '')
      const metrics = [...new Set(bare.match(/pullback_[a-zA-Z0-9_]+/g) ?? [])]
      return { expr, metrics, labels: [...labels].filter((l) => !TARGET_LABELS.has(l)) }
    })
}

/** sample name -> label names seen on it, from a Prometheus text exposition */
function scrapedSeries(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s/.exec(line)
    if (!m) continue
    const labels = out.get(m[1] as string) ?? new Set<string>()
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1] as string)
    out.set(m[1] as string, labels)
  }
  return out
}

describePeers('interop: pullback self-metrics -> Collector otlp receiver -> prometheus exporter', ['OTELCOL_BIN', 'TELEMETRYGEN_BIN'], () => {
  // made in beforeAll: a skipped suite runs its body but not its hooks
  let dir = ''
  let collector: PeerProcess | undefined
  let sidecar: Sidecar | undefined
  let promPort = 0

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-interop-'))
    const otlpPort = await freePort()
    promPort = await freePort()
    collector = await startCollector(dir, {
      receivers: ['  otlp:', '    protocols:', '      grpc:', `        endpoint: 127.0.0.1:${otlpPort}`],
      exporters: ['  prometheus:', `    endpoint: 127.0.0.1:${promPort}`],
      pipelines: ['    metrics:', '      receivers: [otlp]', '      exporters: [prometheus]'],
      ports: [otlpPort, promPort],
    })

    const config = parseConfig({
      receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
      runtime: {
        admin: { endpoint: '127.0.0.1:0' },
        telemetry: { enabled: true, endpoint: `http://127.0.0.1:${otlpPort}`, interval: '500ms' },
        tickInterval: '100ms',
        state: { enabled: false },
      },
    })
    sidecar = new Sidecar({ config, transport: new MemoryBus(), logger: silentLogger, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
    await sidecar.start()
  })

  afterAll(async () => {
    await sidecar?.drain()
    await collector?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  it('the Collector exposes the metric and label names the Grafana dashboard queries', async () => {
    const s = sidecar as Sidecar
    s.pipeline.deployment({ namespace: 'shop', service: 'checkout', version: '2.0.0', previousVersion: '1.0.0', time: Date.now(), kind: 'deploy', source: 'interop-test' })
    const grpcPort = s.receivers.grpc?.port ?? 0
    const res = await runPeer(
      peerPath('TELEMETRYGEN_BIN'),
      ['traces', '--otlp-endpoint', `127.0.0.1:${grpcPort}`, '--otlp-insecure', '--traces', '50', '--rate', '0', '--service', 'checkout', '--otlp-attributes', 'service.namespace="shop"', '--otlp-attributes', 'service.version="2.0.0"'],
      { timeoutMs: 60_000 },
    )
    expect(res.code, res.stderr).toBe(0)

    const queries = dashboardQueries(JSON.parse(readFileSync(new URL('../../k8s/grafana-dashboard.json', import.meta.url), 'utf8')))
    expect(queries.length).toBeGreaterThan(10)
    const required = [...new Set(queries.flatMap((q) => q.metrics))].filter((m) => !NEED_A_DECISION.has(m))
    let series = new Map<string, Set<string>>()
    const missing = () => required.filter((m) => !series.has(m))
    const until = Date.now() + 20_000
    while (Date.now() < until) {
      series = scrapedSeries(await fetch(`http://127.0.0.1:${promPort}/metrics`).then((r) => r.text()))
      if (missing().length === 0) break
      await new Promise((r) => setTimeout(r, 500))
    }
    const scraped = [...series.keys()].filter((n) => n.startsWith('pullback')).sort()
    expect(missing(), `metrics the dashboard queries, missing from the Collector's exposition (it has: ${scraped.join(' ')})\nCollector log:\n${collector?.logs() ?? ''}`).toEqual([])

    // the labels each query selects or groups by exist on the series it reads (variables included)
    const wrongLabels = queries.flatMap((q) => {
      const present = q.metrics.filter((m) => series.has(m))
      if (present.length === 0) return []
      return q.labels.filter((l) => !present.some((m) => series.get(m)?.has(l))).map((l) => `${l} in ${q.expr}`)
    })
    expect(wrongLabels).toEqual([])

    // the http2 transport's message buffers: telemetrygen's calls took buffers from the pool (a
    // miss allocates one, a hit reuses one), exported under the receiver's name + ".buffers"
    const bufferCalls = (text: string) => {
      let n = 0
      for (const m of text.matchAll(/^pullback_component_events(?:_total)?\{([^}]*)\} (\S+)$/gm)) {
        const labels = m[1] as string
        if (labels.includes('pullback_component="otlp-grpc.buffers"') && /pullback_event="(hits|misses)"/.test(labels)) n += Number(m[2])
      }
      return n
    }
    let text = ''
    const bufUntil = Date.now() + 10_000
    while (Date.now() < bufUntil) {
      text = await fetch(`http://127.0.0.1:${promPort}/metrics`).then((r) => r.text())
      if (bufferCalls(text) > 0) break
      await new Promise((r) => setTimeout(r, 500))
    }
    expect(bufferCalls(text), text.split('\n').filter((l) => l.includes('otlp-grpc')).join('\n')).toBeGreaterThan(0)
  })
})
