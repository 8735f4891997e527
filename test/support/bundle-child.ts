/**
 * Child processes for kill -9 tests: a test/support/*.ts entry bundled with rolldown into one .mjs
 * (the project's own sources inlined, packages left external) under node_modules/.cache, so a
 * child starts with plain `node` and no TypeScript loader. `remove()` deletes the bundle.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'
import { uniqueName } from '../setup/kafka.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

export interface BundledChild {
  /** the .mjs to run with process.execPath */
  file: string
  remove(): void
}

/** `name`: the entry's base name under test/support, e.g. "decider-child" */
export async function bundleChild(name: string): Promise<BundledChild> {
  const dir = join(root, 'node_modules', '.cache', 'pullback-test', uniqueName(name))
  mkdirSync(dir, { recursive: true })
  await build({
    input: join(root, 'test/support', `${name}.ts`),
    platform: 'node',
    external: (id) => !id.startsWith('.') && !id.startsWith('/'),
    output: { dir, entryFileNames: `${name}.mjs`, format: 'esm' },
    logLevel: 'silent',
  })
  return { file: join(dir, `${name}.mjs`), remove: () => rmSync(dir, { recursive: true, force: true }) }
}
