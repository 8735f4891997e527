/**
 * Who deploys a workload, read from its metadata: Argo CD and Flux mark every object they apply.
 * A driver that patches such an object fights them: Argo CD's self-heal re-applies Git within
 * seconds, Flux at its next reconcile. The kubernetes and argo-rollouts drivers therefore refuse
 * these objects by default (`gitops: refuse`); the argocd and flux drivers act through the owner.
 *
 * Markers [sources: Argo CD docs, user-guide/resource_tracking ("annotation" is the default tracking
 * method since 3.0; "label" uses application.instanceLabelKey, app.kubernetes.io/instance by default);
 * Flux kustomize-controller and helm-controller, which label what they apply]:
 *   Argo CD  annotation argocd.argoproj.io/tracking-id = "<app>:<group>/<Kind>:<namespace>/<name>"
 *            (the app part is "<app namespace>_<app>" for apps in any namespace);
 *            or the configured instance label (value: the Application name)
 *   Flux     labels kustomize.toolkit.fluxcd.io/name + /namespace (a Kustomization),
 *            helm.toolkit.fluxcd.io/name + /namespace (a HelmRelease)
 */

export type GitOpsOwner =
  | { kind: 'none' }
  | { kind: 'argocd'; application: string; appNamespace?: string; evidence: string }
  | { kind: 'flux'; owner: { kind: 'Kustomization' | 'HelmRelease'; name: string; namespace: string }; evidence: string }

export interface ObjectMeta {
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

export const ARGOCD_TRACKING_ID = 'argocd.argoproj.io/tracking-id'

export function gitopsOwner(meta: ObjectMeta | undefined, argocdInstanceLabel: string): GitOpsOwner {
  const labels = meta?.labels ?? {}
  const annotations = meta?.annotations ?? {}
  const tracking = annotations[ARGOCD_TRACKING_ID]
  if (tracking !== undefined && tracking !== '') {
    const app = tracking.split(':')[0] ?? ''
    const sep = app.indexOf('_')
    return {
      kind: 'argocd',
      ...(sep > 0 ? { application: app.slice(sep + 1), appNamespace: app.slice(0, sep) } : { application: app }),
      evidence: `annotation ${ARGOCD_TRACKING_ID}=${tracking}`,
    }
  }
  const instance = labels[argocdInstanceLabel]
  if (instance !== undefined && instance !== '') return { kind: 'argocd', application: instance, evidence: `label ${argocdInstanceLabel}=${instance}` }
  for (const [group, kind] of [
    ['kustomize.toolkit.fluxcd.io', 'Kustomization'],
    ['helm.toolkit.fluxcd.io', 'HelmRelease'],
  ] as const) {
    const name = labels[`${group}/name`]
    const namespace = labels[`${group}/namespace`]
    if (name !== undefined && namespace !== undefined) {
      return { kind: 'flux', owner: { kind, name, namespace }, evidence: `labels ${group}/name=${name}, ${group}/namespace=${namespace}` }
    }
  }
  return { kind: 'none' }
}

/** The refusal of a direct patch, with what to do instead. */
export function gitopsRefusal(what: string, o: Exclude<GitOpsOwner, { kind: 'none' }>): string {
  if (o.kind === 'argocd') {
    return (
      `${what} is deployed by Argo CD (Application ${o.appNamespace ? `${o.appNamespace}/` : ''}${o.application}; ${o.evidence}): ` +
      'a direct patch is reverted by self-heal or the next sync. Use actuator.driver.type argocd, or set actuator.driver.gitops: ignore'
    )
  }
  return (
    `${what} is deployed by Flux (${o.owner.kind} ${o.owner.namespace}/${o.owner.name}; ${o.evidence}): ` +
    'a direct patch is reverted at the next reconcile. Use actuator.driver.type flux, or set actuator.driver.gitops: ignore'
  )
}
