import { it, expect } from 'vitest'
import { Pipeline } from '../../src/runtime/pipeline.js'
import { parseConfig } from '../../src/config/load.js'
it('1970 span', () => {
  const cfg = parseConfig({})
  const p = new Pipeline({ engine: cfg.engine, signals: cfg.signals, normalize: cfg.normalize })
  const span = (t: number) => ({ kind: 2, endTimeMs: t, durationUs: 5000, statusCode: 0, httpStatus: 200 })
  const req = (t: number) => ({ resourceSpans: [{ resource: { 'service.name': 'a', 'service.version': 'v1' }, spans: [span(t)] }] })
    for (const t of [1, 5000, 1_000_000, -5, Date.now()]) p.consumeTraces(req(t) as never)
})
