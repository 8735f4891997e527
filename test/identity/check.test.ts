/**
 * The identity check, resource by resource: association by peer address and by resource attributes,
 * contradictions by reason, filling from the pod, flag vs enforce, and the consumer in front of the
 * pipeline (partial success counts and message).
 */
import { describe, expect, it } from 'vitest'
import { RetryableError } from '../../src/common/errors.js'
import { CONTRADICTION_ATTRIBUTE, IdentityCheck, identityConsumer, peerIp, type PodLookup } from '../../src/identity/index.js'
import type { PodInfo } from '../../src/identity/pods.js'
import type { Attributes, TracesRequest } from '../../src/receivers/otlp/model.js'
import { CountingConsumer } from '../receivers/helpers.js'

const NAME = 'app.kubernetes.io/name'
const VERSION = 'app.kubernetes.io/version'

const pod = (namespace: string, name: string, ip: string, labels: Record<string, string> = {}, hostNetwork = false): PodInfo => ({ uid: `uid-${name}`, namespace, name, ips: [ip], hostNetwork, labels })

const checkout = pod('shop', 'checkout-7d9-abc', '10.0.0.5', { [NAME]: 'checkout', [VERSION]: '1.4.0' })
const attacker = pod('other', 'attacker-1', '10.0.0.66')
const unlabelled = pod('shop', 'legacy-1', '10.0.0.7')
const collector = pod('observability', 'otel-agent-x', '10.0.0.9', { [NAME]: 'otel-agent' })
const node1 = pod('monitoring', 'node-exporter', '192.168.1.10', {}, true)
const node2 = pod('kube-system', 'kube-proxy', '192.168.1.10', {}, true)
const twinA = pod('shop', 'twin-a', '10.0.0.77')
const twinB = pod('shop', 'twin-b', '10.0.0.77')
const all = [checkout, attacker, unlabelled, collector, node1, node2, twinA, twinB]

function lookup(synced = true): PodLookup {
  return {
    synced: () => synced,
    byIp: (ip) => all.filter((p) => p.ips.includes(ip)),
    byUidOf: (uid) => all.find((p) => p.uid === uid),
  }
}

function make(mode: 'flag' | 'enforce', synced = true): IdentityCheck {
  return new IdentityCheck({ mode, pods: lookup(synced), serviceLabels: [NAME], versionLabels: [VERSION], forwarders: [{ namespace: 'observability', labels: { [NAME]: 'otel-agent' } }] })
}

const otlp = (peer: string) => ({ transport: 'otlp' as const, peer })
const shopCheckout = (version = '1.4.0', extra: Attributes = {}): Attributes => ({ 'service.name': 'checkout', 'service.namespace': 'shop', 'service.version': version, ...extra })

describe('peerIp', () => {
  it('reads grpc getPeer() and socket addresses', () => {
    expect(peerIp('10.1.2.3:5678')).toBe('10.1.2.3')
    expect(peerIp('::ffff:10.1.2.3:5678')).toBe('10.1.2.3')
    expect(peerIp('::ffff:10.1.2.3')).toBe('10.1.2.3')
    expect(peerIp('[fd00::1]:4317')).toBe('fd00::1')
    expect(peerIp('fd00::1')).toBe('fd00::1')
    expect(peerIp('unknown')).toBeUndefined()
  })
})

describe('identity check', () => {
  it('the attack: shop/checkout claimed from a pod in namespace other is rejected (enforce) or flagged and marked (flag)', () => {
    const enforce = make('enforce')
    const r = enforce.check(otlp('10.0.0.66:40000'), shopCheckout('1.5.0'))
    expect(r).toMatchObject({ outcome: 'rejected', reason: 'namespace' })
    expect(r.outcome === 'rejected' && r.message).toContain('the sending pod is other/attacker-1')
    expect(enforce.stats().rejected.namespace).toBe(1)

    const flag = make('flag')
    const f = flag.check(otlp('10.0.0.66:40000'), shopCheckout('1.5.0'))
    expect(f.outcome).toBe('flagged')
    if (f.outcome !== 'flagged') return
    expect(f.resource[CONTRADICTION_ATTRIBUTE]).toBe('namespace')
    // the claim is kept as sent (flag observes), the absent pod attributes are filled
    expect(f.resource['service.namespace']).toBe('shop')
    expect(f.resource['k8s.pod.name']).toBe('attacker-1')
    expect(flag.stats().flagged.namespace).toBe(1)
    expect(flag.stats().rejected.namespace).toBe(0)
  })

  it('legitimate telemetry from its own pod is accepted and filled from the pod', () => {
    const c = make('enforce')
    const sent = { 'service.name': 'checkout' }
    const r = c.check(otlp('10.0.0.5:1234'), sent)
    expect(r.outcome).toBe('filled')
    if (r.outcome !== 'filled') return
    expect(r.resource).toEqual({ 'service.name': 'checkout', 'k8s.namespace.name': 'shop', 'k8s.pod.name': 'checkout-7d9-abc', 'k8s.pod.uid': 'uid-checkout-7d9-abc', 'service.version': '1.4.0' })
    expect(sent).toEqual({ 'service.name': 'checkout' }) // never changed in place
    // a complete, matching resource is accepted as is
    const complete = { ...r.resource }
    expect(c.check(otlp('10.0.0.5:1'), complete)).toEqual({ outcome: 'accepted', resource: complete })
    // nothing at all: service.name comes from the label
    const bare = c.check(otlp('10.0.0.5:1'), {})
    expect(bare.outcome === 'filled' && bare.resource['service.name']).toBe('checkout')
  })

  it('contradictions by reason: pod name, pod uid, service label, version label (image tag included)', () => {
    const c = make('enforce')
    const peer = otlp('10.0.0.5:1')
    expect(c.check(peer, shopCheckout('1.4.0', { 'k8s.pod.name': 'payments-1' }))).toMatchObject({ outcome: 'rejected', reason: 'pod' })
    expect(c.check(peer, shopCheckout('1.4.0', { 'k8s.pod.uid': 'uid-other' }))).toMatchObject({ outcome: 'rejected', reason: 'pod' })
    expect(c.check(peer, { ...shopCheckout(), 'service.name': 'payments' })).toMatchObject({ outcome: 'rejected', reason: 'service' })
    expect(c.check(peer, shopCheckout('1.5.0'))).toMatchObject({ outcome: 'rejected', reason: 'version' })
    expect(c.check(peer, { 'service.name': 'checkout', 'container.image.name': 'reg/checkout:1.5.0' })).toMatchObject({ outcome: 'rejected', reason: 'version' })
    // k8s.namespace.name wins over service.namespace, as in normalize: no contradiction
    expect(c.check(peer, shopCheckout('1.4.0', { 'k8s.namespace.name': 'shop', 'service.namespace': 'team-a' })).outcome).toBe('filled')
    expect(c.check(peer, shopCheckout('1.4.0', { 'k8s.namespace.name': 'other' }))).toMatchObject({ outcome: 'rejected', reason: 'namespace' })
    expect(c.stats().rejected).toMatchObject({ pod: 2, service: 1, version: 2, namespace: 1 })
  })

  it('a pod without the labels is checked on namespace and pod only (counted unverified)', () => {
    const c = make('enforce')
    expect(c.check(otlp('10.0.0.7:1'), { 'service.name': 'anything', 'service.version': '9' }).outcome).toBe('filled')
    expect(c.check(otlp('10.0.0.7:1'), { 'service.name': 'x', 'service.namespace': 'other' })).toMatchObject({ outcome: 'rejected', reason: 'namespace' })
    // the namespace contradiction is found before the labels are looked at
    expect(c.stats().unverified).toEqual({ service: 1, version: 1 })
  })

  it('unassociated peers: unknown, hostNetwork (node address), ambiguous, no address', () => {
    const c = make('enforce')
    expect(c.check(otlp('10.9.9.9:1'), shopCheckout())).toMatchObject({ outcome: 'rejected', reason: 'unknown_peer' })
    expect(c.check(otlp('192.168.1.10:1'), shopCheckout())).toMatchObject({ outcome: 'rejected', reason: 'host_network' })
    expect(c.check(otlp('10.0.0.77:1'), shopCheckout())).toMatchObject({ outcome: 'rejected', reason: 'ambiguous_peer' })
    expect(c.check(otlp('unknown'), shopCheckout())).toMatchObject({ outcome: 'rejected', reason: 'no_peer' })
    expect(c.check(undefined, shopCheckout())).toMatchObject({ outcome: 'rejected', reason: 'no_peer' })
    const f = make('flag')
    const r = f.check(otlp('10.9.9.9:1'), shopCheckout())
    expect(r.outcome === 'flagged' && r.resource[CONTRADICTION_ATTRIBUTE]).toBe('unknown_peer')
  })

  it('Kafka and forwarders: associated by k8s.pod.uid / k8s.pod.ip when the pod is indexed, else trusted as written', () => {
    const c = make('enforce')
    const kafka = { transport: 'kafka' as const }
    expect(c.check(kafka, shopCheckout('1.4.0', { 'k8s.pod.uid': 'uid-attacker-1' }))).toMatchObject({ outcome: 'rejected', reason: 'namespace' })
    expect(c.check(kafka, shopCheckout('1.5.0', { 'k8s.pod.ip': '10.0.0.5' }))).toMatchObject({ outcome: 'rejected', reason: 'version' })
    expect(c.check(kafka, shopCheckout('1.4.0', { 'k8s.pod.ip': '10.0.0.5' })).outcome).toBe('filled')
    expect(c.check(kafka, shopCheckout('1.4.0', { 'k8s.pod.uid': 'uid-elsewhere' })).outcome).toBe('accepted')
    expect(c.check(kafka, shopCheckout()).outcome).toBe('accepted')
    // a forwarder (Collector agent) peer: the resource's own pod attributes decide
    const fwd = otlp('10.0.0.9:1')
    expect(c.check(fwd, shopCheckout('1.4.0', { 'k8s.pod.ip': '10.0.0.66' }))).toMatchObject({ outcome: 'rejected', reason: 'namespace' })
    expect(c.check(fwd, shopCheckout('1.4.0', { 'k8s.pod.ip': '10.0.0.5' })).outcome).toBe('filled')
    expect(c.check(fwd, shopCheckout()).outcome).toBe('accepted')
    expect(c.stats().unassociated).toEqual({ kafka: 2, forwarder: 1 })
  })

  it('before the first pod list, enforce refuses OTLP retryably; flag and Kafka go on', () => {
    expect(() => make('enforce', false).admit(otlp('10.0.0.5:1'))).toThrow(RetryableError)
    expect(() => make('enforce', false).admit({ transport: 'kafka' })).not.toThrow()
    expect(() => make('flag', false).admit(otlp('10.0.0.5:1'))).not.toThrow()
  })

  it('sanitises attacker text in messages', () => {
    const c = make('enforce')
    const r = c.check(otlp('10.0.0.66:1'), { 'service.name': 'x', 'k8s.namespace.name': `shop\n${'z'.repeat(500)}` })
    expect(r.outcome === 'rejected' && r.message).not.toContain('\n')
    expect(r.outcome === 'rejected' && r.message.length).toBeLessThan(300)
  })
})

describe('identity consumer', () => {
  const req = (...resources: Attributes[]): TracesRequest => ({
    resourceSpans: resources.map((resource) => ({ resource, spans: [1, 2, 3].map((i) => ({ kind: 2, endTimeMs: i, durationUs: 1, statusCode: 0, httpStatus: 200 })) })),
  })

  it('drops the rejected resources, passes the rest (filled), and reports partial success with the reason', () => {
    const inner = new CountingConsumer()
    const consumer = identityConsumer(make('enforce'), inner)
    const seen: Attributes[] = []
    const spy = { consumeTraces: (r: TracesRequest) => (seen.push(...r.resourceSpans.map((x) => x.resource)), inner.consumeTraces(r)), consumeMetrics: inner.consumeMetrics.bind(inner) }
    const c2 = identityConsumer(make('enforce'), spy)
    const res = c2.consumeTraces(req(shopCheckout('1.5.0', { 'k8s.namespace.name': 'shop' }), { 'service.name': 'checkout' }), otlp('10.0.0.5:1'))
    expect(res.rejected).toBe(3)
    expect(res.accepted).toBe(3)
    expect(res.rejectReason).toMatch(/^identity: 1 resource\(s\) rejected .*version "1\.5\.0" claimed/)
    expect(seen).toHaveLength(1)
    expect(seen[0]!['k8s.pod.name']).toBe('checkout-7d9-abc')
    // everything rejected: the pipeline is not called at all
    const before = inner.requests
    expect(consumer.consumeTraces(req(shopCheckout()), otlp('10.0.0.66:1'))).toMatchObject({ accepted: 0, rejected: 3 })
    expect(inner.requests).toBe(before)
  })

  it('flag passes every resource on', () => {
    const inner = new CountingConsumer()
    const res = identityConsumer(make('flag'), inner).consumeTraces(req(shopCheckout(), shopCheckout()), otlp('10.0.0.66:1'))
    expect(res).toEqual({ accepted: 6, rejected: 0 })
    expect(inner.spans).toBe(6)
  })
})
