/**
 * The runtime stage of the image, rebuilt in a temporary directory without Docker: `npm run build`
 * output under <app>/dist, package.json beside it, and node_modules holding exactly the packages
 * `npm ci --omit=dev` installs (the lock file's non-dev entries). The entrypoint must run from there,
 * from another working directory, as the container runs it.
 *
 * Limitation: the packages are symlinked from the repository's node_modules (no registry here), so
 * pullback's own imports are checked against the production set, while the packages' own transitive
 * requires resolve from the full tree (npm computed the lock's dev flags for those).
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..')
const run = promisify(execFile)

describe('production install layout (the image runtime stage without Docker)', () => {
  let tmp = ''
  let app = ''
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> }

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'pullback-image-'))
    app = join(tmp, 'app')
    mkdirSync(app)
    // npm run build (tsc -p tsconfig.build.json), into the temporary tree; type errors elsewhere in
    // the tree do not stop emit, and what matters here is the emitted JavaScript
    const out = join(tmp, 'build')
    await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: ROOT }).catch(
      (err: { code?: number }) => {
        if (typeof err.code !== 'number') throw err as Error
      },
    )
    cpSync(join(out, 'src'), join(app, 'dist/src'), { recursive: true }) // COPY --from=build /src/dist/src ./dist/src
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json')) // COPY package.json ./
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> }
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (!path.startsWith('node_modules/') || path.lastIndexOf('node_modules/') !== 0 || entry.dev === true) continue
      const target = join(ROOT, path)
      const link = join(app, path)
      mkdirSync(dirname(link), { recursive: true })
      try {
        symlinkSync(target, link, 'dir')
      } catch (err) {
        if (!entry.optional) throw err
      }
    }
  }, 180_000)

  afterAll(() => {
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true })
  })

  const entrypoint = () => join(app, pkg.bin.pullback!)
  const env = { PATH: process.env.PATH ?? '', HOME: '/tmp', TMPDIR: '/tmp', NODE_ENV: 'production' }

  it('prints the version and the command list from any working directory', async () => {
    const v = await run(process.execPath, [entrypoint(), '--version'], { cwd: '/', env })
    expect(v.stdout.trim()).toBe(pkg.version)
    const h = await run(process.execPath, [entrypoint(), '--help'], { cwd: '/', env })
    expect(h.stdout).toMatch(/sidecar/)
    expect(h.stdout).toMatch(/actuator/)
  })

  it('loads and validates the Kubernetes config with production dependencies only', async () => {
    const r = await run(process.execPath, [entrypoint(), 'config', '--config', join(ROOT, 'k8s/pullback.yaml')], { cwd: '/', env })
    expect(r.stdout).toMatch(/endpoint: 0\.0\.0\.0:13134/)
    expect(r.stdout).toMatch(/kafka-bootstrap\.kafka\.svc:9092/)
  })

  it('fails, naming the package, when a production dependency is missing (the check can fail)', async () => {
    rmSync(join(app, 'node_modules/yaml'))
    try {
      await expect(run(process.execPath, [entrypoint(), 'config'], { cwd: '/', env })).rejects.toMatchObject({ stderr: expect.stringMatching(/yaml/) })
    } finally {
      symlinkSync(join(ROOT, 'node_modules/yaml'), join(app, 'node_modules/yaml'), 'dir')
    }
  })
})
