/**
 * Rules across config sections, which no one section's schema can state: the engine's windows
 * must be answerable by the signal store's buckets and retention. Checked where the file is
 * validated (schema.ts: `pullback config` and every command's start fail on them, naming the path)
 * and again where a pipeline is built from configs made in code (src/runtime/pipeline.ts).
 */
import type { EngineConfig } from '../engine/config.js'
import type { SignalsConfig } from '../signals/config.js'

export interface CrossIssue {
  /** path from the config's root, e.g. ['engine', 'defaults', 'window'] */
  path: (string | number)[]
  message: string
}

/** Every engine contract (the defaults and each `engine.services` override) against the store's buckets. Pure. */
export function windowIssues(engine: EngineConfig, signals: Pick<SignalsConfig, 'bucket' | 'fineRetention' | 'retention'>): CrossIssue[] {
  const out: CrossIssue[] = []
  const bucketMs = signals.bucket
  const contracts = [[['defaults'], engine.defaults] as const, ...Object.entries(engine.services).map(([k, c]) => [['services', k], c] as const)]
  for (const [where, c] of contracts) {
    const slice = c.window / c.slices
    if (slice % bucketMs !== 0) {
      out.push({ path: ['engine', ...where, 'window'], message: `${c.window} ms in ${c.slices} slices is not a multiple of signals.bucket (${bucketMs} ms)` })
    }
    if (c.window + engine.lateness > signals.fineRetention) {
      out.push({ path: ['engine', ...where, 'window'], message: `window + engine.lateness (${c.window + engine.lateness} ms) exceed signals.fineRetention (${signals.fineRetention} ms)` })
    }
    if (c.baselineWindow + c.window > signals.retention) {
      out.push({ path: ['engine', ...where, 'baselineWindow'], message: `baselineWindow + window (${c.baselineWindow + c.window} ms) exceed signals.retention (${signals.retention} ms)` })
    }
    if (c.signals.resource.window % (2 * bucketMs) !== 0) {
      out.push({ path: ['engine', ...where, 'signals', 'resource', 'window'], message: `must be a multiple of 2 x signals.bucket (${2 * bucketMs} ms)` })
    }
  }
  return out
}
