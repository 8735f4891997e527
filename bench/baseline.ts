/**
 * A build of another commit beside this checkout, so that `npm run bench -- --baseline REF` (run.ts)
 * can run each bench from both builds, alternately, on the same machine in the same hour.
 *
 * Why: the target "every README figure reproducible within 20 %" compares a run with a record taken
 * on another day, and this shared VM's speed moves by more than 20 % between days (session 40: the
 * record's own commit, rebuilt, ran the engine and Kafka benches 1.2-1.6x slower than on its record
 * day, with no steal and the machine-speed probe nearly unchanged). Measured beside the record's
 * commit, a figure that moved with the code is told from one that moved with the machine: the
 * checkout against the baseline says the first, the baseline against the record the second.
 *
 * The build: `git worktree add --detach` of the commit in the system's temporary directory, this
 * checkout's node_modules linked into it (a commit whose package-lock.json differs is refused: its
 * benches would run on other libraries than it had), `tsc -p tsconfig.build.json` there. The
 * worktree is removed by `remove()` (idempotent), which run.ts calls when the suite ends, on an
 * error and on SIGINT / SIGTERM.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A baseline that cannot be built from what the user named: run.ts exits 2 before any bench runs. */
export class BaselineError extends Error {}

export interface BaselineBuild {
  /** the full commit id the benches were built from */
  commit: string
  /** the worktree's root: the baseline benches run with it as their working directory */
  root: string
  /** its built benches: `${benchDir}NAME.js` */
  benchDir: string
  /** removes the worktree (idempotent) */
  remove(): void
}

function git(repo: string, args: string[]): string {
  return execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

/**
 * `ref`: a commit, tag or branch of the checkout at `repo` (a record's `commit` field may carry
 * `+dirty`: refused, its tree is not in git). `log` gets the progress lines (the build takes a
 * minute). Throws BaselineError with the reason when the ref is unknown, the lock file differs or
 * the build fails; nothing is left behind then.
 */
export function buildBaseline(repo: string, ref: string, log: (line: string) => void): BaselineBuild {
  if (ref.endsWith('+dirty')) throw new BaselineError(`--baseline ${ref}: that run measured uncommitted changes; its code is not in git`)
  let commit: string
  try {
    commit = git(repo, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`])
  } catch {
    throw new BaselineError(`--baseline ${ref}: not a commit of ${repo} (git rev-parse found nothing)`)
  }
  const lockNow = git(repo, ['hash-object', join(repo, 'package-lock.json')])
  let lockThen: string
  try {
    lockThen = git(repo, ['rev-parse', `${commit}:package-lock.json`])
  } catch {
    throw new BaselineError(`--baseline ${ref}: commit ${commit.slice(0, 12)} has no package-lock.json`)
  }
  if (lockThen !== lockNow) throw new BaselineError(`--baseline ${ref}: commit ${commit.slice(0, 12)}'s package-lock.json differs from this checkout's; its benches would run on other libraries than it had`)
  const root = join(mkdtempSync(join(tmpdir(), 'pullback-baseline-')), 'tree')
  let removed = false
  const remove = (): void => {
    if (removed) return
    removed = true
    try {
      git(repo, ['worktree', 'remove', '--force', root])
    } catch {
      // not added, or already gone: the directory is removed below either way
    }
    rmSync(join(root, '..'), { recursive: true, force: true })
    try {
      git(repo, ['worktree', 'prune'])
    } catch {
      // nothing to prune
    }
  }
  try {
    log(`baseline: git worktree of ${commit.slice(0, 12)} in ${root}`)
    git(repo, ['worktree', 'add', '--detach', root, commit])
    symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'), 'dir')
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc')
    if (!existsSync(tsc)) throw new BaselineError(`--baseline: ${tsc} not found (npm ci first)`)
    log(`baseline: building ${commit.slice(0, 12)} (tsc -p tsconfig.build.json)`)
    const t = performance.now()
    try {
      execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (e) {
      const out = (e as { stdout?: Buffer }).stdout?.toString('utf8').split('\n').slice(0, 5).join('\n') ?? ''
      throw new BaselineError(`--baseline ${ref}: the build of ${commit.slice(0, 12)} failed:\n${out}`)
    }
    log(`baseline: built in ${((performance.now() - t) / 1000).toFixed(0)} s`)
  } catch (e) {
    remove()
    throw e instanceof BaselineError ? e : new BaselineError(`--baseline ${ref}: ${e instanceof Error ? e.message : String(e)}`)
  }
  return { commit, root, benchDir: join(root, 'dist', 'bench') + '/', remove }
}

/**
 * Which build runs first for the i-th bench: alternated (baseline first for even i), so that a
 * machine that slows or speeds up during the suite favours neither build.
 */
export function baselineFirst(i: number): boolean {
  return i % 2 === 0
}
