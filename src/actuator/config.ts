import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * Configuration of the actuator stage (section `actuator:` of the YAML file). Owned by src/actuator.
 *
 * Connection to the Kubernetes API (drivers kubernetes and argo-rollouts): `server` defaults to the
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

export const driverSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('kubernetes'), ...kubeConnection }),
  z.strictObject({ type: z.literal('argo-rollouts'), ...kubeConnection }),
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

export const actuatorSchema = z
  .strictObject({
    /** how the cutover is made; required to run the actuator (no default: see drivers/index.ts) */
    driver: driverSchema.optional(),
    /** trusted public keys (PEM) for decision signatures */
    verifyKeys: z.array(z.string().min(1)).default([]),
    /** trusted public keys (PEM) for artifact verification records */
    artifactKeys: z.array(z.string().min(1)).default([]),
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
