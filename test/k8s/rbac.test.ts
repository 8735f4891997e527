/**
 * Least privilege, proven (issue 13 item 10). Every driver runs its real code against the fake API
 * servers with a RecordingProxy in front (rbac-check.ts); its recorded requests are then checked
 * against the Roles `pullback k8s rbac` generates for the same config, in both directions:
 *   (a) every request the driver made is allowed,
 *   (b) every granted (namespace, group, resource, verb, name) is used by at least one request,
 *   (c) nothing is granted cluster-wide or in a kube-* namespace.
 * Then the shipped k8s/ manifests: rbac.yaml is exactly the generator's output for k8s/pullback.yaml,
 * it passes the same check through the whole kustomization, and the actuator's egress is narrowed.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments, parse } from 'yaml'
import { afterEach, describe, expect, it } from 'vitest'
import { actuatorSchema } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import type { CutoverRequest } from '../../src/actuator/drivers/types.js'
import { rbacManifests, rbacPlan, renderRbac, type Manifest, type RbacPlan, type Subject } from '../../src/actuator/rbac.js'
import { main } from '../../src/cli/main.js'
import { parseConfig } from '../../src/config/load.js'
import { configSchema, type PullbackConfig } from '../../src/config/schema.js'
import { IMG, verdict } from '../actuator/helpers.js'
import { FakeArgoCd, FakeFlux } from '../actuator/gitops-fakes.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { ArgoCdPolicy, LocalRbac, RecordingProxy, argoCdAction, check, requestAttributes, sarAuthorizer, type Call } from './rbac-check.js'

const SA: Subject = { namespace: 'pullback', name: 'pullback-actuator' }
const signal = new AbortController().signal
const cfgOf = (actuator: Record<string, unknown>, engine: Record<string, unknown> = {}): PullbackConfig => configSchema.parse({ actuator, engine })
const roles = (p: RbacPlan) => {
  if (p.kind !== 'roles') throw new Error(`expected roles, got ${JSON.stringify(p)}`)
  return p
}
const req = (namespace: string, over: Partial<CutoverRequest> = {}): CutoverRequest => ({
  decisionId: `dec-${namespace}`,
  namespace,
  service: 'web',
  failed: { artifact: IMG('1.3.0'), version: '1.3.0' },
  target: { artifact: IMG('1.2.0'), version: '1.2.0' },
  resume: false,
  verdict: verdict('rollback'),
  ...over,
})

const stops: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s()
})
async function started<T extends { start(): Promise<string>; stop(): Promise<void> }>(x: T): Promise<{ it: T; url: string }> {
  const url = await x.start()
  stops.push(() => x.stop())
  return { it: x, url }
}

/** the fake Kubernetes API for one workload, and a recording proxy in front of `front` (or of it) */
async function cluster(namespace: string, opts: { kind?: 'deployment' | 'rollout'; noStatusSubresource?: boolean; labels?: Record<string, string> } = {}) {
  const k8s = new FakeK8s({ namespace, history: [IMG('1.1.0'), IMG('1.2.0'), IMG('1.3.0')], readyAfterMs: 30, ...(opts.kind ? { kind: opts.kind } : {}), ...(opts.noStatusSubresource ? { noStatusSubresource: true } : {}) })
  Object.assign(k8s.owner.metadata.labels, opts.labels ?? {})
  const { url } = await started(k8s)
  return { k8s, url }
}

/** runs a driver through a rollback and its readiness, then the level-triggered repeat */
async function rollback(driverCfg: Record<string, unknown>, server: string, namespace: string, expectApplied = true): Promise<Call[]> {
  const proxy = new RecordingProxy(server)
  const { url } = await started(proxy)
  const d = createDriver(actuatorSchema.parse({ driver: { ...driverCfg, server: url, pollInterval: '10ms' } }).driver)
  const applied = await d.apply(req(namespace), signal)
  if (expectApplied) {
    expect(applied.kind, JSON.stringify(applied)).toBe('applied')
    expect((await d.awaitReady(req(namespace), 5000, signal)).kind).toBe('ready')
    expect((await d.apply(req(namespace, { resume: true }), signal)).kind).toBe('already-applied')
  }
  return proxy.calls
}

async function verdictFor(plan: RbacPlan, calls: Call[]) {
  const rbac = new LocalRbac(rbacManifests(roles(plan).grants, SA))
  return check(rbac.authorize, rbac.grants(SA), SA, calls)
}

function expectLeastPrivilege(v: Awaited<ReturnType<typeof verdictFor>>): void {
  expect(v.denied, 'driver requests the Roles do not allow').toEqual([])
  expect(v.unused.map((g) => `${g.namespace} ${g.apiGroup}/${g.resource} ${g.verb}${g.name ? ` ${g.name}` : ''}`), 'grants no driver request uses').toEqual([])
  expect(v.wide, 'cluster-wide or kube-* grants').toEqual([])
}

describe('request attributes (the API server request-info rules)', () => {
  it('maps the drivers’ paths and methods to verb, group, resource, subresource, namespace, name', () => {
    expect(requestAttributes('GET', '/apis/apps/v1/namespaces/shop/deployments/web')).toEqual({ kind: 'resource', attrs: { verb: 'get', apiGroup: 'apps', resource: 'deployments', subresource: '', namespace: 'shop', name: 'web' } })
    expect(requestAttributes('GET', '/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb')).toMatchObject({ attrs: { verb: 'list', resource: 'replicasets', name: '' } })
    expect(requestAttributes('GET', '/apis/apps/v1/namespaces/shop/replicasets?watch=true')).toMatchObject({ attrs: { verb: 'watch' } })
    expect(requestAttributes('PATCH', '/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/status')).toMatchObject({ attrs: { verb: 'patch', apiGroup: 'argoproj.io', resource: 'rollouts', subresource: 'status', name: 'web' } })
    expect(requestAttributes('GET', '/api/v1/namespaces/kube-system/secrets')).toMatchObject({ attrs: { verb: 'list', apiGroup: '', resource: 'secrets', namespace: 'kube-system' } })
    expect(requestAttributes('GET', '/apis/apps/v1/deployments')).toMatchObject({ attrs: { verb: 'list', namespace: '' } })
    expect(requestAttributes('GET', '/api/v1/namespaces/shop')).toMatchObject({ attrs: { verb: 'get', resource: 'namespaces', name: 'shop' } })
    expect(requestAttributes('DELETE', '/apis/apps/v1/namespaces/shop/deployments')).toMatchObject({ attrs: { verb: 'deletecollection' } })
    expect(requestAttributes('GET', '/healthz')).toEqual({ kind: 'non-resource', path: '/healthz' })
  })
})

describe('pullback k8s rbac: the plan from the config', () => {
  it('kubernetes: one Role per actuator.namespaces entry, deployments get/patch and replicasets list, nothing else', () => {
    const p = roles(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['shop', 'payments'] })))
    expect(p.grants.map((g) => g.namespace)).toEqual(['payments', 'shop'])
    for (const g of p.grants) expect(g.rules.map((r) => r.rule)).toEqual([
      { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'] },
      { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['list'] },
    ])
    const objs = rbacManifests(p.grants, SA)
    expect(objs.map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['Role payments/pullback-actuator', 'RoleBinding payments/pullback-actuator', 'Role shop/pullback-actuator', 'RoleBinding shop/pullback-actuator'])
    expect(objs.some((o) => o.kind.startsWith('Cluster'))).toBe(false)
  })

  it('refuses to grant without namespaces, naming actuator.namespaces (and the contracts’ namespaces as a hint)', () => {
    for (const type of ['kubernetes', 'argo-rollouts', 'flux']) {
      const p = rbacPlan(cfgOf({ driver: { type } }, { services: { 'shop/checkout': { window: '45s' } } }))
      expect(p).toMatchObject({ kind: 'invalid', path: 'actuator.namespaces', message: expect.stringMatching(/actuator\.namespaces is empty.*contracts in: shop/) })
    }
    expect(rbacPlan(cfgOf({}))).toMatchObject({ kind: 'invalid', path: 'actuator.driver' })
  })

  it('driver.namespace pins the only namespace; a fixed object name is granted by name; --namespaces overrides', () => {
    const pinned = roles(rbacPlan(cfgOf({ driver: { type: 'argo-rollouts', namespace: 'shop', name: 'web' }, namespaces: ['other'] })))
    expect(pinned.grants.map((g) => g.namespace)).toEqual(['shop'])
    expect(pinned.grants[0]!.rules.map((r) => r.rule)).toEqual([
      { apiGroups: ['argoproj.io'], resources: ['rollouts'], verbs: ['get', 'patch'], resourceNames: ['web'] },
      { apiGroups: ['argoproj.io'], resources: ['rollouts/status'], verbs: ['patch'], resourceNames: ['web'] },
      { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['list'] },
    ])
    expect(roles(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['shop'] }), { namespaces: ['a', 'b', 'a'] })).grants.map((g) => g.namespace)).toEqual(['a', 'b'])
  })

  it('refuses kube-* namespaces unless allowed, and reports contracts in namespaces it does not manage', () => {
    expect(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['shop', 'kube-system'] }))).toMatchObject({ kind: 'invalid', message: expect.stringMatching(/refusing to grant patch rights in kube-system/) })
    expect(roles(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['kube-system'] }), { allowSystemNamespaces: true })).grants).toHaveLength(1)
    const p = roles(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['shop'] }, { services: { 'billing/api': {} } })))
    expect(p.notes).toContain('engine.services has a contract in namespace billing, which is not managed: its rollbacks will be refused by the API server (403)')
  })

  it('flux: the Deployment’s namespaces plus the owners’ (configured owner by name, or actuator.fluxNamespaces; an error without either)', () => {
    const owned = roles(rbacPlan(cfgOf({ driver: { type: 'flux', owner: { kind: 'HelmRelease', name: 'web', namespace: 'flux-system' } }, namespaces: ['shop'] })))
    expect(owned.grants.map((g) => [g.namespace, g.rules.map((r) => r.rule)])).toEqual([
      ['flux-system', [{ apiGroups: ['helm.toolkit.fluxcd.io'], resources: ['helmreleases'], verbs: ['get', 'patch'], resourceNames: ['web'] }]],
      ['shop', [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'] }]],
    ])
    expect(rbacPlan(cfgOf({ driver: { type: 'flux' }, namespaces: ['shop'] }))).toMatchObject({ kind: 'invalid', path: 'actuator.fluxNamespaces' })
  })

  it('argocd, exec, simulated: no Kubernetes RBAC at all (argocd: Argo CD policy lines instead)', () => {
    const a = rbacPlan(cfgOf({ driver: { type: 'argocd', server: 'https://argocd-server.argocd.svc', application: 'shop-{service}' } }))
    expect(a).toMatchObject({ kind: 'no-kubernetes-access', argocdPolicy: ['p, role:pullback-actuator, applications, get, */shop-*, allow', 'p, role:pullback-actuator, applications, update, */shop-*, allow', 'p, role:pullback-actuator, applications, sync, */shop-*, allow', 'g, pullback-actuator, role:pullback-actuator'] })
    expect(rbacPlan(cfgOf({ driver: { type: 'exec', command: ['true'] } }))).toMatchObject({ kind: 'no-kubernetes-access' })
    expect(rbacPlan(cfgOf({ driver: { type: 'simulated' } }))).toMatchObject({ kind: 'no-kubernetes-access' })
  })

  it('the CLI prints apply-able YAML, exits 2 on an unusable config or flag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-rbac-'))
    const file = join(dir, 'pullback.yaml')
    const run = async (...args: string[]) => {
      let out = ''
      let err = ''
      const rc = await main(['k8s', ...args], { out: (s) => (out += s), err: (s) => (err += s) })
      return { rc, out, err }
    }
    writeFileSync(file, 'actuator:\n  driver: { type: kubernetes }\n  namespaces: [shop]\n')
    const ok = await run('rbac', '--config', file, '--service-account', 'ops/rollbacker')
    expect(ok.rc).toBe(0)
    const docs = parseAllDocuments(ok.out).map((d) => d.toJS() as Manifest)
    expect(docs.map((d) => `${d.kind} ${d.metadata.namespace}`)).toEqual(['Role shop', 'RoleBinding shop'])
    expect(docs[1]!.subjects).toEqual([{ kind: 'ServiceAccount', name: 'rollbacker', namespace: 'ops' }])
    expect(ok.out).toMatch(/# LIST the Deployment's ReplicaSets/)
    expect((await run('rbac', '--config', file, '--namespaces', 'a,b')).out).toMatch(/namespace: b/)
    writeFileSync(file, 'actuator:\n  driver: { type: kubernetes }\n')
    expect(await run('rbac', '--config', file)).toMatchObject({ rc: 2, err: expect.stringMatching(/actuator\.namespaces: actuator\.namespaces is empty/) })
    expect((await run('rbac', '--config', file, '--namespaces', 'Not_A_Namespace')).rc).toBe(2)
    expect((await run('rbac')).rc).toBe(2)
    expect((await run('roles', '--config', file)).rc).toBe(2)
    writeFileSync(file, 'actuator:\n  driver: { type: argocd, server: "https://argocd.example" }\n')
    const argo = await run('rbac', '--config', file)
    expect(argo.rc).toBe(0)
    expect(parseAllDocuments(argo.out).filter((d) => d.contents !== null)).toHaveLength(0)
    expect(argo.out).toContain('#   p, role:pullback-actuator, applications, sync, */*, allow')
  })
})

describe('every driver request allowed, every grant used, nothing wide (recorded against the fakes)', () => {
  it('kubernetes: a rollback, its readiness and a repeat, in each managed namespace; a resourceVersion conflict retried', async () => {
    const cfg = { type: 'kubernetes' }
    const plan = rbacPlan(cfgOf({ driver: cfg, namespaces: ['shop', 'payments'] }))
    const calls: Call[] = []
    for (const ns of ['shop', 'payments']) {
      const { k8s, url } = await cluster(ns)
      let first = true
      k8s.beforePatch = () => {
        if (first) k8s.owner.metadata.resourceVersion = String(Number(k8s.owner.metadata.resourceVersion) + 7)
        first = false
      }
      calls.push(...(await rollback(cfg, url, ns)))
    }
    expect(new Set(calls.map((c) => `${c.method} ${c.path.split('?')[0]}`))).toEqual(
      new Set(['shop', 'payments'].flatMap((ns) => [`GET /apis/apps/v1/namespaces/${ns}/deployments/web`, `GET /apis/apps/v1/namespaces/${ns}/replicasets`, `PATCH /apis/apps/v1/namespaces/${ns}/deployments/web`])),
    )
    expectLeastPrivilege(await verdictFor(plan, calls))
  })

  it('argo-rollouts: abort on the status subresource and the fallback when the CRD has none, then the template patch; by name when the name is fixed', async () => {
    for (const cfg of [{ type: 'argo-rollouts' }, { type: 'argo-rollouts', name: 'web' }]) {
      const plan = rbacPlan(cfgOf({ driver: cfg, namespaces: ['shop'] }))
      const calls: Call[] = []
      for (const noStatusSubresource of [false, true]) {
        const { url } = await cluster('shop', { kind: 'rollout', noStatusSubresource })
        calls.push(...(await rollback(cfg, url, 'shop')))
      }
      expect(calls.some((c) => c.method === 'PATCH' && c.path.endsWith('/status') && c.status === 404)).toBe(true)
      expectLeastPrivilege(await verdictFor(plan, calls))
    }
  })

  it('flux: owners read from the labels (Kustomization and HelmRelease in each of actuator.fluxNamespaces), and a configured owner by name', async () => {
    const owners = ['flux-system', 'shop'].flatMap((namespace): { kind: 'Kustomization' | 'HelmRelease'; name: string; namespace: string; labels: Record<string, string> }[] => [
      { kind: 'Kustomization', name: 'apps', namespace, labels: { 'kustomize.toolkit.fluxcd.io/name': 'apps', 'kustomize.toolkit.fluxcd.io/namespace': namespace } },
      { kind: 'HelmRelease', name: 'web', namespace, labels: { 'helm.toolkit.fluxcd.io/name': 'web', 'helm.toolkit.fluxcd.io/namespace': namespace } },
    ])
    const runFlux = async (cfg: Record<string, unknown>, owner: (typeof owners)[number]) => {
      const { k8s, url } = await cluster('shop', { labels: owner.labels })
      const { url: fluxUrl } = await started(new FakeFlux({ k8s, k8sUrl: url, owner, gitImage: IMG('1.3.0') }))
      return rollback(cfg, fluxUrl, 'shop')
    }
    const labelled = { type: 'flux' }
    const plan = rbacPlan(cfgOf({ driver: labelled, namespaces: ['shop'], fluxNamespaces: ['flux-system', 'shop'] }))
    const calls: Call[] = []
    for (const o of owners) calls.push(...(await runFlux(labelled, o)))
    expectLeastPrivilege(await verdictFor(plan, calls))

    const o = owners[0]!
    const configured = { type: 'flux', owner: { kind: o.kind, name: o.name, namespace: o.namespace } }
    expectLeastPrivilege(await verdictFor(rbacPlan(cfgOf({ driver: configured, namespaces: ['shop'] })), await runFlux(configured, o)))
  })

  it('argocd: only Argo CD API requests, each allowed by the generated Argo CD policy, each policy line used', async () => {
    const { k8s, url } = await cluster('shop', {})
    k8s.owner.metadata.annotations['argocd.argoproj.io/tracking-id'] = 'shop-web:apps/Deployment:shop/web'
    const argo = new FakeArgoCd({ k8s, k8sUrl: url, token: 't0k', app: 'shop-web', automated: { prune: true, selfHeal: true }, git: [{ revision: 'a1', image: IMG('1.1.0') }, { revision: 'b2', image: IMG('1.2.0') }, { revision: 'c3', image: IMG('1.3.0') }] })
    const { url: argoUrl } = await started(argo)
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'pb-rbac-')), 'token')
    writeFileSync(tokenFile, 't0k')
    const cfg = { type: 'argocd', tokenFile }
    const calls = await rollback(cfg, argoUrl, 'shop')
    const plan = rbacPlan(cfgOf({ driver: { ...cfg, server: argoUrl } }))
    if (plan.kind !== 'no-kubernetes-access') throw new Error(plan.kind)
    const policy = new ArgoCdPolicy(plan.argocdPolicy!)
    const project = argo.app.spec.project as string
    const used = new Set<string>()
    for (const c of calls) {
      const a = argoCdAction(c.method, c.path)
      expect(a, `${c.method} ${c.path} is an Argo CD application request`).toBeDefined()
      const lines = policy.allows('pullback-actuator', 'applications', a!.action, `${project}/${a!.app === '*' ? 'shop-web' : a!.app}`)
      expect(lines, `${c.method} ${c.path} (${a!.action})`).not.toEqual([])
      for (const l of lines) used.add(l)
    }
    expect([...used].sort()).toEqual(policy.lines().sort())
    expect(calls.some((c) => c.path.startsWith('/apis/') || c.path.startsWith('/api/v1/namespaces'))).toBe(false)
  })

  it('the check can fail: a missing verb is a denied request, an extra verb or namespace is an unused grant, a ClusterRoleBinding is wide', async () => {
    const { url } = await cluster('shop')
    const calls = await rollback({ type: 'kubernetes' }, url, 'shop')
    const plan = roles(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['shop'] })))
    const tamper = (f: (m: Manifest[]) => Manifest[]) => {
      const rbac = new LocalRbac(f(structuredClone(rbacManifests(plan.grants, SA))))
      return check(rbac.authorize, rbac.grants(SA), SA, calls)
    }
    const rulesOf = (m: Manifest[]) => m.find((o) => o.kind === 'Role')!.rules as { verbs: string[] }[]
    const noPatch = await tamper((m) => (rulesOf(m)[0]!.verbs = ['get'], m))
    expect(noPatch.denied.map((d) => `${d.call.method} ${d.call.path}`)).toEqual(calls.filter((c) => c.method === 'PATCH').map((c) => `PATCH ${c.path}`))
    const extra = await tamper((m) => (rulesOf(m)[1]!.verbs = ['list', 'watch'], m))
    expect(extra.unused.map((g) => `${g.resource} ${g.verb}`)).toEqual(['replicasets watch'])
    const otherNs = await tamper((m) => [...m, ...rbacManifests([{ namespace: 'billing', rules: structuredClone(plan.grants[0]!.rules) }], SA)])
    expect(new Set(otherNs.unused.map((g) => g.namespace))).toEqual(new Set(['billing']))
    const wide = await tamper((m) => [
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'wide' }, rules: [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['patch'] }] },
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'wide' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'wide' }, subjects: [{ kind: 'ServiceAccount', ...SA }] },
      ...m,
    ])
    expect(wide.wide.map((g) => `${g.namespace} ${g.resource} ${g.verb}`)).toEqual(['* deployments patch'])
    // the same request in a namespace pullback does not manage is denied
    const { url: other } = await cluster('kube-system')
    const denied = await verdictFor(plan, await rollback({ type: 'kubernetes' }, other, 'kube-system', false))
    expect(denied.denied.length).toBeGreaterThan(0)
    expect(denied.denied.every((d) => typeof d.attrs !== 'string' && d.attrs.namespace === 'kube-system')).toBe(true)
  })
})

describe('the seam for a real kube-apiserver', () => {
  it('the same check runs through SubjectAccessReviews (here answered by a fake that asks the local RBAC)', async () => {
    const plan = roles(rbacPlan(cfgOf({ driver: { type: 'kubernetes' }, namespaces: ['shop'] })))
    const local = new LocalRbac(rbacManifests(plan.grants, SA))
    const reviews: Record<string, any>[] = [] // eslint-disable-line @typescript-eslint/no-explicit-any
    const sar = createServer((rq, rs) => {
      let text = ''
      rq.on('data', (c: Buffer) => (text += c.toString()))
      rq.on('end', () => {
        const review = JSON.parse(text) as (typeof reviews)[number]
        reviews.push({ path: rq.url, auth: rq.headers.authorization, ...review })
        const ra = review.spec.resourceAttributes
        const [, ns, name] = /^system:serviceaccount:([^:]+):(.+)$/.exec(review.spec.user as string)!
        void local.authorize({ namespace: ns!, name: name! }, { verb: ra.verb, apiGroup: ra.group, resource: ra.resource, subresource: ra.subresource, namespace: ra.namespace, name: ra.name }).then((v) => {
          rs.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ ...review, status: { allowed: v.allowed, reason: v.reason } }))
        })
      })
    })
    await new Promise<void>((r) => sar.listen(0, '127.0.0.1', r))
    stops.push(() => new Promise((r) => sar.close(() => r())))
    const authorize = sarAuthorizer(`http://127.0.0.1:${(sar.address() as AddressInfo).port}`, 'admin-token')
    const { url } = await cluster('shop')
    const calls = await rollback({ type: 'kubernetes' }, url, 'shop')
    const { url: other } = await cluster('payments')
    const elsewhere = await rollback({ type: 'kubernetes' }, other, 'payments', false)
    expectLeastPrivilege(await check(authorize, local.grants(SA), SA, calls))
    expect((await check(authorize, [], SA, elsewhere)).denied.length).toBeGreaterThan(0)
    expect(reviews[0]).toMatchObject({ path: '/apis/authorization.k8s.io/v1/subjectaccessreviews', auth: 'Bearer admin-token', kind: 'SubjectAccessReview', spec: { user: 'system:serviceaccount:pullback:pullback-actuator', resourceAttributes: { namespace: 'shop', verb: 'get', group: 'apps', resource: 'deployments', name: 'web' } } })
  })
})

// ---------------------------------------------------------------------------------------------

const K8S = join(import.meta.dirname, '..', '..', 'k8s')
const yamlDocs = (file: string) => parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => d.toJS() as Manifest).filter((o) => o !== null)
const kustomization = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as { resources: string[]; transformers: string[] }
/** the namespace kustomize gives objects that name none (the unsetOnly NamespaceTransformer) */
const transformer = parse(kustomization.transformers[0]!) as { kind: string; metadata: { namespace: string }; unsetOnly: boolean; setRoleBindingSubjects: string }
const shipped = kustomization.resources.flatMap(yamlDocs)
const shippedConfig = parseConfig(parse(readFileSync(join(K8S, 'pullback.yaml'), 'utf8')), 'k8s/pullback.yaml')

describe('the shipped k8s/ manifests', () => {
  it('keep explicit namespaces: the namespace transformer only fills unset ones and leaves subjects alone', () => {
    expect(transformer).toMatchObject({ kind: 'NamespaceTransformer', metadata: { namespace: 'pullback' }, unsetOnly: true, setRoleBindingSubjects: 'none' })
    expect((kustomization as Record<string, unknown>).namespace).toBeUndefined()
  })

  it('rbac.yaml is exactly `pullback k8s rbac --config k8s/pullback.yaml` (regenerate it after a change)', () => {
    const plan = rbacPlan(shippedConfig)
    if (plan.kind === 'invalid') throw new Error(plan.message)
    expect(readFileSync(join(K8S, 'rbac.yaml'), 'utf8')).toBe(renderRbac(plan, SA, 'k8s/pullback.yaml'))
    expect(shippedConfig.actuator.namespaces.length).toBeGreaterThan(0)
  })

  it('grant the actuator exactly what its configured driver uses, in the managed namespaces only: nothing cluster-wide, nothing in kube-system', async () => {
    const rbac = new LocalRbac(shipped, transformer.metadata.namespace)
    // no cluster-wide object names the actuator (the sidecar's pod watch, item 4, is its own ClusterRole)
    expect(shipped.filter((o) => o.kind.startsWith('Cluster') && (o.metadata.name === 'pullback-actuator' || JSON.stringify(o.subjects ?? []).includes('"pullback-actuator"')))).toEqual([])
    const calls: Call[] = []
    const driver = { ...shippedConfig.actuator.driver } as Record<string, unknown>
    delete driver.server
    for (const ns of shippedConfig.actuator.namespaces) {
      const { url } = await cluster(ns)
      calls.push(...(await rollback(driver, url, ns)))
    }
    expectLeastPrivilege(await check(rbac.authorize, rbac.grants(SA), SA, calls))
    const { url } = await cluster('kube-system')
    const sys = await check(rbac.authorize, [], SA, await rollback(driver, url, 'kube-system', false))
    expect(sys.denied.length).toBeGreaterThan(0)
    // the deciders hold nothing
    expect(rbac.grants({ namespace: 'pullback', name: 'pullback-decider' })).toEqual([])
  })
})

/** IPv4 CIDR membership */
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string]
  const n = (a: string) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)
  const size = 2 ** (32 - Number(bits))
  return Math.floor(n(ip) / size) === Math.floor(n(base) / size)
}
interface Peer {
  ipBlock?: { cidr: string; except?: string[] }
  namespaceSelector?: { matchLabels?: Record<string, string> }
  podSelector?: { matchLabels?: Record<string, string> }
}
/** whether the policy lets its pods open a TCP connection to a non-pod address (an IP outside every pod selector) */
function egressToIp(np: Manifest, ip: string, port: number): boolean {
  const rules = ((np.spec as { egress?: { to?: Peer[]; ports?: { port: number }[] }[] }).egress ?? [])
  return rules.some((r) => (r.ports === undefined || r.ports.some((p) => p.port === port)) && (r.to === undefined || r.to.some((p) => p.ipBlock !== undefined && inCidr(ip, p.ipBlock.cidr) && !(p.ipBlock.except ?? []).some((e) => inCidr(ip, e)))))
}

describe('the actuator’s egress (NetworkPolicy pullback-actuator)', () => {
  const np = shipped.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'pullback-actuator')!
  it('reaches the API server (by CIDR, 443/6443) and nothing else outside the cluster’s pods: no metadata service, no internet, no other ports', () => {
    expect(egressToIp(np, '10.0.0.1', 443)).toBe(true) // a kubeadm / EKS endpoint
    expect(egressToIp(np, '172.18.0.2', 6443)).toBe(true) // kind
    expect(egressToIp(np, '169.254.169.254', 80)).toBe(false)
    expect(egressToIp(np, '169.254.169.254', 443)).toBe(false)
    expect(egressToIp(np, '8.8.8.8', 443)).toBe(false) // no paging configured: no webhook egress
    expect(egressToIp(np, '10.0.0.1', 22)).toBe(false)
    expect(egressToIp(np, '10.0.0.1', 8080)).toBe(false)
    // every rule names its peers: none is "anywhere"
    for (const r of (np.spec as { egress: { to?: unknown[] }[] }).egress) expect(r.to?.length ?? 0).toBeGreaterThan(0)
    expect(shippedConfig.actuator.paging).toEqual([])
  })
})
