/**
 * Two `npm run bench` result files side by side: is every figure reproducible within a tolerance?
 *
 *   node dist/bench/compare.js REFERENCE.json NEW.json [--tolerance 0.2] [--only engine,signals]
 *
 * A figure is what the benches print as min / median / max over their runs (bench/stats.ts Spread)
 * in their JSON lines, found wherever it sits in a line (its path names it). Per figure: the two
 * medians, their ratio, whether the ratio is within 1 +- tolerance, and whether the two runs' ranges
 * overlap. Per bench: the machine's busy and hypervisor-steal shares of both runs (run.ts), which
 * explain much of what moves on a shared VM. Benches that did not run in both files are listed, not
 * compared; figures whose reference median is 0 or not finite are listed as not comparable.
 *
 * Exit: 0 when every comparable figure is within the tolerance, 1 when one is not, 2 on bad input
 * (a file that cannot be read or is not a bench-results document, a bad flag).
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { Spread } from './stats.js'

/** The parts of run.ts's document this tool reads. */
interface BenchDoc {
  startedAt?: string
  /** run.ts writes the checked-out commit (older files have none) */
  commit?: string
  /** bench/machine-speed.ts before and after the suite (older files have none) */
  machineSpeed?: { start?: Spread; end?: Spread }
  benches: { name: string; kind: 'ran' | 'skipped'; code?: number; json?: unknown[]; machine?: { busy: number; steal: number } }[]
}

export interface FigureRow {
  bench: string
  /** where in the bench's JSON lines: `<line>.<key>.<key>` */
  path: string
  a: Spread
  b: Spread
  /** b.median / a.median; NaN when not comparable */
  ratio: number
  verdict: 'within' | 'outside' | 'not comparable'
  overlap: boolean
}

export interface Comparison {
  rows: FigureRow[]
  /** benches present in one file only, or not run in both */
  unmatched: { bench: string; why: string }[]
  machine: { bench: string; a?: { busy: number; steal: number }; b?: { busy: number; steal: number } }[]
}

export class InputError extends Error {}

/** Parses and checks a bench-results document; names the file and what is wrong. */
export function parseDoc(text: string, name: string): BenchDoc {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new InputError(`${name}: not JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  const benches = (doc as { benches?: unknown } | null)?.benches
  if (!Array.isArray(benches)) throw new InputError(`${name}: no "benches" array: not a bench-results file of npm run bench`)
  benches.forEach((b: unknown, i) => {
    const o = b as { name?: unknown; kind?: unknown }
    if (typeof o?.name !== 'string' || (o.kind !== 'ran' && o.kind !== 'skipped')) throw new InputError(`${name}: benches[${i}]: needs a string "name" and "kind" ran | skipped`)
  })
  return doc as BenchDoc
}

/** The probe's medians before and after the suite, and their mean; undefined when the file has none. */
export function machineSpeed(d: BenchDoc): { start: number; end: number; mean: number } | undefined {
  const s = d.machineSpeed?.start?.median
  const e = d.machineSpeed?.end?.median
  if (s === undefined && e === undefined) return undefined
  const start = s ?? (e as number)
  const end = e ?? start
  return { start, end, mean: (start + end) / 2 }
}

function isSpread(v: unknown): v is Spread {
  const o = v as Record<string, unknown> | null
  return o !== null && typeof o === 'object' && typeof o.min === 'number' && typeof o.median === 'number' && typeof o.max === 'number'
}

/** Every Spread in `v`, keyed by its path (array items by index, object keys by name). */
export function spreads(v: unknown, path = '', out = new Map<string, Spread>()): Map<string, Spread> {
  if (isSpread(v)) {
    out.set(path, v)
    return out
  }
  if (Array.isArray(v)) v.forEach((x, i) => spreads(x, path === '' ? String(i) : `${path}.${i}`, out))
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) spreads(x, path === '' ? k : `${path}.${k}`, out)
  return out
}

export function compare(a: BenchDoc, b: BenchDoc, tolerance: number, only?: readonly string[]): Comparison {
  const rows: FigureRow[] = []
  const unmatched: Comparison['unmatched'] = []
  const machine: Comparison['machine'] = []
  const byName = (d: BenchDoc) => new Map(d.benches.map((x) => [x.name, x]))
  const A = byName(a)
  const B = byName(b)
  const names = [...new Set([...A.keys(), ...B.keys()])].filter((n) => only === undefined || only.includes(n))
  for (const name of names) {
    const x = A.get(name)
    const y = B.get(name)
    if (x === undefined || y === undefined) {
      unmatched.push({ bench: name, why: `only in the ${x === undefined ? 'new' : 'reference'} file` })
      continue
    }
    if (x.kind !== 'ran' || y.kind !== 'ran') {
      unmatched.push({ bench: name, why: `skipped in the ${x.kind !== 'ran' ? (y.kind !== 'ran' ? 'reference and new files' : 'reference file') : 'new file'}` })
      continue
    }
    machine.push({ bench: name, ...(x.machine !== undefined ? { a: x.machine } : {}), ...(y.machine !== undefined ? { b: y.machine } : {}) })
    const sa = spreads(x.json ?? [])
    const sb = spreads(y.json ?? [])
    for (const [path, fa] of sa) {
      const fb = sb.get(path)
      if (fb === undefined) continue
      const ratio = fa.median !== 0 && Number.isFinite(fa.median) && Number.isFinite(fb.median) ? fb.median / fa.median : NaN
      const verdict = Number.isNaN(ratio) ? 'not comparable' : Math.abs(ratio - 1) <= tolerance ? 'within' : 'outside'
      rows.push({ bench: name, path, a: fa, b: fb, ratio, verdict, overlap: fb.min <= fa.max && fa.min <= fb.max })
    }
  }
  return { rows, unmatched, machine }
}

const num = (x: number): string => (!Number.isFinite(x) ? String(x) : Math.abs(x) >= 1000 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toPrecision(3))
const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(x * 100).toFixed(0)} %`)

export function render(c: Comparison, tolerance: number): string {
  const head = ['bench', 'figure', 'reference min / median / max', 'new min / median / max', 'ratio', `within ${(tolerance * 100).toFixed(0)} %`, 'ranges overlap']
  const body = c.rows.map((r) => [
    r.bench,
    r.path,
    `${num(r.a.min)} / ${num(r.a.median)} / ${num(r.a.max)}`,
    `${num(r.b.min)} / ${num(r.b.median)} / ${num(r.b.max)}`,
    Number.isNaN(r.ratio) ? '-' : `${r.ratio.toFixed(2)}x`,
    r.verdict === 'within' ? 'yes' : r.verdict === 'outside' ? 'NO' : 'n/a',
    r.overlap ? 'yes' : 'no',
  ])
  const table = [head, ...body]
  const widths = head.map((_, i) => Math.max(...table.map((row) => (row[i] as string).length)))
  const lines = table.map((row) => row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd())
  const comparable = c.rows.filter((r) => r.verdict !== 'not comparable')
  const within = comparable.filter((r) => r.verdict === 'within').length
  const out = [...lines, '', `${within} of ${comparable.length} comparable figures within ${(tolerance * 100).toFixed(0)} % (${c.rows.length - comparable.length} not comparable)`]
  if (c.machine.length > 0) out.push('', 'machine while each bench ran (reference / new): CPUs busy, stolen by the hypervisor', ...c.machine.map((m) => `  ${m.bench}: busy ${pct(m.a?.busy)} / ${pct(m.b?.busy)}, steal ${pct(m.a?.steal)} / ${pct(m.b?.steal)}`))
  if (c.unmatched.length > 0) out.push('', 'not compared:', ...c.unmatched.map((u) => `  ${u.bench}: ${u.why}`))
  return `${out.join('\n')}\n`
}

function main(argv: readonly string[]): number {
  const files: string[] = []
  let tolerance = 0.2
  let only: string[] | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--tolerance') {
      tolerance = Number(argv[++i])
      if (!(tolerance > 0 && tolerance < 10)) throw new InputError('--tolerance must be a number in (0, 10), e.g. 0.2 for 20 %')
    } else if (arg === '--only') only = (argv[++i] ?? '').split(',').filter((s) => s !== '')
    else if (arg.startsWith('--')) throw new InputError(`unknown flag ${arg}`)
    else files.push(arg)
  }
  if (files.length !== 2) throw new InputError('usage: node dist/bench/compare.js REFERENCE.json NEW.json [--tolerance 0.2] [--only NAME,NAME]')
  const read = (f: string): BenchDoc => {
    let text: string
    try {
      text = readFileSync(f, 'utf8')
    } catch (e) {
      throw new InputError(`${f}: cannot be read (${e instanceof Error ? e.message : String(e)})`)
    }
    return parseDoc(text, f)
  }
  const [a, b] = [read(files[0] as string), read(files[1] as string)]
  const which = (d: BenchDoc) => `started ${d.startedAt ?? '?'}, commit ${d.commit ?? 'not recorded'}`
  process.stdout.write(`reference: ${files[0]} (${which(a)})\nnew: ${files[1]} (${which(b)})\n`)
  const sa = machineSpeed(a)
  const sb = machineSpeed(b)
  process.stdout.write(
    sa !== undefined && sb !== undefined
      ? `machine speed (bench/machine-speed.ts, rounds/s, before / after each suite): reference ${num(sa.start)} / ${num(sa.end)}, new ${num(sb.start)} / ${num(sb.end)}: the new machine ${((sb.mean / sa.mean - 1) * 100).toFixed(0)} % faster (a rate moves with it, a time against it)\n\n`
      : 'machine speed: not recorded in both files (results files before session 24 have none)\n\n',
  )
  const c = compare(a, b, tolerance, only)
  process.stdout.write(render(c, tolerance))
  return c.rows.some((r) => r.verdict === 'outside') ? 1 : 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`compare: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exitCode = e instanceof InputError ? 2 : 1
  }
}
