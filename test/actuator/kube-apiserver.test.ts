/**
 * The kubernetes driver and the shipped RBAC against a real kube-apiserver (issue 15 item 4), where
 * test/actuator/drivers.test.ts uses the fake (test/support/fake-k8s.ts).
 *
 * Set-up, as `kubectl apply -k k8s/` would leave it for the actuator: k8s/namespace.yaml,
 * k8s/serviceaccounts.yaml and k8s/rbac.yaml as shipped (objects without a namespace land in
 * `pullback`, kustomization.yaml's unsetOnly transformer), namespaces the RBAC names created first.
 * The driver authenticates as the actuator's real service account: a token from the TokenRequest API,
 * signed by the API server. There is no controller-manager, so the tests create the ReplicaSets a
 * Deployment controller would have made (owner reference, revision annotation, pod-template-hash) and
 * write the Deployment's status where the driver waits for readiness.
 *
 * What the real server settles that the fake only imitates: the JSON patch as the driver builds it
 * (test op on resourceVersion, the pod template copied from a defaulted ReplicaSet, the annotation
 * map) is accepted and does what `kubectl rollout undo` does; a failed test op answers 422 and the
 * driver re-reads; the service account can make every request of a cutover and nothing else; a
 * request outside the grant answers 403 and the driver reports it as a failed cutover naming it.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { actuatorSchema, type DriverConfig } from '../../src/actuator/config.js'
import { KubeClient, type KubeResponse } from '../../src/actuator/drivers/kube.js'
import { KubernetesDriver } from '../../src/actuator/drivers/kubernetes.js'
import type { CutoverRequest, Driver } from '../../src/actuator/drivers/types.js'
import { IMG, verdict } from './helpers.js'
import { describeKubeApiserver, expectStatus, startKubeApiserver, type KubeApiserver } from './kube-apiserver-rig.js'

const K8S = path.resolve(import.meta.dirname, '../../k8s')
const SA = { namespace: 'pullback', name: 'pullback-actuator' }
/** a namespace nothing in k8s/ grants anything in */
const ELSEWHERE = 'pullback-test-elsewhere'
const signal = new AbortController().signal

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
interface Rule {
  apiGroups?: string[]
  resources?: string[]
  verbs: string[]
  resourceNames?: string[]
}

// ---- the shipped manifests, loaded the way kustomize renders them for the actuator

function manifests(file: string): Obj[] {
  return parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null && typeof o === 'object' && typeof o.kind === 'string')
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding'])
function collectionPath(o: Obj): string {
  const ns = o.metadata.namespace as string
  switch (o.kind) {
    case 'Namespace':
      return '/api/v1/namespaces'
    case 'ServiceAccount':
      return `/api/v1/namespaces/${ns}/serviceaccounts`
    case 'Role':
    case 'RoleBinding':
      return `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${o.kind.toLowerCase()}s`
    case 'ClusterRole':
    case 'ClusterRoleBinding':
      return `/apis/rbac.authorization.k8s.io/v1/${o.kind.toLowerCase()}s`
    default:
      throw new Error(`k8s/: kind ${String(o.kind)} is not loaded by this test: add it to collectionPath`)
  }
}

const isActuator = (s: Obj) => s.kind === 'ServiceAccount' && s.name === SA.name && (s.namespace ?? 'pullback') === SA.namespace

/** (apiGroup resource verb resourceName) tuples; "*" resourceName for a rule without resourceNames */
function tuples(rules: Rule[]): Set<string> {
  const out = new Set<string>()
  for (const r of rules) {
    for (const g of r.apiGroups ?? [''])
      for (const res of r.resources ?? []) for (const v of r.verbs) for (const n of r.resourceNames?.length ? r.resourceNames : ['*']) out.add(`${g} ${res} ${v} ${n}`)
  }
  return out
}

/** the rules the shipped RBAC gives the actuator in namespace `ns` (Roles bound there, ClusterRoles bound there or cluster-wide) */
function shippedRules(rbac: Obj[], ns: string): Rule[] {
  const find = (kind: string, name: string, namespace?: string) => rbac.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace))
  const rules: Rule[] = []
  for (const b of rbac) {
    if (!(b.subjects as Obj[] | undefined)?.some(isActuator)) continue
    const ref = b.roleRef as { kind: string; name: string }
    if (b.kind === 'ClusterRoleBinding') rules.push(...((find('ClusterRole', ref.name)?.rules as Rule[] | undefined) ?? []))
    if (b.kind === 'RoleBinding' && b.metadata.namespace === ns) {
      const role = ref.kind === 'Role' ? find('Role', ref.name, ns) : find('ClusterRole', ref.name)
      rules.push(...((role?.rules as Rule[] | undefined) ?? []))
    }
  }
  return rules
}

// ---- the workload, as a Deployment controller would have left it after three rollouts

const podTemplate = (image: string, name: string, hash?: string) => ({
  metadata: { labels: { app: name, ...(hash ? { 'pod-template-hash': hash } : {}) }, annotations: { 'pullback.test/image': image } },
  spec: { containers: [{ name: 'app', image, ports: [{ containerPort: 8080, protocol: 'TCP' }] }] },
})
const hashOf = (image: string) => Buffer.from(image).toString('hex').slice(-10)

/** Creates Deployment `name` running the last of `history`, and one ReplicaSet per image (revisions 1..n) owned by it. */
async function createWorkload(k: KubeApiserver, ns: string, name: string, history: string[]): Promise<Obj> {
  const current = history[history.length - 1] as string
  const dep = expectStatus(
    await k.admin.request('POST', `/apis/apps/v1/namespaces/${ns}/deployments`, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name,
        namespace: ns,
        annotations: { 'deployment.kubernetes.io/revision': String(history.length), 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      },
      spec: { replicas: 2, selector: { matchLabels: { app: name } }, template: podTemplate(current, name) },
    }),
    `create deployment ${ns}/${name}`,
  ).body as Obj
  for (const [i, image] of history.entries()) {
    const hash = hashOf(image)
    expectStatus(
      await k.admin.request('POST', `/apis/apps/v1/namespaces/${ns}/replicasets`, {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `${name}-${hash}`,
          namespace: ns,
          labels: { app: name, 'pod-template-hash': hash },
          annotations: {
            'deployment.kubernetes.io/revision': String(i + 1),
            'deployment.kubernetes.io/desired-replicas': '2',
            'kubernetes.io/change-cause': `deploy ${image}`,
          },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name, uid: dep.metadata.uid, controller: true, blockOwnerDeletion: true }],
        },
        spec: { replicas: image === current ? 2 : 0, selector: { matchLabels: { app: name, 'pod-template-hash': hash } }, template: podTemplate(image, name, hash) },
      }),
      `create replicaset ${ns}/${name}-${hash}`,
    )
  }
  return dep
}

/** what the Deployment controller would write once the new template's pods are up */
async function markRolledOut(k: KubeApiserver, ns: string, name: string): Promise<void> {
  const dep = expectStatus(await k.admin.request('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`), 'get deployment').body as Obj
  expectStatus(
    await k.admin.request(
      'PATCH',
      `/apis/apps/v1/namespaces/${ns}/deployments/${name}/status`,
      { status: { observedGeneration: dep.metadata.generation, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2 } },
      'application/merge-patch+json',
    ),
    'patch deployment status',
  )
}

const getDeployment = async (k: KubeApiserver, ns: string, name: string) =>
  expectStatus(await k.admin.request('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`), `get deployment ${ns}/${name}`).body as Obj

/** a KubeClient that records every answer and can run a hook before each PATCH (a concurrent writer) */
class RecordingClient extends KubeClient {
  readonly calls: { method: string; path: string; status: number; body: unknown }[] = []
  beforePatch: (() => Promise<void>) | undefined
  override async request(method: 'GET' | 'PATCH' | 'POST' | 'PUT', p: string, body?: unknown, contentType?: string): Promise<KubeResponse> {
    if (method === 'PATCH' && this.beforePatch) await this.beforePatch()
    const r = await super.request(method, p, body, contentType)
    this.calls.push({ method, path: p.split('?')[0] as string, status: r.status, body: r.body })
    return r
  }
}

describeKubeApiserver('kubernetes driver and k8s/rbac.yaml against a real kube-apiserver', () => {
  let k: KubeApiserver
  let rbac: Obj[]
  /** namespaces where the shipped RBAC lets the actuator patch Deployments */
  let granted: string[]
  let ns: string
  let actuatorToken: string
  const clients: KubeClient[] = []

  const driverCfg = (over: Record<string, unknown> = {}): DriverConfig =>
    actuatorSchema.parse({ driver: { type: 'kubernetes', server: k.server, caFile: k.caFile, tokenFile: k.tokenFile(actuatorToken), pollInterval: '50ms', ...over } }).driver!
  const driver = (over: Record<string, unknown> = {}) => {
    const cfg = driverCfg(over) as Extract<DriverConfig, { type: 'kubernetes' }>
    const client = new RecordingClient(cfg)
    clients.push(client)
    const d: Driver = new KubernetesDriver(cfg, client)
    return { d, client }
  }
  const req = (service: string, over: Partial<CutoverRequest> = {}): CutoverRequest => ({
    decisionId: `dec-${service}`,
    namespace: ns,
    service,
    failed: { artifact: IMG('1.3.0'), version: '1.3.0' },
    target: { artifact: IMG('1.2.0'), version: '1.2.0' },
    resume: false,
    verdict: verdict('rollback'),
    ...over,
  })
  /** a request as the actuator's service account */
  const asActuator = (method: 'GET' | 'PATCH' | 'POST' | 'PUT', p: string, body?: unknown, contentType?: string) => {
    const c = new KubeClient({ server: k.server, caFile: k.caFile, tokenFile: k.tokenFile(actuatorToken), requestTimeout: 30_000 })
    clients.push(c)
    return c.request(method, p, body, contentType)
  }

  beforeAll(async () => {
    k = await startKubeApiserver()
    const docs = [...manifests('namespace.yaml'), ...manifests('serviceaccounts.yaml'), ...manifests('rbac.yaml')].map((o) => {
      // kustomization.yaml: namespace `pullback` only where none is given (unsetOnly)
      if (!CLUSTER_SCOPED.has(o.kind) && o.metadata.namespace === undefined) o.metadata.namespace = 'pullback'
      return o
    })
    rbac = docs.filter((o) => String(o.apiVersion).startsWith('rbac.authorization.k8s.io/'))
    const bindsActuator = rbac.filter((o) => (o.subjects as Obj[] | undefined)?.some(isActuator))
    expect(bindsActuator.length, 'k8s/rbac.yaml binds nothing to ServiceAccount pullback/pullback-actuator').toBeGreaterThan(0)
    const clusterWide = bindsActuator.some((b) => b.kind === 'ClusterRoleBinding')
    const roleNamespaces = [...new Set(bindsActuator.filter((b) => b.kind === 'RoleBinding').map((b) => b.metadata.namespace as string))]
    const canPatch = (n: string) => tuples(shippedRules(rbac, n)).has('apps deployments patch *')
    granted = (clusterWide ? ['shop', ...roleNamespaces] : roleNamespaces).filter(canPatch)
    expect(granted.length, 'k8s/rbac.yaml lets the actuator patch Deployments in no namespace').toBeGreaterThan(0)
    ns = granted[0] as string

    const namespaces = new Set([...docs.flatMap((o) => (o.metadata.namespace ? [o.metadata.namespace as string] : [])), ...granted, ELSEWHERE])
    for (const n of namespaces) {
      if (docs.some((o) => o.kind === 'Namespace' && o.metadata.name === n)) continue
      expectStatus(await k.admin.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } }), `create namespace ${n}`, [201, 409])
    }
    for (const o of [...docs.filter((d) => d.kind === 'Namespace'), ...docs.filter((d) => d.kind !== 'Namespace')]) {
      expectStatus(await k.admin.request('POST', collectionPath(o), o), `create ${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name} from k8s/`, o.kind === 'Namespace' ? [201, 409] : [201])
    }
    // a throwaway service account bound to nothing: what every authenticated account may do anyway
    expectStatus(await k.admin.request('POST', `/api/v1/namespaces/pullback/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'pullback-test-nobody' } }), 'create sa nobody')
    actuatorToken = await serviceAccountToken(SA.name)
  }, 300_000)

  afterAll(() => {
    for (const c of clients) c.close()
    k?.stop()
  })

  async function serviceAccountToken(name: string): Promise<string> {
    const r = expectStatus(
      await k.admin.request('POST', `/api/v1/namespaces/pullback/serviceaccounts/${name}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } }),
      `TokenRequest for ${name}`,
    )
    return (r.body as { status: { token: string } }).status.token
  }

  it('the actuator authenticates as its service account (TokenRequest token)', async () => {
    const r = expectStatus(await asActuator('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }), 'SelfSubjectReview')
    expect((r.body as Obj).status.userInfo.username).toBe(`system:serviceaccount:${SA.namespace}:${SA.name}`)
  })

  it('cutover: the JSON patch puts the verified ReplicaSet\'s template back, keeps kubectl\'s annotations, waits for the rollout, is level-triggered', async () => {
    const before = await createWorkload(k, ns, 'web', [IMG('1.1.0'), IMG('1.2.0'), IMG('1.3.0')])
    const { d, client } = driver()
    const applied = await d.apply(req('web'), signal)
    expect(applied, JSON.stringify(client.calls.at(-1))).toMatchObject({ kind: 'applied', detail: expect.stringMatching(/ReplicaSet web-\w+ \(revision 2\)/) })
    expect(client.calls.map((c) => `${c.method} ${c.status}`)).toEqual(['GET 200', 'GET 200', 'PATCH 200'])

    const after = await getDeployment(k, ns, 'web')
    expect(after.spec.template.spec.containers.map((c: Obj) => c.image)).toEqual([IMG('1.2.0')])
    expect(after.spec.template.metadata.labels).toEqual({ app: 'web' }) // pod-template-hash is the controller's, not copied
    expect(after.spec.template.metadata.annotations).toEqual({ 'pullback.test/image': IMG('1.2.0') })
    // kubectl rollout undo: the Deployment's own kubectl/deployment annotations stay, the ReplicaSet's others are copied
    expect(after.metadata.annotations).toEqual({
      'deployment.kubernetes.io/revision': '3',
      'kubectl.kubernetes.io/last-applied-configuration': '{}',
      'kubernetes.io/change-cause': `deploy ${IMG('1.2.0')}`,
    })
    expect(after.metadata.generation).toBe(before.metadata.generation + 1)

    // no controller here: readiness waits for observedGeneration, then passes once the status says rolled out
    expect(await d.awaitReady(req('web'), 300, signal)).toMatchObject({ kind: 'not-ready', reason: expect.stringMatching(/observedGeneration/) })
    await markRolledOut(k, ns, 'web')
    expect(await d.awaitReady(req('web'), 5000, signal)).toMatchObject({ kind: 'ready' })

    const rv = (await getDeployment(k, ns, 'web')).metadata.resourceVersion
    expect(await d.apply(req('web'), signal)).toMatchObject({ kind: 'already-applied' })
    expect((await getDeployment(k, ns, 'web')).metadata.resourceVersion).toBe(rv)
  })

  it('a stale resourceVersion in the test op is refused by the real server with 422, and nothing changes', async () => {
    await createWorkload(k, ns, 'web-stale', [IMG('1.2.0'), IMG('1.3.0')])
    const dep = await getDeployment(k, ns, 'web-stale')
    const stale = String(Number(dep.metadata.resourceVersion) - 1)
    const r = await k.admin.request(
      'PATCH',
      `/apis/apps/v1/namespaces/${ns}/deployments/web-stale`,
      [
        { op: 'test', path: '/metadata/resourceVersion', value: stale },
        { op: 'replace', path: '/spec/template/spec/containers/0/image', value: IMG('1.2.0') },
      ],
      'application/json-patch+json',
    )
    expect(r.status, JSON.stringify(r.body)).toBe(422)
    expect((await getDeployment(k, ns, 'web-stale')).metadata.resourceVersion).toBe(dep.metadata.resourceVersion)
  })

  it('resourceVersion conflict: a write between the driver\'s GET and PATCH fails the test op (422); the driver re-reads and patches', async () => {
    await createWorkload(k, ns, 'web-race', [IMG('1.2.0'), IMG('1.3.0')])
    const { d, client } = driver()
    let writes = 0
    // a concurrent writer (another controller, a human with kubectl) touches the Deployment once
    client.beforePatch = async () => {
      if (writes++ > 0) return
      expectStatus(
        await k.admin.request('PATCH', `/apis/apps/v1/namespaces/${ns}/deployments/web-race`, { metadata: { labels: { touched: 'yes' } } }, 'application/merge-patch+json'),
        'concurrent write',
      )
    }
    expect(await d.apply(req('web-race'), signal)).toMatchObject({ kind: 'applied' })
    const patches = client.calls.filter((c) => c.method === 'PATCH')
    expect(patches.map((p) => p.status)).toEqual([422, 200])
    // what the real server says about a failed test op: a bare 422 Invalid, no field causes
    expect(patches[0]!.body).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 })
    expect(client.calls.filter((c) => c.method === 'GET' && c.path.endsWith('/deployments/web-race'))).toHaveLength(2)
    const after = await getDeployment(k, ns, 'web-race')
    expect(after.metadata.labels).toEqual({ touched: 'yes' }) // the concurrent write is kept, not overwritten
    expect(after.spec.template.spec.containers[0].image).toBe(IMG('1.2.0'))
  })

  it('a Deployment that keeps changing under the patch: 3 conflicts, then a failed cutover saying so', async () => {
    await createWorkload(k, ns, 'web-busy', [IMG('1.2.0'), IMG('1.3.0')])
    const { d, client } = driver()
    let n = 0
    client.beforePatch = async () => {
      expectStatus(await k.admin.request('PATCH', `/apis/apps/v1/namespaces/${ns}/deployments/web-busy`, { metadata: { labels: { touched: String(++n) } } }, 'application/merge-patch+json'), 'concurrent write')
    }
    expect(await d.apply(req('web-busy'), signal)).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/3 resourceVersion conflicts/) })
    expect(client.calls.filter((c) => c.method === 'PATCH').map((p) => p.status)).toEqual([422, 422, 422])
    expect((await getDeployment(k, ns, 'web-busy')).spec.template.spec.containers[0].image).toBe(IMG('1.3.0'))
  })

  // Found here, for the driver (src/actuator/drivers/kubernetes.ts takes every 422 for a failed test op
  // and retries): the real server answers 422 Invalid to a ValidatingAdmissionPolicy denial too. What
  // tells them apart is pinned here: a failed test op is a bare Status (no details.causes, generic
  // message), a denial names its policy and carries causes.
  it('422 is not only a conflict: a ValidatingAdmissionPolicy denial is 422 Invalid with causes, a failed test op has none', async () => {
    const dep = await createWorkload(k, ns, 'web-policy', [IMG('1.2.0'), IMG('1.3.0')])
    const vap = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies'
    expectStatus(
      await k.admin.request('POST', vap, {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: 'pullback-test-withdrawn' },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments'] }] },
          matchConditions: [{ name: 'only-web-policy', expression: "object.metadata.name == 'web-policy'" }],
          validations: [{ expression: "object.spec.template.spec.containers.all(c, !c.image.endsWith(':1.2.0'))", message: '1.2.0 is withdrawn' }],
        },
      }),
      'create ValidatingAdmissionPolicy',
    )
    expectStatus(
      await k.admin.request('POST', vap.replace('policies', 'policybindings'), {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: 'pullback-test-withdrawn' },
        spec: { policyName: 'pullback-test-withdrawn', validationActions: ['Deny'] },
      }),
      'create ValidatingAdmissionPolicyBinding',
    )
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web-policy`
    const patch = (rv: string, dryRun: boolean) =>
      k.admin.request(
        'PATCH',
        `${path}${dryRun ? '?dryRun=All' : ''}`,
        [
          { op: 'test', path: '/metadata/resourceVersion', value: rv },
          { op: 'replace', path: '/spec/template/spec/containers/0/image', value: IMG('1.2.0') },
        ],
        'application/json-patch+json',
      )
    // the policy applies once the API server's informer has it: poll with dry runs (admission runs, nothing is stored)
    let denied = await patch(dep.metadata.resourceVersion, true)
    for (let i = 0; i < 100 && denied.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 100))
      denied = await patch(dep.metadata.resourceVersion, true)
    }
    expect(denied.status).toBe(422)
    expect(denied.body).toMatchObject({ reason: 'Invalid', message: expect.stringMatching(/ValidatingAdmissionPolicy 'pullback-test-withdrawn'.*1\.2\.0 is withdrawn/) })
    expect((denied.body as Obj).details.causes.length).toBeGreaterThan(0)
    const conflict = await patch(String(Number(dep.metadata.resourceVersion) - 1), false)
    expect(conflict.status).toBe(422)
    expect(conflict.body).toMatchObject({ reason: 'Invalid', message: 'the server rejected our request due to an error in our request' })
    expect((conflict.body as Obj).details?.causes).toBeUndefined()
    // the driver tells them apart: the denial fails the cutover at once, naming the policy, not as "3 conflicts"
    const { d, client } = driver()
    const out = await d.apply(req('web-policy'), signal)
    expect(out).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/HTTP 422: .*1\.2\.0 is withdrawn/) })
    expect(client.calls.filter((c) => c.method === 'PATCH').map((c) => c.status)).toEqual([422])
  })

  it('outside its grant (kube-system) the driver gets 403 and reports a failed cutover naming it; nothing is patched', async () => {
    await createWorkload(k, 'kube-system', 'web', [IMG('1.2.0'), IMG('1.3.0')])
    const { d, client } = driver({ namespace: 'kube-system' })
    const out = await d.apply(req('web'), signal)
    expect(out).toMatchObject({
      kind: 'failed',
      reason: expect.stringMatching(
        /^GET deployment: HTTP 403: deployments\.apps "web" is forbidden: User "system:serviceaccount:pullback:pullback-actuator" cannot get resource "deployments" in API group "apps" in the namespace "kube-system"/,
      ),
    })
    expect(client.calls.map((c) => `${c.method} ${c.status}`)).toEqual(['GET 403'])
    // and the patch itself, sent directly, is refused too
    const patch = await asActuator('PATCH', '/apis/apps/v1/namespaces/kube-system/deployments/web', [{ op: 'replace', path: '/spec/replicas', value: 0 }], 'application/json-patch+json')
    expect(patch.status).toBe(403)
    expect((await getDeployment(k, 'kube-system', 'web')).spec.template.spec.containers[0].image).toBe(IMG('1.3.0'))
  })

  it('the service account has exactly the rules in k8s/rbac.yaml: SelfSubjectRulesReview = shipped rules + what any account may do', async () => {
    const nobody = await serviceAccountToken('pullback-test-nobody')
    const review = async (token: string, namespace: string) => {
      const c = new KubeClient({ server: k.server, caFile: k.caFile, tokenFile: k.tokenFile(token), requestTimeout: 30_000 })
      clients.push(c)
      const r = expectStatus(
        await c.request('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } }),
        `SelfSubjectRulesReview in ${namespace}`,
      ).body as Obj
      expect(r.status.incomplete, `rules review in ${namespace} is incomplete: ${r.status.evaluationError}`).toBe(false)
      return tuples(r.status.resourceRules as Rule[])
    }
    for (const n of [...granted, ELSEWHERE, 'kube-system', 'pullback']) {
      const baseline = await review(nobody, n)
      const expected = new Set([...baseline, ...tuples(shippedRules(rbac, n))])
      expect([...(await review(actuatorToken, n))].sort(), `rules of ${SA.namespace}/${SA.name} in namespace ${n}`).toEqual([...expected].sort())
    }
  })

  it('every other request is denied (403) for the service account, for real; the cutover\'s own are not', async () => {
    await createWorkload(k, ns, 'web-deny', [IMG('1.2.0'), IMG('1.3.0')])
    const base = `/apis/apps/v1/namespaces/${ns}`
    const rs = `${base}/replicasets/web-deny-${hashOf(IMG('1.2.0'))}`
    // [what, namespace, "apiGroup resource verb", the request]: a probe is expected to pass exactly when k8s/rbac.yaml grants its tuple
    const probes: [string, string, string, () => Promise<KubeResponse>][] = [
      ['get the deployment', ns, 'apps deployments get', () => asActuator('GET', `${base}/deployments/web-deny`)],
      ['list its replicasets', ns, 'apps replicasets list', () => asActuator('GET', `${base}/replicasets?labelSelector=app%3Dweb-deny`)],
      ['list deployments', ns, 'apps deployments list', () => asActuator('GET', `${base}/deployments`)],
      ['watch deployments', ns, 'apps deployments watch', () => asActuator('GET', `${base}/deployments?watch=true&timeoutSeconds=1`)],
      ['create a deployment', ns, 'apps deployments create', () => asActuator('POST', `${base}/deployments`, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'evil' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'x', image: 'x' }] } } } })],
      ['update (PUT) the deployment', ns, 'apps deployments update', async () => asActuator('PUT', `${base}/deployments/web-deny`, await getDeployment(k, ns, 'web-deny'))],
      ['patch deployments/status', ns, 'apps deployments/status patch', () => asActuator('PATCH', `${base}/deployments/web-deny/status`, { status: { replicas: 9 } }, 'application/merge-patch+json')],
      ['patch deployments/scale', ns, 'apps deployments/scale patch', () => asActuator('PATCH', `${base}/deployments/web-deny/scale`, { spec: { replicas: 9 } }, 'application/merge-patch+json')],
      ['get a replicaset', ns, 'apps replicasets get', () => asActuator('GET', rs)],
      ['patch a replicaset', ns, 'apps replicasets patch', () => asActuator('PATCH', rs, { spec: { replicas: 9 } }, 'application/merge-patch+json')],
      ['list pods', ns, ' pods list', () => asActuator('GET', `/api/v1/namespaces/${ns}/pods`)],
      ['create a pod', ns, ' pods create', () => asActuator('POST', `/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'evil' }, spec: { containers: [{ name: 'x', image: 'x' }] } })],
      ['list secrets', ns, ' secrets list', () => asActuator('GET', `/api/v1/namespaces/${ns}/secrets`)],
      ['list secrets in pullback', 'pullback', ' secrets list', () => asActuator('GET', '/api/v1/namespaces/pullback/secrets')],
      ['get a deployment in a namespace not granted', ELSEWHERE, 'apps deployments get', () => asActuator('GET', `/apis/apps/v1/namespaces/${ELSEWHERE}/deployments/web`)],
      ['create a rolebinding to cluster-admin', ns, 'rbac.authorization.k8s.io rolebindings create', () => asActuator('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'evil' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: SA.name, namespace: SA.namespace }] })],
      ['a token for another service account', 'pullback', ' serviceaccounts/token create', () => asActuator('POST', '/api/v1/namespaces/pullback/serviceaccounts/pullback-test-nobody/token', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} })],
    ]
    const grants = (n: string, tuple: string) => tuples(shippedRules(rbac, n)).has(`${tuple} *`)
    expect(grants(ns, 'apps deployments get') && grants(ns, 'apps replicasets list') && grants(ns, 'apps deployments patch')).toBe(true)
    const got = await Promise.all(probes.map(async ([what, , , call]) => `${what}: ${(await call()).status === 403 ? 'denied' : 'allowed'}`))
    expect(got).toEqual(probes.map(([what, n, tuple]) => `${what}: ${grants(n, tuple) ? 'allowed' : 'denied'}`))
    // cluster-scoped: nothing at all
    for (const p of ['/apis/apps/v1/deployments', '/api/v1/namespaces', '/apis/rbac.authorization.k8s.io/v1/clusterroles']) expect((await asActuator('GET', p)).status, p).toBe(403)
  })
})
