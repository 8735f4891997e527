/**
 * The decode worker's entry (src/workers/worker.ts) bundled with rolldown into one .mjs under
 * node_modules/.cache, so tests running from sources can start real worker threads (node cannot
 * run the .ts entry). `remove()` deletes the bundle.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'

const root = fileURLToPath(new URL('../..', import.meta.url))

export interface BundledWorker {
  file: string
  remove(): void
}

export async function bundleDecodeWorker(): Promise<BundledWorker> {
  const dir = join(root, 'node_modules', '.cache', 'pullback-test', `decode-worker-${randomUUID().slice(0, 8)}`)
  mkdirSync(dir, { recursive: true })
  await build({
    input: join(root, 'src/workers/worker.ts'),
    platform: 'node',
    external: (id) => !id.startsWith('.') && !id.startsWith('/'),
    output: { dir, entryFileNames: 'worker.mjs', format: 'esm' },
    logLevel: 'silent',
  })
  return { file: join(dir, 'worker.mjs'), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A copy of every span of a request, taken at each iteration step (a batch view yields one reused object). */
export function spansOf(req: { resourceSpans: Array<{ resource: object; spans: Iterable<object> }> }): Array<{ resource: object; spans: object[] }> {
  return req.resourceSpans.map((rs) => ({ resource: rs.resource, spans: Array.from(rs.spans, (s) => ({ ...s })) }))
}
