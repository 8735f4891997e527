/**
 * Grafana's data, for real (issue 15 item 2): every PromQL query of k8s/grafana-dashboard.json is
 * evaluated by a real Prometheus while a scenario runs, and must return series.
 *
 * The chain is the one the README documents for a cluster: the sidecar's self-metrics over OTLP/gRPC
 * into the OpenTelemetry Collector (built by tools/peers/build.sh), whose prometheus exporter a real
 * Prometheus (PROMETHEUS_BIN, else `prometheus` on PATH: Debian's package) scrapes every second. The
 * scenario, on the wall clock with contracts shortened to seconds: telemetrygen sends healthy
 * `checkout` 1.0.0 traffic into the sidecar's OTLP receiver, 2.0.0 is deployed and fails every
 * request, the engine decides a rollback. Grafana's variables are given their "All" values and its
 * interval macros fixed spans.
 *
 * Not covered: the actuator's panel (pullback_actuator_outcomes_total comes from the actuator process,
 * which this scenario does not run); its query is still checked to be valid PromQL.
 */
import { spawnSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import type { Verdict } from '../../src/engine/verdict.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { eventually } from '../receivers/helpers.js'
import { PeerProcess, describePeers, freePort, peerPath, runPeer, startCollector, waitForPort } from './peers.js'

/** queries whose data comes from a process this scenario does not run */
const NOT_IN_SCENARIO = [/pullback_actuator_outcomes_total/]

/**
 * Queries allowed to return no series (none now). pullback_decisions_total used to be created by its
 * first increment, so `changes()` / `increase()` missed the first rollback of each label set; the
 * engine tracker now creates every decision series at 0 on start. A query listed here must keep
 * failing: the test enforces that the list shrinks when one is fixed.
 */
const KNOWN_GAPS: Record<string, string> = {}

function prometheusBin(): string | undefined {
  if (process.env.PROMETHEUS_BIN) return process.env.PROMETHEUS_BIN
  const r = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** every PromQL expression of the dashboard: panel targets and variable queries */
function dashboardQueries(): string[] {
  const dashboard: unknown = JSON.parse(readFileSync(new URL('../../k8s/grafana-dashboard.json', import.meta.url), 'utf8'))
  const out: string[] = []
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'expr' && typeof x === 'string') out.push(x)
        else if (k === 'query' && typeof x === 'string' && x.startsWith('label_values(')) out.push(x)
        else walk(x)
      }
    }
  }
  walk(dashboard)
  return [...new Set(out)]
}

/** Grafana's side of a query: variables at "All", macros as fixed spans; label_values(m, l) as the series query it runs */
function toPromQL(q: string): string {
  const lv = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q)
  const expr = lv ? (lv[1] as string) : q
  return expr
    .replaceAll('$__rate_interval', '30s')
    .replaceAll('$__range', '5m')
    .replaceAll('$__interval', '5s')
    .replace(/\$(namespace|service)\b/g, '.*')
}

interface PromResult {
  status: string
  error?: string
  data?: { resultType: string; result: unknown[] }
}

const prom = prometheusBin()

describePeers(
  'interop: every Grafana dashboard query returns series from a real Prometheus',
  ['OTELCOL_BIN', 'TELEMETRYGEN_BIN'],
  () => {
    // made in beforeAll: a skipped suite runs its body but not its hooks
    let dir = ''
    const verdicts: Verdict[] = []
    let collector: PeerProcess | undefined
    let prometheus: PeerProcess | undefined
    let sidecar: Sidecar | undefined
    let promPort = 0

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-interop-'))
      const otlpPort = await freePort()
      const exporterPort = await freePort()
      promPort = await freePort()
      collector = await startCollector(dir, {
        receivers: ['  otlp:', '    protocols:', '      grpc:', `        endpoint: 127.0.0.1:${otlpPort}`],
        exporters: ['  prometheus:', `    endpoint: 127.0.0.1:${exporterPort}`],
        pipelines: ['    metrics:', '      receivers: [otlp]', '      exporters: [prometheus]'],
        ports: [otlpPort, exporterPort],
      })
      const promFile = path.join(dir, 'prometheus.yml')
      writeFileSync(
        promFile,
        ['global:', '  scrape_interval: 1s', '  evaluation_interval: 1s', 'scrape_configs:', '  - job_name: otelcol', '    static_configs:', `      - targets: ['127.0.0.1:${exporterPort}']`, ''].join('\n'),
      )
      prometheus = new PeerProcess(prom as string, [`--config.file=${promFile}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`])
      await waitForPort(promPort, prometheus, 30_000)

      // contracts in seconds instead of minutes, so that a whole deployment fits in the test
      const config = parseConfig({
        receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
        engine: { defaults: { baselineWindow: '20s', window: '15s', minSamples: 20, watch: '5m' } },
        runtime: {
          admin: { endpoint: '127.0.0.1:0' },
          telemetry: { enabled: true, endpoint: `http://127.0.0.1:${otlpPort}`, interval: '1s' },
          tickInterval: '500ms',
          state: { enabled: false },
        },
      })
      sidecar = new Sidecar({
        config,
        transport: new MemoryBus(),
        logger: silentLogger,
        signer: signerFromKey(generateKeyPairSync('ed25519').privateKey),
        onTick: (r) => void verdicts.push(...r.verdicts),
      })
      await sidecar.start()
    })

    afterAll(async () => {
      await sidecar?.drain()
      await prometheus?.stop()
      await collector?.stop()
      if (dir !== '') rmSync(dir, { recursive: true, force: true })
    })

    it('a healthy baseline, a failing deployment, its rollback: each dashboard query returns series', { timeout: 180_000 }, async () => {
      const s = sidecar as Sidecar
      const grpcPort = s.receivers.grpc?.port ?? 0
      const load = (version: string, seconds: number, extra: string[]) =>
        runPeer(
          peerPath('TELEMETRYGEN_BIN'),
          ['traces', '--otlp-endpoint', `127.0.0.1:${grpcPort}`, '--otlp-insecure', '--duration', `${seconds}s`, '--rate', '40', '--service', 'checkout', '--otlp-attributes', 'service.namespace="shop"', '--otlp-attributes', `service.version="${version}"`, ...extra],
          { timeoutMs: (seconds + 30) * 1000 },
        )
      const baseline = await load('1.0.0', 22, [])
      expect(baseline.code, baseline.stderr).toBe(0)
      s.pipeline.deployment({ namespace: 'shop', service: 'checkout', version: '2.0.0', previousVersion: '1.0.0', time: Date.now(), kind: 'deploy', source: 'interop-test' })
      const failing = load('2.0.0', 40, ['--status-code', 'Error'])
      await eventually(() => verdicts.some((v) => v.kind === 'rollback'), 60_000).catch(() => undefined)
      const bad = await failing
      expect(bad.code, bad.stderr).toBe(0)
      expect(verdicts.map((v) => `${v.kind} ${v.version}`)).toContain('rollback 2.0.0')

      const queries = dashboardQueries()
      expect(queries.length).toBeGreaterThan(20)
      const ask = async (q: string): Promise<string> => {
        const url = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(toPromQL(q))}`
        const body = (await fetch(url).then((r) => r.json())) as PromResult
        if (body.status !== 'success') return `error: ${body.error ?? 'unknown'}`
        return (body.data?.result.length ?? 0) > 0 || NOT_IN_SCENARIO.some((re) => re.test(q)) ? 'series' : 'no series'
      }
      // series appear one scrape after the next export: retry the empty ones for a while
      const outcome = new Map<string, string>()
      let pending = queries.filter((q) => !(q in KNOWN_GAPS))
      const until = Date.now() + 20_000
      while (pending.length > 0) {
        for (const q of pending) outcome.set(q, await ask(q))
        pending = pending.filter((q) => outcome.get(q) === 'no series')
        if (pending.length === 0 || Date.now() > until) break
        await new Promise((r) => setTimeout(r, 1000))
      }
      for (const q of Object.keys(KNOWN_GAPS)) outcome.set(q, await ask(q))
      const notSeries = Object.fromEntries([...outcome].filter(([, o]) => o !== 'series'))
      expect(notSeries, `Prometheus log:\n${prometheus?.logs().slice(-4000) ?? ''}`).toEqual(KNOWN_GAPS)
    })
  },
  prom === undefined ? ['no Prometheus: set PROMETHEUS_BIN or install Debian\'s `prometheus` package'] : [],
)
