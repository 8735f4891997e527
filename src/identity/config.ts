/**
 * `identity:` (src/identity/README.md): binding telemetry identity to the sending pod.
 * Validated by zod like every section; unknown keys are errors.
 */
import { z } from 'zod'
import { duration } from '../config/duration.js'

export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'

const positiveDuration = (def: number) =>
  duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(def)

const labelKeys = (def: string[]) => z.array(z.string().min(1)).min(1).default(def)

/** Pods that forward other pods' telemetry (a node-local Collector agent): selected by namespace and labels. */
export const forwarderSchema = z.strictObject({
  namespace: z.string().min(1),
  /** every listed label must be on the pod; empty: every pod of the namespace */
  labels: z.record(z.string(), z.string()).default({}),
})

export const identitySchema = z
  .strictObject({
    /**
     * off: identity is whatever the sender writes (a loud warning at start);
     * flag: contradicting resources are counted and marked (`pullback.identity.contradiction`), kept;
     * enforce: they are dropped, counted by reason and answered with OTLP partial success.
     * Missing attributes are filled from the pod in flag and enforce.
     */
    mode: z.enum(['off', 'flag', 'enforce']).default('off'),
    /** unset: in-cluster (KUBERNETES_SERVICE_HOST/PORT, https); an http:// URL (kubectl proxy, tests) gets no token */
    apiServer: z.url().optional(),
    tokenFile: z.string().min(1).default(`${DEFAULT_SERVICE_ACCOUNT_DIR}/token`),
    caFile: z.string().min(1).default(`${DEFAULT_SERVICE_ACCOUNT_DIR}/ca.crt`),
    /**
     * only this node's pods are watched (`fieldSelector=spec.nodeName=...`, the DaemonSet pattern);
     * unset: $NODE_NAME; neither: every pod of the cluster (a warning at start)
     */
    nodeName: z.string().min(1).optional(),
    /** pods held in the index at most; more are not indexed, counted (`overflow`) and their telemetry is unassociated */
    maxPods: z.number().int().positive().default(10_000),
    /** pod label keys holding service.name and service.version, first present wins */
    labels: z
      .strictObject({
        service: labelKeys(['app.kubernetes.io/name']),
        version: labelKeys(['app.kubernetes.io/version']),
      })
      .prefault({}),
    /** pods whose own telemetry is forwarded telemetry of others (Collector agents): associated per resource by k8s.pod.uid / k8s.pod.ip */
    forwarders: z.array(forwarderSchema).default([]),
    /** start() waits this long for the first pod list; afterwards the index keeps trying in the background */
    syncTimeout: positiveDuration(10_000),
    /** one list page or the opening of a watch must answer within this */
    requestTimeout: positiveDuration(30_000),
    /** a watch is re-opened (from its last resourceVersion) after this; the API server's own limit is 30-60 min */
    watchTimeout: positiveDuration(5 * 60_000),
    /** reconnect backoff after a failure: doubles from `min` up to `max` */
    backoff: z.strictObject({ min: positiveDuration(500), max: positiveDuration(30_000) }).prefault({}),
  })
  .prefault({})

export type IdentityConfig = z.output<typeof identitySchema>
export type ForwarderConfig = z.output<typeof forwarderSchema>
