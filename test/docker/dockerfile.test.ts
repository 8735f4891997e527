/**
 * The image cannot be built here (no Docker engine), so this checks what can be checked without
 * one: the files the Dockerfile copies exist and pass .dockerignore, build outputs are what
 * `npm run build` produces, the entrypoint is the package's bin, the exposed ports are the config
 * defaults, every runtime import is installed by `npm ci --omit=dev`, and the HEALTHCHECK command
 * really tells a live admin server from a stalled or absent one.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join, posix, relative } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { AdminServer } from '../../src/runtime/admin.js'
import { adminSchema, splitHostPort } from '../../src/runtime/config.js'
import { ManualClock } from '../../src/common/clock.js'

const ROOT = join(import.meta.dirname, '..', '..')
const run = promisify(execFile)

interface Instruction {
  op: string
  args: string
  stage: string
}

/** Dockerfile instructions with line continuations joined and comments dropped, tagged with their stage. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let stage = ''
  let buf = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (buf === '' && (line === '' || line.startsWith('#'))) continue
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1)} `
      continue
    }
    const full = (buf + line).trim()
    buf = ''
    const m = /^(\w+)\s+(.*)$/s.exec(full)
    if (!m) continue
    const op = m[1]!.toUpperCase()
    const args = m[2]!
    if (op === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? args
    out.push({ op, args, stage })
  }
  return out
}

/** `COPY [--flags] src... dest` -> flags, sources, dest */
function parseCopy(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/)
  let from: string | undefined
  while (words[0]?.startsWith('--')) {
    const f = words.shift()!
    if (f.startsWith('--from=')) from = f.slice('--from='.length)
  }
  const dest = words.pop()!
  return from === undefined ? { sources: words, dest } : { from, sources: words, dest }
}

/** .dockerignore semantics: last matching pattern wins; `!` re-includes; `**` spans directories. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!')
      const pat = posix.normalize(negate ? l.slice(1) : l).replace(/^\/+/, '')
      let re = ''
      for (let i = 0; i < pat.length; i++) {
        const c = pat[i]!
        if (c === '*' && pat[i + 1] === '*') {
          re += '.*'
          i++
          if (pat[i + 1] === '/') i++
        } else if (c === '*') re += '[^/]*'
        else if (c === '?') re += '[^/]'
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
      }
      return { negate, re: new RegExp(`^${re}(/.*)?$`) }
    })
  return (path) => {
    let excluded = false
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate
    return excluded
  }
}

function filesUnder(dir: string): string[] {
  const st = statSync(dir)
  if (!st.isDirectory()) return [dir]
  return readdirSync(dir).flatMap((n) => filesUnder(join(dir, n)))
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const instructions = parseDockerfile(dockerfile)
const ignored = dockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>
  scripts: Record<string, string>
  dependencies: Record<string, string>
}
const stages = [...new Set(instructions.map((i) => i.stage))]
const inStage = (stage: string, op: string) => instructions.filter((i) => i.stage === stage && i.op === op)
const runtimeStage = stages[stages.length - 1]!
const workdir = (stage: string) => inStage(stage, 'WORKDIR').at(-1)?.args ?? '/'
const execForm = (args: string) => JSON.parse(args) as string[]

describe('Dockerfile', () => {
  it('is multi-stage: node:22-bookworm build, node:22-bookworm-slim runtime', () => {
    const froms = instructions.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0])
    expect(froms[0]).toBe('node:22-bookworm')
    expect(froms.at(-1)).toBe('node:22-bookworm-slim')
    expect(froms.length).toBeGreaterThanOrEqual(2)
  })

  it('copies only files that exist in the repository and survive .dockerignore', () => {
    const local = instructions.filter((i) => i.op === 'COPY' && parseCopy(i.args).from === undefined)
    expect(local.length).toBeGreaterThan(0)
    for (const c of local) {
      for (const src of parseCopy(c.args).sources) {
        const abs = join(ROOT, src)
        expect(existsSync(abs), `COPY ${src}: missing`).toBe(true)
        // a directory git does not track (empty) would not exist in a fresh clone
        const files = filesUnder(abs).map((f) => relative(ROOT, f).split('\\').join('/'))
        expect(files.length, `COPY ${src}: no files`).toBeGreaterThan(0)
        for (const f of files) expect(ignored(f), `${f} is excluded by .dockerignore but copied`).toBe(false)
      }
    }
    // and the context stays small: dependencies, outputs and tests are not sent
    for (const p of ['node_modules/yaml/package.json', 'dist/src/cli/main.js', 'test/docker/dockerfile.test.ts', '.git/HEAD', 'k8s/kustomization.yaml']) {
      expect(ignored(p), p).toBe(true)
    }
  })

  it('copies build outputs that `npm run build` produces, and production deps from `npm ci --omit=dev`', () => {
    const fromStage = instructions.filter((i) => i.op === 'COPY' && parseCopy(i.args).from !== undefined)
    expect(fromStage.length).toBeGreaterThan(0)
    const buildCfg = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { extends?: string; include: string[] }
    const baseCfg = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } }
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json')
    expect(buildCfg.include).toContain('src/**/*.ts')
    for (const c of fromStage) {
      const { from, sources } = parseCopy(c.args)
      expect(stages, `--from=${from}`).toContain(from)
      const runs = inStage(from!, 'RUN').map((r) => r.args).join(' && ')
      for (const src of sources) {
        const rel = posix.relative(workdir(from!), src)
        if (rel === 'node_modules') {
          expect(runs).toMatch(/npm ci --omit=dev/)
        } else {
          expect(runs).toMatch(/npm run build/)
          // tsc maps <rootDir>/src/x.ts to <outDir>/src/x.js
          expect(rel).toBe(posix.join(baseCfg.compilerOptions.outDir, 'src'))
          expect(baseCfg.compilerOptions.rootDir).toBe('.')
          // the build stage must have copied what it compiles
          const copied = inStage(from!, 'COPY').flatMap((i) => parseCopy(i.args).sources)
          for (const need of ['src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) expect(copied).toContain(need)
        }
      }
    }
  })

  it('runs the package bin as the entrypoint, with package.json where main.ts reads its version', () => {
    const entry = execForm(inStage(runtimeStage, 'ENTRYPOINT').at(-1)!.args)
    const appDir = workdir(runtimeStage)
    expect(entry).toEqual(['node', posix.join(appDir, pkg.bin.pullback!)])
    expect(existsSync(join(ROOT, pkg.bin.pullback!.replace(/^dist\//, '').replace(/\.js$/, '.ts')))).toBe(true)
    // main.ts: new URL('../../../package.json', import.meta.url)
    const mainTs = readFileSync(join(ROOT, 'src/cli/main.ts'), 'utf8')
    const rel = /new URL\('([^']+package\.json)', import\.meta\.url\)/.exec(mainTs)?.[1]
    expect(rel).toBeDefined()
    const pkgAt = new URL(rel!, `file://${posix.join(appDir, pkg.bin.pullback!)}`).pathname
    const copiedPkg = inStage(runtimeStage, 'COPY').some((i) => {
      const c = parseCopy(i.args)
      return c.from === undefined && c.sources.includes('package.json') && posix.join(appDir, c.dest) === posix.dirname(pkgAt) + '/'
    })
    expect(copiedPkg, `package.json must land at ${pkgAt}`).toBe(true)
    expect(execForm(inStage(runtimeStage, 'CMD').at(-1)!.args)).toEqual(['sidecar', '--config', '/etc/pullback/pullback.yaml'])
  })

  it('runs as uid 10001 with HOME and TMPDIR in /tmp', () => {
    expect(inStage(runtimeStage, 'USER').at(-1)?.args).toBe('10001:10001')
    const env = inStage(runtimeStage, 'ENV').map((e) => e.args).join(' ')
    expect(env).toMatch(/HOME=\/tmp/)
    expect(env).toMatch(/TMPDIR=\/tmp/)
    expect(env).toMatch(/NODE_ENV=production/)
  })

  it('exposes exactly the default receiver ports and the admin port', () => {
    const cfg = parseConfig({})
    const want = [cfg.receivers.otlp.grpc.endpoint, cfg.receivers.otlp.http.endpoint, cfg.runtime.admin.endpoint].map((e) => splitHostPort(e).port)
    const exposed = inStage(runtimeStage, 'EXPOSE').flatMap((e) => e.args.split(/\s+/)).map((p) => Number(p.split('/')[0]))
    expect(exposed.sort()).toEqual(want.sort())
  })

  it('imports at runtime only packages that `npm ci --omit=dev` installs', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
    const builtins = new Set(builtinModules)
    const bad: string[] = []
    for (const file of filesUnder(join(ROOT, 'src')).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(file, 'utf8')
      // value imports only: `import type` and `export type` vanish at compile time
      const specs = [
        ...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm),
        ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
      ].map((m) => m[1]!)
      for (const s of specs) {
        if (s.startsWith('.') || s.startsWith('node:') || builtins.has(s)) continue
        const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!
        const entry = lock.packages[`node_modules/${name}`]
        if (entry === undefined || entry.dev === true) bad.push(`${relative(ROOT, file)}: ${name}`)
      }
    }
    expect(bad).toEqual([])
  })

  it('HEALTHCHECK passes against a live admin server and fails when it is stalled or absent', async () => {
    const hc = inStage(runtimeStage, 'HEALTHCHECK').at(-1)!.args
    const cmd = execForm(hc.slice(hc.indexOf('CMD') + 3).trim())
    expect(cmd.slice(0, 2)).toEqual(['node', '-e'])
    const defaultPort = splitHostPort(parseConfig({}).runtime.admin.endpoint).port
    expect(cmd[2]).toContain(`http://127.0.0.1:${defaultPort}/livez`)
    const clock = new ManualClock(1_000)
    const admin = new AdminServer({ config: adminSchema.parse({ endpoint: '127.0.0.1:0', livenessMaxDelay: '1s' }), clock, heartbeatMs: 3_600_000 })
    await admin.start()
    const port = admin.address()!.port
    const script = cmd[2]!.replace(`:${defaultPort}/`, `:${port}/`)
    const exitCode = () =>
      run('node', ['-e', script], { timeout: 10_000 }).then(
        () => 0,
        (err: { code?: number }) => err.code ?? -1,
      )
    try {
      expect(await exitCode()).toBe(0)
      clock.advance(2_000)
      expect(await exitCode()).toBe(1)
    } finally {
      await admin.shutdown()
    }
    expect(await exitCode()).toBe(1)
  })
})
