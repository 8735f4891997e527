/**
 * The identity stage against a real kube-apiserver (test/actuator/kube-apiserver-rig.ts; skipped
 * loudly without the binaries, failed under CI), authenticated as the sidecar's own service account
 * with the shipped k8s/serviceaccounts.yaml + k8s/sidecar-rbac.yaml: the node-scoped list and watch
 * the index makes are allowed by exactly that grant, over TLS with the API server's CA and a
 * TokenRequest token; what the grant does not give (get a pod, read Secrets, patch a pod) is 403.
 * There is no scheduler or kubelet: pods are created with spec.nodeName set and their status (IP,
 * phase) is written by the test, as a kubelet would.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { KubeClient } from '../../src/actuator/drivers/kube.js'
import { identitySchema } from '../../src/identity/config.js'
import { IdentityStage } from '../../src/identity/index.js'
import { describeKubeApiserver, expectStatus, startKubeApiserver, type KubeApiserver } from '../actuator/kube-apiserver-rig.js'
import { eventually } from '../receivers/helpers.js'

const K8S = path.resolve(import.meta.dirname, '../../k8s')
type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const manifests = (file: string): Obj[] =>
  parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null && typeof o.kind === 'string')

describeKubeApiserver('identity: the sidecar pod watch against a real kube-apiserver', () => {
  let k: KubeApiserver
  let tokenFile = ''
  let stage: IdentityStage | undefined

  async function createPod(ns: string, name: string, node: string, ip: string, labels: Record<string, string> = {}): Promise<void> {
    expectStatus(
      await k.admin.request('POST', `/api/v1/namespaces/${ns}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels },
        spec: { nodeName: node, automountServiceAccountToken: false, containers: [{ name: 'app', image: 'registry.example/app:1' }] },
      }),
      `create pod ${ns}/${name}`,
    )
    // what the kubelet would report
    expectStatus(
      await k.admin.request('PATCH', `/api/v1/namespaces/${ns}/pods/${name}/status`, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } }, 'application/merge-patch+json'),
      `status of pod ${ns}/${name}`,
    )
  }

  beforeAll(async () => {
    k = await startKubeApiserver()
    for (const ns of ['pullback', 'shop', 'other']) {
      expectStatus(await k.admin.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }), `namespace ${ns}`)
      // no controller-manager: the default service account pods are admitted with
      expectStatus(await k.admin.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } }), `${ns}/default`)
    }
    const sa = manifests('serviceaccounts.yaml').find((o) => o.metadata.name === 'pullback-sidecar')!
    expectStatus(await k.admin.request('POST', '/api/v1/namespaces/pullback/serviceaccounts', sa), 'sidecar service account')
    for (const o of manifests('sidecar-rbac.yaml')) {
      expectStatus(await k.admin.request('POST', `/apis/rbac.authorization.k8s.io/v1/${String(o.kind).toLowerCase()}s`, o), `${o.kind}/${o.metadata.name}`)
    }
    const tr = expectStatus(
      await k.admin.request('POST', '/api/v1/namespaces/pullback/serviceaccounts/pullback-sidecar/token', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } }),
      'TokenRequest for pullback-sidecar',
    )
    tokenFile = k.tokenFile((tr.body as { status: { token: string } }).status.token)
    await createPod('shop', 'checkout-1', 'node-a', '10.1.0.5', { 'app.kubernetes.io/name': 'checkout', 'app.kubernetes.io/version': '1.4.0' })
    await createPod('other', 'attacker-1', 'node-a', '10.1.0.66')
    await createPod('shop', 'checkout-2', 'node-b', '10.2.0.5', { 'app.kubernetes.io/name': 'checkout' })
  }, 300_000)

  afterAll(async () => {
    await stage?.shutdown()
    k?.stop()
  })

  it('lists and watches the pods of its node with the sidecar token, and associates the attack with its real pod', async () => {
    stage = new IdentityStage({ config: identitySchema.parse({ mode: 'enforce', apiServer: k.server, caFile: k.caFile, tokenFile }), env: { NODE_NAME: 'node-a' } })
    await stage.start()
    const pods = stage.pods!
    expect(pods.stats()).toMatchObject({ synced: true, pods: 2, failures: 0 })
    expect(pods.byIp('10.2.0.5')).toEqual([]) // node-b
    const check = stage.check!
    const claim = { 'service.name': 'checkout', 'service.namespace': 'shop', 'service.version': '1.5.0' }
    expect(check.check({ transport: 'otlp', peer: '10.1.0.66:4711' }, claim)).toMatchObject({ outcome: 'rejected', reason: 'namespace' })
    expect(check.check({ transport: 'otlp', peer: '10.1.0.5:4711' }, claim)).toMatchObject({ outcome: 'rejected', reason: 'version' })
    expect(check.check({ transport: 'otlp', peer: '10.1.0.5:4711' }, { ...claim, 'service.version': '1.4.0' }).outcome).toBe('filled')

    // the watch: a new pod with its IP, then finished (its IP may be reused: no longer associated)
    await createPod('shop', 'checkout-3', 'node-a', '10.1.0.7', { 'app.kubernetes.io/name': 'checkout' })
    await eventually(() => pods.byIp('10.1.0.7').length === 1, 10_000)
    expectStatus(await k.admin.request('PATCH', '/api/v1/namespaces/shop/pods/checkout-3/status', { status: { phase: 'Succeeded' } }, 'application/merge-patch+json'), 'pod finished')
    await eventually(() => pods.byIp('10.1.0.7').length === 0, 10_000)
    expect(pods.stats().failures).toBe(0)
  })

  it('the grant is list + watch of pods, nothing else', async () => {
    const sidecar = new KubeClient({ server: k.server, caFile: k.caFile, tokenFile, requestTimeout: 10_000 })
    try {
      expect((await sidecar.request('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a')).status).toBe(200)
      expect((await sidecar.request('GET', '/api/v1/namespaces/shop/pods/checkout-1')).status).toBe(403)
      expect((await sidecar.request('GET', '/api/v1/namespaces/shop/secrets')).status).toBe(403)
      expect((await sidecar.request('GET', '/apis/apps/v1/deployments')).status).toBe(403)
      expect((await sidecar.request('PATCH', '/api/v1/namespaces/shop/pods/checkout-1', { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json')).status).toBe(403)
    } finally {
      sidecar.close()
    }
  })
})
