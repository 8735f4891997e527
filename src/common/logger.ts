import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * Structured JSON logs on stderr (stdout is reserved for command output such as replay verdicts).
 * Level from PULLBACK_LOG_LEVEL (default info). Log lifecycle changes, never per item.
 */
export function createLogger(name = 'pullback', level = process.env.PULLBACK_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }))
}

/** A logger that drops everything: for tests and library code that was given none. */
export const silentLogger: Logger = pino({ level: 'silent' })
