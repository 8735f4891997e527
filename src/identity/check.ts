/**
 * Telemetry identity bound to the sender (issue 13 item 4), as the Collector's k8sattributes
 * processor associates telemetry with pods, plus the check k8sattributes does not make: resource
 * attributes that contradict the sending pod are flagged or rejected.
 *
 * Association (which pod a resource belongs to):
 * - OTLP: the request's peer address -> the one live non-hostNetwork pod holding that IP on this
 *   node. No pod: `unknown_peer`. Several live pods: `ambiguous_peer`. Only hostNetwork pods (the
 *   node's address: kubelet, host processes and every hostNetwork pod look alike): `host_network`;
 *   a hostNetwork sender cannot be told from the node, so it is never associated by address.
 * - A peer that is a configured forwarder (a Collector agent), and Kafka records (no peer): per
 *   resource by `k8s.pod.uid`, else `k8s.pod.ip` (what the Collector's own k8sattributes wrote).
 *   Not found: the resource is trusted as the forwarder wrote it (counted `unassociated`): the
 *   forwarder's k8sattributes, and who may produce to the topic, are the control there.
 *
 * Check of an associated resource against its pod P, with pullback's own mapping (src/normalize):
 * - namespace (`k8s.namespace.name`, else `service.namespace`) must be P's namespace;
 * - `k8s.pod.name` / `k8s.pod.uid`, when present, must be P's;
 * - `service.name` must equal P's service label (identity.labels.service, first present), and the
 *   version (`service.version`, else the image tag) P's version label, when P carries the label;
 *   a pod without the label cannot be checked on that field (counted `unverified`).
 * Missing `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `service.name`, `service.version`
 * are filled from P (labels for the last two), in flag and enforce.
 *
 * Modes: flag keeps a contradicting or unassociated resource, marked with the resource attribute
 * `pullback.identity.contradiction` = reason, and counts it; enforce drops it, counts it by reason
 * and the receivers answer OTLP partial success with the message. Before the first pod list
 * completes, enforce refuses OTLP requests with a RetryableError (UNAVAILABLE / 503, the exporter
 * retries): nothing is accepted unchecked and nothing is lost silently.
 */
import { RetryableError } from '../common/errors.js'
import type { ConsumeResult, TelemetryConsumer, TelemetryOrigin } from '../receivers/consumer.js'
import type { Attributes, MetricsRequest, ResourceMetricsLite, ResourceSpansLite, TracesRequest } from '../receivers/otlp/model.js'
import { isIP } from 'node:net'
import { imageTag } from '../normalize/normalizer.js'
import type { ForwarderConfig } from './config.js'
import { normalizeIp, type PodInfo } from './pods.js'

export type IdentityMode = 'off' | 'flag' | 'enforce'

export const REJECT_REASONS = ['unknown_peer', 'ambiguous_peer', 'host_network', 'no_peer', 'namespace', 'pod', 'service', 'version'] as const
export type IdentityReason = (typeof REJECT_REASONS)[number]

/** The resource attribute flag mode sets on a contradicting or unassociated resource. */
export const CONTRADICTION_ATTRIBUTE = 'pullback.identity.contradiction'

/** what a resource's check came to; `resource` is what goes on (filled, marked), `rejected` goes nowhere */
export type IdentityResult =
  | { outcome: 'accepted'; resource: Attributes }
  | { outcome: 'filled'; resource: Attributes; filled: string[] }
  | { outcome: 'flagged'; resource: Attributes; reason: IdentityReason; message: string }
  | { outcome: 'rejected'; reason: IdentityReason; message: string }

/** The pod lookups the check needs (PodIndex implements it; tests may fake it). */
export interface PodLookup {
  synced(): boolean
  byIp(ip: string): PodInfo[]
  byUidOf(uid: string): PodInfo | undefined
}

export interface IdentityCheckStats {
  mode: IdentityMode
  accepted: number
  filled: number
  flagged: Record<IdentityReason, number>
  rejected: Record<IdentityReason, number>
  /** resources from a forwarder or Kafka whose pod is not in the index: trusted as written */
  unassociated: { kafka: number; forwarder: number }
  /** associated resources whose pod lacks the service / version label */
  unverified: { service: number; version: number }
  /** OTLP requests refused (retryable) before the first pod list completed */
  notSynced: number
  /** the last flagged or rejected resource, sanitised */
  last?: { reason: IdentityReason; peer: string; message: string }
}

export interface IdentityCheckOptions {
  mode: Exclude<IdentityMode, 'off'>
  pods: PodLookup
  serviceLabels: readonly string[]
  versionLabels: readonly string[]
  forwarders: readonly ForwarderConfig[]
  /** retry hint of the not-synced refusal */
  retryAfterMs?: number
}

const zero = (): Record<IdentityReason, number> => Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<IdentityReason, number>

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined)

/** attacker-chosen text in a message: control and format characters replaced, at most 128 characters */
export function sanitize(v: string): string {
  const clean = v.replace(/[\p{Cc}\p{Cf}]/gu, '?')
  return clean.length > 128 ? `${clean.slice(0, 128)}...` : clean
}

/** The peer's IP from `call.getPeer()` ("10.1.2.3:5678", "[::1]:5678", "::ffff:10.1.2.3:5678") or a bare socket address. */
export function peerIp(peer: string): string | undefined {
  if (isIP(peer) !== 0) return normalizeIp(peer)
  const bracket = /^\[([^\]]+)\]:\d+$/.exec(peer)
  if (bracket !== null) return isIP(bracket[1]!) !== 0 ? normalizeIp(bracket[1]!) : undefined
  const m = /^(.*):\d+$/.exec(peer)
  if (m !== null && isIP(m[1]!) !== 0) return normalizeIp(m[1]!)
  return undefined
}

const firstLabel = (pod: PodInfo, keys: readonly string[]): string | undefined => {
  for (const k of keys) {
    const v = pod.labels[k]
    if (v !== undefined && v !== '') return v
  }
  return undefined
}

type Association = { kind: 'pod'; pod: PodInfo } | { kind: 'trusted'; via: 'kafka' | 'forwarder' } | { kind: 'none'; reason: IdentityReason; message: string }

export class IdentityCheck {
  readonly mode: Exclude<IdentityMode, 'off'>
  private readonly counters: IdentityCheckStats
  /** the last request's origin (compared by identity: each request has its own object) and its peer's association */
  private lastPeer: { origin: TelemetryOrigin; association: Association | { kind: 'forwarder' } } | undefined

  constructor(private readonly o: IdentityCheckOptions) {
    this.mode = o.mode
    this.counters = { mode: o.mode, accepted: 0, filled: 0, flagged: zero(), rejected: zero(), unassociated: { kafka: 0, forwarder: 0 }, unverified: { service: 0, version: 0 }, notSynced: 0 }
  }

  stats(): IdentityCheckStats {
    const c = this.counters
    return { ...c, flagged: { ...c.flagged }, rejected: { ...c.rejected }, unassociated: { ...c.unassociated }, unverified: { ...c.unverified }, ...(c.last ? { last: { ...c.last } } : {}) }
  }

  /**
   * Throws RetryableError when the request cannot be judged yet (enforce, OTLP, index never synced);
   * call once per request before `check`.
   */
  admit(origin: TelemetryOrigin | undefined): void {
    if (this.mode !== 'enforce' || this.o.pods.synced() || origin?.transport === 'kafka') return
    this.counters.notSynced++
    throw new RetryableError('IDENTITY_NOT_SYNCED', 'identity: the pod index is not synced yet; retry', this.o.retryAfterMs !== undefined ? { retryAfterMs: this.o.retryAfterMs } : undefined)
  }

  /**
   * One resource from `origin`: accepted as is, filled from its pod, flagged (kept, marked) or
   * rejected. Counts it. `origin` is one object per request (the receivers make a new one each
   * time): the peer's pod is looked up once per origin object.
   */
  check(origin: TelemetryOrigin | undefined, resource: Attributes): IdentityResult {
    const peer = origin === undefined ? '(none)' : origin.transport === 'kafka' ? 'kafka' : origin.peer
    const a = this.associate(origin, resource)
    if (a.kind === 'trusted') {
      this.counters.unassociated[a.via]++
      this.counters.accepted++
      return { outcome: 'accepted', resource }
    }
    if (a.kind === 'none') return this.contradiction(a.reason, a.message, peer, resource)
    const pod = a.pod
    const where = `the sending pod is ${pod.namespace}/${pod.name}`
    const ns = str(resource['k8s.namespace.name']) ?? str(resource['service.namespace'])
    if (ns !== undefined && ns !== pod.namespace) return this.contradiction('namespace', `namespace "${sanitize(ns)}" claimed but ${where}`, peer, resource, pod)
    const podName = str(resource['k8s.pod.name'])
    if (podName !== undefined && podName !== pod.name) return this.contradiction('pod', `k8s.pod.name "${sanitize(podName)}" claimed but ${where}`, peer, resource, pod)
    const podUid = str(resource['k8s.pod.uid'])
    if (podUid !== undefined && podUid !== pod.uid) return this.contradiction('pod', `k8s.pod.uid "${sanitize(podUid)}" claimed but ${where}`, peer, resource, pod)
    const service = str(resource['service.name'])
    const serviceLabel = firstLabel(pod, this.o.serviceLabels)
    if (serviceLabel === undefined) this.counters.unverified.service++
    else if (service !== undefined && service !== serviceLabel) return this.contradiction('service', `service.name "${sanitize(service)}" claimed but ${where}, labelled "${serviceLabel}"`, peer, resource, pod)
    const image = str(resource['container.image.name'])
    const version = str(resource['service.version']) ?? str(resource['container.image.tag']) ?? (image !== undefined ? imageTag(image) : undefined)
    const versionLabel = firstLabel(pod, this.o.versionLabels)
    if (versionLabel === undefined) this.counters.unverified.version++
    else if (version !== undefined && version !== versionLabel) return this.contradiction('version', `version "${sanitize(version)}" claimed but ${where}, labelled "${versionLabel}"`, peer, resource, pod)
    const { attributes, filled } = fill(resource, pod, serviceLabel, versionLabel)
    if (filled.length === 0) {
      this.counters.accepted++
      return { outcome: 'accepted', resource }
    }
    this.counters.filled++
    return { outcome: 'filled', resource: attributes, filled }
  }

  private contradiction(reason: IdentityReason, message: string, peer: string, resource: Attributes, pod?: PodInfo): IdentityResult {
    this.counters.last = { reason, peer: sanitize(peer), message }
    if (this.mode === 'enforce') {
      this.counters.rejected[reason]++
      return { outcome: 'rejected', reason, message }
    }
    this.counters.flagged[reason]++
    // flag keeps the claim as sent (it is what is being flagged) and fills only what is absent
    const filled = pod !== undefined ? fill(resource, pod, undefined, undefined).attributes : resource
    const base = Object.assign({}, filled, { [CONTRADICTION_ATTRIBUTE]: reason })
    return { outcome: 'flagged', resource: base, reason, message }
  }

  private associate(origin: TelemetryOrigin | undefined, resource: Attributes): Association {
    if (origin === undefined) return { kind: 'none', reason: 'no_peer', message: 'the request has no peer address' }
    if (origin.transport === 'kafka') return this.byAttributes(resource, 'kafka')
    // every resource of a request shares its origin object: the peer is looked up once per request
    let peer = this.lastPeer
    if (peer === undefined || peer.origin !== origin) this.lastPeer = peer = { origin, association: this.peerAssociation(origin.peer) }
    const a = peer.association
    return a.kind === 'forwarder' ? this.byAttributes(resource, 'forwarder') : a
  }

  private peerAssociation(address: string): Association | { kind: 'forwarder' } {
    const ip = peerIp(address)
    if (ip === undefined) return { kind: 'none', reason: 'no_peer', message: `peer "${sanitize(address)}" has no IP address` }
    const pods = this.o.pods.byIp(ip)
    const live = pods.filter((p) => !p.hostNetwork)
    if (live.length === 1) {
      const pod = live[0]!
      return this.isForwarder(pod) ? { kind: 'forwarder' } : { kind: 'pod', pod }
    }
    if (live.length > 1) return { kind: 'none', reason: 'ambiguous_peer', message: `peer ${ip} is the address of ${live.length} pods` }
    if (pods.length > 0) return { kind: 'none', reason: 'host_network', message: `peer ${ip} is the node's address (hostNetwork pods cannot be told apart)` }
    return { kind: 'none', reason: 'unknown_peer', message: `peer ${ip} is not a pod on this node` }
  }

  /** association by the resource's own k8s.pod.uid / k8s.pod.ip (forwarded telemetry) */
  private byAttributes(resource: Attributes, via: 'kafka' | 'forwarder'): Association {
    const uid = str(resource['k8s.pod.uid'])
    if (uid !== undefined) {
      const pod = this.o.pods.byUidOf(uid)
      if (pod !== undefined) return { kind: 'pod', pod }
    }
    const ip = str(resource['k8s.pod.ip'])
    if (ip !== undefined) {
      const live = this.o.pods.byIp(ip).filter((p) => !p.hostNetwork)
      if (live.length === 1) return { kind: 'pod', pod: live[0]! }
    }
    return { kind: 'trusted', via }
  }

  private isForwarder(pod: PodInfo): boolean {
    return this.o.forwarders.some((f) => f.namespace === pod.namespace && Object.entries(f.labels).every(([k, v]) => pod.labels[k] === v))
  }
}

/**
 * A copy of the resource with what is missing taken from the pod; the resource itself is never
 * changed. The additions are collected first and merged with one Object.assign: spreading a
 * resource (dotted keys) and then adding keys measured 10-20x slower in V8 (bench/identity.ts).
 */
function fill(resource: Attributes, pod: PodInfo, serviceLabel: string | undefined, versionLabel: string | undefined): { attributes: Attributes; filled: string[] } {
  const filled: string[] = []
  const add: Attributes = {}
  const want = (k: string, v: string | undefined) => {
    if (v === undefined || str(resource[k]) !== undefined) return
    add[k] = v
    filled.push(k)
  }
  want('k8s.namespace.name', pod.namespace)
  want('k8s.pod.name', pod.name)
  want('k8s.pod.uid', pod.uid)
  want('service.name', serviceLabel)
  // the version label fills service.version only when no version is derivable (image name or tag)
  if (str(resource['container.image.tag']) === undefined && str(resource['container.image.name']) === undefined) want('service.version', versionLabel)
  return { attributes: filled.length === 0 ? resource : Object.assign({}, resource, add), filled }
}

/** the span / point count of one resource, for partial_success */
function spansOf(r: ResourceSpansLite): number {
  return r.spans.length
}
function pointsOf(r: ResourceMetricsLite): number {
  let n = 0
  for (const m of r.metrics) n += m.points.length
  return n
}

/**
 * The consumer in front of the pipeline (the k8sattributes processor's place): checks every
 * resource of a request, hands the kept ones on, and adds the rejected ones' items to the
 * pipeline's rejected count, with the first rejection's message for partial_success.
 */
export function identityConsumer(check: IdentityCheck, next: TelemetryConsumer): TelemetryConsumer {
  const run = <R>(
    origin: TelemetryOrigin | undefined,
    resources: R[],
    attrs: (r: R) => Attributes,
    withAttrs: (r: R, a: Attributes) => R,
    items: (r: R) => number,
    pass: (kept: R[]) => ConsumeResult,
  ): ConsumeResult => {
    check.admit(origin)
    let kept: R[] | undefined
    let rejected = 0
    let firstMessage: string | undefined
    let rejectedResources = 0
    for (let i = 0; i < resources.length; i++) {
      const r = resources[i]!
      const res = check.check(origin, attrs(r))
      if (res.outcome === 'rejected') {
        kept ??= resources.slice(0, i)
        rejected += items(r)
        rejectedResources++
        firstMessage ??= res.message
        continue
      }
      const next = res.resource === attrs(r) ? r : withAttrs(r, res.resource)
      if (kept !== undefined) kept.push(next)
      else if (next !== r) {
        kept = resources.slice(0, i)
        kept.push(next)
      }
    }
    const list = kept ?? resources
    const inner = list.length === 0 ? { accepted: 0, rejected: 0 } : pass(list)
    if (rejected === 0) return inner
    const message = `identity: ${rejectedResources} resource(s) rejected (identity.mode enforce): ${firstMessage ?? ''}`
    return {
      accepted: inner.accepted,
      rejected: inner.rejected + rejected,
      rejectReason: inner.rejected > 0 && inner.rejectReason !== undefined ? `${message}; ${inner.rejectReason}` : message,
    }
  }
  return {
    consumeTraces: (req: TracesRequest, origin?: TelemetryOrigin) =>
      run(
        origin,
        req.resourceSpans,
        (r) => r.resource,
        (r, resource) => ({ ...r, resource }),
        spansOf,
        (kept) => next.consumeTraces(kept === req.resourceSpans ? req : { resourceSpans: kept }, origin),
      ),
    consumeMetrics: (req: MetricsRequest, origin?: TelemetryOrigin) =>
      run(
        origin,
        req.resourceMetrics,
        (r) => r.resource,
        (r, resource) => ({ ...r, resource }),
        pointsOf,
        (kept) => next.consumeMetrics(kept === req.resourceMetrics ? req : { resourceMetrics: kept }, origin),
      ),
  }
}
