/** Issue 11, item 7b: an audit record written again after a crash at the audit step is not doubled. */
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AUDIT_FILE_SCAN_BYTES, AuditSink, fileHasDecision, parseAudit, type AuditRecord } from '../../src/actuator/audit.js'
import { readTopic } from '../../src/actuator/log.js'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'

const record = (decisionId: string): AuditRecord => ({
  schemaVersion: 1,
  decisionId,
  service: 'default/web',
  outcome: 'recovered',
  reason: 'recovered',
  breach: [],
  phases: [{ phase: 'received', at: 1 }],
  escalated: false,
  completedAt: 2,
})

describe('audit sink dedupe by decision id', () => {
  it('a record written again (resumed after a crash between the audit write and the done record) appears once on the topic and in the file', async () => {
    const bus = new MemoryBus({ redeliveryBackoffMs: 20 })
    const file = join(mkdtempSync(join(tmpdir(), 'pb-audit-')), 'audit.jsonl')
    const sink = new AuditSink({ producer: bus.producer(), topic: 'audit', file, transport: bus, groupPrefix: 'g', logger: silentLogger })
    expect(await sink.write(record('d-1'))).toEqual({ topic: 'written', file: 'written' })
    expect(await sink.write(record('d-2'))).toEqual({ topic: 'written', file: 'written' })
    expect(await sink.write(record('d-1'), { resumed: true })).toEqual({ topic: 'duplicate', file: 'duplicate' })
    // a first attempt that died after the topic write, before the file append
    expect(await sink.write(record('d-3'))).toEqual({ topic: 'written', file: 'written' })
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => parseAudit(l)!.decisionId)
    expect(lines).toEqual(['d-1', 'd-2', 'd-3'])
    const onTopic = (await readTopic(bus, 'audit', { groupPrefix: 'g', markerKey: 'default/web', logger: silentLogger })).map((e) => parseAudit(e.value)!.decisionId)
    expect(onTopic).toEqual(['d-1', 'd-2', 'd-3'])
  })

  it('the file check reads only the tail of the file, and a record cut at the window start does not count', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pb-audit-')), 'audit.jsonl')
    appendFileSync(file, `${JSON.stringify(record('old'))}\n`)
    const filler = JSON.stringify({ ...record('filler'), reason: 'x'.repeat(4000) })
    for (let i = 0; i < Math.ceil(AUDIT_FILE_SCAN_BYTES / filler.length) + 1; i++) appendFileSync(file, `${filler}\n`)
    appendFileSync(file, `${JSON.stringify(record('new'))}\n`)
    expect(await fileHasDecision(file, 'new')).toBe(true)
    expect(await fileHasDecision(file, 'old')).toBe(false)
    expect(await fileHasDecision(join(file, '..', 'missing.jsonl'), 'new')).toBe(false)
  })
})
