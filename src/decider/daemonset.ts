/**
 * How a DaemonSet spreads telemetry over nodes, for `pullback replay --nodes N`: each OTLP resource
 * (one process: a pod's spans or metrics) goes to the node its pod runs on. A recording does not say
 * which node that was, so the node is a stable hash of the pod's identity:
 *
 *   node = FNV-1a 32 (UTF-8 of `k8s.pod.name`, else `service.instance.id`, else `host.name`) mod N
 *
 * A resource with none of them goes to node 0 (it cannot be told from its siblings; keeping such
 * replicas together keeps their cumulative streams apart as one normalizer does). All resources of
 * one pod, spans and metrics alike, land on one node, as they do in a cluster.
 */
import type { Attributes, MetricsRequest, TracesRequest } from '../receivers/otlp/model.js'

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** FNV-1a, 32 bits, over the UTF-8 bytes of `s`. */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b
    h = Math.imul(h, FNV_PRIME) >>> 0
  }
  return h >>> 0
}

function identity(r: Attributes): string | undefined {
  for (const k of ['k8s.pod.name', 'service.instance.id', 'host.name']) {
    const v = r[k]
    if (typeof v === 'string' && v !== '') return v
  }
  return undefined
}

/** The node (0..n-1) a resource's pod runs on. */
export function nodeOf(resource: Attributes, n: number): number {
  const id = identity(resource)
  return id === undefined ? 0 : fnv1a32(id) % n
}

/** The request's resources per node; undefined where a node gets none. */
export function splitTraces(req: TracesRequest, n: number): (TracesRequest | undefined)[] {
  const out: (TracesRequest | undefined)[] = new Array<TracesRequest | undefined>(n).fill(undefined)
  for (const rs of req.resourceSpans) {
    const i = nodeOf(rs.resource, n)
    ;(out[i] ??= { resourceSpans: [] }).resourceSpans.push(rs)
  }
  return out
}

export function splitMetrics(req: MetricsRequest, n: number): (MetricsRequest | undefined)[] {
  const out: (MetricsRequest | undefined)[] = new Array<MetricsRequest | undefined>(n).fill(undefined)
  for (const rm of req.resourceMetrics) {
    const i = nodeOf(rm.resource, n)
    ;(out[i] ??= { resourceMetrics: [] }).resourceMetrics.push(rm)
  }
  return out
}
