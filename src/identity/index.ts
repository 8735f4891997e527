/**
 * The identity stage from config (src/identity/README.md): a pod index fed by the Kubernetes API and
 * the check in front of the pipeline. With `identity.mode: off` it is inert: `wrap` returns the
 * consumer unchanged and start() only logs the warning that identity is unchecked.
 */
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import { silentLogger } from '../common/logger.js'
import type { TelemetryConsumer } from '../receivers/consumer.js'
import { IdentityCheck, identityConsumer, type IdentityCheckStats, type IdentityMode } from './check.js'
import type { IdentityConfig } from './config.js'
import { PodApi } from './kube-pods.js'
import { PodIndex, type PodIndexStats } from './pods.js'

export { IdentityCheck, identityConsumer, CONTRADICTION_ATTRIBUTE, peerIp, REJECT_REASONS } from './check.js'
export type { IdentityReason, IdentityResult, IdentityCheckStats, PodLookup } from './check.js'
export { PodIndex } from './pods.js'
export type { PodInfo, PodIndexStats } from './pods.js'
export { identitySchema, type IdentityConfig } from './config.js'

export interface IdentityStageOptions {
  config: IdentityConfig
  logger?: Logger
  /** retry hint of the refusal before the first pod list (receivers.retryAfter) */
  retryAfterMs?: number
  /** $NODE_NAME by default (tests pass their own) */
  env?: Record<string, string | undefined>
}

export interface IdentityStats {
  mode: IdentityMode
  check?: IdentityCheckStats
  pods?: PodIndexStats
}

export class IdentityStage implements Component {
  readonly name = 'identity'
  readonly mode: IdentityMode
  readonly check: IdentityCheck | undefined
  readonly pods: PodIndex | undefined
  readonly nodeName: string | undefined
  private readonly logger: Logger
  private started = false

  constructor(private readonly o: IdentityStageOptions) {
    const c = o.config
    this.mode = c.mode
    this.logger = o.logger ?? silentLogger
    const env = o.env ?? process.env
    this.nodeName = c.nodeName ?? (env.NODE_NAME !== undefined && env.NODE_NAME !== '' ? env.NODE_NAME : undefined)
    if (c.mode === 'off') return
    // building the API client checks the configuration (in-cluster or apiServer) at construction: fail fast
    const api = new PodApi({ apiServer: c.apiServer, tokenFile: c.tokenFile, caFile: c.caFile, nodeName: this.nodeName, requestTimeoutMs: c.requestTimeout })
    this.pods = new PodIndex({
      api,
      maxPods: c.maxPods,
      labelKeys: [...c.labels.service, ...c.labels.version, ...c.forwarders.flatMap((f) => Object.keys(f.labels))],
      syncTimeoutMs: c.syncTimeout,
      watchTimeoutMs: c.watchTimeout,
      backoffMinMs: c.backoff.min,
      backoffMaxMs: c.backoff.max,
      logger: this.logger,
    })
    this.check = new IdentityCheck({
      mode: c.mode,
      pods: this.pods,
      serviceLabels: c.labels.service,
      versionLabels: c.labels.version,
      forwarders: c.forwarders,
      ...(o.retryAfterMs !== undefined ? { retryAfterMs: o.retryAfterMs } : {}),
    })
  }

  /** The consumer the receivers hand telemetry to: the check in front of `next` (unchanged when off). */
  wrap(next: TelemetryConsumer): TelemetryConsumer {
    return this.check === undefined ? next : identityConsumer(this.check, next)
  }

  /** ready unless enforce is waiting for its first pod list (every OTLP request is refused until then) */
  readiness(): { ok: boolean; detail: string } {
    if (this.pods === undefined) return { ok: true, detail: 'off' }
    const s = this.pods.stats()
    if (s.synced) return { ok: true, detail: `${this.mode}, ${s.pods} pods` }
    return { ok: this.mode !== 'enforce', detail: `${this.mode}, pod index not synced (${s.failures} failures)` }
  }

  /**
   * The monotonic counters, flat, for self-metrics (`pullback.component.events{pullback.component="identity"}`):
   * `rejected.<reason>`, `flagged.<reason>`, `filled`, `accepted`, `unassociated.<kafka|forwarder>`,
   * `unverified.<service|version>`, `not_synced`, and the pod index's `pods.{lists,resyncs,failures,overflow,events}`.
   */
  events(): Record<string, number> {
    const out: Record<string, number> = {}
    const c = this.check?.stats()
    if (c !== undefined) {
      for (const [k, v] of Object.entries(c.rejected)) out[`rejected.${k}`] = v
      for (const [k, v] of Object.entries(c.flagged)) out[`flagged.${k}`] = v
      for (const [k, v] of Object.entries(c.unassociated)) out[`unassociated.${k}`] = v
      for (const [k, v] of Object.entries(c.unverified)) out[`unverified.${k}`] = v
      out.accepted = c.accepted
      out.filled = c.filled
      out.not_synced = c.notSynced
    }
    const p = this.pods?.stats()
    if (p !== undefined) for (const k of ['lists', 'resyncs', 'failures', 'overflow', 'events'] as const) out[`pods.${k}`] = p[k]
    return out
  }

  stats(): IdentityStats {
    return { mode: this.mode, ...(this.check ? { check: this.check.stats() } : {}), ...(this.pods ? { pods: this.pods.stats() } : {}) }
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    if (this.pods === undefined) {
      this.logger.warn(
        { mode: 'off' },
        'identity.mode is off: service.name, namespace and version are whatever the sender writes; anyone who reaches the OTLP ports can make any service roll back (set identity.mode: enforce in Kubernetes; docs/threat-model.md)',
      )
      return
    }
    if (this.nodeName === undefined) this.logger.warn({}, 'identity: NODE_NAME is not set and identity.nodeName is unset: watching every pod of the cluster')
    this.logger.info({ mode: this.mode, node: this.nodeName, forwarders: this.o.config.forwarders.length }, 'identity: starting the pod index')
    await this.pods.start()
  }

  /** Idempotent; safe without start(). */
  async shutdown(): Promise<void> {
    await this.pods?.shutdown()
  }
}
