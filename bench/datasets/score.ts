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

function main(): number {
  const { values } = parseArgs({ options: { cases: { type: 'string' }, split: { type: 'string' }, config: { type: 'string' } } })
  const dir = values.cases ?? 'bench/datasets/data/nezha-otlp'
  const split = values.split ?? 'tuning'
  if (!['tuning', 'held-out', 'all'].includes(split)) throw new Error('--split is tuning, held-out or all')
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
  const all = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as CaseInfo[]
  const cases = all.filter((c) => split === 'all' || c.split === split)
  const results: { c: CaseInfo; outcome: Outcome; delayS: number | undefined }[] = []
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
    results.push({ c, outcome, delayS })
    process.stderr.write(`score: [${i + 1}/${cases.length}] ${c.id}: ${outcome}${delayS !== undefined ? ` after ${delayS.toFixed(0)} s` : ''}\n`)
  }
  const types = [...new Set(results.map((r) => r.c.type))].sort((a, b) => (a === 'quiet' ? 1 : b === 'quiet' ? -1 : a.localeCompare(b)))
  const rows = [['type', 'expected', 'cases', 'rollback', 'incident', 'none', 'dry-run', 'error', 'median delay']]
  for (const t of types) {
    const rs = results.filter((r) => r.c.type === t)
    const n = (o: Outcome) => String(rs.filter((r) => r.outcome === o).length)
    const ds = rs.map((r) => r.delayS).filter((x): x is number => x !== undefined).sort((a, b) => a - b)
    rows.push([t, rs[0]?.c.expected ?? '-', String(rs.length), n('rollback'), n('incident'), n('none'), n('dry-run'), n('error'), ds.length === 0 ? '-' : `${ds[Math.floor(ds.length / 2)]!.toFixed(0)} s`])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const code = results.filter((r) => r.c.expected === 'rollback')
  const quiet = results.filter((r) => r.c.kind === 'quiet')
  process.stdout.write(`nezha cases, split ${split}: ${results.length}\n\n${rows.map((r) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')}\n\n`)
  process.stdout.write(`code-level faults rolled back: ${code.filter((r) => r.outcome === 'rollback').length}/${code.length}\n`)
  process.stdout.write(`false rollbacks on quiet cases: ${quiet.filter((r) => r.outcome === 'rollback').length}/${quiet.length} (incidents: ${quiet.filter((r) => r.outcome === 'incident').length})\n`)
  return results.some((r) => r.outcome === 'error') ? 1 : 0
}

process.exitCode = main()
