/**
 * The `flux` driver: when Flux deploys the service, a patched Deployment is put back to Git's bad
 * version at the next reconcile. So, through the Kubernetes API:
 *   1. suspend the Flux object that applies the workload: merge patch {"spec":{"suspend":true}} on
 *      PATCH /apis/kustomize.toolkit.fluxcd.io/v1/namespaces/NS/kustomizations/NAME, or
 *      PATCH /apis/helm.toolkit.fluxcd.io/v2/namespaces/NS/helmreleases/NAME
 *      (what `flux suspend kustomization|helmrelease` does); the object is configured or read from the
 *      workload's labels kustomize.toolkit.fluxcd.io/name+namespace or helm.toolkit.fluxcd.io/name+namespace;
 *   2. set the verified image on the Deployment's containers that run the failed artifact (or the
 *      configured container): JSON patch with a `test` op on metadata.resourceVersion, retried on
 *      409/422 like the kubernetes driver;
 *   3. readiness: the Deployment's rollout status, as the kubernetes driver judges it.
 * The audit note says Git still points at the bad version and how to resume Flux once it is fixed.
 * pullback never resumes Flux itself: that would deploy the bad version again.
 *
 * Requests (RBAC): deployments get/patch; kustomizations or helmreleases get/patch.
 * Level-triggered: a suspended owner is not patched again, a Deployment already running the target is not patched.
 */
import type { DriverConfig } from '../config.js'
import { gitopsOwner } from './gitops.js'
import { KubeClient, statusMessage } from './kube.js'
import { KubernetesDriver, templateRuns } from './kubernetes.js'
import type { ApplyOutcome, CutoverRequest, Driver, ReadyOutcome } from './types.js'

type FluxConfig = Extract<DriverConfig, { type: 'flux' }>
type FluxOwner = { kind: 'Kustomization' | 'HelmRelease'; name: string; namespace: string }

interface Deployment {
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
  spec: { template: { spec?: { containers?: { name: string; image?: string }[] } } }
}

const enc = encodeURIComponent
const looksLikeImage = (a: string) => a.includes('/') || a.includes('@') || a.includes(':')

function ownerPath(o: FluxOwner): string {
  return o.kind === 'Kustomization'
    ? `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${enc(o.namespace)}/kustomizations/${enc(o.name)}`
    : `/apis/helm.toolkit.fluxcd.io/v2/namespaces/${enc(o.namespace)}/helmreleases/${enc(o.name)}`
}

export class FluxDriver implements Driver {
  readonly name = 'flux'
  private readonly client: KubeClient
  /** the Deployment's readiness is judged exactly as the kubernetes driver does */
  private readonly rollout: KubernetesDriver

  constructor(
    private readonly cfg: FluxConfig,
    client?: KubeClient,
  ) {
    this.client = client ?? new KubeClient(cfg)
    const { owner: _o, container: _c, type: _t, ...conn } = cfg
    this.rollout = new KubernetesDriver({ ...conn, type: 'kubernetes', gitops: 'ignore', argocdInstanceLabel: 'argocd.argoproj.io/instance' }, this.client)
  }

  private deploymentPath(req: CutoverRequest): string {
    return `/apis/apps/v1/namespaces/${enc(this.cfg.namespace ?? req.namespace)}/deployments/${enc(this.cfg.name.replaceAll('{service}', req.service))}`
  }

  async apply(req: CutoverRequest): Promise<ApplyOutcome> {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await this.client.request('GET', this.deploymentPath(req))
      if (r.status !== 200) return { kind: 'failed', reason: `GET deployment: ${statusMessage(r)}` }
      const dep = r.body as Deployment
      let owner: FluxOwner | undefined = this.cfg.owner
      if (owner === undefined) {
        const o = gitopsOwner(dep.metadata, '')
        if (o.kind !== 'flux') return { kind: 'failed', reason: `deployment ${dep.metadata.name} carries no Flux labels (kustomize.toolkit.fluxcd.io/* or helm.toolkit.fluxcd.io/*): set actuator.driver.owner` }
        owner = o.owner
      }
      const what = `${owner.kind} ${owner.namespace}/${owner.name}`

      // 1. suspend first: a reconcile between our patch and the suspension would undo the patch
      const s = await this.suspend(owner)
      if (s.kind === 'failed') return s
      const resume = `flux resume ${owner.kind === 'Kustomization' ? 'kustomization' : 'helmrelease'} ${owner.name} -n ${owner.namespace}`
      const note = `${what} ${s.kind === 'suspended' ? 'suspended' : 'already suspended'}; Git still points at the bad version ${req.failed.artifact}: fix Git, then \`${resume}\``
      const followUp = `${req.namespace}/${req.service} was rolled back with Flux ${what} suspended, but Git still points at the bad version ${req.failed.artifact}: revert the change in Git, then \`${resume}\``

      // 2. the image
      const containers = dep.spec.template.spec?.containers ?? []
      if (templateRuns(dep.spec.template, req.target)) return { kind: 'already-applied', detail: `deployment ${dep.metadata.name} already runs ${req.target.artifact}; ${note}`, followUp }
      const failedIsImage = looksLikeImage(req.failed.artifact)
      if (failedIsImage && !templateRuns(dep.spec.template, { artifact: req.failed.artifact, version: req.failed.version })) {
        return { kind: 'failed', reason: `stale decision: deployment ${dep.metadata.name} runs ${containers.map((c) => c.image).join(',')}, neither the failed ${req.failed.artifact} nor the target; ${note}` }
      }
      const idx =
        this.cfg.container !== undefined
          ? containers.flatMap((c, i) => (c.name === this.cfg.container ? [i] : []))
          : failedIsImage
            ? containers.flatMap((c, i) => (c.image === req.failed.artifact ? [i] : []))
            : containers.length === 1
              ? [0]
              : []
      if (idx.length === 0) {
        return { kind: 'failed', reason: `cannot tell which container of deployment ${dep.metadata.name} to set to ${req.target.artifact} (set actuator.driver.container); ${note}` }
      }
      const patch = [
        { op: 'test', path: '/metadata/resourceVersion', value: dep.metadata.resourceVersion },
        ...idx.map((i) => ({ op: 'replace', path: `/spec/template/spec/containers/${i}/image`, value: req.target.artifact })),
      ]
      const p = await this.client.request('PATCH', this.deploymentPath(req), patch, 'application/json-patch+json')
      if (p.status === 200) {
        return { kind: 'applied', detail: `deployment ${dep.metadata.name} container ${idx.map((i) => containers[i]!.name).join(',')} set to ${req.target.artifact}; ${note}`, followUp }
      }
      // 409 Conflict / 422 failed test op: someone changed the Deployment since our GET; re-read and retry
      if (p.status !== 409 && p.status !== 422) return { kind: 'failed', reason: `PATCH deployment: ${statusMessage(p)}; ${note}` }
    }
    return { kind: 'failed', reason: 'deployment kept changing under the patch (3 resourceVersion conflicts)' }
  }

  private async suspend(owner: FluxOwner): Promise<{ kind: 'suspended' | 'already' } | { kind: 'failed'; reason: string }> {
    const g = await this.client.request('GET', ownerPath(owner))
    if (g.status !== 200) return { kind: 'failed', reason: `GET ${owner.kind} ${owner.namespace}/${owner.name}: ${statusMessage(g)}` }
    if ((g.body as { spec?: { suspend?: boolean } } | undefined)?.spec?.suspend === true) return { kind: 'already' }
    const p = await this.client.request('PATCH', ownerPath(owner), { spec: { suspend: true } }, 'application/merge-patch+json')
    return p.status === 200 ? { kind: 'suspended' } : { kind: 'failed', reason: `suspend ${owner.kind} ${owner.namespace}/${owner.name}: ${statusMessage(p)}` }
  }

  awaitReady(req: CutoverRequest, timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome> {
    return this.rollout.awaitReady(req, timeoutMs, signal)
  }
}
