/**
 * Which namespaces the actuator acts in. The Kubernetes drivers (kubernetes, argo-rollouts, flux)
 * act on the decision's namespace unless `driver.namespace` pins one; `actuator.namespaces` lists
 * the namespaces whose workloads pullback may roll back, and `pullback k8s rbac` grants Roles there
 * only. The actuator refuses a decision outside that list itself (before any API request) so that a
 * decision it cannot execute is audited and paged with the reason, rather than surfacing as a 403
 * from the API server half way through a cutover.
 *
 * No check ('any') when the list is empty (RBAC is then the only boundary, as documented), when
 * `driver.namespace` pins the namespace (every cutover goes there), and for drivers that do not talk
 * to the Kubernetes API (argocd: Argo CD's own RBAC; exec: the command's).
 */
import type { ActuatorConfig } from './config.js'

export type NamespaceScope = { kind: 'any' } | { kind: 'listed'; namespaces: ReadonlySet<string> }

export function namespaceScope(cfg: Pick<ActuatorConfig, 'driver' | 'namespaces'>): NamespaceScope {
  const d = cfg.driver
  if (d === undefined || (d.type !== 'kubernetes' && d.type !== 'argo-rollouts' && d.type !== 'flux')) return { kind: 'any' }
  if (d.namespace !== undefined || cfg.namespaces.length === 0) return { kind: 'any' }
  return { kind: 'listed', namespaces: new Set(cfg.namespaces) }
}

/** undefined when the actuator may act in `namespace`; otherwise the reason it refuses. */
export function outOfScope(scope: NamespaceScope, namespace: string): string | undefined {
  if (scope.kind === 'any' || scope.namespaces.has(namespace)) return undefined
  return `namespace ${JSON.stringify(namespace)} is not in actuator.namespaces (${[...scope.namespaces].join(', ')}): this actuator rolls back nothing there; add it (and regenerate the Roles with \`pullback k8s rbac\`) or let another actuator own it`
}
