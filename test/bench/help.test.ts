/**
 * `--help` on a bench prints its usage and runs nothing (bench/args.ts exitOnHelp). Before it, the
 * benches that read their flags with parseArgs printed a stack trace, and those reading them with
 * `flags()` ignored the flag and started a run of minutes. Runs the compiled benches as a user
 * would: needs `npm run build` first (PULLBACK_DIST names another build), as .ci/run does.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const dist = process.env.PULLBACK_DIST ?? join(root, 'dist')

describe('bench --help', () => {
  // a parseArgs bench, a flags() bench, the suite runner, and a bench that is also a module
  for (const [bench, usage] of [
    ['quality', /node dist\/bench\/quality\.js/],
    ['engine', /node dist\/bench\/engine\.js/],
    ['run', /npm run bench/],
    ['false-rollbacks', /node dist\/bench\/false-rollbacks\.js \[--runs 1000\]/],
  ] as const) {
    it(`${bench}: the usage on stdout, exit 0, nothing run`, () => {
      const file = join(dist, 'bench', `${bench}.js`)
      expect(existsSync(file), `${file} is missing: run \`npm run build\` first`).toBe(true)
      const r = spawnSync(process.execPath, [file, '--help'], { encoding: 'utf8', timeout: 30_000 })
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toMatch(usage)
      expect(r.stdout).not.toMatch(/^\s*\*/m)
    })
  }
})
