/**
 * V8 settings the pullback process applies to itself when run as a command (cli/main.ts), so that
 * the container image, the `pullback` bin, the benches' child processes and a user's own `node
 * dist/src/cli/main.js` behave alike. NODE_OPTIONS cannot carry these (node allows only a short list
 * of V8 flags there), hence `v8.setFlagsFromString` at start, before the pipeline allocates.
 *
 * `--no-allocation-site-pretenuring`: V8 pretenures an allocation site (allocates its objects
 * directly in the old generation) once enough of them survived a scavenge. In a Kafka backlog drain
 * that made the old generation grow to ~71 MB between mark-compacts that left 18-19 MB live, while
 * scavenges promoted only 12-18 MB over the whole drain (`--trace-gc`, `--trace-gc-nvp`), and the
 * process stayed that large after the drain. Measured (`node dist/bench/peer-kafka.js --only
 * pullback --no-sustained --runs 4 --spans 1000000 --spans-per-record 32`, README "Figures"): peak
 * RSS 134-141 MiB in 10 of 10 drains with V8's default, 89-91 MiB in 8 of 8 without pretenuring, at
 * the same or a higher drain rate and less CPU per span. The OTLP path's figures did not move
 * (`peer-spanmetrics`, README). The cost is more scavenging in the engine: over 10,000 watched
 * services under node's default semi-space (`node dist/bench/engine.js --runs 7 --evaluation full`,
 * session 24, one set each) 73-80 scavenges and 470-631 ms of GC in the detection phase instead of
 * 59-67 and 274-385 ms, event-loop delay p99 12.5 / 14.0 / 22.6 ms instead of 11.4 / 12.6 / 15.8;
 * under the image's 2 MB semi-spaces 7.6 / 10.6 / 12.2 and 10.7 / 13.3 / 15.4 in two sets (README
 * "Figures").
 * An explicit `--allocation-site-pretenuring` (or its `no-` form) on node's command line wins.
 */
import { setFlagsFromString } from 'node:v8'

export const RUNTIME_V8_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring']

/** the runtime flags that node's own command line (`process.execArgv`) does not already decide */
export function runtimeV8Flags(execArgv: readonly string[]): string[] {
  const name = (flag: string) => flag.replace(/^--(no-)?/, '').replace(/=.*$/, '').replaceAll('_', '-')
  const decided = new Set(execArgv.filter((a) => a.startsWith('--')).map(name))
  return RUNTIME_V8_FLAGS.filter((f) => !decided.has(name(f)))
}

/** applies runtimeV8Flags(execArgv); returns the flags it set */
export function applyRuntimeV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  const flags = runtimeV8Flags(execArgv)
  for (const f of flags) setFlagsFromString(f)
  return flags
}
