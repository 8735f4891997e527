/**
 * The audit record: one per rollback decision (and one per rejected decision), on `pullback.audit`
 * keyed by service id, optionally appended as one JSON line to `actuator.auditFile`.
 */
import { appendFile } from 'node:fs/promises'
import type { SignalReading, Verdict } from '../engine/verdict.js'
import type { Producer } from '../kafka/types.js'

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
}

export function evidence(signals: readonly SignalReading[], onlyBreaches: boolean): SignalEvidence[] {
  return signals
    .filter((s) => !onlyBreaches || s.state === 'breach')
    .map((s) => ({ signal: s.signal, state: s.state, mode: s.mode, value: s.value, baseline: s.baseline, threshold: s.threshold, samples: s.samples, critical: s.critical }))
}

export function recoveryOf(v: Verdict): AuditRecord['recovery'] {
  return { kind: v.kind, decisionId: v.id, decidedAt: v.decidedAt, signals: evidence(v.signals, false) }
}

/** Writes audit records: the topic first (durable, before the decision's offset is committed), then the file. */
export class AuditSink {
  constructor(private readonly o: { producer: Producer; topic: string; file?: string }) {}

  async write(r: AuditRecord): Promise<void> {
    await this.o.producer.send(this.o.topic, [{ key: r.service, value: JSON.stringify(r), headers: { 'pullback-schema': '1', 'pullback-outcome': r.outcome } }])
    if (this.o.file) await appendFile(this.o.file, `${JSON.stringify(r)}\n`)
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
