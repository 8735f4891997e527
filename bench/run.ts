/**
 * Runs the benches in sequence, each in its own child process (`node dist/bench/FILE.js ARGS`), with a
 * progress line before and after each, then a summary: exit code and wall time per bench. The
 * arguments are those of the README's "Figures" commands, so one run regenerates the table's rows.
 *
 *   npm run bench [-- --only quality,false-rollbacks] [-- --skip decisions] [-- --out results.json]
 *                 [-- --compare bench/records/FILE.json | none] [-- --baseline COMMIT | record]
 *
 * Writes one JSON file (default bench-results.json): per bench its arguments, exit code, wall time,
 * the machine's CPU busy and steal shares while it ran (/proc/stat: on a VM, time stolen by the
 * hypervisor slows every wall-time figure), printed output and the JSON lines it printed, with the
 * machine's CPU count and load average at start and end, the checked-out commit, and the machine's
 * JavaScript speed before and after the suite (bench/machine-speed.ts: steal does not show a host
 * that is slower today).
 *
 * Then every figure is judged against the figures of record (bench/records/, the newest file there
 * unless `--compare` names another or `none`): bench/compare.ts's table, each median within 20 % of
 * the record's, as measured and at equal machine speed. The comparison is printed, never the exit
 * code: a slower VM is not a failed bench. It is how the README's figures are reproduced.
 *
 * `--baseline COMMIT` (`record`: the commit of the record compared with) also builds that commit
 * beside this checkout (bench/baseline.ts) and runs every picked bench from both builds, one after
 * the other, the order alternated from bench to bench, with the same arguments (a bench the
 * baseline lacks is listed as skipped there). The document gains `baseline: { commit, benches }`,
 * and two more comparisons are printed: this checkout against the baseline measured in the same
 * run (did the code move the figure?) and the baseline against the record (did the machine?).
 * `node dist/bench/compare.js FILE.json --baseline` prints the first again from the file.
 *
 * A bench that needs something absent is skipped with its reason: the broker benches need
 * KAFKA_BROKERS, the peer benches OTELCOL_BIN. Each bench prints its own figures and targets; exit
 * code 1 when any bench run failed (a bench exits 1 when it misses its own target).
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { probe } from './machine-speed.js'
import { baselineDoc, compare, InputError, machineSpeed, parseDoc, readReference, render, type BenchDoc } from './compare.js'
import { baselineFirst, BaselineError, buildBaseline, type BaselineBuild } from './baseline.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

interface Bench {
  /** the bench's file, dist/bench/FILE.js */
  file: string
  /** its name in the summary and the JSON; defaults to `file` (one file can run with two argument sets) */
  name?: string
  /** the arguments of the README row(s) it regenerates, so `npm run bench` reproduces them */
  args: string[]
  /** environment added for this bench only (the container image's allocator settings for peer benches) */
  env?: Record<string, string>
  /** why the bench cannot run here, when it cannot */
  missing?: () => string | undefined
}

const needsKafka = (): string | undefined => (process.env.KAFKA_BROKERS === undefined ? 'KAFKA_BROKERS is not set' : undefined)
const needsCollector = (): string | undefined => (process.env.OTELCOL_BIN === undefined ? 'OTELCOL_BIN is not set' : undefined)
/**
 * the image's allocator and heap settings (Dockerfile), as the README's peer rows ran; the engine
 * bench too since session 24 (its children also set the process's runtime V8 flags, src/cli/v8-flags.ts),
 * so that its GC figures are the image's
 */
const IMAGE_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', NODE_OPTIONS: '--max-semi-space-size=2' }

// Arguments are the README's "Figures" commands: a row is reproduced by the entry that names its command.
const BENCHES: Bench[] = [
  { file: 'quality', args: ['--seeds', '5'] },
  { file: 'false-rollbacks', args: ['--runs', '1000', '--workers', '2'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-sidecar-clock', args: ['--runs', '1000', '--workers', '2', '--span-export', 'per-pod', '--clock', 'export'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-quiet', args: ['--runs', '1000', '--workers', '2', '--rps', '0.1-1'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-quiet-slower', args: ['--runs', '1000', '--workers', '2', '--rps', '0.1-1', '--slower', '4'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-hour-drift', args: ['--runs', '1000', '--workers', '2', '--rps', '1-50', '--history-s', '3900', '--drift', '10'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-cold-start', args: ['--runs', '1000', '--workers', '2', '--cold-start', '5'] },
  // the same cold starts with a 10 s per-process warm-up (src/warmup), and what that warm-up costs the library's bad deploys
  { file: 'false-rollbacks', name: 'false-rollbacks-cold-start-warmup', args: ['--runs', '1000', '--workers', '2', '--cold-start', '5', '--config', 'bench/configs/warmup-10s.yaml'] },
  { file: 'quality', name: 'quality-warmup', args: ['--seeds', '5', '--config', 'bench/configs/warmup-10s.yaml'] },
  { file: 'false-rollbacks', name: 'detection-drawn', args: ['--runs', '1000', '--workers', '2', '--errors', '0.05', '--slower', '2'] },
  { file: 'false-rollbacks', name: 'detection-drawn-fast-failures', args: ['--runs', '1000', '--workers', '2', '--errors', '0.2'] },
  // metrics every 20, 30 or 45 s (the draws' other cadences): benign and bad deploys, cadence targets derived at 30 and 45 s (bench/targets.ts)
  { file: 'false-rollbacks', name: 'false-rollbacks-intervals', args: ['--runs', '1000', '--workers', '2', '--intervals', '20,30,45'] },
  { file: 'false-rollbacks', name: 'detection-drawn-intervals', args: ['--runs', '1000', '--workers', '2', '--intervals', '20,30,45', '--errors', '0.05', '--slower', '2'] },
  // metrics through a Collector's cumulativetodelta (src/sim/cumulative-to-delta.ts): the library, the drawn benign and bad deploys
  { file: 'quality', name: 'quality-cumulativetodelta', args: ['--seeds', '5', '--temporality', 'cumulativetodelta'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-cumulativetodelta', args: ['--runs', '1000', '--workers', '2', '--temporality', 'cumulativetodelta'] },
  { file: 'false-rollbacks', name: 'detection-drawn-cumulativetodelta', args: ['--runs', '1000', '--workers', '2', '--temporality', 'cumulativetodelta', '--errors', '0.05', '--slower', '2'] },
  // Micrometer's server timer (count and sum only, Spring's tags): the library, the drawn benign and bad deploys
  { file: 'quality', name: 'quality-micrometer', args: ['--seeds', '5', '--histograms', 'micrometer'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-micrometer', args: ['--runs', '1000', '--workers', '2', '--histograms', 'micrometer'] },
  { file: 'false-rollbacks', name: 'detection-drawn-micrometer', args: ['--runs', '1000', '--workers', '2', '--histograms', 'micrometer', '--errors', '0.05', '--slower', '2'] },
  // the Collector's spanmetrics connector's histogram (session 49): the library, the drawn benign and bad deploys
  { file: 'quality', name: 'quality-spanmetrics', args: ['--seeds', '5', '--histograms', 'spanmetrics'] },
  { file: 'false-rollbacks', name: 'false-rollbacks-spanmetrics', args: ['--runs', '1000', '--workers', '2', '--histograms', 'spanmetrics'] },
  { file: 'false-rollbacks', name: 'detection-drawn-spanmetrics', args: ['--runs', '1000', '--workers', '2', '--histograms', 'spanmetrics', '--errors', '0.05', '--slower', '2'] },
  { file: 'bursts', args: ['--on-s', '12', '--seeds', '20'] },
  { file: 'calibrate', name: 'calibrate-held-out', args: ['--held-out'] },
  { file: 'error-evidence', args: ['--json'] },
  { file: 'engine', args: ['--runs', '7', '--evaluation', 'full'], env: IMAGE_ENV },
  // the same 10,000 deployments sending metrics only, every 60 s from 4 pods per version on their own phases (each report is judged as it lands)
  { file: 'engine', name: 'engine-metrics', args: ['--runs', '7', '--evaluation', 'full', '--telemetry', 'metrics', '--skip-replay'], env: IMAGE_ENV },
  { file: 'signals', args: [] },
  { file: 'ingest', args: ['--seconds', '3'] },
  { file: 'workers', args: ['--seconds', '20', '--runs', '3'] },
  { file: 'identity', args: [] },
  { file: 'cardinality', args: [] },
  { file: 'partials', args: [] },
  { file: 'decisions', args: ['--n', '300'], missing: needsKafka },
  { file: 'replay-kafka', args: ['--nodes', '3'], missing: needsKafka },
  { file: 'scaleout', args: ['--runs', '3', '--rate', '340000'], missing: needsKafka },
  { file: 'failover', args: ['--runs', '3'], missing: needsKafka },
  { file: 'peer-spanmetrics', args: ['--seconds', '10', '--runs', '3', '--grpc-server', 'both'], env: IMAGE_ENV, missing: needsCollector },
  { file: 'peer-kafka', name: 'peer-kafka-backlog', args: ['--runs', '3', '--no-sustained'], missing: () => needsCollector() ?? needsKafka() },
  {
    file: 'peer-kafka',
    name: 'peer-kafka-sustained',
    args: ['--runs', '3', '--no-drain', '--rates', '80000,160000,240000,320000,400000', '--refine', '1', '--sustain-seconds', '20'],
    missing: () => needsCollector() ?? needsKafka(),
  },
]

type Outcome =
  | { kind: 'ran'; code: number; seconds: number; stdout: string; truncated: boolean; json: unknown[]; machine: MachineShare | undefined }
  | { kind: 'skipped'; reason: string }

/** The machine's CPU time split while a bench ran, from /proc/stat (Linux only). */
interface MachineShare {
  /** share of all CPUs' time that was busy (user, system, irq: ours and anything else's) */
  busy: number
  /** share taken by the hypervisor for other guests ("steal"): a wall-time figure taken then is slower than the code */
  steal: number
}

/** /proc/stat's aggregate line: [busy, steal, total] jiffies, or undefined off Linux */
function cpuJiffies(): [number, number, number] | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
    return [user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq + softirq + steal]
  } catch {
    return undefined
  }
}

function share(a: [number, number, number] | undefined, b: [number, number, number] | undefined): MachineShare | undefined {
  if (a === undefined || b === undefined || b[2] <= a[2]) return undefined
  const total = b[2] - a[2]
  return { busy: (b[0] - a[0]) / total, steal: (b[1] - a[1]) / total }
}

/** Output kept per bench in the JSON file: its printed figures are small, a runaway one is cut. */
const MAX_CAPTURE = 256 * 1024

/** Runs one bench; its stdout goes to ours and is kept (bounded) for the JSON file, stderr passes through. */
function runChild(file: string, args: string[], env: Record<string, string> | undefined, cwd?: string): Promise<{ code: number; stdout: string; truncated: boolean }> {
  return new Promise((resolve) => {
    const cp = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env }, ...(cwd !== undefined ? { cwd } : {}) })
    let stdout = ''
    let truncated = false
    cp.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk)
      if (stdout.length < MAX_CAPTURE) stdout += chunk.toString('utf8')
      else truncated = true
    })
    cp.on('error', () => resolve({ code: 1, stdout, truncated }))
    cp.on('close', (code, signal) => resolve({ code: code ?? (signal !== null ? 1 : 0), stdout: stdout.slice(0, MAX_CAPTURE), truncated }))
  })
}

/** The checked-out commit (with `+dirty` when the tree has changes), so that two results files name the code they measured; undefined outside a git checkout. */
function gitCommit(): string | undefined {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    return dirty ? `${head}+dirty` : head
  } catch {
    return undefined
  }
}

/** The JSON lines a bench printed (benches print their figures as a table, some also as one JSON line). */
function jsonLines(stdout: string): unknown[] {
  const out: unknown[] = []
  for (const line of stdout.split('\n')) {
    const t = line.trim()
    if (!t.startsWith('{')) continue
    try {
      out.push(JSON.parse(t))
    } catch {
      // a table line that happens to start with a brace: kept in `stdout` only
    }
  }
  return out
}

const pct = (x: number): string => `${(x * 100).toFixed(1)} %`

/** How far a median may move from the record's and still count as reproduced (issue 16: 20 %). */
const TOLERANCE = 0.2

/** The committed figures of record: bench/records/ beside this file's source (dist/bench/ -> bench/records/). */
const RECORDS = fileURLToPath(new URL('../../bench/records/', import.meta.url))

/** One bench from one build: its progress lines, then its outcome. `tag` names the build in them ('' for this checkout). */
async function runBench(b: Bench & { name: string }, dir: string, cwd: string | undefined, tag: string, at: string): Promise<Outcome> {
  const file = `${dir}${b.file}.js`
  const reason = !existsSync(file) ? `${file} not built` : b.missing?.()
  if (reason !== undefined) {
    process.stderr.write(`bench ${at} ${b.name}${tag}: skipped (${reason})\n`)
    return { kind: 'skipped', reason }
  }
  process.stderr.write(`bench ${at} ${b.name}${tag}: running node ${b.file}.js ${b.args.join(' ')}\n`)
  const t = performance.now()
  const j0 = cpuJiffies()
  const { code, stdout, truncated } = await runChild(file, b.args, b.env, cwd)
  const machine = share(j0, cpuJiffies())
  const seconds = (performance.now() - t) / 1000
  process.stderr.write(`bench ${at} ${b.name}${tag}: exit ${code} after ${seconds.toFixed(0)} s${machine !== undefined ? ` (CPUs ${pct(machine.busy)} busy, ${pct(machine.steal)} stolen by the hypervisor)` : ''}\n`)
  return { kind: 'ran', code, seconds, stdout, truncated, json: jsonLines(stdout), machine }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, skip: { type: 'string' }, out: { type: 'string' }, compare: { type: 'string' }, baseline: { type: 'string' } } })
  const outFile = values.out ?? 'bench-results.json'
  // read before the suite, so that a bad path fails in a second, not after 50 minutes
  const reference = readReference(values.compare, RECORDS)
  const only = values.only?.split(',')
  const skip = values.skip?.split(',') ?? []
  const named = BENCHES.map((b) => ({ ...b, name: b.name ?? b.file }))
  const picked = named.filter((b) => (only === undefined || only.includes(b.name) || only.includes(b.file)) && !skip.includes(b.name) && !skip.includes(b.file))
  const here = fileURLToPath(new URL('.', import.meta.url))
  let baseline: BaselineBuild | undefined
  if (values.baseline !== undefined) {
    const ref = values.baseline === 'record' ? reference?.doc.commit : values.baseline
    if (ref === undefined) throw new InputError(`--baseline record: ${reference === undefined ? 'no record to compare with (--compare none)' : `${reference.file} names no commit`}`)
    try {
      // the repository of this checkout: dist/bench/ -> its root
      baseline = buildBaseline(fileURLToPath(new URL('../../', import.meta.url)), ref, (l) => process.stderr.write(`${l}\n`))
    } catch (e) {
      throw e instanceof BaselineError ? new InputError(e.message) : e
    }
    const b = baseline
    const stop = (signal: NodeJS.Signals): void => {
      b.remove()
      process.kill(process.pid, signal)
    }
    // the worktree goes with the run however it ends; the default action then follows
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  }
  try {
    return await suite(picked, here, outFile, reference, baseline)
  } finally {
    baseline?.remove()
  }
}

async function suite(
  picked: (Bench & { name: string })[],
  here: string,
  outFile: string,
  reference: { file: string; doc: BenchDoc } | undefined,
  baseline: BaselineBuild | undefined,
): Promise<number> {
  const results: { name: string; args?: string[]; outcome: Outcome }[] = []
  const baseResults: { name: string; args?: string[]; outcome: Outcome }[] = []
  const started = Date.now()
  // read now: the children load dist/ as it is at the start, and the checkout may move on while they run
  const commit = gitCommit()
  const loadStart = loadavg()
  // the machine's own speed before and after (bench/machine-speed.ts): a shared VM's moves by more than the tolerance from day to day
  const speedStart = probe()
  const baseTag = baseline !== undefined ? ` (baseline ${baseline.commit.slice(0, 12)})` : ''
  for (const [i, b] of picked.entries()) {
    const at = `[${i + 1}/${picked.length}]`
    const runBase = async (): Promise<void> => {
      if (baseline !== undefined) baseResults.push({ name: b.name, args: b.args, outcome: await runBench(b, baseline.benchDir, baseline.root, baseTag, at) })
    }
    if (baseline !== undefined && baselineFirst(i)) await runBase()
    results.push({ name: b.name, args: b.args, outcome: await runBench(b, here, undefined, '', at) })
    if (baseline !== undefined && !baselineFirst(i)) await runBase()
  }
  const width = Math.max(...results.map((r) => r.name.length))
  const summary = (rs: typeof results): string[] =>
    rs.map((r) =>
      r.outcome.kind === 'skipped'
        ? `${r.name.padEnd(width)}  skipped: ${r.outcome.reason}`
        : `${r.name.padEnd(width)}  ${r.outcome.code === 0 ? 'ok      ' : `exit ${r.outcome.code}  `}${`${r.outcome.seconds.toFixed(0)} s`.padStart(6)}${r.outcome.machine !== undefined ? `  busy ${pct(r.outcome.machine.busy)}, steal ${pct(r.outcome.machine.steal)}` : ''}`,
    )
  const lines = summary(results)
  // the baseline's exit codes are printed, not counted in ours: its benches may predate a target
  if (baseline !== undefined) lines.push(`baseline ${baseline.commit}:`, ...summary(baseResults))
  const speedEnd = probe()
  const speed = (s: typeof speedStart) => (s === undefined ? 'n/a' : `${s.median.toFixed(0)} rounds/s`)
  lines.push(`machine speed (bench/machine-speed.ts, median of 7 rounds): ${speed(speedStart)} before, ${speed(speedEnd)} after`)
  process.stdout.write(`\nbench summary\n${lines.join('\n')}\n`)
  const commitAtEnd = gitCommit()
  const doc = {
    startedAt: new Date(started).toISOString(),
    commit,
    // the checkout moved during the run (the figures are the start's: `commit`)
    ...(commitAtEnd !== commit ? { commitAtEnd } : {}),
    node: process.version,
    cpus: cpus().length,
    loadavg: { start: loadStart, end: loadavg() },
    machineSpeed: { unit: 'rounds/s', start: speedStart, end: speedEnd },
    benches: results.map((r) => ({ name: r.name, args: r.args, ...r.outcome })),
    ...(baseline !== undefined ? { baseline: { commit: baseline.commit, benches: baseResults.map((r) => ({ name: r.name, args: r.args, ...r.outcome })) } } : {}),
  }
  writeFileSync(outFile, `${JSON.stringify(doc, null, 2)}\n`)
  process.stderr.write(`bench: every bench's output and figures in ${outFile}\n`)
  const b = parseDoc(JSON.stringify(doc), outFile)
  const names = picked.map((x) => x.name)
  const sa = reference !== undefined ? machineSpeed(reference.doc) : undefined
  const sb = machineSpeed(b)
  // now over then: the record's rates divided by it, its times multiplied (compare.ts)
  const speedRatio = sa !== undefined && sb !== undefined ? sb.mean / sa.mean : undefined
  if (baseline !== undefined) {
    // the same hour, the same machine: no speed correction applies
    const base = baselineDoc(b, outFile)
    process.stdout.write(`\nthis checkout (${commit ?? '?'}) against the baseline ${baseline.commit} measured in the same run, alternately (did the code move a figure?)\n`)
    process.stdout.write(render(compare(base, b, TOLERANCE, names), TOLERANCE))
    if (reference !== undefined) {
      process.stdout.write(`\nthe baseline ${baseline.commit} now against the figures of record ${reference.file} (commit ${reference.doc.commit ?? '?'}; did the machine move a figure? machine speed ${sa?.mean.toFixed(0) ?? '?'} then, ${sb?.mean.toFixed(0) ?? '?'} now, rounds/s)\n`)
      process.stdout.write(render(compare(reference.doc, base, TOLERANCE, names, speedRatio), TOLERANCE))
    }
  }
  if (reference !== undefined) {
    const c = compare(reference.doc, b, TOLERANCE, names, speedRatio)
    process.stdout.write(`\nagainst the figures of record ${reference.file} (commit ${reference.doc.commit ?? '?'}, ${reference.doc.startedAt ?? '?'}); machine speed ${sa?.mean.toFixed(0) ?? '?'} then, ${sb?.mean.toFixed(0) ?? '?'} now (rounds/s)\n`)
    process.stdout.write(render(c, TOLERANCE))
  }
  return results.some((r) => r.outcome.kind === 'ran' && r.outcome.code !== 0) ? 1 : 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    // a bad --compare file is the user's input: its message, exit 2; anything else is a bug: its stack
    const input = err instanceof InputError
    process.stderr.write(`bench: ${err instanceof Error ? (input ? err.message : (err.stack ?? err.message)) : String(err)}\n`)
    process.exitCode = input ? 2 : 1
  },
)
