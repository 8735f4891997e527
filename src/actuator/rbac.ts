/**
 * Least privilege for the actuator (issue 13 item 10): the Kubernetes Roles its driver needs, for
 * exactly the namespaces pullback manages, generated from the config (`pullback k8s rbac`).
 *
 * Contract: every rule below is a request the configured driver makes (the comment names it), and
 * every request the driver makes is covered by a rule; test/k8s/rbac.test.ts records the drivers'
 * HTTP requests against the fake API servers and checks both directions, and the same for the
 * shipped k8s/rbac.yaml. A driver change that adds a request fails that test until the table here
 * grows with it.
 *
 * Nothing is cluster-wide: every request the drivers make is namespaced, so the output is one Role +
 * RoleBinding per namespace and no ClusterRole. Namespaces come from `actuator.driver.namespace`
 * (every request goes there) or the explicit `actuator.namespaces`; engine.services is only checked
 * against them (a contract for a service pullback cannot roll back is reported), never a source: a
 * grant is a decision, not an inference. System namespaces (kube-*) are refused unless allowed.
 *
 * The argocd driver calls the Argo CD API server with an Argo CD token, not the Kubernetes API: it
 * needs no Kubernetes RBAC at all (the actuator's token can stay unmounted); its Argo CD RBAC
 * (argocd-rbac-cm policy.csv lines) is generated instead. exec and simulated need nothing.
 */
import { Document, type YAMLMap, type YAMLSeq } from 'yaml'
import type { PullbackConfig } from '../config/schema.js'
import type { DriverConfig } from './config.js'

export interface PolicyRule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
  resourceNames?: string[]
}

/** one rule with the driver request that needs it */
export interface ExplainedRule {
  rule: PolicyRule
  why: string
}

export interface NamespaceGrant {
  namespace: string
  rules: ExplainedRule[]
}

export interface Subject {
  name: string
  namespace: string
}

export type RbacPlan =
  | { kind: 'roles'; driver: string; grants: NamespaceGrant[]; notes: string[] }
  /** the driver makes no Kubernetes API request: nothing to grant (argocd: Argo CD policy lines instead) */
  | { kind: 'no-kubernetes-access'; driver: string; reason: string; argocdPolicy?: string[]; notes: string[] }
  /** the config does not say enough to grant least privilege; `path` names the setting to fix */
  | { kind: 'invalid'; path: string; message: string }

export interface RbacOptions {
  /** replaces the namespaces derived from the config (CLI --namespaces) */
  namespaces?: string[]
  /** grant in kube-* namespaces too (refused by default) */
  allowSystemNamespaces?: boolean
}

const SYSTEM = /^kube-/
const unique = (xs: string[]) => [...new Set(xs)]

/** a fixed object name (no "{service}") is granted by name (resourceNames); a pattern cannot be */
function names(pattern: string): Pick<PolicyRule, 'resourceNames'> {
  return pattern.includes('{service}') ? {} : { resourceNames: [pattern] }
}

/** the rules of one driver in the namespace of its workloads */
function workloadRules(d: Extract<DriverConfig, { type: 'kubernetes' | 'argo-rollouts' | 'flux' }>): ExplainedRule[] {
  const byName = names(d.name)
  switch (d.type) {
    case 'kubernetes':
      return [
        { rule: { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'], ...byName }, why: 'GET the Deployment (apply, readiness polls); PATCH its template (JSON patch with a resourceVersion test)' },
        { rule: { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['list'] }, why: "LIST the Deployment's ReplicaSets by label selector (the one carrying the verified image)" },
      ]
    case 'argo-rollouts':
      return [
        { rule: { apiGroups: ['argoproj.io'], resources: ['rollouts'], verbs: ['get', 'patch'], ...byName }, why: "GET the Rollout; PATCH its template, and its status when the CRD has no status subresource (abort fallback)" },
        { rule: { apiGroups: ['argoproj.io'], resources: ['rollouts/status'], verbs: ['patch'], ...byName }, why: 'PATCH rollouts/status {abort: true} (what `kubectl argo rollouts abort` does)' },
        { rule: { apiGroups: ['apps'], resources: ['replicasets'], verbs: ['list'] }, why: "LIST the Rollout's ReplicaSets by label selector" },
      ]
    case 'flux':
      return [{ rule: { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'], ...byName }, why: "GET the Deployment (its Flux labels, readiness polls); PATCH the containers' image" }]
  }
}

const FLUX_KINDS = {
  Kustomization: { apiGroups: ['kustomize.toolkit.fluxcd.io'], resources: ['kustomizations'] },
  HelmRelease: { apiGroups: ['helm.toolkit.fluxcd.io'], resources: ['helmreleases'] },
} as const

function fluxOwnerRule(kind: keyof typeof FLUX_KINDS, name?: string): ExplainedRule {
  return {
    rule: { apiGroups: [...FLUX_KINDS[kind].apiGroups], resources: [...FLUX_KINDS[kind].resources], verbs: ['get', 'patch'], ...(name !== undefined ? { resourceNames: [name] } : {}) },
    why: `GET the ${kind} that applies the workload; PATCH {spec: {suspend: true}} (what \`flux suspend\` does)`,
  }
}

/**
 * Argo CD RBAC for the argocd driver's token [source: argo-cd server/application/application.go:
 * Get, List (per item), GetManifests, GetResource enforce `get`; Patch `update`; Rollback `sync`].
 * Objects are <project>/<application> (<project>/<namespace>/<application> for apps in any namespace);
 * the project is not in pullback's config, so it is `*`.
 */
function argocdPolicy(d: Extract<DriverConfig, { type: 'argocd' }>, account: string): string[] {
  const app = (d.application ?? '*').replaceAll('{service}', '*')
  const object = d.appNamespace !== undefined ? `*/${d.appNamespace}/${app}` : `*/${app}`
  const role = `role:${account}`
  return [
    `p, ${role}, applications, get, ${object}, allow`,
    `p, ${role}, applications, update, ${object}, allow`,
    `p, ${role}, applications, sync, ${object}, allow`,
    `g, ${account}, ${role}`,
  ]
}

/** The Roles the configured driver needs, per namespace; or why there are none; or what to fix. */
export function rbacPlan(cfg: Pick<PullbackConfig, 'actuator' | 'engine'>, opts: RbacOptions = {}, account = 'pullback-actuator'): RbacPlan {
  const d = cfg.actuator.driver
  if (d === undefined) return { kind: 'invalid', path: 'actuator.driver', message: 'actuator.driver is not set: the Roles follow from the driver (kubernetes, argo-rollouts, flux)' }
  if (d.type === 'exec' || d.type === 'simulated') {
    return { kind: 'no-kubernetes-access', driver: d.type, reason: `the ${d.type} driver makes no Kubernetes API request of its own${d.type === 'exec' ? ' (grant its command its own credentials)' : ''}`, notes: [] }
  }
  if (d.type === 'argocd') {
    return {
      kind: 'no-kubernetes-access',
      driver: d.type,
      reason: `the argocd driver talks to the Argo CD API server (${d.server}) with the token in ${d.tokenFile}, never to the Kubernetes API: no Role, and the actuator's service account token need not be mounted`,
      argocdPolicy: argocdPolicy(d, account),
      notes: ['Argo CD RBAC: add the lines below to argocd-rbac-cm policy.csv, with an account `' + account + '` (argocd-cm accounts.' + account + ': apiKey); narrow `*` to your project'],
    }
  }

  let namespaces: string[]
  let source: string
  if (opts.namespaces !== undefined && opts.namespaces.length > 0) {
    namespaces = unique(opts.namespaces)
    source = '--namespaces'
  } else if (d.namespace !== undefined) {
    namespaces = [d.namespace]
    source = 'actuator.driver.namespace'
  } else {
    namespaces = unique(cfg.actuator.namespaces)
    source = 'actuator.namespaces'
  }
  const contracts = unique(Object.keys(cfg.engine.services).map((k) => k.split('/')[0]!).filter((n) => n !== ''))
  if (namespaces.length === 0) {
    const hint = contracts.length > 0 ? ` (engine.services has contracts in: ${contracts.join(', ')})` : ''
    return { kind: 'invalid', path: 'actuator.namespaces', message: `actuator.namespaces is empty: list the namespaces whose workloads pullback may roll back with the ${d.type} driver${hint}; no Role is granted without it` }
  }
  const notes: string[] = [`namespaces from ${source}`]
  if (d.namespace !== undefined && source === '--namespaces' && namespaces.some((n) => n !== d.namespace)) {
    notes.push(`actuator.driver.namespace is ${d.namespace}: the driver sends every request there, so grants elsewhere are unused`)
  }
  for (const n of contracts) if (!namespaces.includes(n) && d.namespace === undefined) notes.push(`engine.services has a contract in namespace ${n}, which is not managed: its rollbacks will be refused by the API server (403)`)

  const byNs = new Map<string, ExplainedRule[]>()
  const add = (ns: string, rules: ExplainedRule[]) => byNs.set(ns, [...(byNs.get(ns) ?? []), ...rules])
  for (const ns of namespaces) add(ns, workloadRules(d))
  if (d.type === 'flux') {
    if (d.owner !== undefined) add(d.owner.namespace, [fluxOwnerRule(d.owner.kind, d.owner.name)])
    else {
      const owners = unique(cfg.actuator.fluxNamespaces)
      if (owners.length === 0) {
        return {
          kind: 'invalid',
          path: 'actuator.fluxNamespaces',
          message: "actuator.fluxNamespaces is empty: the flux driver without actuator.driver.owner suspends the Kustomization or HelmRelease named by the Deployment's Flux labels; list the namespaces they live in (often flux-system), or set actuator.driver.owner",
        }
      }
      for (const ns of owners) add(ns, [fluxOwnerRule('Kustomization'), fluxOwnerRule('HelmRelease')])
    }
  }
  const system = [...byNs.keys()].filter((n) => SYSTEM.test(n))
  if (system.length > 0 && opts.allowSystemNamespaces !== true) {
    return { kind: 'invalid', path: source === '--namespaces' ? '--namespaces' : source, message: `refusing to grant patch rights in ${system.join(', ')}: a pod-template patch there runs any image under any service account of the control plane (pass --allow-system-namespaces if pullback really manages it)` }
  }
  const grants = [...byNs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([namespace, rules]) => ({ namespace, rules }))
  return { kind: 'roles', driver: d.type, grants, notes }
}

export interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
  [k: string]: unknown
}

const LABELS = { 'app.kubernetes.io/name': 'pullback', 'app.kubernetes.io/component': 'actuator' }

/** One Role and one RoleBinding (to the actuator's service account) per namespace of the plan. */
export function rbacManifests(grants: NamespaceGrant[], subject: Subject, roleName = subject.name): Manifest[] {
  return grants.flatMap((g) => [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: roleName, namespace: g.namespace, labels: LABELS }, rules: g.rules.map((r) => r.rule) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: roleName, namespace: g.namespace, labels: LABELS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
      subjects: [{ kind: 'ServiceAccount', name: subject.name, namespace: subject.namespace }],
    },
  ])
}

/**
 * The plan as YAML for `kubectl apply -f -`: a header naming the source, each rule preceded by the
 * driver request that needs it. No plan without Roles yields objects: the header says why (and, for
 * argocd, carries the Argo CD policy lines as comments, since argocd-rbac-cm is Argo CD's to own).
 */
export function renderRbac(plan: Exclude<RbacPlan, { kind: 'invalid' }>, subject: Subject, source: string): string {
  const head = [
    `Generated by \`pullback k8s rbac\` from ${source}: the actuator's RBAC for the ${plan.driver} driver (src/actuator/rbac.ts).`,
    `Subject: ServiceAccount ${subject.namespace}/${subject.name}. Nothing cluster-wide: every request the driver makes is namespaced.`,
    ...plan.notes.map((n) => `note: ${n}`),
  ]
  if (plan.kind === 'no-kubernetes-access') {
    const lines = [...head, `No Kubernetes RBAC: ${plan.reason}.`, ...(plan.argocdPolicy ?? []).map((l) => `  ${l}`)]
    return `${lines.map((l) => `# ${l}`).join('\n')}\n`
  }
  head.push(`Namespaces: ${plan.grants.map((g) => g.namespace).join(', ')}.`)
  const docs = rbacManifests(plan.grants, subject).map((m, i) => {
    const doc = new Document(m)
    if (i === 0) doc.commentBefore = head.map((l) => ` ${l}`).join('\n')
    if (m.kind === 'Role') {
      const grant = plan.grants[i / 2]!
      const rules = doc.get('rules', true) as YAMLSeq<YAMLMap>
      rules.items.forEach((item, j) => {
        item.commentBefore = ` ${grant.rules[j]!.why}`
        for (const key of ['apiGroups', 'resources', 'verbs', 'resourceNames']) {
          const seq = item.get(key, true) as YAMLSeq | undefined
          if (seq) seq.flow = true
        }
      })
    }
    return doc.toString({ lineWidth: 0, flowCollectionPadding: false })
  })
  return docs.join('---\n')
}
