/**
 * Writes calibration results as the `engine.services` section of a pullback config file: each
 * service's override, each value with a YAML comment giving its evidence. The file is a complete
 * config (everything else defaulted) that `loadConfig` validates; merge its `engine.services` into
 * the deployed config.
 */
import type { CalibrationResult } from './search.js'

type Calibrated = Extract<CalibrationResult, { kind: 'calibrated' | 'no-candidate' }>

export interface ContractsHeader {
  source: string
  days: number
  targetFalseRate: number
  generatedAt: number
}

function scalar(v: unknown, path: string): string {
  if (typeof v === 'number') {
    // durations are written in the config's own notation
    if (path === 'window' || path.endsWith('Window') || path === 'watch') return JSON.stringify(v % 1000 === 0 ? `${v / 1000}s` : `${v}ms`)
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)))
  }
  if (typeof v === 'string') return /^[a-z]+$/.test(v) ? v : JSON.stringify(v)
  return JSON.stringify(v)
}

function comment(s: string | undefined): string {
  return s === undefined ? '' : `  # ${s.replace(/[\r\n]+/g, ' ')}`
}

function emit(lines: string[], obj: Record<string, unknown>, indent: string, prefix: string, evidence: Record<string, string>): void {
  // mode first: it is what a reader looks for
  const keys = Object.keys(obj).sort((a, b) => (a === 'mode' ? -1 : b === 'mode' ? 1 : 0))
  for (const k of keys) {
    const v = obj[k]
    if (v === undefined) continue
    const path = prefix === '' ? k : `${prefix}.${k}`
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      lines.push(`${indent}${k}:`)
      emit(lines, v as Record<string, unknown>, `${indent}  `, path, evidence)
    } else lines.push(`${indent}${k}: ${scalar(v, path)}${comment(evidence[path])}`)
  }
}

export function contractsYaml(results: readonly CalibrationResult[], h: ContractsHeader): string {
  const lines = [
    `# pullback calibrate: per-service threshold contracts from ${h.days} days of history (${h.source}),`,
    `# generated ${new Date(h.generatedAt).toISOString()}. Target: false rollbacks on pseudo-deployments at or`,
    `# under ${(h.targetFalseRate * 100).toFixed(2)} %. Each pseudo-deployment replays the service's own history through the`,
    '# real engine as a new version with nothing changed, so every rollback on it is a false one.',
    '# Merge engine.services into your pullback.yaml; values not listed keep engine.defaults.',
  ]
  const skipped = results.filter((r) => r.kind === 'too-little-data')
  for (const r of skipped) lines.push(`# ${r.service}: not calibrated: ${r.reason}`)
  const done = results.filter((r): r is Calibrated => r.kind !== 'too-little-data')
  lines.push('engine:')
  if (done.length === 0) {
    lines.push('  services: {}')
    return `${lines.join('\n')}\n`
  }
  const markers = [
    '# The calibration markers: the readiness ladder (pullback status, /status) reads them; merge them with the contracts.',
    'calibration:',
    '  services:',
  ]
  for (const r of done) {
    markers.push(`    ${JSON.stringify(r.service)}:`)
    markers.push(`      at: ${JSON.stringify(new Date(h.generatedAt).toISOString())}`)
    markers.push(`      source: ${JSON.stringify(h.source)}`)
    markers.push(`      days: ${Number(r.historyDays.toFixed(2))}`)
    markers.push(`      heldOut: "${r.heldOut.falseRollbacks}/${r.heldOut.deploys}"`)
    markers.push(`      recommended: ${r.enforce.kind}`)
    if (r.enforce.kind === 'observe') markers.push(`      reason: ${JSON.stringify(r.enforce.reason)}`)
  }
  lines.push('  services:')
  for (const r of done) {
    lines.push(`    ${JSON.stringify(r.service)}:`)
    lines.push(`      # ${r.historyDays.toFixed(1)} days of history; traffic p10 ${r.traffic.p10Rps.toPrecision(3)} req/s, median ${r.traffic.medianRps.toPrecision(3)} req/s`)
    lines.push(`      # current contract: ${r.current.falseRollbacks}/${r.current.deploys} false rollbacks; this one: ${r.chosen.falseRollbacks}/${r.chosen.deploys}, held out ${r.heldOut.falseRollbacks}/${r.heldOut.deploys}`)
    if (r.kind === 'no-candidate') lines.push('      # no candidate met the target: the loosest was kept and nothing is enforced')
    if (r.enforce.kind === 'observe') lines.push(`      # not enforced: ${r.enforce.reason}`)
    emit(lines, r.override as Record<string, unknown>, '      ', '', r.evidence)
  }
  lines.push(...markers)
  return `${lines.join('\n')}\n`
}

/** One table row per service, for the terminal. */
export function resultTable(results: readonly CalibrationResult[]): string {
  const rows: string[][] = [['service', 'days', 'p10 req/s', 'current FR', 'chosen FR', 'held-out FR', 'errors', 'latency', 'catches', 'mode']]
  for (const r of results) {
    if (r.kind === 'too-little-data') {
      rows.push([r.service, r.historyDays.toFixed(1), '-', '-', '-', '-', '-', '-', '-', `skipped: ${r.reason}`])
      continue
    }
    const e = r.contract.signals.errorRate
    const l = r.contract.signals.latency
    rows.push([
      r.service,
      r.historyDays.toFixed(1),
      r.traffic.p10Rps.toPrecision(3),
      `${r.current.falseRollbacks}/${r.current.deploys}`,
      `${r.chosen.falseRollbacks}/${r.chosen.deploys}`,
      `${r.heldOut.falseRollbacks}/${r.heldOut.deploys}`,
      `+${e.minDelta} & ${e.relativeFactor}x`,
      `${l.multiplier}x & +${l.minIncreaseMs}ms`,
      `${r.power.errorStep !== undefined ? `+${Math.round(r.power.errorStep * 100)}pt` : 'no err step'}, ${r.power.latencyFactor !== undefined ? `${r.power.latencyFactor}x` : 'no lat step'}`,
      r.enforce.kind === 'enforce' ? (r.override.signals?.resource?.mode === 'observe' ? 'enforce (resource observe)' : 'enforce') : 'observe',
    ])
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)))
  return `${rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd()).join('\n')}\n`
}
