import { parseArgs, type ParseArgsConfig } from 'node:util'

/** A usage error: the CLI prints it with the command's usage and exits 2. */
export class UsageError extends Error {}

export interface Io {
  out: (s: string) => void
  err: (s: string) => void
}

export const stdio: Io = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
}

export interface Command {
  name: string
  summary: string
  usage: string
  /** resolves to the process exit code: 0 ok, 1 runtime failure, 2 usage error */
  run(argv: string[], io: Io, signal: AbortSignal): Promise<number>
}

type Options = NonNullable<ParseArgsConfig['options']>

/** Strict flag parsing: an unknown flag or a missing value is a UsageError that names it. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals })
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''))
  }
}

/** Parses a number flag, naming it in the error. */
export function numberFlag(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isFinite(n)) throw new UsageError(`--${name} expects a number, got ${JSON.stringify(v)}`)
  return n
}
