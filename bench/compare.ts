/**
 * Two `npm run bench` result files side by side: is every figure reproducible within a tolerance?
 *
 *   node dist/bench/compare.js REFERENCE.json NEW.json [--tolerance 0.2] [--only engine,signals]
 *   node dist/bench/compare.js FILE.json --baseline   (a run made with `--baseline`: the checkout against the other build)
 *
 * A figure is what the benches print as min / median / max over their runs (bench/stats.ts Spread)
 * in their JSON lines, found wherever it sits in a line (its path names it). Per figure: the two
 * medians, their ratio, whether the ratio is within 1 +- tolerance, and whether the two runs' ranges
 * overlap. Per bench: the machine's busy and hypervisor-steal shares of both runs (run.ts), which
 * explain much of what moves on a shared VM. Benches that did not run in both files are listed, not
 * compared; figures whose reference median is 0 or not finite are listed as not comparable. A run's
 * extremes (isExtreme: its longest turn or GC pause) are judged like the rest and counted apart.
 *
 * At equal machine speed: when both files carry the machine-speed probe (bench/machine-speed.ts,
 * run.ts writes it; `--speed-a N` / `--speed-b N` give it for a file that lacks it, e.g. a probe run
 * by hand beside an older file), each rate is also divided by the speed ratio and each time or CPU
 * cost multiplied by it, and judged again (`figureKind` says which is which, from the benches'
 * naming). Memory, counts, ratios between two processes of one run and waits on timers and protocol
 * rounds (`WAITS`) are left as they are. The probe is single-threaded JavaScript: figures bound by
 * the broker, the network or a peer written in Go follow it only roughly, so this is a second opinion
 * printed beside the first, not a correction.
 *
 * Exit: 0 when every comparable figure is within the tolerance, 1 when one is not (at equal speed
 * with `--at-equal-speed`), 2 on bad input (a file that cannot be read or is not a bench-results
 * document, a bad flag).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Spread } from './stats.js'
import { exitOnHelp } from './args.js'

/** The parts of run.ts's document this tool reads. */
export interface BenchDoc {
  startedAt?: string
  /** run.ts writes the checked-out commit (older files have none) */
  commit?: string
  /** bench/machine-speed.ts before and after the suite (older files have none) */
  machineSpeed?: { start?: Spread; end?: Spread }
  benches: { name: string; kind: 'ran' | 'skipped'; code?: number; json?: unknown[]; machine?: { busy: number; steal: number } }[]
  /** `--baseline`: the same benches from another commit's build, run alternately with these (run.ts) */
  baseline?: { commit?: string; benches: BenchDoc['benches'] }
}

export interface FigureRow {
  bench: string
  /** where in the bench's JSON lines: `<line>.<key>.<key>` */
  path: string
  a: Spread
  b: Spread
  /** b.median / a.median; NaN when not comparable */
  ratio: number
  verdict: Verdict
  overlap: boolean
  kind: FigureKind
  /** the ratio at equal machine speed (see the file comment); undefined without both speeds */
  atEqualSpeed?: { ratio: number; verdict: Verdict }
  /** a run's extreme (isExtreme): judged like the rest, counted apart in the summary */
  extreme: boolean
}

/**
 * A figure that is each run's largest single event (the longest event-loop turn, pass or GC pause,
 * the largest loop delay: `max...` or `...Max...` by the benches' naming), not a rate or a quantile
 * over the run. Its min / median / max are taken over the runs' maxima, so the median of three to
 * seven of them still moves with the one worst pause of each run far more than a median or a p99
 * does (session 41: the engine's largest loop delay 27.8 ms against 20.2 from the same code in the
 * same hour). The summary counts extremes apart, and whether their ranges overlap, so that the
 * count of medians and quantiles within the tolerance reads on its own; nothing is hidden: each is
 * in the table and in the exit code as any figure. Peak RSS is not one: memory held, not an event.
 */
export function isExtreme(path: string): boolean {
  const leaf = path.slice(path.lastIndexOf('.') + 1)
  return /^max[A-Z]/.test(leaf) || /[a-z]Max[A-Z]/.test(leaf)
}

type Verdict = 'within' | 'outside' | 'not comparable'

/**
 * What a figure measures, from the benches' naming: a rate (`...PerSec`, a unit per second) moves
 * with the machine's speed, a time or CPU cost (`...Ms`, `...CpuSecPerMillion...`, unit ms) against
 * it; the rest (memory, counts, completeness, one process's figure over another's) not at all.
 * Exceptions: a rate held at the load the bench offers is not a capacity; a `wait` is a time set by
 * timers and protocol rounds rather than by CPU work (WAITS), which the probe does not predict.
 */
export type FigureKind = 'rate' | 'time' | 'wait' | 'other'

/**
 * Times that are waits, per bench: failover's intervals (the group's `session.timeout.ms` and
 * heartbeats, the broker's fetch rounds, the ingest nodes' 1 s tick and 5 s buckets; measured: kill ->
 * assigned 9.7 s on the slower and 10.3 s on the 23 % faster machine of two records) and scaleout's
 * judgement delays (the nodes' tick, the producer's linger, the consumer's poll).
 */
const WAITS: Readonly<Record<string, RegExp>> = { failover: /Ms$/, scaleout: /^delayP\d+Ms$/ }

/**
 * Figure names of rates set by the load the bench offers, not capacities: scaleout's end-to-end rate
 * (a fixed offered rate) and peer-kafka's sustained rate (the highest step of a fixed ladder held).
 */
const OFFERED_RATES = new Set(['endToEndSpansPerSec', 'sustainedSpansPerSec'])

export function figureKind(path: string, unit?: string, bench?: string): FigureKind {
  const leaf = path.slice(path.lastIndexOf('.') + 1)
  if (OFFERED_RATES.has(leaf) || /Vs[A-Z]/.test(leaf)) return 'other'
  if (bench !== undefined && WAITS[bench]?.test(leaf) === true) return 'wait'
  if (unit !== undefined) return /\/s$/.test(unit) ? 'rate' : unit === 'ms' || unit === 'us' ? 'time' : 'other'
  if (/PerSec$/.test(leaf)) return 'rate'
  if (/Ms$/.test(leaf) || /CpuSecPerMillion/i.test(leaf)) return 'time'
  return 'other'
}

/** `ratio` at equal machine speed, `speed` = new / reference probe (see FigureKind). */
export function atEqualSpeed(ratio: number, kind: FigureKind, speed: number): number {
  return kind === 'rate' ? ratio / speed : kind === 'time' ? ratio * speed : ratio
}

const judge = (ratio: number, tolerance: number): Verdict => (Number.isNaN(ratio) ? 'not comparable' : Math.abs(ratio - 1) <= tolerance ? 'within' : 'outside')

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
  checkBenches((doc as { benches?: unknown } | null)?.benches, name)
  return doc as BenchDoc
}

/** Throws InputError naming `name` unless `benches` is an array of entries with a name and a kind. */
function checkBenches(benches: unknown, name: string): asserts benches is BenchDoc['benches'] {
  if (!Array.isArray(benches)) throw new InputError(`${name}: no "benches" array: not a bench-results file of npm run bench`)
  benches.forEach((b: unknown, i) => {
    const o = b as { name?: unknown; kind?: unknown }
    if (typeof o?.name !== 'string' || (o.kind !== 'ran' && o.kind !== 'skipped')) throw new InputError(`${name}: benches[${i}]: needs a string "name" and "kind" ran | skipped`)
  })
}

/**
 * A run's baseline (`npm run bench -- --baseline REF`) as a document of its own: its benches, its
 * commit, and the run's start and machine speed (both builds ran in the same suite).
 */
export function baselineDoc(d: BenchDoc, name: string): BenchDoc {
  const base = d.baseline
  if (base === undefined) throw new InputError(`${name}: no "baseline" (the run was not made with --baseline)`)
  checkBenches(base.benches, `${name} (its baseline)`)
  return { ...(d.startedAt !== undefined ? { startedAt: d.startedAt } : {}), ...(base.commit !== undefined ? { commit: base.commit } : {}), ...(d.machineSpeed !== undefined ? { machineSpeed: d.machineSpeed } : {}), benches: base.benches }
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

/**
 * The results file a new run is judged against: `flag` when given ('none': no comparison), else the
 * newest (by name: records are named by date) `.json` in `recordsDir`, when there is one. A file that
 * cannot be read or parsed throws InputError at once (run.ts reads it before the suite, so that a bad
 * path fails in a second, not after 50 minutes).
 */
export function readReference(flag: string | undefined, recordsDir: string): { file: string; doc: BenchDoc } | undefined {
  if (flag === 'none') return undefined
  let file = flag
  if (file === undefined) {
    const names = existsSync(recordsDir) ? readdirSync(recordsDir).filter((n) => n.endsWith('.json')).sort() : []
    const newest = names[names.length - 1]
    if (newest === undefined) return undefined
    file = join(recordsDir, newest)
  }
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new InputError(`${file}: cannot be read (${e instanceof Error ? e.message : String(e)})`)
  }
  return { file, doc: parseDoc(text, file) }
}

/** A file's probe, or the one given on the command line for it (which wins: the file may have none). */
function speedOf(recorded: ReturnType<typeof machineSpeed>, given: number | undefined): { start: number; end: number; mean: number; given: boolean } | undefined {
  if (given !== undefined) return { start: given, end: given, mean: given, given: true }
  return recorded === undefined ? undefined : { ...recorded, given: false }
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

/** `speed`: the new file's machine speed over the reference's (machine-speed.ts), when both are known. */
export function compare(a: BenchDoc, b: BenchDoc, tolerance: number, only?: readonly string[], speed?: number): Comparison {
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
      const kind = figureKind(path, (fa as Spread & { unit?: string }).unit, name)
      const row: FigureRow = { bench: name, path, a: fa, b: fb, ratio, verdict: judge(ratio, tolerance), overlap: fb.min <= fa.max && fa.min <= fb.max, kind, extreme: isExtreme(path) }
      if (speed !== undefined && speed > 0) {
        const r = atEqualSpeed(ratio, kind, speed)
        row.atEqualSpeed = { ratio: r, verdict: judge(r, tolerance) }
      }
      rows.push(row)
    }
  }
  return { rows, unmatched, machine }
}

const num = (x: number): string => (!Number.isFinite(x) ? String(x) : Math.abs(x) >= 1000 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toPrecision(3))
const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(x * 100).toFixed(0)} %`)

const yesNo = (v: Verdict): string => (v === 'within' ? 'yes' : v === 'outside' ? 'NO' : 'n/a')

export function render(c: Comparison, tolerance: number): string {
  const tol = `${(tolerance * 100).toFixed(0)} %`
  const speed = c.rows.some((r) => r.atEqualSpeed !== undefined)
  const head = ['bench', 'figure', 'reference min / median / max', 'new min / median / max', 'ratio', `within ${tol}`, 'ranges overlap', ...(speed ? ['kind', 'at equal speed', `within ${tol}`] : [])]
  const body = c.rows.map((r) => [
    r.bench,
    r.path,
    `${num(r.a.min)} / ${num(r.a.median)} / ${num(r.a.max)}`,
    `${num(r.b.min)} / ${num(r.b.median)} / ${num(r.b.max)}`,
    Number.isNaN(r.ratio) ? '-' : `${r.ratio.toFixed(2)}x`,
    yesNo(r.verdict),
    r.overlap ? 'yes' : 'no',
    ...(speed ? [r.kind, r.atEqualSpeed === undefined || Number.isNaN(r.atEqualSpeed.ratio) ? '-' : `${r.atEqualSpeed.ratio.toFixed(2)}x`, r.atEqualSpeed === undefined ? 'n/a' : yesNo(r.atEqualSpeed.verdict)] : []),
  ])
  const table = [head, ...body]
  const widths = head.map((_, i) => Math.max(...table.map((row) => (row[i] as string).length)))
  const lines = table.map((row) => row.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd())
  const comparable = c.rows.filter((r) => r.verdict !== 'not comparable')
  const within = comparable.filter((r) => r.verdict === 'within').length
  const out = [...lines, '', `${within} of ${comparable.length} comparable figures within ${tol} (${c.rows.length - comparable.length} not comparable)`]
  if (speed) {
    const eq = comparable.filter((r) => r.atEqualSpeed?.verdict === 'within').length
    out.push(`${eq} of ${comparable.length} within ${tol} at equal machine speed (rates divided by the speed ratio, times and CPU costs multiplied by it)`)
  }
  const extremes = comparable.filter((r) => r.extreme)
  if (extremes.length > 0) {
    const rest = comparable.filter((r) => !r.extreme)
    const n = (rows: FigureRow[], v: (r: FigureRow) => Verdict | undefined) => rows.filter((r) => v(r) === 'within').length
    out.push(
      `of them ${extremes.length} a run's extreme (its longest turn, pass, loop delay or GC pause: a maximum, which moves most): ${n(extremes, (r) => r.verdict)} within ${tol}, ${extremes.filter((r) => r.overlap).length} with ranges overlapping; the other ${rest.length}: ${n(rest, (r) => r.verdict)} within ${tol}${speed ? `, ${n(rest, (r) => r.atEqualSpeed?.verdict)} at equal machine speed` : ''}`,
    )
  }
  if (c.machine.length > 0) out.push('', 'machine while each bench ran (reference / new): CPUs busy, stolen by the hypervisor', ...c.machine.map((m) => `  ${m.bench}: busy ${pct(m.a?.busy)} / ${pct(m.b?.busy)}, steal ${pct(m.a?.steal)} / ${pct(m.b?.steal)}`))
  if (c.unmatched.length > 0) out.push('', 'not compared:', ...c.unmatched.map((u) => `  ${u.bench}: ${u.why}`))
  return `${out.join('\n')}\n`
}

function main(argv: readonly string[]): number {
  const files: string[] = []
  let tolerance = 0.2
  let only: string[] | undefined
  let equalSpeed = false
  let ownBaseline = false
  const given: { a?: number; b?: number } = {}
  const speedFlag = (v: string | undefined, flag: string): number => {
    const n = Number(v)
    if (!(n > 0 && Number.isFinite(n))) throw new InputError(`${flag} must be a positive number of rounds/s (bench/machine-speed.ts), got ${v ?? 'nothing'}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--at-equal-speed') equalSpeed = true
    else if (arg === '--baseline') ownBaseline = true
    else if (arg === '--speed-a') given.a = speedFlag(argv[++i], arg)
    else if (arg === '--speed-b') given.b = speedFlag(argv[++i], arg)
    else if (arg === '--tolerance') {
      tolerance = Number(argv[++i])
      if (!(tolerance > 0 && tolerance < 10)) throw new InputError('--tolerance must be a number in (0, 10), e.g. 0.2 for 20 %')
    } else if (arg === '--only') only = (argv[++i] ?? '').split(',').filter((s) => s !== '')
    else if (arg.startsWith('--')) throw new InputError(`unknown flag ${arg}`)
    else files.push(arg)
  }
  const usage = 'usage: node dist/bench/compare.js REFERENCE.json NEW.json [--tolerance 0.2] [--only NAME,NAME] [--speed-a N] [--speed-b N] [--at-equal-speed], or FILE.json --baseline [--tolerance 0.2] [--only NAME,NAME]'
  if (ownBaseline ? files.length !== 1 : files.length !== 2) throw new InputError(usage)
  const read = (f: string): BenchDoc => {
    let text: string
    try {
      text = readFileSync(f, 'utf8')
    } catch (e) {
      throw new InputError(`${f}: cannot be read (${e instanceof Error ? e.message : String(e)})`)
    }
    return parseDoc(text, f)
  }
  if (ownBaseline) {
    const f = files[0] as string
    const b = read(f)
    const a = baselineDoc(b, f)
    // both builds ran in the same suite, alternately: no speed correction applies
    process.stdout.write(`${f}: commit ${b.commit ?? 'not recorded'} against its baseline ${a.commit ?? '?'}, measured in the same run (started ${b.startedAt ?? '?'})\n\n`)
    const c = compare(a, b, tolerance, only)
    process.stdout.write(render(c, tolerance))
    return c.rows.some((r) => r.verdict === 'outside') ? 1 : 0
  }
  const [a, b] = [read(files[0] as string), read(files[1] as string)]
  const which = (d: BenchDoc) => `started ${d.startedAt ?? '?'}, commit ${d.commit ?? 'not recorded'}`
  process.stdout.write(`reference: ${files[0]} (${which(a)})\nnew: ${files[1]} (${which(b)})\n`)
  const sa = speedOf(machineSpeed(a), given.a)
  const sb = speedOf(machineSpeed(b), given.b)
  const show = (x: { start: number; end: number; given: boolean }) => (x.given ? `${num(x.start)} (given on the command line)` : `${num(x.start)} / ${num(x.end)}`)
  process.stdout.write(
    sa !== undefined && sb !== undefined
      ? `machine speed (bench/machine-speed.ts, rounds/s, before / after each suite): reference ${show(sa)}, new ${show(sb)}: the new machine ${((sb.mean / sa.mean - 1) * 100).toFixed(0)} % faster (a rate moves with it, a time against it)\n\n`
      : 'machine speed: not recorded in both files (results files before session 24 have none; --speed-a / --speed-b give it)\n\n',
  )
  if (equalSpeed && (sa === undefined || sb === undefined)) throw new InputError('--at-equal-speed needs both machine speeds (recorded in the files, or --speed-a / --speed-b)')
  const c = compare(a, b, tolerance, only, sa !== undefined && sb !== undefined ? sb.mean / sa.mean : undefined)
  process.stdout.write(render(c, tolerance))
  return c.rows.some((r) => (equalSpeed ? r.atEqualSpeed?.verdict : r.verdict) === 'outside') ? 1 : 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  exitOnHelp(import.meta.url)
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`compare: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exitCode = e instanceof InputError ? 2 : 1
  }
}
