/**
 * How fast this machine runs JavaScript right now: a fixed, deterministic single-thread workload
 * (string-keyed Map inserts and lookups, small-object allocation, float sorting: the kinds of work
 * the decoder, the signal store and the engine do), timed in a fresh child process.
 *
 * Why: on a shared VM the same build's figures move from one day to the next by more than any
 * tolerance (session 24: the lazy decoder, unchanged, 2.96 M spans/s one day and 3.87 M the next;
 * hypervisor steal 0 % both times). run.ts probes the speed before and after the suite and writes it
 * into the results file; compare.js prints the two files' speeds beside the figures, so that a
 * figure that moved with the machine is told from one that moved with the code.
 *
 *   node dist/bench/machine-speed.js [--rounds 7]   (prints one JSON line: rounds per second, min / median / max)
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { spread, type Spread } from './stats.js'
import { exitOnHelp } from './args.js'

/** One round of the workload; returns a checksum so that nothing is optimised away. */
function round(): number {
  const m = new Map<string, { n: number; v: number }>()
  let sum = 0
  for (let i = 0; i < 20_000; i++) m.set(`svc-${i % 5_000}/v${i % 7}`, { n: i, v: i * 0.5 })
  for (let i = 0; i < 40_000; i++) sum += m.get(`svc-${i % 5_000}/v${i % 7}`)?.n ?? 0
  const xs = new Float64Array(20_000)
  let s = 12_345
  for (let i = 0; i < xs.length; i++) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648
    xs[i] = s / 2_147_483_648
  }
  xs.sort()
  return sum + (xs[xs.length >> 1] as number)
}

/** Rounds per second over `rounds` timed rounds of ~0.5 s each, after 0.5 s of warm-up (the JIT). */
export function measure(rounds = 7): Spread {
  let sink = 0
  const warmEnd = performance.now() + 500
  while (performance.now() < warmEnd) sink += round()
  const rates: number[] = []
  for (let r = 0; r < rounds; r++) {
    let n = 0
    const t0 = performance.now()
    let t = t0
    while (t - t0 < 500) {
      sink += round()
      n++
      t = performance.now()
    }
    rates.push(n / ((t - t0) / 1000))
  }
  if (sink === -1) process.stdout.write('')
  return spread(rates)
}

/** The probe in a fresh child process (its own heap and JIT, as every bench child); undefined when it fails. */
export function probe(rounds = 7): Spread | undefined {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--rounds', String(rounds)], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })
  if (r.status !== 0) return undefined
  try {
    return (JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as { roundsPerSec: Spread }).roundsPerSec
  } catch {
    return undefined
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  exitOnHelp(import.meta.url)
  const i = process.argv.indexOf('--rounds')
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 7
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
    process.stderr.write('machine-speed: --rounds must be an integer 1..100\n')
    process.exitCode = 2
  } else process.stdout.write(`${JSON.stringify({ bench: 'machine-speed', roundsPerSec: measure(rounds) })}\n`)
}
