/**
 * Scores converted dataset cases (bench/datasets/nezha.ts writes them) with the real CLI, one
 * process per case, exactly as a user would: `node dist/src/cli/main.js replay FILE --no-actuator`.
 *
 *   npm run build && node dist/bench/datasets/score.js [--cases bench/datasets/data/nezha-otlp] [--split tuning|held-out|all] [--config FILE]
 *
 * Prints, per fault type, how many cases ended in rollback / incident / none (first non-dry-run
 * verdict about the case's service; dry-run verdicts are counted apart), the false rollbacks on
 * quiet cases, and a progress line per case on stderr. Default split: `tuning`; the held-out
 * 30 % is for a final check only (bench/datasets/README.md).
 *
 * Beside it, a Flagger-style threshold policy on the same files, for comparison (not a product
 * feature): every 60 s export of the new version is one check; a check whose request delta has
 * more than 5 % 5xx, or no requests at all ("no values" fails in Flagger), rolls back.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { CaseInfo } from './nezha.js'

interface VerdictLine {
  kind: string
  dryRun: boolean
  service: string
  decidedAt: number
}

type Outcome = 'rollback' | 'incident' | 'none' | 'dry-run' | 'error'

interface HistPoint {
  attributes: { key: string; value: { intValue?: string } }[]
  count: string
}

/** The comparison policy: 5 % 5xx per 60 s check of the new version's cumulative deltas; no requests fails. */
export function thresholdPolicy(lines: string[], service: string): 'rollback' | 'none' {
  let prev: { total: number; errors: number } | undefined
  for (const line of lines) {
    const req = JSON.parse(line) as { resourceMetrics?: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeMetrics: { metrics: { name: string; histogram?: { dataPoints: HistPoint[] } }[] }[] }[] }
    for (const rm of req.resourceMetrics ?? []) {
      const attr = (k: string) => rm.resource.attributes.find((a) => a.key === k)?.value.stringValue
      if (attr('service.name') !== service || attr('service.version') !== 'v2') continue
      let total = 0
      let errors = 0
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          if (m.name !== 'http.server.request.duration') continue
          for (const dp of m.histogram?.dataPoints ?? []) {
            total += Number(dp.count)
            if (Number(dp.attributes.find((a) => a.key === 'http.response.status_code')?.value.intValue) >= 500) errors += Number(dp.count)
          }
        }
      }
      const dTotal = total - (prev?.total ?? 0)
      const dErrors = errors - (prev?.errors ?? 0)
      prev = { total, errors }
      if (dTotal <= 0 || dErrors / dTotal > 0.05) return 'rollback'
    }
  }
  return 'none'
}

function main(): number {
  const { values } = parseArgs({ options: { cases: { type: 'string' }, split: { type: 'string' }, config: { type: 'string' } } })
  const dir = values.cases ?? 'bench/datasets/data/nezha-otlp'
  const split = values.split ?? 'tuning'
  if (!['tuning', 'held-out', 'all'].includes(split)) throw new Error('--split is tuning, held-out or all')
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
  const all = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as CaseInfo[]
  const cases = all.filter((c) => split === 'all' || c.split === split)
  const results: { c: CaseInfo; outcome: Outcome; delayS: number | undefined; policy: 'rollback' | 'none' }[] = []
  for (const [i, c] of cases.entries()) {
    const args = [cli, 'replay', join(dir, c.file), '--no-actuator', ...(values.config !== undefined ? ['--config', values.config] : [])]
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    let outcome: Outcome = 'none'
    let delayS: number | undefined
    if (r.status !== 0) outcome = 'error'
    else {
      const vs = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as VerdictLine)
        .filter((v) => v.service === c.service && (v.kind === 'rollback' || v.kind === 'incident'))
      const live = vs.find((v) => !v.dryRun)
      if (live !== undefined) {
        outcome = live.kind as Outcome
        delayS = (live.decidedAt - c.deployMs) / 1000
      } else if (vs.length > 0) outcome = 'dry-run'
    }
    const policy = thresholdPolicy(readFileSync(join(dir, c.file), 'utf8').split('\n').filter((l) => l !== ''), c.service)
    results.push({ c, outcome, delayS, policy })
    process.stderr.write(`score: [${i + 1}/${cases.length}] ${c.id}: ${outcome}${delayS !== undefined ? ` after ${delayS.toFixed(0)} s` : ''} (threshold policy: ${policy})\n`)
  }
  const types = [...new Set(results.map((r) => r.c.type))].sort((a, b) => (a === 'quiet' ? 1 : b === 'quiet' ? -1 : a.localeCompare(b)))
  const rows = [['type', 'expected', 'cases', 'rollback', 'incident', 'none', 'dry-run', 'error', 'median delay', 'threshold policy: rollback']]
  for (const t of types) {
    const rs = results.filter((r) => r.c.type === t)
    const n = (o: Outcome) => String(rs.filter((r) => r.outcome === o).length)
    const ds = rs.map((r) => r.delayS).filter((x): x is number => x !== undefined).sort((a, b) => a - b)
    rows.push([t, rs[0]?.c.expected ?? '-', String(rs.length), n('rollback'), n('incident'), n('none'), n('dry-run'), n('error'), ds.length === 0 ? '-' : `${ds[Math.floor(ds.length / 2)]!.toFixed(0)} s`, String(rs.filter((r) => r.policy === 'rollback').length)])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const code = results.filter((r) => r.c.expected === 'rollback')
  const quiet = results.filter((r) => r.c.kind === 'quiet')
  process.stdout.write(`nezha cases, split ${split}: ${results.length}\n\n${rows.map((r) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')}\n\n`)
  process.stdout.write(
    `code-level faults rolled back: ${code.filter((r) => r.outcome === 'rollback').length}/${code.length} (threshold policy: ${code.filter((r) => r.policy === 'rollback').length}/${code.length})\n`,
  )
  process.stdout.write(
    `false rollbacks on quiet cases: ${quiet.filter((r) => r.outcome === 'rollback').length}/${quiet.length}, incidents: ${quiet.filter((r) => r.outcome === 'incident').length} (threshold policy: ${quiet.filter((r) => r.policy === 'rollback').length}/${quiet.length})\n`,
  )
  return results.some((r) => r.outcome === 'error') ? 1 : 0
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main()
