/**
 * Feeds recorded OTLP JSON lines through one ingest node, advancing its clock to the newest
 * telemetry time read so far, as a sidecar's node does live. The node's batches go wherever it
 * was built to emit them; the caller flushes it.
 */
import type { IngestNode } from '../../src/partials/ingest.js'
import { decodeOtlpJsonLine } from '../../src/receivers/otlp/json.js'

export function feedNode(node: IngestNode, lines: Iterable<string>): void {
  let now = -Infinity
  for (const line of lines) {
    const d = decodeOtlpJsonLine(line)
    if (d.type === 'traces') {
      node.consumeTraces(d.request)
      for (const rs of d.request.resourceSpans) for (const s of rs.spans) now = Math.max(now, s.endTimeMs)
    } else if (d.type === 'metrics') {
      node.consumeMetrics(d.request)
      for (const rm of d.request.resourceMetrics) for (const m of rm.metrics) for (const p of m.points) now = Math.max(now, p.timeMs)
    }
    if (Number.isFinite(now)) node.advance(now)
  }
}
