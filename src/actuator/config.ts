import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * Configuration of the actuator stage (section `actuator:` of the YAML file). Owned by src/actuator.
 *
 * Connection to the Kubernetes API (drivers kubernetes, argo-rollouts and flux): `server` defaults to the
 * in-cluster address (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT) with the service
 * account token and CA; a plain http:// server (a local proxy, the tests' fake API) needs neither.
 */
const kubeConnection = {
  server: z.string().url().optional(),
  tokenFile: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount/token'),
  caFile: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'),
  /** namespace override; default: the decision's namespace */
  namespace: z.string().min(1).optional(),
  /** object name; "{service}" is replaced by the decision's service name */
  name: z.string().min(1).default('{service}'),
  /** ReplicaSet label selector; default: the object's spec.selector.matchLabels */
  labelSelector: z.string().min(1).optional(),
  pollInterval: duration().default(1000),
  /** per-request timeout */
  requestTimeout: duration().default(10_000),
}

/**
 * GitOps ownership of the patched object (drivers kubernetes and argo-rollouts): an object Argo CD or
 * Flux deploys is reverted by them (self-heal, next reconcile), so by default the driver refuses it
 * (the decision halts and pages with the reason); `ignore` patches anyway. See drivers/gitops.ts.
 */
const gitopsGuard = {
  gitops: z.enum(['refuse', 'ignore']).default('refuse'),
  /**
   * Argo CD's resource-tracking label when it tracks by label (argocd-cm application.instanceLabelKey);
   * the tracking-id annotation (Argo CD's default tracking method) is always recognised. The default
   * label app.kubernetes.io/instance is not assumed: Helm charts set it too.
   */
  argocdInstanceLabel: z.string().min(1).default('argocd.argoproj.io/instance'),
}

export const driverSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('kubernetes'), ...kubeConnection, ...gitopsGuard }),
  z.strictObject({ type: z.literal('argo-rollouts'), ...kubeConnection, ...gitopsGuard }),
  z.strictObject({
    type: z.literal('argocd'),
    /** Argo CD API server, e.g. https://argocd-server.argocd.svc */
    server: z.string().url(),
    /** file holding the bearer token (an Argo CD account or project token) */
    tokenFile: z.string().min(1).default('/var/run/secrets/pullback/argocd-token'),
    /** CA bundle for the API server's certificate (https) */
    caFile: z.string().min(1).optional(),
    /** Application name ("{service}" is replaced); default: the Application whose managed resources hold the workload */
    application: z.string().min(1).optional(),
    /** namespace of the Application (Argo CD "apps in any namespace"); default: Argo CD's own */
    appNamespace: z.string().min(1).optional(),
    /** the workload inside the Application: kind, name ("{service}" is replaced), namespace (default: the decision's) */
    resource: z
      .strictObject({
        kind: z.enum(['Deployment', 'Rollout']).default('Deployment'),
        name: z.string().min(1).default('{service}'),
        namespace: z.string().min(1).optional(),
      })
      .prefault({}),
    /** rollback with prune (resources absent from the old revision are deleted) */
    prune: z.boolean().default(false),
    pollInterval: duration().default(2000),
    requestTimeout: duration().default(10_000),
  }),
  z.strictObject({
    type: z.literal('flux'),
    ...kubeConnection,
    /** the Flux object that applies the workload; default: from the workload's Flux labels */
    owner: z
      .strictObject({
        kind: z.enum(['Kustomization', 'HelmRelease']),
        name: z.string().min(1),
        namespace: z.string().min(1),
      })
      .optional(),
    /** container whose image is set; default: the containers running the failed artifact */
    container: z.string().min(1).optional(),
  }),
  z.strictObject({
    type: z.literal('exec'),
    /** argv; run without a shell. Contract: see src/actuator/drivers/exec.ts */
    command: z.array(z.string().min(1)).min(1),
    timeout: duration().default(300_000),
    /**
     * what a resumed decision does about the previous attempt's command still running (an orphan of
     * a killed actuator, same host): `wait` for it to end (at most until its own timeout would have
     * expired, then kill it), or `kill` its process group at once. Either way the command never runs
     * twice at the same time for one decision.
     */
    orphans: z.enum(['wait', 'kill']).default('wait'),
  }),
  z.strictObject({
    type: z.literal('simulated'),
    /** time a simulated cutover takes */
    delay: duration().default(200),
  }),
])

export const pagingTargetSchema = z.strictObject({
  type: z.enum(['generic', 'slack', 'pagerduty']),
  url: z.string().url(),
  /** PagerDuty Events v2 integration key (required for type pagerduty) */
  routingKey: z.string().min(1).optional(),
})

/** a Kubernetes namespace name (an RFC 1123 label) */
const namespaceName = z.string().max(63).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name (RFC 1123 label: lower-case letters, digits, -)')

export const actuatorSchema = z
  .strictObject({
    /** how the cutover is made; required to run the actuator (no default: see drivers/index.ts) */
    driver: driverSchema.optional(),
    /**
     * the namespaces whose workloads pullback may roll back (drivers kubernetes, argo-rollouts, flux).
     * `pullback k8s rbac` generates the actuator's Roles for exactly these namespaces
     * (src/actuator/rbac.ts), and refuses to generate anything while it is empty (unless
     * `driver.namespace` pins one). The actuator refuses (audits and pages) a rollback decided for
     * a namespace not listed here before any API request (src/actuator/scope.ts); the API server's
     * 403 is the second line. An empty list is not checked.
     */
    namespaces: z.array(namespaceName).default([]),
    /**
     * flux driver without `driver.owner`: the namespaces of the Kustomizations / HelmReleases named by
     * the workloads' Flux labels (often flux-system; HelmReleases often beside the workload). RBAC only.
     */
    fluxNamespaces: z.array(namespaceName).default([]),
    /** trusted public keys (PEM) for decision signatures */
    verifyKeys: z.array(z.string().min(1)).default([]),
    /** trusted public keys (PEM) for artifact verification records */
    artifactKeys: z.array(z.string().min(1)).default([]),
    /**
     * private key (PEM, Ed25519) sealing the actuator's state records (decision progress, freezes,
     * re-arms) and its rollback announcements. Set: records that do not verify against this key's
     * public half or `stateKeys` are ignored. Unset: the state topic is trusted as it is (warned at
     * start; see docs/threat-model.md). Recommended in every deployment with a Kafka cluster.
     */
    stateKey: z.string().min(1).optional(),
    /** further trusted public keys for state records: operators' re-arm keys, the previous state key during a rotation */
    stateKeys: z.array(z.string().min(1)).default([]),
    /** how long to wait for the engine's recovered/not-recovered verdict after the rollback event */
    recoveryTimeout: duration().default(300_000),
    /**
     * a rollback decision issued longer ago than this is not acted on (counted as stale): a new
     * consumer group replaying an old decisions topic must not roll anything back. A decision
     * whose cutover already started is resumed whatever its age.
     */
    maxDecisionAge: duration().default(900_000),
    /**
     * how long a decision's cutover claim stays valid without renewal: the owning actuator renews it
     * every third of this while its driver works; another actuator resumes the decision only after
     * the claim lapsed (or, on the same host, once the owner's process is provably gone)
     */
    claimLease: duration().default(15_000),
    /** how long the cutover's readiness gates may take */
    readinessTimeout: duration().default(120_000),
    paging: z
      .array(pagingTargetSchema)
      .default([])
      .refine((ts) => ts.every((t) => t.type !== 'pagerduty' || t.routingKey !== undefined), 'a pagerduty target needs routingKey'),
    pageRetry: z
      .strictObject({
        attempts: z.number().int().positive().default(5),
        initial: duration().default(500),
        max: duration().default(10_000),
      })
      .prefault({}),
    /** append every audit record as one JSON line to this file */
    auditFile: z.string().min(1).optional(),
    /** compacted single-partition topic holding per-decision phase records and per-service freezes */
    stateTopic: z.string().min(1).default('pullback.actuator.state'),
    /** escalation records (keyed by service) */
    escalationsTopic: z.string().min(1).default('pullback.escalations'),
    /** artifacts promoted before this many newest per service are still kept; listing shows this many */
    keepArtifacts: z.number().int().min(3).default(3),
  })
  .prefault({})

export type ActuatorConfig = z.output<typeof actuatorSchema>
export type DriverConfig = z.output<typeof driverSchema>
export type PagingTarget = z.output<typeof pagingTargetSchema>
