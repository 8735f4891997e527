/**
 * The counters of components that have no metric of their own, picked for
 * `pullback.component.events` (SelfMetricsRegistry.registerEvents). Only monotonic counters are
 * picked: gauges in the same stats objects (queue depths, partitions owned, open keys) are left to
 * /status, because a gauge exported as a counter would make `rate()` lie.
 */
import type { ComponentEvents } from '../publish/self-metrics.js'
import type { TransportSecurityStats } from '../receivers/otlp-grpc/receiver.js'
import type { PartialsPublisherStats } from '../partials/publisher.js'
import type { AggregatorStats } from '../partials/aggregator.js'
import type { DeciderServiceStats } from '../decider/service.js'
import type { AdminSecurityStats } from './admin.js'
import type { NormalizerStats } from '../normalize/normalizer.js'
import type { SpanCoverageTopicStats } from '../state/span-coverage-topic.js'

/**
 * The normalizer's counters (src/normalize/README.md), snake_case; every field but the gauge
 * `sampledServices` and `accepted` / `rejected` (the receivers' ingest metrics count those).
 */
export function normalizerEvents(s: NormalizerStats): ComponentEvents {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(s)) {
    if (k === 'sampledServices' || k === 'accepted' || k === 'rejected') continue
    out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v
  }
  return out
}

/** the span-coverage topic's judgements read, written and lost (src/state/span-coverage-topic.ts) */
export function spanCoverageEvents(s: SpanCoverageTopicStats): ComponentEvents {
  return { received: s.received, published: s.published, send_failures: s.sendFailures, refused: s.refused, malformed: s.malformed, evicted: s.evicted }
}

/** TLS handshake failures and reloads, refused authentications by reason (only what is configured) */
export function securityEvents(s: TransportSecurityStats): ComponentEvents {
  const out: Record<string, number> = { tls_handshake_failures: s.tlsHandshakeFailures }
  if (s.tls !== undefined) {
    out.tls_reloads = s.tls.reloads
    out.tls_reload_failures = s.tls.reloadFailures
  }
  if (s.auth !== undefined) {
    for (const [reason, n] of Object.entries(s.auth.refused)) out[`auth_refused_${reason}`] = n
    out.auth_reload_failures = s.auth.reloadFailures
  }
  return out
}

export function adminEvents(s: AdminSecurityStats): ComponentEvents {
  return { status_entry_errors: s.statusEntryErrors, tls_handshake_failures: s.tlsHandshakeFailures }
}

/** an ingest node's side of the partials: what it aggregated, sent and lost */
export function partialsEvents(p: PartialsPublisherStats, a: AggregatorStats): ComponentEvents {
  return {
    partials_sent: p.partials,
    records_sent: p.dataRecords,
    heartbeats_sent: p.heartbeats,
    bytes_sent: p.dataBytes + p.heartbeatBytes,
    batches_dropped: p.droppedBatches,
    partials_dropped: p.droppedPartials,
    send_failures: p.sendFailures,
    records_rejected: p.rejected,
    reopened_buckets: a.reopened,
    overflow_observations: a.overflowObservations,
    invalid_times: a.invalidTimes,
  }
}

/** a decider's ownership changes, refills, late and refused input */
export function deciderEvents(s: DeciderServiceStats): ComponentEvents {
  const d = s.decider
  return {
    assignments: s.assignments,
    revokes: s.revokes,
    records: s.records,
    refilled_runs: s.refilledRuns,
    ends_unknown: s.endsUnknown,
    undecodable: s.undecodable,
    not_owned: s.notOwned,
    align_overflow: s.alignOverflow,
    late_partials: d?.latePartials ?? 0,
    // recorded at once, not held for after the running pass (src/decider/decider.ts MAX_HELD_BATCHES)
    held_overflow: d?.heldOverflow ?? 0,
    nodes_refused: d?.nodesRefused ?? 0,
    // per (partition, node), since the last assignment (src/decider/decider.ts "Nodes leaving")
    node_leaves: d?.leaves ?? 0,
    node_leaves_expired: d?.leavesExpired ?? 0,
    node_timeouts: d?.timeouts ?? 0,
    node_returns: d?.returns ?? 0,
    node_rejoins: d?.rejoins ?? 0,
    nodes_evicted: d?.nodesEvicted ?? 0,
  }
}
