import { mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { main } from '../../src/cli/main.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import type { AuditRecord } from '../../src/actuator/audit.js'
import { createTransport } from '../../src/kafka/index.js'
import { kafkaSchema } from '../../src/kafka/config.js'

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) })
  return { code, out, err }
}

describe('pullback keys / audit (no broker)', () => {
  it('keys generate writes a 0600 private key and a public key, and refuses to overwrite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-keys-'))
    const r = await run(['keys', 'generate', '--out', dir, '--name', 'ci'])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/key id\s+[0-9a-f]{16}/)
    expect(statSync(join(dir, 'ci.key')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'ci.pub')).isFile()).toBe(true)
    expect((await run(['keys', 'generate', '--out', dir, '--name', 'ci'])).code).toBe(1)
    expect((await run(['keys', 'generate'])).code).toBe(2)
  })

  it('audit show prints a timeline per record from a JSON-lines file, deduplicated by decision id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-audit-'))
    const rec: AuditRecord = {
      schemaVersion: 1,
      decisionId: 'd1',
      service: 'shop/cart',
      outcome: 'recovered',
      reason: 'recovered: all signals within baseline',
      breach: [{ signal: 'error_rate', state: 'breach', mode: 'enforce', value: 0.12, baseline: 0.005, threshold: 0.02, samples: 4200, critical: false }],
      phases: [
        { phase: 'received', at: 1_700_000_000_000 },
        { phase: 'cutover-applied', at: 1_700_000_000_250, note: 'deployment cart -> ReplicaSet cart-abc' },
      ],
      failedArtifact: 'reg/cart:2',
      restoredArtifact: 'reg/cart:1',
      restoredVersion: '1',
      escalated: false,
      completedAt: 1_700_000_090_000,
    }
    const file = join(dir, 'audit.jsonl')
    writeFileSync(file, [rec, { ...rec, service: 'other/svc' }, rec].map((r) => JSON.stringify(r)).join('\n') + '\n')
    const r = await run(['audit', 'show', '--service', 'shop/cart', '--file', file])
    expect(r.code).toBe(0)
    expect(r.out.match(/decision d1/g)).toHaveLength(1)
    expect(r.out).toContain('outcome: RECOVERED')
    expect(r.out).toMatch(/error_rate\s+0\.1200\s+0\.005000\s+0\.02000\s+4200/)
    expect(r.out).toContain('+0.250s  cutover-applied')
    expect(r.out).not.toContain('other/svc')
  })
})

describeKafka('pullback artifacts (real broker)', () => {
  it('promote writes signed records to a compacted topic; list shows the newest with verification status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-art-'))
    expect((await run(['keys', 'generate', '--out', dir, '--name', 'ci'])).code).toBe(0)
    expect((await run(['keys', 'generate', '--out', dir, '--name', 'rogue'])).code).toBe(0)
    const cfgFile = join(dir, 'pullback.yaml')
    writeFileSync(cfgFile, stringify({ kafka: { brokers: kafkaBrokers().split(','), groupPrefix: uniqueName('pb'), topics: { artifacts: uniqueName('artifacts') } }, actuator: { artifactKeys: [join(dir, 'ci.pub')] } }))
    for (const [v, key] of [['1.0.0', 'ci'], ['1.1.0', 'ci'], ['1.2.0', 'rogue'], ['1.3.0', 'ci']] as const) {
      const r = await run(['artifacts', 'promote', '--service', 'shop/cart', '--artifact', `reg.local/cart:${v}`, '--key', join(dir, `${key}.key`), '--config', cfgFile])
      expect(r.code, r.err).toBe(0)
      await new Promise((res) => setTimeout(res, 5))
    }
    const list = await run(['artifacts', 'list', '--service', 'shop/cart', '--config', cfgFile, '--all'])
    expect(list.code, list.err).toBe(0)
    const lines = list.out.trim().split('\n')
    expect(lines[0]).toMatch(/^PROMOTED\s+VERSION\s+SIGNATURE/)
    expect(lines.slice(1).map((l) => l.split(/\s+/)[1])).toEqual(['1.3.0', '1.2.0', '1.1.0', '1.0.0'])
    expect(lines[2]).toContain('INVALID (unknown-key)')
    expect(lines[1]).toContain('valid')
    const newest = await run(['artifacts', 'list', '--service', 'shop/cart', '--config', cfgFile])
    expect(newest.out).toContain('(1 older not shown; --all)')
  }, 60_000)

  it('audit show reads the audit topic from the beginning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-audit-topic-'))
    const audit = uniqueName('audit')
    const cfgFile = join(dir, 'pullback.yaml')
    writeFileSync(cfgFile, stringify({ kafka: { brokers: kafkaBrokers().split(','), groupPrefix: uniqueName('pb'), topics: { audit } } }))
    const transport = await createTransport(kafkaSchema.parse({ brokers: kafkaBrokers().split(',') }))
    const p = transport.producer()
    await p.connect()
    const rec = (id: string, service: string) => ({ schemaVersion: 1, decisionId: id, service, outcome: 'halted', reason: 'no verified artifact', breach: [], phases: [{ phase: 'received', at: 1 }], escalated: true, completedAt: 2 })
    await p.send(audit, [rec('a1', 'shop/cart'), rec('b1', 'shop/other'), rec('a2', 'shop/cart')].map((r) => ({ key: r.service, value: JSON.stringify(r) })))
    await p.disconnect()
    const r = await run(['audit', 'show', '--service', 'shop/cart', '--config', cfgFile])
    expect(r.code, r.err).toBe(0)
    expect(r.out.match(/^decision /gm)).toHaveLength(2)
    expect(r.out).toContain('outcome: HALTED (escalated)')
    expect(r.out).not.toContain('b1')
  }, 60_000)
})
