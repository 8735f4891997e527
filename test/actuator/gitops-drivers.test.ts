/**
 * GitOps-safe cutover (issue 15 item 3): the kubernetes driver refuses objects Argo CD or Flux
 * deploys; the argocd and flux drivers act through them. The self-heal race is played for real
 * against fake controllers (gitops-fakes.ts) that put Git's version back when the live object drifts:
 * a direct patch loses it, the GitOps drivers win it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { actuatorSchema, type DriverConfig } from '../../src/actuator/config.js'
import { PREVIOUS_POLICY_ANNOTATION } from '../../src/actuator/drivers/argocd.js'
import { gitopsOwner } from '../../src/actuator/drivers/gitops.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import type { CutoverRequest } from '../../src/actuator/drivers/types.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { FakeArgoCd, FakeFlux } from './gitops-fakes.js'
import { IMG, verdict } from './helpers.js'

const driverCfg = (d: Record<string, unknown>): DriverConfig => actuatorSchema.parse({ driver: d }).driver!
const req = (over: Partial<CutoverRequest> = {}): CutoverRequest => ({
  decisionId: 'dec-1',
  namespace: 'default',
  service: 'web',
  failed: { artifact: IMG('1.3.0'), version: '1.3.0' },
  target: { artifact: IMG('1.2.0'), version: '1.2.0' },
  resume: false,
  verdict: verdict('rollback'),
  ...over,
})
const signal = new AbortController().signal
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const stops: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s()
})
/** a rollout takes 300 ms: a controller's revert (within ~10 ms here, seconds for real) lands before it completes, as for real */
async function k8sWith(meta: { labels?: Record<string, string>; annotations?: Record<string, string> }) {
  const k8s = new FakeK8s({ history: [IMG('1.1.0'), IMG('1.2.0'), IMG('1.3.0')], readyAfterMs: 300 })
  Object.assign(k8s.owner.metadata.labels, meta.labels ?? {})
  Object.assign(k8s.owner.metadata.annotations, meta.annotations ?? {})
  const url = await k8s.start()
  stops.push(() => k8s.stop())
  return { k8s, url }
}
const TRACKING = { 'argocd.argoproj.io/tracking-id': 'shop-web:apps/Deployment:default/web' }
const FLUX_KS = { 'kustomize.toolkit.fluxcd.io/name': 'apps', 'kustomize.toolkit.fluxcd.io/namespace': 'flux-system' }
const FLUX_HR = { 'helm.toolkit.fluxcd.io/name': 'web', 'helm.toolkit.fluxcd.io/namespace': 'shop' }

describe('GitOps ownership', () => {
  it('reads Argo CD (tracking-id annotation, apps in any namespace, configured label) and Flux (Kustomization, HelmRelease) markers', () => {
    expect(gitopsOwner({ annotations: TRACKING }, 'argocd.argoproj.io/instance')).toMatchObject({ kind: 'argocd', application: 'shop-web' })
    expect(gitopsOwner({ annotations: { 'argocd.argoproj.io/tracking-id': 'team-a_shop-web:apps/Deployment:default/web' } }, 'x')).toMatchObject({ kind: 'argocd', application: 'shop-web', appNamespace: 'team-a' })
    expect(gitopsOwner({ labels: { 'argocd.argoproj.io/instance': 'shop-web' } }, 'argocd.argoproj.io/instance')).toMatchObject({ kind: 'argocd', application: 'shop-web' })
    // Helm sets app.kubernetes.io/instance too: Argo CD only when configured as its tracking label
    expect(gitopsOwner({ labels: { 'app.kubernetes.io/instance': 'web' } }, 'argocd.argoproj.io/instance')).toEqual({ kind: 'none' })
    expect(gitopsOwner({ labels: { 'app.kubernetes.io/instance': 'web' } }, 'app.kubernetes.io/instance')).toMatchObject({ kind: 'argocd', application: 'web' })
    expect(gitopsOwner({ labels: FLUX_KS }, 'x')).toMatchObject({ kind: 'flux', owner: { kind: 'Kustomization', name: 'apps', namespace: 'flux-system' } })
    expect(gitopsOwner({ labels: FLUX_HR }, 'x')).toMatchObject({ kind: 'flux', owner: { kind: 'HelmRelease', name: 'web', namespace: 'shop' } })
  })

  for (const [what, meta, pattern] of [
    ['Argo CD tracking annotation', { annotations: TRACKING }, /deployed by Argo CD \(Application shop-web; annotation argocd\.argoproj\.io\/tracking-id=shop-web:apps\/Deployment:default\/web\).*Use actuator\.driver\.type argocd/],
    ['Argo CD instance label', { labels: { 'argocd.argoproj.io/instance': 'shop-web' } }, /deployed by Argo CD \(Application shop-web; label argocd\.argoproj\.io\/instance=shop-web\)/],
    ['Flux Kustomization labels', { labels: FLUX_KS }, /deployed by Flux \(Kustomization flux-system\/apps;.*Use actuator\.driver\.type flux/],
    ['Flux HelmRelease labels', { labels: FLUX_HR }, /deployed by Flux \(HelmRelease shop\/web;/],
  ] as const) {
    it(`the kubernetes driver refuses a deployment carrying ${what}, and patches nothing`, async () => {
      const { k8s, url } = await k8sWith(meta)
      const d = createDriver(driverCfg({ type: 'kubernetes', server: url }))
      expect(await d.apply(req(), signal)).toMatchObject({ kind: 'failed', reason: expect.stringMatching(pattern) })
      expect(k8s.patches()).toHaveLength(0)
      expect(k8s.currentImage()).toBe(IMG('1.3.0'))
    })
  }

  it('the kubernetes driver patches a GitOps-owned deployment with gitops: ignore, and one with no markers by default', async () => {
    const a = await k8sWith({ annotations: TRACKING })
    expect((await createDriver(driverCfg({ type: 'kubernetes', server: a.url, gitops: 'ignore' })).apply(req(), signal)).kind).toBe('applied')
    const b = await k8sWith({ labels: { 'app.kubernetes.io/instance': 'web' } })
    expect((await createDriver(driverCfg({ type: 'kubernetes', server: b.url })).apply(req(), signal)).kind).toBe('applied')
  })
})

function tokenFile(): string {
  const f = join(mkdtempSync(join(tmpdir(), 'pb-argocd-')), 'token')
  writeFileSync(f, 'argocd-token-1\n')
  return f
}

async function argoSetup(automated: Record<string, unknown> | undefined = { prune: true, selfHeal: true }) {
  const { k8s, url } = await k8sWith({ annotations: TRACKING })
  const argo = new FakeArgoCd({
    k8s,
    k8sUrl: url,
    token: 'argocd-token-1',
    app: 'shop-web',
    git: [
      { revision: 'a1a1a1a', image: IMG('1.1.0') },
      { revision: 'b2b2b2b', image: IMG('1.2.0') },
      { revision: 'c3c3c3c', image: IMG('1.3.0') },
    ],
    automated,
  })
  const argoUrl = await argo.start()
  stops.push(() => argo.stop())
  return { k8s, url, argo, argoUrl }
}

describe('Argo CD: the self-heal race', () => {
  it('a direct patch of the deployment (kubernetes driver, gitops: ignore) is reverted by self-heal and never gets ready', async () => {
    const { k8s, url, argo } = await argoSetup()
    const d = createDriver(driverCfg({ type: 'kubernetes', server: url, gitops: 'ignore', pollInterval: '20ms' }))
    expect((await d.apply(req(), signal)).kind).toBe('applied')
    expect(await d.awaitReady(req(), 1000, signal)).toMatchObject({ kind: 'not-ready', reason: expect.stringMatching(/no longer runs/) })
    expect(argo.selfHeals).toBeGreaterThanOrEqual(1)
    expect(k8s.currentImage()).toBe(IMG('1.3.0'))
  })

  it('the argocd driver disables automated sync (remembering it), rolls back to the history entry that runs the verified image, and stays there', async () => {
    const { k8s, argo, argoUrl } = await argoSetup()
    // no application configured: found by the workload among the Applications' managed resources (and
    // addressed in its namespace, which Argo CD accepts for its own and for "apps in any namespace")
    const d = createDriver(driverCfg({ type: 'argocd', server: argoUrl, tokenFile: tokenFile(), pollInterval: '20ms' }))
    const applied = await d.apply(req(), signal)
    expect(applied).toMatchObject({ kind: 'applied', detail: expect.stringMatching(/rolled back to history id 1 \(revision b2b2b2b/) })
    expect(applied.kind === 'applied' && applied.detail).toMatch(/Git still points at the bad version registry\.local\/shop\/web:1\.3\.0/)
    expect(applied.kind === 'applied' && applied.detail).toMatch(/automated sync of Application shop-web disabled \(was \{"prune":true,"selfHeal":true\}/)
    // for on-call even when the decision ends recovered
    expect(applied).toMatchObject({ followUp: expect.stringMatching(/^default\/web was rolled back by Argo CD Application shop-web, but Git still points at the bad version .*re-enable automated sync/) })

    const ready = await d.awaitReady(req(), 5000, signal)
    expect(ready).toMatchObject({ kind: 'ready', detail: expect.stringMatching(/sync status OutOfSync \(Git still points at the bad version\)/) })
    await sleep(150)
    expect(k8s.currentImage()).toBe(IMG('1.2.0'))
    expect(argo.selfHeals).toBe(0)

    // the real API shapes
    expect(argo.requests.every((r) => r.auth === 'Bearer argocd-token-1')).toBe(true)
    const patch = argo.requests.find((r) => r.method === 'PATCH')!
    expect(patch.body).toMatchObject({ name: 'shop-web', patchType: 'merge', patch: expect.any(String) })
    expect(JSON.parse((patch.body as { patch: string }).patch)).toEqual({
      metadata: { annotations: { [PREVIOUS_POLICY_ANNOTATION]: '{"prune":true,"selfHeal":true}' } },
      spec: { syncPolicy: { automated: null } },
    })
    expect(argo.app.spec.syncPolicy.automated).toBeUndefined()
    expect(argo.app.spec.syncPolicy.syncOptions).toEqual(['CreateNamespace=true'])
    const rollbacks = argo.requests.filter((r) => r.method === 'POST')
    expect(rollbacks.map((r) => [r.path, r.body])).toEqual([['/api/v1/applications/shop-web/rollback', { name: 'shop-web', id: 1, prune: false, appNamespace: 'argocd' }]])
    // newest first: the head (1.3.0) is looked at, then the entry with 1.2.0; 1.1.0 is not needed
    expect(argo.requests.filter((r) => r.path.includes('/manifests')).map((r) => new URL(r.path, 'http://x').searchParams.get('revision'))).toEqual(['c3c3c3c', 'b2b2b2b'])

    // level-triggered: a resumed decision finds it done and does not roll back again
    const again = await d.apply(req({ resume: true }), signal)
    expect(again).toMatchObject({ kind: 'already-applied', detail: expect.stringMatching(/already disabled \(previous policy \{"prune":true,"selfHeal":true\}\)/) })
    expect(argo.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
  })

  it('argocd driver: a configured Application without a history entry for the artifact fails with the reason, saying automated sync is off', async () => {
    const { argo, argoUrl } = await argoSetup()
    const d = createDriver(driverCfg({ type: 'argocd', server: argoUrl, tokenFile: tokenFile(), application: 'shop-{service}' }))
    const out = await d.apply(req({ target: { artifact: IMG('0.9.0'), version: '0.9.0' } }), signal)
    expect(out).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/automated sync of Application shop-web disabled.*no history entry of Application shop-web deploys registry\.local\/shop\/web:0\.9\.0.*3 entries inspected/) })
    expect(argo.requests.some((r) => r.method === 'GET' && r.path === '/api/v1/applications')).toBe(false)
    expect(argo.requests.filter((r) => r.method === 'POST')).toHaveLength(0)
  })

  it('argocd driver: a wrong token is an error with the API server’s message; a token rotated in its file is used at once', async () => {
    const { argoUrl } = await argoSetup()
    const f = tokenFile()
    writeFileSync(f, 'stale')
    const d = createDriver(driverCfg({ type: 'argocd', server: argoUrl, tokenFile: f, application: 'shop-web' }))
    expect(await d.apply(req(), signal)).toMatchObject({ kind: 'failed', reason: 'GET Argo CD Application shop-web: HTTP 401: no session information' })
    await sleep(20)
    writeFileSync(f, 'argocd-token-1\n')
    expect((await d.apply(req(), signal)).kind).toBe('applied')
  })

  it('argocd driver: readiness fails at once when automated sync comes back (a parent Application re-applying it)', async () => {
    const { argo, argoUrl } = await argoSetup()
    const d = createDriver(driverCfg({ type: 'argocd', server: argoUrl, tokenFile: tokenFile(), application: 'shop-web', pollInterval: '20ms' }))
    expect((await d.apply(req(), signal)).kind).toBe('applied')
    argo.app.spec.syncPolicy.automated = { prune: true, selfHeal: true }
    const t0 = Date.now()
    expect(await d.awaitReady(req(), 5000, signal)).toMatchObject({ kind: 'not-ready', reason: expect.stringMatching(/automated sync of Application shop-web was re-enabled/) })
    expect(Date.now() - t0).toBeLessThan(1000)
  })
})

describe('Flux: the reconcile race', () => {
  for (const owner of [
    { kind: 'Kustomization' as const, name: 'apps', namespace: 'flux-system', labels: FLUX_KS, plural: 'kustomizations', group: 'kustomize.toolkit.fluxcd.io/v1', cli: 'kustomization' },
    { kind: 'HelmRelease' as const, name: 'web', namespace: 'shop', labels: FLUX_HR, plural: 'helmreleases', group: 'helm.toolkit.fluxcd.io/v2', cli: 'helmrelease' },
  ]) {
    it(`${owner.kind}: a direct patch is reverted at the next reconcile; the flux driver suspends the ${owner.kind} first, sets the image, and stays`, async () => {
      const { k8s, url } = await k8sWith({ labels: owner.labels })
      const flux = new FakeFlux({ k8s, k8sUrl: url, owner, gitImage: IMG('1.3.0') })
      const fluxUrl = await flux.start()
      stops.push(() => flux.stop())

      const direct = createDriver(driverCfg({ type: 'kubernetes', server: fluxUrl, gitops: 'ignore', pollInterval: '20ms' }))
      expect((await direct.apply(req(), signal)).kind).toBe('applied')
      expect(await direct.awaitReady(req(), 1000, signal)).toMatchObject({ kind: 'not-ready', reason: expect.stringMatching(/no longer runs/) })
      expect(flux.reverts).toBeGreaterThanOrEqual(1)
      expect(k8s.currentImage()).toBe(IMG('1.3.0'))

      const d = createDriver(driverCfg({ type: 'flux', server: fluxUrl, pollInterval: '20ms' }))
      const applied = await d.apply(req(), signal)
      expect(applied).toMatchObject({ kind: 'applied', detail: expect.stringContaining(`${owner.kind} ${owner.namespace}/${owner.name} suspended`) })
      expect(applied.kind === 'applied' && applied.detail).toContain(`flux resume ${owner.cli} ${owner.name} -n ${owner.namespace}`)
      expect(applied.kind === 'applied' && applied.detail).toMatch(/Git still points at the bad version/)
      expect(applied).toMatchObject({ followUp: expect.stringContaining(`Git still points at the bad version ${IMG('1.3.0')}: revert the change in Git, then \`flux resume ${owner.cli} ${owner.name} -n ${owner.namespace}\``) })
      const reverts = flux.reverts
      expect((await d.awaitReady(req(), 5000, signal)).kind).toBe('ready')
      await sleep(150)
      expect(k8s.currentImage()).toBe(IMG('1.2.0'))
      expect(flux.reverts).toBe(reverts)
      expect(flux.obj.spec.suspend).toBe(true)
      expect(flux.requests.filter((r) => r.method === 'PATCH').map((r) => [r.path, r.body])).toEqual([[`/apis/${owner.group}/namespaces/${owner.namespace}/${owner.plural}/${owner.name}`, { spec: { suspend: true } }]])
      const depPatch = k8s.patches().at(-1)!
      expect(depPatch.body).toEqual([
        { op: 'test', path: '/metadata/resourceVersion', value: expect.any(String) },
        { op: 'replace', path: '/spec/template/spec/containers/0/image', value: IMG('1.2.0') },
      ])
      // level-triggered
      expect(await d.apply(req({ resume: true }), signal)).toMatchObject({ kind: 'already-applied', detail: expect.stringContaining('already suspended') })
      expect(flux.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1)
    })
  }

  it('flux driver: a deployment without Flux labels and no configured owner fails with the reason', async () => {
    const { url } = await k8sWith({})
    const d = createDriver(driverCfg({ type: 'flux', server: url }))
    expect(await d.apply(req(), signal)).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/carries no Flux labels.*set actuator\.driver\.owner/) })
  })
})
