/**
 * Kubernetes drivers: a Deployment rolled back the way `kubectl rollout undo` does it, and an Argo
 * Rollout aborted then undone the same way. Both pick the ReplicaSet whose pod template carries the
 * verified artifact's image (not simply the previous revision) and JSON-patch the owner's
 * spec.template to it, with a `test` op on metadata.resourceVersion for optimistic concurrency (a
 * concurrent change makes the patch fail with 409/422; the driver re-reads and retries, 3 times).
 *
 * Requests (RBAC): deployments get/patch, replicasets list; rollouts get/patch, rollouts/status patch.
 * Level-triggered: when the owner's template already runs the target image nothing is patched.
 *
 * An object Argo CD or Flux deploys (their tracking annotation or labels, see gitops.ts) is refused
 * before anything is patched unless `gitops: ignore`: they would put the bad version back.
 */
import type { DriverConfig } from '../config.js'
import { gitopsOwner, gitopsRefusal } from './gitops.js'
import { KubeClient, statusMessage } from './kube.js'
import type { ApplyOutcome, CutoverRequest, Driver, ReadyOutcome } from './types.js'
import { sleep } from './types.js'

type KubeDriverConfig = Extract<DriverConfig, { type: 'kubernetes' | 'argo-rollouts' }>

interface Container {
  name: string
  image?: string
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }
  spec?: { containers?: Container[] }
}
interface KubeObject {
  metadata: {
    name: string
    uid?: string
    resourceVersion?: string
    generation?: number
    labels?: Record<string, string>
    annotations?: Record<string, string>
    ownerReferences?: { uid: string; controller?: boolean }[]
  }
  spec: { replicas?: number; paused?: boolean; selector?: { matchLabels?: Record<string, string> }; template: PodTemplate }
  status?: {
    observedGeneration?: number | string
    replicas?: number
    updatedReplicas?: number
    availableReplicas?: number
    readyReplicas?: number
    phase?: string
    abort?: boolean
  }
}

/** Deployment annotations `kubectl rollout undo` keeps from the Deployment instead of copying from the ReplicaSet. */
const KEEP_ANNOTATIONS = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  'deployment.kubernetes.io/revision',
  'deployment.kubernetes.io/revision-history',
  'deployment.kubernetes.io/desired-replicas',
  'deployment.kubernetes.io/max-replicas',
  'deprecated.deployment.rollback.to',
])

export function templateRuns(t: PodTemplate | undefined, target: CutoverRequest['target']): boolean {
  return (t?.spec?.containers ?? []).some((c) => c.image === target.artifact || (target.digest !== undefined && c.image?.endsWith(`@${target.digest}`) === true))
}

const enc = encodeURIComponent

/** a version-only failed artifact (no deployment event carried the image) cannot be compared with images */
const looksLikeImage = (a: string) => a.includes('/') || a.includes('@') || a.includes(':')

export class KubernetesDriver implements Driver {
  readonly name: string
  private readonly client: KubeClient
  private readonly kind: 'deployment' | 'rollout'

  constructor(
    private readonly cfg: KubeDriverConfig,
    client?: KubeClient,
  ) {
    this.kind = cfg.type === 'kubernetes' ? 'deployment' : 'rollout'
    this.name = cfg.type
    this.client = client ?? new KubeClient(cfg)
  }

  private ns(req: CutoverRequest): string {
    return this.cfg.namespace ?? req.namespace
  }

  private objectPath(req: CutoverRequest): string {
    const name = this.cfg.name.replaceAll('{service}', req.service)
    return this.kind === 'deployment'
      ? `/apis/apps/v1/namespaces/${enc(this.ns(req))}/deployments/${enc(name)}`
      : `/apis/argoproj.io/v1alpha1/namespaces/${enc(this.ns(req))}/rollouts/${enc(name)}`
  }

  private async get(req: CutoverRequest): Promise<KubeObject | string> {
    const r = await this.client.request('GET', this.objectPath(req))
    return r.status === 200 ? (r.body as KubeObject) : `GET ${this.kind}: ${statusMessage(r)}`
  }

  async apply(req: CutoverRequest): Promise<ApplyOutcome> {
    let aborted = false
    for (let attempt = 1; attempt <= 3; attempt++) {
      const obj = await this.get(req)
      if (typeof obj === 'string') return { kind: 'failed', reason: obj }
      if (this.cfg.gitops === 'refuse') {
        const owner = gitopsOwner(obj.metadata, this.cfg.argocdInstanceLabel)
        if (owner.kind !== 'none') return { kind: 'failed', reason: gitopsRefusal(`${this.kind} ${obj.metadata.name}`, owner) }
      }
      if (templateRuns(obj.spec.template, req.target)) return { kind: 'already-applied', detail: `${this.kind} ${obj.metadata.name} already runs ${req.target.artifact}` }
      // a decision about an artifact the object no longer runs is stale (a newer deploy happened): do not act on it
      if (looksLikeImage(req.failed.artifact) && !templateRuns(obj.spec.template, { artifact: req.failed.artifact, version: req.failed.version })) {
        const now = (obj.spec.template.spec?.containers ?? []).map((c) => c.image).join(',')
        return { kind: 'failed', reason: `stale decision: ${this.kind} ${obj.metadata.name} runs ${now}, neither the failed ${req.failed.artifact} nor the target` }
      }
      if (this.kind === 'deployment' && obj.spec.paused) return { kind: 'failed', reason: 'you cannot rollback a paused deployment' }
      const selector = this.cfg.labelSelector ?? Object.entries(obj.spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',')
      const list = await this.client.request('GET', `/apis/apps/v1/namespaces/${enc(this.ns(req))}/replicasets?labelSelector=${enc(selector)}`)
      if (list.status !== 200) return { kind: 'failed', reason: `list replicasets: ${statusMessage(list)}` }
      const revAnn = this.kind === 'deployment' ? 'deployment.kubernetes.io/revision' : 'rollout.argoproj.io/revision'
      const owned = ((list.body as { items?: KubeObject[] }).items ?? []).filter(
        (rs) => obj.metadata.uid === undefined || (rs.metadata.ownerReferences ?? []).some((o) => o.uid === obj.metadata.uid && o.controller !== false),
      )
      const match = owned
        .filter((rs) => templateRuns(rs.spec.template, req.target))
        .sort((a, b) => Number(b.metadata.annotations?.[revAnn] ?? 0) - Number(a.metadata.annotations?.[revAnn] ?? 0))[0]
      if (!match) return { kind: 'failed', reason: `no ReplicaSet of ${this.kind} ${obj.metadata.name} carries the verified artifact ${req.target.artifact}` }

      if (this.kind === 'rollout' && !aborted) {
        // abort first: traffic goes back to the stable ReplicaSet at once; it changes resourceVersion, so re-read
        const abort = await this.abort(req)
        if (abort) return { kind: 'failed', reason: abort }
        aborted = true
        attempt--
        continue
      }
      const template = structuredClone(match.spec.template)
      if (template.metadata?.labels) delete template.metadata.labels['pod-template-hash']
      const patch: unknown[] = [
        { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
        { op: 'replace', path: '/spec/template', value: template },
      ]
      if (this.kind === 'deployment') {
        const annotations: Record<string, string> = {}
        for (const [k, v] of Object.entries(obj.metadata.annotations ?? {})) if (KEEP_ANNOTATIONS.has(k)) annotations[k] = v
        for (const [k, v] of Object.entries(match.metadata.annotations ?? {})) if (!KEEP_ANNOTATIONS.has(k)) annotations[k] = v
        patch.push({ op: 'replace', path: '/metadata/annotations', value: annotations })
      }
      const r = await this.client.request('PATCH', this.objectPath(req), patch, 'application/json-patch+json')
      if (r.status === 200) return { kind: 'applied', detail: `${this.kind} ${obj.metadata.name} -> ReplicaSet ${match.metadata.name} (revision ${match.metadata.annotations?.[revAnn] ?? '?'})` }
      // 409 Conflict / 422 failed test op: someone changed the object since our GET; re-read and retry.
      // A 422 that names causes is not a conflict but a refusal (a ValidatingAdmissionPolicy, an
      // invalid template): retrying cannot help and would hide the reason (found on a real kube-apiserver)
      if (r.status !== 409 && !(r.status === 422 && !hasCauses(r.body))) return { kind: 'failed', reason: `PATCH ${this.kind}: ${statusMessage(r)}` }
    }
    return { kind: 'failed', reason: `${this.kind} kept changing under the patch (3 resourceVersion conflicts)` }
  }

  /** Argo `abort`: merge patch on the status subresource, falling back to the main resource on 404. Returns an error or undefined. */
  private async abort(req: CutoverRequest): Promise<string | undefined> {
    const body = { status: { abort: true } }
    let r = await this.client.request('PATCH', `${this.objectPath(req)}/status`, body, 'application/merge-patch+json')
    if (r.status === 404) r = await this.client.request('PATCH', this.objectPath(req), body, 'application/merge-patch+json')
    return r.status === 200 ? undefined : `abort rollout: ${statusMessage(r)}`
  }

  async awaitReady(req: CutoverRequest, timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome> {
    const end = Date.now() + timeoutMs
    let last = 'no status yet'
    while (!signal.aborted) {
      try {
        const obj = await this.get(req)
        if (typeof obj === 'string') last = obj
        else {
          const verdict = this.readiness(obj, req)
          if (verdict === undefined) return { kind: 'ready', detail: `${this.kind} ${obj.metadata.name} ready` }
          last = verdict
        }
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() + this.cfg.pollInterval > end) break
      await sleep(this.cfg.pollInterval, signal)
    }
    return { kind: 'not-ready', reason: `readiness gates did not pass within ${timeoutMs} ms: ${last}` }
  }

  /** undefined when the rollout's readiness gates pass, else what is missing */
  private readiness(obj: KubeObject, req: CutoverRequest): string | undefined {
    if (!templateRuns(obj.spec.template, req.target)) return `template no longer runs ${req.target.artifact}`
    const want = obj.spec.replicas ?? 1
    const s = obj.status ?? {}
    if (this.kind === 'deployment') {
      if ((s.observedGeneration as number | undefined ?? 0) < (obj.metadata.generation ?? 0)) return `observedGeneration ${String(s.observedGeneration)} < generation ${obj.metadata.generation}`
      if ((s.updatedReplicas ?? 0) < want) return `updatedReplicas ${s.updatedReplicas ?? 0}/${want}`
      if ((s.replicas ?? 0) > (s.updatedReplicas ?? 0)) return `${(s.replicas ?? 0) - (s.updatedReplicas ?? 0)} old replicas pending termination`
      if ((s.availableReplicas ?? 0) < want) return `availableReplicas ${s.availableReplicas ?? 0}/${want}`
      return undefined
    }
    if (s.phase !== undefined) return s.phase === 'Healthy' ? undefined : `phase ${s.phase}`
    if ((s.updatedReplicas ?? 0) < want || (s.availableReplicas ?? 0) < want) return `updated ${s.updatedReplicas ?? 0} available ${s.availableReplicas ?? 0} of ${want}`
    return undefined
  }
}

/**
 * A Kubernetes Status with `details.causes`: the API server refused the content (validation or an
 * admission policy). A failed JSON-patch `test` op (our resourceVersion guard) is a bare 422 Status.
 */
function hasCauses(body: unknown): boolean {
  const causes = (body as { details?: { causes?: unknown } } | undefined)?.details?.causes
  return Array.isArray(causes) && causes.length > 0
}
