/**
 * The audit record: one per rollback decision (and one per rejected decision), on `pullback.audit`
 * keyed by service id, optionally appended as one JSON line to `actuator.auditFile`.
 */
import { appendFile, open } from 'node:fs/promises'
import type { Logger } from '../common/logger.js'
import type { SignalReading, Verdict } from '../engine/verdict.js'
import type { KafkaTransport, Producer } from '../kafka/types.js'
import { readTopic } from './log.js'

export type AuditOutcome = 'recovered' | 'escalated' | 'halted' | 'rejected'

export interface PhaseStamp {
  phase: string
  /** unix ms */
  at: number
  note?: string
}

export interface SignalEvidence {
  signal: string
  state: string
  mode: string
  value: number
  baseline: number
  threshold: number
  samples: number
  critical: boolean
}

export interface AuditRecord {
  schemaVersion: 1
  decisionId: string
  /** "namespace/service" */
  service: string
  deploymentId?: string
  outcome: AuditOutcome
  reason: string
  decidedAt?: number
  /** breach signals of the rollback decision, with readings and sample counts */
  breach: SignalEvidence[]
  /** every phase transition in order */
  phases: PhaseStamp[]
  failedArtifact?: string
  failedVersion?: string
  restoredArtifact?: string
  restoredVersion?: string
  driver?: string
  /** true when this actuator sent the cutover request (false: already in place, level-triggered skip) */
  patched?: boolean
  /** the recovered / not-recovered verdict's readings, when one arrived */
  recovery?: { kind: string; decisionId: string; decidedAt: number; signals: SignalEvidence[] }
  escalated: boolean
  completedAt: number
  /**
   * outcome `rejected` only: what the envelope that failed verification claimed to be, sanitised
   * (no control characters, bounded); never trusted, never part of a service's history
   */
  claimed?: { decisionId: string; service: string; keyId: string; kind: string }
}

export function evidence(signals: readonly SignalReading[], onlyBreaches: boolean): SignalEvidence[] {
  return signals
    .filter((s) => !onlyBreaches || s.state === 'breach')
    .map((s) => ({ signal: s.signal, state: s.state, mode: s.mode, value: s.value, baseline: s.baseline, threshold: s.threshold, samples: s.samples, critical: s.critical }))
}

export function recoveryOf(v: Verdict): AuditRecord['recovery'] {
  return { kind: v.kind, decisionId: v.id, decidedAt: v.decidedAt, signals: evidence(v.signals, false) }
}

export type AuditWrite = { topic: 'written' | 'duplicate'; file: 'written' | 'duplicate' | 'none' }

/** how much of the file's end is searched for an earlier copy of a record (a duplicate comes from a crash right after the append, so it is near the end) */
export const AUDIT_FILE_SCAN_BYTES = 1024 * 1024

/**
 * Writes audit records: the topic first (durable, before the decision's offset is committed), then
 * the file. One record per decision id: a crash after the audit write and before the decision's
 * `done` state record repeats the write on resume, so
 *   - the file is searched (its last AUDIT_FILE_SCAN_BYTES) for the decision id before appending;
 *   - on the topic (keyed by service, so that one service's history stays in order on one
 *     partition) the record carries header `pullback-decision-id`; a write marked `resumed` (an
 *     earlier attempt may have written it) first reads the service's partition to its end and skips
 *     the send when the id is there. Readers (`pullback audit show`) also keep one record per id.
 */
export class AuditSink {
  constructor(private readonly o: { producer: Producer; topic: string; file?: string; transport?: KafkaTransport; groupPrefix?: string; logger?: Logger }) {}

  async write(r: AuditRecord, opts: { resumed?: boolean } = {}): Promise<AuditWrite> {
    let topic: AuditWrite['topic'] = 'written'
    if (opts.resumed === true && (await this.onTopic(r))) topic = 'duplicate'
    else await this.o.producer.send(this.o.topic, [{ key: r.service, value: JSON.stringify(r), headers: { 'pullback-schema': '1', 'pullback-outcome': r.outcome, 'pullback-decision-id': r.decisionId } }])
    if (!this.o.file) return { topic, file: 'none' }
    if (await fileHasDecision(this.o.file, r.decisionId)) return { topic, file: 'duplicate' }
    await appendFile(this.o.file, `${JSON.stringify(r)}\n`)
    return { topic, file: 'written' }
  }

  private async onTopic(r: AuditRecord): Promise<boolean> {
    if (!this.o.transport || !this.o.logger) return false
    const entries = await readTopic(this.o.transport, this.o.topic, { groupPrefix: `${this.o.groupPrefix ?? 'pullback'}.audit-dedupe`, markerKey: r.service, logger: this.o.logger })
    return entries.some((e) => e.key === r.service && parseAudit(e.value)?.decisionId === r.decisionId)
  }
}

/** whether one of the last AUDIT_FILE_SCAN_BYTES of `file` holds a record of `decisionId` */
export async function fileHasDecision(file: string, decisionId: string): Promise<boolean> {
  let fh
  try {
    fh = await open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  try {
    const size = (await fh.stat()).size
    const len = Math.min(size, AUDIT_FILE_SCAN_BYTES)
    const buf = Buffer.alloc(len)
    await fh.read(buf, 0, len, size - len)
    const needle = JSON.stringify(decisionId)
    const lines = buf.toString('utf8').split('\n')
    // the first line may be cut by the window; it then fails to parse and is skipped
    return lines.some((l) => l.includes(needle) && parseAudit(l)?.decisionId === decisionId)
  } finally {
    await fh.close()
  }
}

export function parseAudit(line: string | Buffer): AuditRecord | undefined {
  try {
    const r = JSON.parse(line.toString()) as Partial<AuditRecord>
    if (r.schemaVersion !== 1 || typeof r.decisionId !== 'string' || typeof r.service !== 'string' || !Array.isArray(r.phases)) return undefined
    return r as AuditRecord
  } catch {
    return undefined
  }
}

const iso = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString())
const num = (n: number) => (Number.isInteger(n) ? String(n) : n.toPrecision(4))

/** A human timeline of one record. */
export function formatAudit(r: AuditRecord): string {
  const lines: string[] = []
  lines.push(`decision ${r.decisionId}  ${r.service}  outcome: ${r.outcome.toUpperCase()}${r.escalated ? ' (escalated)' : ''}`)
  lines.push(`  reason:    ${r.reason}`)
  if (r.failedArtifact || r.failedVersion) lines.push(`  failed:    ${r.failedArtifact ?? '-'} (version ${r.failedVersion ?? '-'})`)
  if (r.restoredArtifact || r.restoredVersion) lines.push(`  restored:  ${r.restoredArtifact ?? '-'} (version ${r.restoredVersion ?? '-'})${r.patched === false ? ' [already in place, not patched]' : ''}`)
  if (r.driver) lines.push(`  driver:    ${r.driver}`)
  if (r.claimed) lines.push(`  claimed:   decision ${JSON.stringify(r.claimed.decisionId)} of ${JSON.stringify(r.claimed.service)}, kind ${JSON.stringify(r.claimed.kind)}, key ${JSON.stringify(r.claimed.keyId)} (unverified)`)
  if (r.breach.length > 0) {
    lines.push('  breach:')
    lines.push(`    ${'signal'.padEnd(11)} ${'value'.padStart(10)} ${'baseline'.padStart(10)} ${'threshold'.padStart(10)} ${'samples'.padStart(8)}`)
    for (const s of r.breach) lines.push(`    ${s.signal.padEnd(11)} ${num(s.value).padStart(10)} ${num(s.baseline).padStart(10)} ${num(s.threshold).padStart(10)} ${String(s.samples).padStart(8)}${s.critical ? ' critical' : ''}`)
  }
  lines.push('  timeline:')
  const t0 = r.phases[0]?.at
  for (const p of r.phases) lines.push(`    ${iso(p.at)}  +${((p.at - (t0 ?? p.at)) / 1000).toFixed(3)}s  ${p.phase}${p.note ? `  (${p.note})` : ''}`)
  if (r.recovery) {
    lines.push(`  recovery verdict: ${r.recovery.kind} at ${iso(r.recovery.decidedAt)}`)
    for (const s of r.recovery.signals) lines.push(`    ${s.signal.padEnd(11)} ${s.state.padEnd(12)} value ${num(s.value)} baseline ${num(s.baseline)} samples ${s.samples}`)
  }
  lines.push(`  completed: ${iso(r.completedAt)}`)
  return lines.join('\n')
}
