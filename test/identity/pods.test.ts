/**
 * The pod index against the fake Kubernetes API (test/support/fake-k8s.ts + fake-k8s-pods.ts):
 * node-scoped list + watch, watch expiry (410) resync, failure backoff and recovery, the map limit,
 * and the lifecycle.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IdentityStage } from '../../src/identity/index.js'
import { identitySchema } from '../../src/identity/config.js'
import { PodApi } from '../../src/identity/kube-pods.js'
import { PodIndex } from '../../src/identity/pods.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { eventually } from '../receivers/helpers.js'

const LABELS = ['app.kubernetes.io/name', 'app.kubernetes.io/version']

let fake: FakeK8s
let url: string
let index: PodIndex | undefined

function newIndex(o: { maxPods?: number; node?: string; watchTimeoutMs?: number } = {}): PodIndex {
  const api = new PodApi({ apiServer: url, tokenFile: '/nonexistent', caFile: '/nonexistent', nodeName: o.node ?? 'node-a', requestTimeoutMs: 2000 })
  index = new PodIndex({ api, maxPods: o.maxPods ?? 100, labelKeys: LABELS, syncTimeoutMs: 2000, watchTimeoutMs: o.watchTimeoutMs ?? 60_000, backoffMinMs: 20, backoffMaxMs: 100 })
  return index
}

beforeEach(async () => {
  fake = new FakeK8s({ history: ['registry.example/unused:1'] })
  url = await fake.start()
})

afterEach(async () => {
  await index?.shutdown()
  index = undefined
  await fake.stop()
})

describe('pod index', () => {
  it('lists only its node, then follows the watch (add, change, delete)', async () => {
    fake.pods.add({ name: 'checkout-1', namespace: 'shop', ip: '10.0.0.5', labels: { 'app.kubernetes.io/name': 'checkout', team: 'x' } })
    fake.pods.add({ name: 'elsewhere', namespace: 'shop', ip: '10.0.9.9', node: 'node-b' })
    const idx = newIndex()
    await idx.start()
    expect(idx.synced()).toBe(true)
    expect(idx.byIp('10.0.0.5').map((p) => `${p.namespace}/${p.name}`)).toEqual(['shop/checkout-1'])
    // only the configured label keys are kept
    expect(idx.byIp('10.0.0.5')[0]!.labels).toEqual({ 'app.kubernetes.io/name': 'checkout' })
    expect(idx.byIp('10.0.9.9')).toEqual([])
    const list = fake.pods.requests.find((r) => r.kind === 'list')!
    expect(list.query.fieldSelector).toBe('spec.nodeName=node-a')

    await eventually(() => fake.pods.openWatches() === 1)
    expect(fake.pods.requests.find((r) => r.kind === 'watch')!.query.fieldSelector).toBe('spec.nodeName=node-a')
    fake.pods.add({ name: 'new', namespace: 'other', ip: '10.0.0.6' })
    await eventually(() => idx.byIp('10.0.0.6').length === 1)
    // an IP-changing update moves the pod
    fake.pods.update('uid-other-new', (o) => {
      o.status.podIP = '10.0.0.7'
      o.status.podIPs = [{ ip: '10.0.0.7' }]
    })
    await eventually(() => idx.byIp('10.0.0.7').length === 1)
    expect(idx.byIp('10.0.0.6')).toEqual([])
    // a finished pod holds no IP (the address may be reused)
    fake.pods.update('uid-other-new', (o) => (o.status.phase = 'Succeeded'))
    await eventually(() => idx.byIp('10.0.0.7').length === 0)
    expect(idx.byUidOf('uid-other-new')?.name).toBe('new')
    fake.pods.remove('uid-other-new')
    await eventually(() => idx.byUidOf('uid-other-new') === undefined)
    // another node's events never arrive
    fake.pods.add({ name: 'b2', namespace: 'shop', ip: '10.0.9.10', node: 'node-b' })
    fake.pods.add({ name: 'marker', namespace: 'shop', ip: '10.0.0.8' })
    await eventually(() => idx.byIp('10.0.0.8').length === 1)
    expect(idx.byIp('10.0.9.10')).toEqual([])
    expect(idx.stats()).toMatchObject({ synced: true, pods: 2, lists: 1, resyncs: 0, failures: 0 })
  })

  it('hostNetwork pods share the node address; IPv4-mapped peers compare as IPv4', async () => {
    fake.pods.add({ name: 'node-exporter', namespace: 'monitoring', ip: '192.168.1.10', hostNetwork: true })
    fake.pods.add({ name: 'kube-proxy', namespace: 'kube-system', ip: '192.168.1.10', hostNetwork: true })
    const idx = newIndex()
    await idx.start()
    expect(idx.byIp('::ffff:192.168.1.10').map((p) => p.hostNetwork)).toEqual([true, true])
  })

  it('relists when the watch expires (410 Gone) and catches up with what changed meanwhile', async () => {
    fake.pods.add({ name: 'a', namespace: 'shop', ip: '10.0.0.1' })
    const idx = newIndex()
    await idx.start()
    await eventually(() => fake.pods.openWatches() === 1)
    // history compacted: the open watch gets ERROR 410; a change made meanwhile is only in a new list
    fake.pods.expire()
    fake.pods.add({ name: 'b', namespace: 'shop', ip: '10.0.0.2' })
    await eventually(() => idx.byIp('10.0.0.2').length === 1)
    expect(idx.stats().resyncs).toBe(1)
    expect(idx.stats().lists).toBe(2)
    expect(idx.stats().failures).toBe(0)
  })

  it('re-opens a watch the server ended from the last resourceVersion, without a relist', async () => {
    const idx = newIndex()
    await idx.start()
    await eventually(() => fake.pods.openWatches() === 1)
    fake.pods.endWatches()
    await eventually(() => fake.pods.requests.filter((r) => r.kind === 'watch').length === 2 && fake.pods.openWatches() === 1)
    fake.pods.add({ name: 'c', namespace: 'shop', ip: '10.0.0.3' })
    await eventually(() => idx.byIp('10.0.0.3').length === 1)
    expect(idx.stats().lists).toBe(1)
  })

  it('backs off and recovers after API failures, keeping the last index meanwhile; never throws out of its loop', async () => {
    fake.pods.add({ name: 'a', namespace: 'shop', ip: '10.0.0.1' })
    fake.pods.failNext = { status: 500 }
    const idx = newIndex()
    await idx.start()
    expect(idx.synced()).toBe(true) // the retry after the 500 listed within syncTimeout
    expect(idx.stats().failures).toBe(1)
    await eventually(() => fake.pods.openWatches() === 1)
    // the API goes away (watches cut, every request 503): the index keeps what it has and retries
    fake.pods.unavailable = true
    fake.pods.endWatches()
    await eventually(() => idx.stats().failures >= 3)
    expect(idx.byIp('10.0.0.1').length).toBe(1)
    fake.pods.remove('uid-shop-a')
    fake.pods.add({ name: 'z', namespace: 'shop', ip: '10.0.0.26' })
    fake.pods.unavailable = false
    await eventually(() => idx.byIp('10.0.0.26').length === 1, 5000)
    // the relist replaced the index: the pod deleted during the outage is gone
    expect(idx.byIp('10.0.0.1')).toEqual([])
  })

  it('holds at most maxPods, counting the rest', async () => {
    for (let i = 0; i < 5; i++) fake.pods.add({ name: `p${i}`, namespace: 'shop', ip: `10.0.1.${i}` })
    const idx = newIndex({ maxPods: 3 })
    await idx.start()
    expect(idx.stats()).toMatchObject({ pods: 3, overflow: 2 })
    await eventually(() => fake.pods.openWatches() === 1)
    fake.pods.add({ name: 'p9', namespace: 'shop', ip: '10.0.1.9' })
    await eventually(() => idx.stats().overflow === 3)
    expect(idx.byIp('10.0.1.9')).toEqual([])
    // a change of an indexed pod is still applied
    fake.pods.update('uid-shop-p0', (o) => (o.metadata.labels = { 'app.kubernetes.io/version': '2' }))
    await eventually(() => idx.byUidOf('uid-shop-p0')?.labels['app.kubernetes.io/version'] === '2')
  })

  it('start returns after syncTimeout when the API is unreachable; shutdown is idempotent and safe without start', async () => {
    const never = new PodIndex({
      api: new PodApi({ apiServer: 'http://127.0.0.1:9', tokenFile: '/x', caFile: '/x', nodeName: 'n', requestTimeoutMs: 500 }),
      maxPods: 10,
      labelKeys: LABELS,
      syncTimeoutMs: 300,
      watchTimeoutMs: 60_000,
      backoffMinMs: 50,
      backoffMaxMs: 100,
    })
    await never.start()
    expect(never.synced()).toBe(false)
    await never.shutdown()
    await never.shutdown()
    const unstarted = newIndex()
    await unstarted.shutdown()
    await unstarted.shutdown()
  })
})

describe('identity stage config', () => {
  it('off needs no Kubernetes; flag/enforce outside a cluster without apiServer fail fast', () => {
    const off = new IdentityStage({ config: identitySchema.parse({}), env: {} })
    expect(off.mode).toBe('off')
    expect(off.check).toBeUndefined()
    const prev = process.env.KUBERNETES_SERVICE_HOST
    delete process.env.KUBERNETES_SERVICE_HOST
    try {
      expect(() => new IdentityStage({ config: identitySchema.parse({ mode: 'enforce' }), env: {} })).toThrow(/KUBERNETES_SERVICE_HOST/)
    } finally {
      if (prev !== undefined) process.env.KUBERNETES_SERVICE_HOST = prev
    }
    expect(() => identitySchema.parse({ mode: 'block' })).toThrow()
    expect(() => identitySchema.parse({ mode: 'enforce', typo: 1 })).toThrow()
  })

  it('takes the node from NODE_NAME', async () => {
    const stage = new IdentityStage({ config: identitySchema.parse({ mode: 'flag', apiServer: url }), env: { NODE_NAME: 'node-q' } })
    await stage.start()
    expect(stage.nodeName).toBe('node-q')
    expect(fake.pods.requests[0]!.query.fieldSelector).toBe('spec.nodeName=node-q')
    expect(stage.readiness().ok).toBe(true)
    await stage.shutdown()
    await stage.shutdown()
  })
})
