#!/usr/bin/env node
/**
 * The one entry point, and the only place that exits the process. Exit codes: 0 success, 1 runtime
 * failure, 2 usage error (unknown subcommand or flag, missing argument) or unusable config file
 * (unreadable, too large, not YAML, invalid: the message names the file and each offending path).
 */
import { readFileSync } from 'node:fs'
import { UsageError, stdio, type Io } from './args.js'
import { COMMANDS } from './commands/index.js'
import { errorMessage, PermanentError } from '../common/errors.js'
import { applyRuntimeV8Flags } from './v8-flags.js'

/** config/load.ts ConfigError's code (not imported: --help and --version must not load every schema) */
const CONFIG_INVALID = 'CONFIG_INVALID'

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

export function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return [
    'pullback - autonomous rollback from OTLP telemetry',
    '',
    'usage: pullback <command> [flags]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'global flags:',
    '  -h, --help     show help (also `pullback <command> --help`)',
    '  -v, --version  print the version',
    '',
  ].join('\n')
}

export async function main(argv: string[], io: Io = stdio, signal?: AbortSignal): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.out(helpText())
    return first === undefined ? 2 : 0
  }
  if (first === '--version' || first === '-v') {
    io.out(`${version()}\n`)
    return 0
  }
  if (first.startsWith('-')) {
    io.err(`pullback: unknown flag ${first}\n\n${helpText()}`)
    return 2
  }
  const entry = COMMANDS.find((c) => c.name === first)
  if (!entry) {
    io.err(`pullback: unknown command "${first}"\n\n${helpText()}`)
    return 2
  }
  const cmd = await entry.load()
  const ac = new AbortController()
  signal?.addEventListener('abort', () => ac.abort(signal.reason), { once: true })
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`${cmd.usage.trimEnd()}\n`)
      return 0
    }
    return await cmd.run(rest, io, ac.signal)
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`pullback ${cmd.name}: ${err.message}\n\n${cmd.usage.trimEnd()}\n`)
      return 2
    }
    if (err instanceof PermanentError && err.code === CONFIG_INVALID) {
      io.err(`pullback ${cmd.name}: ${err.message}\n`)
      return 2
    }
    if (err instanceof PermanentError) {
      io.err(`pullback ${cmd.name}: ${err.message}\n`)
      return 1
    }
    io.err(`pullback ${cmd.name}: ${err instanceof Error && err.stack ? err.stack : errorMessage(err)}\n`)
    return 1
  }
}

// Run when executed directly (not when imported by tests).
const invokedAs = process.argv[1] ?? ''
if (/(?:^|[/\\])(?:main\.[jt]s|pullback)$/.test(invokedAs)) {
  applyRuntimeV8Flags()
  const ac = new AbortController()
  let signals = 0
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1
    if (signals > 1) process.exit(130)
    ac.abort(sig)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  main(process.argv.slice(2), stdio, ac.signal).then(
    (code) => {
      process.exitCode = code
      // background handles (sockets, timers) must not keep a finished command alive
      setTimeout(() => process.exit(code), 2000).unref()
    },
    (err: unknown) => {
      process.stderr.write(`pullback: ${errorMessage(err)}\n`)
      process.exit(1)
    },
  )
}
