/**
 * The history topic on the real broker: the writer creates the topic and writes two days of hourly
 * summaries of three synthetic services; `pullback calibrate --kafka` reads them back and writes
 * contracts (with calibration markers) and the HTML report; `pullback audit requests --kafka` flags
 * the service whose memory request is below the p70 of its usage; `pullback status` on the written
 * contracts shows each service's rung.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { ManualClock } from '../../src/common/clock.js'
import { createLogger } from '../../src/common/logger.js'
import { parseConfig, loadConfig } from '../../src/config/load.js'
import { HistoryWriter } from '../../src/history/writer.js'
import { command as calibrate, auditRequestsCommand } from '../../src/cli/commands/calibrate.js'
import { command as status } from '../../src/cli/commands/status.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import type { SynthService } from '../calibrate/synthetic.js'
import { feedSynthetic } from './feed-synthetic.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 10, 1)
const END = START + 2 * DAY
const SERVICES: SynthService[] = [
  { namespace: 'shop', name: 'cart', rps: 20, errorRatio: 0.005, medianS: 0.04, sigma: 0.6, noisyHours: 0.05, pods: 3, memoryBytes: 200e6, memoryRequestBytes: 256e6 },
  { namespace: 'shop', name: 'search', rps: 8, errorRatio: 0.005, medianS: 0.05, sigma: 0.5, noisyHours: 0.6, noisyMinutes: 20, noisyErrors: 8, noisyLatency: 2, pods: 2, memoryBytes: 300e6, memoryRequestBytes: 256e6 },
  { namespace: 'pay', name: 'ledger', rps: 3, errorRatio: 0.002, medianS: 0.02, sigma: 0.4, noisyHours: 0.02, pods: 1, memoryBytes: 120e6, memoryRequestBytes: 512e6 },
]

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out, err }
}

describeKafka('pullback.history on the real broker', () => {
  let transport: ConfluentTransport
  let dir: string
  let cfgFile: string
  const topic = uniqueName('it-history')
  const prefix = uniqueName('it-hist')

  beforeAll(async () => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    dir = mkdtempSync(join(tmpdir(), 'pullback-history-'))
    cfgFile = join(dir, 'pullback.yaml')
    writeFileSync(cfgFile, stringify({ kafka: { groupPrefix: prefix, topics: { history: topic } } }))
  })

  afterAll(async () => {
    const admin = transport.admin()
    await admin.deleteTopics([topic]).catch(() => undefined)
    await admin.disconnect()
    rmSync(dir, { recursive: true, force: true })
  })

  it('writes hourly summaries; calibrate --kafka reads them back into contracts and a report; audit and status follow', async () => {
    const cfg = parseConfig({ kafka: { topics: { history: topic } } })
    const clock = new ManualClock(END)
    const writer = new HistoryWriter({ transport, topic, config: cfg.history, logger: createLogger('test-history', 'warn'), clock })
    await writer.start()
    SERVICES.forEach((s, i) => feedSynthetic(writer.feed, s, START + 60_000, END, 60_000, 100 + i))
    // the hours that ended `grace` before now are written by a flush; the open one at shutdown
    writer.flush(END + 120_000)
    await writer.shutdown()
    await writer.shutdown()
    const st = writer.stats()
    expect(st.written).toBe(3 * 48)
    expect(st.pending).toBe(0)
    expect(st.servicesDropped + st.late + st.future).toBe(0)
    console.log(`history: ${st.written} summaries, ${st.bytes} bytes (${(st.bytes / 3 / 2).toFixed(0)} bytes per service-day)`)

    const out = join(dir, 'contracts.yaml')
    const html = join(dir, 'calibration.html')
    const c = capture()
    const ac = new AbortController()
    const code = await calibrate.run(['--kafka', kafkaBrokers().split(',')[0] as string, '--config', cfgFile, '--days', '2', '--end', String(END), '--deploys', '9', '--out', out, '--report', html], c.io, ac.signal)
    expect(c.err.join('')).toMatch(/144 summaries read, 144 kept/)
    expect(code).toBe(0)
    const contracts = loadConfig(out)
    expect(Object.keys(contracts.engine.services).sort()).toEqual(['pay/ledger', 'shop/cart', 'shop/search'])
    expect(Object.keys(contracts.calibration.services).sort()).toEqual(['pay/ledger', 'shop/cart', 'shop/search'])
    expect(contracts.calibration.services['shop/cart']?.source).toMatch(new RegExp(`^kafka .* ${topic}$`))
    // search: memory request (256 MB) below the p70 of usage (about 300 MB): its resource signal is written in observe
    expect(contracts.engine.services['shop/search']?.signals.resource.mode).toBe('observe')
    expect(contracts.engine.services['shop/cart']?.signals.resource.mode).toBe('enforce')
    const report = readFileSync(html, 'utf8')
    expect(report.match(/<svg /g)?.length).toBeGreaterThanOrEqual(9)
    expect(report).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/)
    expect(report).toMatch(/Readiness: rung 1 of 3, <b>single-signal<\/b>[^<]*Next step: enforce resource/)

    const a = capture()
    expect(await auditRequestsCommand(['--kafka', kafkaBrokers().split(',')[0] as string, '--config', cfgFile, '--days', '2', '--end', String(END), '--json'], a.io, ac.signal)).toBe(0)
    const rows = a.out.map((l) => JSON.parse(l) as { namespace: string; workload: string; resource: string; below: boolean; p70: number; request: number })
    expect(rows.filter((r) => r.below).map((r) => `${r.namespace}/${r.workload}`)).toEqual(['shop/search'])
    expect(rows.find((r) => r.workload === 'ledger')?.request).toBe(512e6)

    const s = capture()
    expect(await status.run(['--config', out, '--json'], s.io, ac.signal)).toBe(0)
    const rungs = Object.fromEntries(s.out.map((l) => JSON.parse(l) as { service: string; rung: number }).map((e) => [e.service, e.rung]))
    expect(rungs).toMatchObject({ 'shop/cart': 2, 'shop/search': 1, '*': 2 })
  })
})
