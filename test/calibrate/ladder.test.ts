/**
 * The readiness ladder for a few configs: each rung, the calibration marker, the next step; shown
 * by `pullback status` (from the config, and from a running process's /status) and added to
 * /status by the admin server as its own section.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { promoteArtifact } from '../../src/actuator/artifacts.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { parseConfig } from '../../src/config/load.js'
import { ladder, ladderEntry } from '../../src/calibrate/ladder.js'
import { AdminServer } from '../../src/runtime/admin.js'
import { adminSchema } from '../../src/runtime/config.js'
import { command as status } from '../../src/cli/commands/status.js'

const NOW = Date.UTC(2026, 11, 1)
const marker = { at: '2026-11-20T00:00:00.000Z', source: 'kafka 127.0.0.1:19092 pullback.history', days: 30, heldOut: '0/20', recommended: 'enforce' as const }
const observeAll = { errorRate: { mode: 'observe' }, latency: { mode: 'observe' }, resource: { mode: 'observe' }, probe: { mode: 'observe' } }

describe('ladder', () => {
  it('rung 0: nothing enforces; next: calibrate, then enforce errorRate', () => {
    const cfg = parseConfig({ engine: { services: { 'shop/cart': { signals: observeAll } } } })
    const e = ladderEntry(cfg, 'shop/cart', NOW)
    expect(e).toMatchObject({ rung: 0, rungName: 'no automation', enforce: [], calibration: { kind: 'not calibrated' } })
    expect(e.next).toMatch(/^calibrate it .*--service shop\/cart.*then put errorRate in enforce$/)
  })

  it('rung 1: one signal enforces, calibrated; next: the others', () => {
    const cfg = parseConfig({ engine: { services: { 'shop/cart': { signals: { ...observeAll, errorRate: { mode: 'enforce' } } } } }, calibration: { services: { 'shop/cart': marker } } })
    const e = ladderEntry(cfg, 'shop/cart', NOW)
    expect(e).toMatchObject({ rung: 1, rungName: 'single-signal', enforce: ['errorRate'], observe: ['latency', 'resource', 'probe'] })
    expect(e.calibration).toMatchObject({ kind: 'calibrated', heldOut: '0/20' })
    expect(e.calibration.kind === 'calibrated' && Math.round(e.calibration.ageDays)).toBe(11)
    expect(e.next).toBe('enforce latency, resource, probe')
  })

  it('rung 2: the defaults enforce all four signals but nothing is calibrated or verified', () => {
    const e = ladderEntry(parseConfig({}), '*', NOW)
    expect(e.rung).toBe(2)
    expect(e.next).toMatch(/calibrate.*uncalibrated contract.*actuator\.artifactKeys.*durable audit/)
  })

  it('rung 3: four signals, calibrated, verified artifacts and a durable audit; a stale calibration is called out', () => {
    const base = { kafka: { brokers: ['127.0.0.1:19092'] }, actuator: { artifactKeys: ['-----BEGIN PUBLIC KEY-----x'] }, calibration: { services: { 'shop/cart': marker } } }
    const e = ladderEntry(parseConfig(base), 'shop/cart', NOW)
    expect(e).toMatchObject({ rung: 3, rungName: 'verified artifacts plus audit', artifacts: { verified: true, audit: 'kafka' } })
    expect(e.next).toMatch(/^top rung/)
    const old = ladderEntry(parseConfig(base), 'shop/cart', NOW + 40 * 86_400_000)
    expect(old.next).toMatch(/51 days old: re-calibrate/)
    // without the marker the same config stays on rung 2
    expect(ladderEntry(parseConfig({ ...base, calibration: {} }), 'shop/cart', NOW).rung).toBe(2)
  })

  it('lists the configured services and the defaults', () => {
    const cfg = parseConfig({ engine: { services: { 'a/x': {} } }, calibration: { services: { 'b/y': marker } } })
    expect(ladder(cfg, NOW).map((e) => e.service)).toEqual(['a/x', 'b/y', '*'])
  })

  it('a calibration marker with a bad time is refused by the config schema, naming the path', () => {
    expect(() => parseConfig({ calibration: { services: { 'a/x': { ...marker, at: 'yesterday' } } } })).toThrow(/calibration\.services\["a\/x"\]\.at: an ISO 8601 time/)
  })
})

describe('status surfaces', () => {
  let admin: AdminServer | undefined
  afterEach(async () => {
    await admin?.shutdown()
    admin = undefined
  })

  it('/status carries the readiness section beside the provider; pullback status --admin reads it', async () => {
    const cfg = parseConfig({ engine: { services: { 'shop/cart': { signals: observeAll } } } })
    admin = new AdminServer({ config: adminSchema.parse({ endpoint: '127.0.0.1:0' }) })
    admin.setStatusProvider(() => ({ watched: [] }))
    admin.addStatusSection('readiness', () => ladder(cfg, NOW))
    admin.addStatusSection('broken', () => {
      throw new Error('boom')
    })
    await admin.start()
    const url = `http://127.0.0.1:${admin.address()?.port}`
    const doc = (await (await fetch(`${url}/status`)).json()) as { watched: unknown[]; readiness: { service: string; rung: number }[]; broken: { error: string } }
    expect(doc.watched).toEqual([])
    expect(doc.readiness.map((e) => [e.service, e.rung])).toEqual([
      ['shop/cart', 0],
      ['*', 2],
    ])
    expect(doc.broken.error).toMatch(/boom/)
    const out: string[] = []
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void out.push(s) }
    expect(await status.run(['--admin', url, '--service', 'shop/cart'], io, new AbortController().signal)).toBe(0)
    expect(out.join('')).toMatch(/shop\/cart\s+0 no automation\s+-\s+errorRate,latency,resource,probe\s+no\s+unverified, audit none\s+calibrate it/)
  })

  it('pullback status from a config prints a table with the next step', async () => {
    const out: string[] = []
    const io = { out: (s: string) => void out.push(s), err: (s: string) => void out.push(s) }
    expect(await status.run([], io, new AbortController().signal)).toBe(0)
    expect(out.join('')).toMatch(/^service\s+rung\s+enforce.*\n\* \(defaults\)\s+2 four-signal engine\s+errorRate,latency,resource,probe/)
  })
})

describeKafka('pullback status --artifacts (real broker)', () => {
  it('a calibrated four-signal service reaches rung 3 only with a verified artifact on the topic', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullback-ladder-'))
    const transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
    const topic = uniqueName('it-ladder-artifacts')
    try {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519')
      const pub = join(dir, 'artifacts.pub')
      writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }))
      await promoteArtifact(transport, topic, { service: 'shop/cart', artifact: 'registry/cart:1.4.2', version: '1.4.2', promotedAt: NOW }, signerFromKey(privateKey))
      const cfgFile = join(dir, 'pullback.yaml')
      writeFileSync(
        cfgFile,
        stringify({
          kafka: { brokers: kafkaBrokers().split(','), groupPrefix: uniqueName('it-ladder'), topics: { artifacts: topic } },
          actuator: { artifactKeys: [pub] },
          calibration: { services: { 'shop/cart': marker, 'pay/ledger': marker } },
        }),
      )
      const out: string[] = []
      const io = { out: (x: string) => void out.push(x), err: (x: string) => void out.push(x) }
      expect(await status.run(['--config', cfgFile, '--artifacts', '--json'], io, new AbortController().signal)).toBe(0)
      const by = Object.fromEntries(out.map((l) => JSON.parse(l) as { service: string; rung: number; next: string; artifacts: { promoted?: number } }).map((e) => [e.service, e]))
      expect(by['shop/cart']).toMatchObject({ rung: 3, artifacts: { promoted: 1 } })
      expect(by['pay/ledger']).toMatchObject({ rung: 2, artifacts: { promoted: 0 } })
      expect(by['pay/ledger']?.next).toMatch(/promote a verified artifact of it from CI \(pullback artifacts promote --service pay\/ledger/)
    } finally {
      const admin = transport.admin()
      await admin.deleteTopics([topic]).catch(() => undefined)
      await admin.disconnect()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
