/**
 * Recurring two-signal bursts shorter than the window: how often they roll back, per span export
 * phase and with early firing on and off. The contract's `window` (15 s) asks a breach to hold
 * that long; an early look counts its newest bucket, partial when the pods' batches come at their
 * own phases, so a burst can look up to one bucket longer than it was (README, early firing).
 *
 *   npm run build && node dist/bench/bursts.js [--on-s 12] [--seeds 20] [--error-rate 0.05] [--latency-factor 2.5]
 *
 * The scenario is `flapping-single-signal` (p99 2.5x for 15 s of every 40 s on the new version)
 * with the burst's length set by `--on-s` and an error ratio added, so two signals breach together.
 * Whether such a version should be rolled back is a judgement, not a label: no target; the bench
 * prints the count and the decision times per seed. Progress on stderr.
 */
import { loadConfig, parseConfig } from '../src/config/load.js'
import { replayLines } from '../src/cli/commands/replay.js'
import { DEFAULT_START_MS, findScenario, recordToLines, type Scenario } from '../src/sim/index.js'
import { flags, exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

async function main(): Promise<number> {
  const f = flags(process.argv.slice(2))
  const onS = f.int('on-s', 12, 1, 39)
  const seeds = f.int('seeds', 20, 1, 1000)
  const errorRate = Number(f.get('error-rate') ?? 0.05)
  const latencyFactor = Number(f.get('latency-factor') ?? 2.5)
  if (!(errorRate >= 0 && errorRate <= 1)) throw new Error('--error-rate must be in 0..1')
  if (!(latencyFactor >= 1)) throw new Error('--latency-factor must be >= 1')
  const base = findScenario('flapping-single-signal')
  if (base === undefined) throw new Error('scenario flapping-single-signal is missing from the library')
  const scenario: Scenario = {
    ...base,
    name: `two-signal-burst-${onS}s`,
    build: (seed) => {
      const b = base.build(seed)
      return { ...b, faults: b.faults.map((x) => ({ ...x, flap: { periodS: 40, onS }, errorRate, latencyFactor })) }
    },
  }
  const on = loadConfig(undefined)
  const off = parseConfig({ engine: { earlyFiring: false } })
  const sink = { out: () => undefined, err: () => undefined }
  process.stdout.write(`two-signal bursts: ${(errorRate * 100).toFixed(1)} % errors and p99 ${latencyFactor}x for ${onS} s of every 40 s on the new version, seeds 1-${seeds}; rollbacks (seconds after the deployment)\n`)
  for (const phase of ['aligned', 'per-pod'] as const) {
    for (const [label, cfg] of [['on', on], ['off', off]] as const) {
      const times: string[] = []
      let n = 0
      for (let seed = 1; seed <= seeds; seed++) {
        const lines = await recordToLines(scenario, { seed, spanSchedule: phase })
        const res = await replayLines(lines, cfg, sink, { actuator: false }, scenario.name)
        const rb = res.verdicts.find((v) => v.kind === 'rollback' && !v.dryRun)
        if (rb !== undefined) {
          n++
          times.push(`seed ${seed} +${((rb.decidedAt - DEFAULT_START_MS) / 1000 - base.deployAtS).toFixed(0)} s`)
        }
        process.stderr.write(`bursts: ${phase}, early firing ${label}: seed ${seed}/${seeds}\n`)
      }
      process.stdout.write(`  span exports ${phase}, early firing ${label}: ${n} of ${seeds} rolled back${times.length > 0 ? ` (${times.join(', ')})` : ''}\n`)
    }
  }
  return 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`bursts: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 2
  },
)
