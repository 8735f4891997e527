import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { PermanentError } from '../common/errors.js'
import { configSchema, type PullbackConfig } from './schema.js'

export class ConfigError extends PermanentError {
  constructor(message: string) {
    super('CONFIG_INVALID', message)
  }
}

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
      return `${formatPath(i.path)}: ${i.message}`
    })
    .join('\n')
}

/** Validates an already-parsed object. Throws ConfigError naming every offending path. */
export function parseConfig(raw: unknown, source = 'config'): PullbackConfig {
  const res = configSchema.safeParse(raw ?? {})
  if (!res.success) throw new ConfigError(`${source} is invalid:\n${formatIssues(res.error.issues)}`)
  return deepFreeze(res.data)
}

/** Loads and validates a YAML file. No file means all defaults. */
export function loadConfig(file: string | undefined): PullbackConfig {
  if (file === undefined) return parseConfig({}, 'default config')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`)
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw new ConfigError(`${file} is not valid YAML:\n${doc.errors.map((e) => e.message).join('\n')}`)
  }
  return parseConfig(doc.toJS(), file)
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v)
  }
  return o
}
