import { pino, type Logger } from 'pino'
import { PermanentError } from './errors.js'

export type { Logger }

/** the levels a logger takes (pino's, and `silent`) */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/**
 * Structured JSON logs on stderr (stdout is reserved for command output such as replay verdicts).
 * Level from PULLBACK_LOG_LEVEL (default info). Log lifecycle changes, never per item. An unknown
 * level is a PermanentError with the config's code (CONFIG_INVALID: the CLI prints one line and
 * exits 2), not pino's bare Error and a stack trace.
 */
export function createLogger(name = 'pullback', level = process.env.PULLBACK_LOG_LEVEL ?? 'info'): Logger {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new PermanentError('CONFIG_INVALID', `PULLBACK_LOG_LEVEL: unknown level ${JSON.stringify(level)} (one of ${LOG_LEVELS.join(', ')})`)
  }
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }))
}

/** A logger that drops everything: for tests and library code that was given none. */
export const silentLogger: Logger = pino({ level: 'silent' })
