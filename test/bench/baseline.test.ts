/**
 * bench/baseline.ts: another commit built beside the checkout for `npm run bench -- --baseline`, on
 * a throwaway git repository of three files (a tsconfig, one bench, a lock file) with this
 * checkout's node_modules linked in, so that the build is the real `tsc` and takes a second or two.
 * And run.ts's refusal of a bad `--baseline` before any bench runs, on the compiled runner.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { baselineFirst, BaselineError, buildBaseline } from '../../bench/baseline.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const dist = process.env.PULLBACK_DIST ?? join(root, 'dist')

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.email=t@example.invalid', '-c', 'user.name=t', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

const made: string[] = []
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true })
})

/** A repository whose first commit builds and whose second does not; returns it and both commits. */
function repo(): { dir: string; good: string; broken: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-baseline-test-'))
  made.push(dir)
  git(dir, 'init', '-q')
  writeFileSync(join(dir, 'package-lock.json'), '{"lockfileVersion": 3}\n')
  writeFileSync(join(dir, 'tsconfig.build.json'), JSON.stringify({ compilerOptions: { outDir: 'dist', rootDir: '.', strict: true, module: 'nodenext', target: 'es2022', skipLibCheck: true, types: [] }, include: ['bench/**/*.ts'] }))
  mkdirSync(join(dir, 'bench'))
  writeFileSync(join(dir, 'bench', 'hello.ts'), 'export const figure: number = 42\n')
  writeFileSync(join(dir, '.gitignore'), 'node_modules\ndist\n')
  git(dir, 'add', '-A')
  git(dir, 'commit', '-q', '-m', 'good')
  const good = git(dir, 'rev-parse', 'HEAD')
  writeFileSync(join(dir, 'bench', 'hello.ts'), 'export const figure: number = "not a number"\n')
  git(dir, 'commit', '-q', '-am', 'broken')
  const broken = git(dir, 'rev-parse', 'HEAD')
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
  return { dir, good, broken }
}

const worktrees = (dir: string): number => git(dir, 'worktree', 'list').split('\n').length

describe('bench baseline build', () => {
  it('builds a commit in a worktree of its own, and removes it (twice is harmless)', () => {
    const r = repo()
    const lines: string[] = []
    const b = buildBaseline(r.dir, r.good.slice(0, 10), (l) => lines.push(l))
    expect(b.commit).toBe(r.good)
    expect(worktrees(r.dir)).toBe(2)
    // the commit's own code, not the checkout's (which no longer builds)
    expect(readFileSync(join(b.benchDir, 'hello.js'), 'utf8')).toContain('42')
    expect(lines.some((l) => /building/.test(l))).toBe(true)
    b.remove()
    b.remove()
    expect(existsSync(b.root)).toBe(false)
    expect(worktrees(r.dir)).toBe(1)
  })

  it('refuses an unknown ref, a dirty record, a different lock file and a build that fails, leaving nothing behind', () => {
    const r = repo()
    expect(() => buildBaseline(r.dir, 'no-such-ref', () => {})).toThrow(BaselineError)
    expect(() => buildBaseline(r.dir, 'no-such-ref', () => {})).toThrow(/not a commit/)
    expect(() => buildBaseline(r.dir, `${r.good}+dirty`, () => {})).toThrow(/uncommitted changes/)
    expect(() => buildBaseline(r.dir, r.broken, () => {})).toThrow(/the build of .* failed/)
    expect(worktrees(r.dir)).toBe(1)
    writeFileSync(join(r.dir, 'package-lock.json'), '{"lockfileVersion": 3, "packages": {}}\n')
    expect(() => buildBaseline(r.dir, r.good, () => {})).toThrow(/package-lock\.json differs/)
    expect(worktrees(r.dir)).toBe(1)
  })

  it('alternates which build runs first from bench to bench', () => {
    expect([0, 1, 2, 3].map(baselineFirst)).toEqual([true, false, true, false])
  })

  it('npm run bench refuses a bad --baseline before running any bench (exit 2, the reason on stderr)', () => {
    const file = join(dist, 'bench', 'run.js')
    expect(existsSync(file), `${file} is missing: run \`npm run build\` first`).toBe(true)
    const outDir = mkdtempSync(join(tmpdir(), 'pullback-run-'))
    made.push(outDir)
    const out = join(outDir, 'r.json')
    const bad = spawnSync(process.execPath, [file, '--only', 'signals', '--out', out, '--baseline', 'no-such-ref'], { encoding: 'utf8', timeout: 30_000 })
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/--baseline no-such-ref: not a commit/)
    expect(bad.stderr).not.toMatch(/running node/)
    expect(existsSync(out)).toBe(false)
    const none = spawnSync(process.execPath, [file, '--only', 'signals', '--out', out, '--compare', 'none', '--baseline', 'record'], { encoding: 'utf8', timeout: 30_000 })
    expect(none.status).toBe(2)
    expect(none.stderr).toMatch(/--baseline record: no record to compare with/)
  })
})
