import { closeSync, openSync, readSync } from 'node:fs'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { errorMessage, PermanentError } from '../common/errors.js'
import { configSchema, type PullbackConfig } from './schema.js'

export class ConfigError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options)
  }
}

/**
 * A config file larger than this is refused unread: `--config /dev/zero` used to read until the
 * process ran out of memory. The shipped, fully commented config is ~20 KiB.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024

/** "engine.services[\"shop/cart\"].window" style path for an issue. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out === '' ? p : `.${p}`
    else out += `[${JSON.stringify(String(p))}]`
  }
  return out === '' ? '(root)' : out
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') {
        return i.keys.map((k) => `${formatPath([...i.path, k])}: unknown key`).join('\n')
      }
      // a record key that failed its own schema: zod's message is only "Invalid key in record"
      if (i.code === 'invalid_key') return `${formatPath(i.path)}: invalid key: ${i.issues.map((k) => k.message).join('; ')}`
      return `${formatPath(i.path)}: ${i.message}`
    })
    .join('\n')
}

/** Validates an already-parsed object. Throws ConfigError naming every offending path. */
export function parseConfig(raw: unknown, source = 'config'): PullbackConfig {
  const res = configSchema.safeParse(raw ?? {})
  if (!res.success) {
    const issues = formatIssues(res.error.issues)
    // one problem fits on one line; several get one line each
    throw new ConfigError(issues.includes('\n') ? `${source} is invalid:\n${issues}` : `${source} is invalid: ${issues}`)
  }
  return deepFreeze(res.data)
}

/** Loads and validates a YAML file. No file means all defaults. Every failure is one ConfigError naming the file. */
export function loadConfig(file: string | undefined): PullbackConfig {
  if (file === undefined) return parseConfig({}, 'default config')
  const text = readBounded(file, MAX_CONFIG_BYTES)
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw new ConfigError(`${file} is not valid YAML:\n${doc.errors.map((e) => e.message).join('\n')}`)
  }
  let raw: unknown
  try {
    // the yaml library refuses alias expansion that would blow up ("billion laughs") by throwing here
    raw = doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    throw new ConfigError(`${file} is not usable YAML: ${errorMessage(err)}`, { cause: err })
  }
  return parseConfig(raw, file)
}

/** Reads at most `limit` bytes of `file` (a device or FIFO included); more => ConfigError. */
function readBounded(file: string, limit: number): string {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${errorMessage(err)}`, { cause: err })
  }
  try {
    // one byte over the limit tells "exactly at the limit" from "larger"
    const buf = Buffer.alloc(limit + 1)
    let size = 0
    for (;;) {
      const n = readSync(fd, buf, size, buf.length - size, null)
      if (n === 0) break
      size += n
      if (size > limit) throw new ConfigError(`config file ${file} is larger than ${limit / 1024} KiB; refusing to read it`)
    }
    return buf.toString('utf8', 0, size)
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(`cannot read config file ${file}: ${errorMessage(err)}`, { cause: err })
  } finally {
    closeSync(fd)
  }
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v)
  }
  return o
}
