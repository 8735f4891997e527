/**
 * Deployment events: what CI/CD and Argo CD notifications announce on `pullback.deployments`, what
 * the actuator announces after a cutover (kind `rollback`), and what the engine infers when a new
 * `service.version` appears in telemetry for a known service (source `telemetry`).
 */
export interface DeploymentEvent {
  namespace: string
  service: string
  version: string
  /** unix ms when the deployment started */
  time: number
  kind: 'deploy' | 'rollback'
  /** image reference / digest; optional */
  artifact?: string
  /** the version being replaced, when the announcer knows it */
  previousVersion?: string
  /** free text: 'argocd', 'github-actions', 'pullback-actuator', 'telemetry', ... */
  source: string
  /** for kind rollback: the decision that caused it */
  decisionId?: string
}
