/**
 * The readiness ladder (issue 14 item 4): where each service stands on the way to automated
 * rollback, and the next step to climb. Climb one rung at a time:
 *
 *   0 no automation         no signal enforces (off / observe only: verdicts are dry runs)
 *   1 single-signal         at least one signal enforces, not all four
 *   2 four-signal engine    error rate, latency, resource and probe all enforce
 *   3 verified artifacts    rung 2 on a calibrated contract, with the actuator verifying artifacts
 *     plus audit            (actuator.artifactKeys) and keeping a durable audit (a Kafka audit topic or
 *                           actuator.auditFile); when the artifacts topic was read (`promoted`), at
 *                           least one valid verified artifact of the service on it
 *
 * Calibration (a `calibration.services` marker, written by `pullback calibrate` beside the
 * contract) is shown on every rung and is the first "next step" wherever it is missing: enforcing
 * on uncalibrated defaults is how teams get spurious rollbacks twice a week. Pure: computed from the
 * config alone (and the time, for the marker's age).
 */
import type { PullbackConfig } from '../config/schema.js'
import { contractFor } from '../engine/config.js'
import type { CalibrationMarker } from './config.js'

export const RUNGS = ['no automation', 'single-signal', 'four-signal engine', 'verified artifacts plus audit'] as const
const SIGNALS = ['errorRate', 'latency', 'resource', 'probe'] as const
type Signal = (typeof SIGNALS)[number]

export interface LadderEntry {
  service: string
  rung: 0 | 1 | 2 | 3
  rungName: (typeof RUNGS)[number]
  enforce: Signal[]
  observe: Signal[]
  off: Signal[]
  calibration: { kind: 'calibrated'; at: string; ageDays: number; source: string; heldOut: string; recommended: 'enforce' | 'observe' } | { kind: 'not calibrated' }
  /** verified: the actuator verifies artifacts (actuator.artifactKeys); promoted: valid verification records of the service on the artifacts topic, when it was read (`pullback status --artifacts`) */
  artifacts: { verified: boolean; audit: 'kafka' | 'file' | 'none'; promoted?: number }
  next: string
}

/** The services a ladder lists from the config: every engine.services and calibration.services key. */
export function configuredServices(cfg: PullbackConfig): string[] {
  return [...new Set([...Object.keys(cfg.engine.services), ...Object.keys(cfg.calibration.services)])].sort()
}

export interface LadderOptions {
  /** valid verified artifacts of a service on the artifacts topic; undefined: not read (judged from the config alone) */
  promoted?: (service: string) => number | undefined
}

export function ladderEntry(cfg: PullbackConfig, service: string, nowMs: number, opts: LadderOptions = {}): LadderEntry {
  const c = contractFor(cfg.engine, service)
  const by = (m: string) => SIGNALS.filter((s) => c.signals[s].mode === m)
  const enforce = by('enforce')
  const observe = by('observe')
  const off = by('off')
  const marker: CalibrationMarker | undefined = cfg.calibration.services[service]
  const calibration: LadderEntry['calibration'] =
    marker === undefined
      ? { kind: 'not calibrated' }
      : { kind: 'calibrated', at: marker.at, ageDays: Math.max(0, (nowMs - Date.parse(marker.at)) / 86_400_000), source: marker.source, heldOut: marker.heldOut, recommended: marker.recommended }
  const audit = cfg.actuator.auditFile !== undefined ? 'file' : cfg.kafka.brokers.length > 0 ? 'kafka' : 'none'
  const promoted = service === '*' ? undefined : opts.promoted?.(service)
  const artifacts: LadderEntry['artifacts'] = { verified: cfg.actuator.artifactKeys.length > 0, audit, ...(promoted !== undefined ? { promoted } : {}) }
  const calibrated = calibration.kind === 'calibrated'
  let rung: LadderEntry['rung'] = enforce.length === 0 ? 0 : enforce.length < SIGNALS.length ? 1 : 2
  // a service with no verified artifact on the topic (when it was read) has nothing to roll back to
  if (rung === 2 && calibrated && artifacts.verified && audit !== 'none' && promoted !== 0) rung = 3
  const calibrate = `calibrate it (pullback calibrate --prometheus URL | --kafka HOST:PORT --service ${service} --out contracts.yaml) and merge the contract`
  let next: string
  if (rung === 0) next = calibrated ? `put errorRate in enforce (engine.services["${service}"].signals.errorRate.mode: enforce)${marker?.recommended === 'observe' ? `; calibrate recommended observe: ${marker.reason ?? 'see the contracts file'}` : ''}` : `${calibrate}, then put errorRate in enforce`
  else if (rung === 1) next = `${calibrated ? '' : `${calibrate}; then `}enforce ${SIGNALS.filter((s) => !enforce.includes(s)).join(', ')}`
  else if (rung === 2) {
    const missing: string[] = []
    if (!calibrated) missing.push(`${calibrate} (four signals enforce on an uncalibrated contract)`)
    if (!artifacts.verified) missing.push('trust verified artifacts only (actuator.artifactKeys; promote builds with pullback artifacts promote)')
    else if (promoted === 0) missing.push(`promote a verified artifact of it from CI (pullback artifacts promote --service ${service} --artifact REF --key KEY)`)
    if (audit === 'none') missing.push('keep a durable audit (kafka.brokers for the audit topic, or actuator.auditFile)')
    next = missing.join('; ')
  } else next = calibration.kind === 'calibrated' && calibration.ageDays > 30 ? `top rung; the calibration is ${calibration.ageDays.toFixed(0)} days old: re-calibrate` : 'top rung: re-calibrate after traffic or architecture changes (monthly)'
  return { service, rung, rungName: RUNGS[rung], enforce, observe, off, calibration, artifacts, next }
}

/** The ladder of `services` (default: the configured ones, plus "*" for the defaults every other service gets). */
export function ladder(cfg: PullbackConfig, nowMs: number, services?: readonly string[], opts: LadderOptions = {}): LadderEntry[] {
  const list = services ?? [...configuredServices(cfg), '*']
  return list.map((s) => ladderEntry(cfg, s, nowMs, opts))
}

export function ladderTable(entries: readonly LadderEntry[]): string {
  const rows: string[][] = [['service', 'rung', 'enforce', 'observe', 'calibrated', 'artifacts', 'next step']]
  for (const e of entries) {
    rows.push([
      e.service === '*' ? '* (defaults)' : e.service,
      `${e.rung} ${e.rungName}`,
      e.enforce.join(',') || '-',
      e.observe.join(',') || '-',
      e.calibration.kind === 'calibrated' ? `${e.calibration.at.slice(0, 10)} (held out ${e.calibration.heldOut})` : 'no',
      `${e.artifacts.verified ? 'verified' : 'unverified'}${e.artifacts.promoted !== undefined ? ` (${e.artifacts.promoted} promoted)` : ''}, audit ${e.artifacts.audit}`,
      e.next,
    ])
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)))
  return `${rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(w[c] as number))).join('  ').trimEnd()).join('\n')}\n`
}
