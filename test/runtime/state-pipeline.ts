/** A Pipeline with the engine state on: every record the sink is handed, in order (the pass tests' shared fixture). */
import { defaultEngineConfig } from '../../src/engine/config.js'
import type { StateChanges } from '../../src/engine/persist.js'
import { Pipeline } from '../../src/runtime/pipeline.js'

export function statePipeline(): { p: Pipeline; writes: StateChanges[] } {
  const writes: StateChanges[] = []
  const p = new Pipeline({
    engine: defaultEngineConfig(),
    state: {
      sink: { write: (c) => (writes.push(c), { accepted: c.upserts.length + c.deletes.length, refused: [] }) },
      minWriteIntervalMs: 10_000,
      versions: { maxServices: 10_000, maxPerService: 8, refreshMs: 60_000 },
    },
  })
  return { p, writes }
}
