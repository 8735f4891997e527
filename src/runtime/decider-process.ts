/**
 * The decider role assembled as a process (`pullback decider`, src/decider/README.md "Broker path"):
 * a DeciderService in the group `<groupPrefix>.decider` on the partials topic, the deployment-event
 * receiver (its own group per instance: every decider sees every event and keeps its services'),
 * the signed DecisionPublisher, and the admin server (/livez, /readyz, /status) unless headless.
 *
 * Start: topics -> publisher -> decider (joins the group) -> deployments -> history -> admin ->
 * self-metrics.
 * Shutdown (SIGTERM), through ShutdownController within `runtime.shutdownTimeout`, as the sidecar's:
 * not-ready -> deployments -> decider (writes its state, leaves the group: a clean revoke) ->
 * publisher drain (unacknowledged decisions fail the step) -> close (history, self-metrics,
 * admin). A step that fails or overruns is reported and the next runs; the report is `degraded`
 * then and `pullback decider` exits 1.
 */
import { generateKeyPairSync } from 'node:crypto'
import type { Component } from '../common/lifecycle.js'
import { systemClock, type Clock } from '../common/clock.js'
import type { Logger } from '../common/logger.js'
import type { PullbackConfig } from '../config/schema.js'
import type { Verdict } from '../engine/verdict.js'
import { resolveInstanceId } from '../kafka/config.js'
import type { KafkaTransport } from '../kafka/types.js'
import { createPublisher } from '../publish/index.js'
import { drainFailure, type DecisionPublisher } from '../publish/publisher.js'
import { signerFromKey, type Signer } from '../publish/signing.js'
import { DeploymentsReceiver } from '../receivers/deployments/receiver.js'
import { DeciderService } from '../decider/service.js'
import { SelfMetrics } from '../publish/self-metrics.js'
import { EngineTracker } from '../publish/self-metrics/engine-tracker.js'
import { AdminServer } from './admin.js'
import { resolveTelemetry } from './config.js'
import { adminEvents, deciderEvents } from './events.js'
import { consumerCheck, failing, ok, ShutdownController, type ShutdownReport } from './health.js'
import { HistoryStage } from '../history/stage.js'
import { configuredServices, ladder } from '../calibrate/ladder.js'

export interface DeciderProcessOptions {
  config: PullbackConfig
  transport: KafkaTransport
  logger: Logger
  /** overrides publish.signingKey */
  signer?: Signer
  /** no admin server (tests) */
  headless?: boolean
  /** decider consumer group override (tests) */
  groupId?: string
  /** the wall clock that bounds telemetry time in the engine's store (signals.maxClockSkew); null: none (recorded telemetry in tests); default the system clock */
  clock?: Clock | null
}

const NOT_CONNECTED = { lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: false }

export class DeciderProcess implements Component {
  readonly name = 'decider-process'
  readonly service: DeciderService
  readonly publisher: DecisionPublisher
  readonly deployments: DeploymentsReceiver | undefined
  /** the watched deployments and verdicts of the partitions this member owns, for /status and the metrics */
  readonly tracker: EngineTracker
  /** pullback's own hourly history from the partials (src/history); undefined when history.enabled is false */
  readonly history: HistoryStage | undefined
  private readonly admin: AdminServer | undefined
  private readonly metrics: SelfMetrics | undefined
  private started = false
  private readonly shutdownCtl: ShutdownController

  constructor(private readonly o: DeciderProcessOptions) {
    const cfg = o.config
    let signer = o.signer
    if (signer === undefined && cfg.publish.signingKey === undefined && o.transport.kind === 'embedded') {
      signer = signerFromKey(generateKeyPairSync('ed25519').privateKey)
      o.logger.warn({ keyId: signer.keyId }, 'embedded mode without publish.signingKey: decisions are signed with a key generated for this process')
    }
    this.publisher = createPublisher(cfg, o.transport, o.logger.child({ component: 'publisher' }), signer)
    this.service = new DeciderService({
      config: cfg,
      transport: o.transport,
      logger: o.logger.child({ component: 'decider' }),
      ...(o.groupId !== undefined ? { groupId: o.groupId } : {}),
      ...(o.clock !== null ? { clock: o.clock ?? systemClock } : {}),
      onTick: (res) => {
        this.tracker.observe(res.statuses, res.verdicts)
        for (const v of res.verdicts) this.decide(v)
      },
    })
    this.deployments = cfg.receivers.deployments.enabled
      ? new DeploymentsReceiver({
          transport: o.transport,
          topic: cfg.kafka.topics.deployments,
          groupId: `${cfg.kafka.groupPrefix}.deployments.${resolveInstanceId(cfg.kafka).id}`,
          onEvent: (e) => this.service.deployment(e),
          logger: o.logger.child({ component: 'deployments' }),
        })
      : undefined
    this.tracker = new EngineTracker({ clock: o.clock ?? systemClock })
    this.history = HistoryStage.for({ config: cfg, transport: o.transport, logger: o.logger, clock: o.clock ?? systemClock, role: { kind: 'partials' } })
    this.admin = o.headless !== true && cfg.runtime.admin.enabled ? new AdminServer({ config: cfg.runtime.admin, log: o.logger.child({ component: 'admin' }) }) : undefined
    // the deciders are where decisions happen in the distributed layout: the dashboard's signals and decisions come from here
    this.metrics = o.headless !== true ? new SelfMetrics({ telemetry: resolveTelemetry(cfg.runtime.telemetry), log: o.logger.child({ component: 'self-metrics' }) }) : undefined
    this.shutdownCtl = new ShutdownController({ timeoutMs: cfg.runtime.shutdownTimeout, log: o.logger.child({ component: 'shutdown' }) })
      .add('not-ready', async () => this.admin?.markDraining())
      .add('deployments', async () => this.deployments?.shutdown())
      .add('decider', async () => this.service.shutdown())
      .add('publisher', async () => {
        const failure = drainFailure(await this.publisher.drain())
        if (failure !== undefined) throw failure
      })
      .add('close', async () => {
        // after the decisions: the open hours are written (bounded)
        await this.history?.shutdown()
        await this.metrics?.shutdown()
        await this.admin?.shutdown()
      })
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const t = this.o.config.kafka.topics
    const admin = this.o.transport.admin()
    try {
      await admin.ensureTopics([{ topic: t.decisions }, { topic: t.incidents }, { topic: t.deployments }])
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
    await this.publisher.start()
    await this.service.start()
    await this.deployments?.start()
    await this.history?.start()
    if (this.admin !== undefined) {
      const stall = this.o.config.receivers.kafkaSpans.stallTimeout
      this.admin.addReadinessCheck('decider', consumerCheck(() => this.service.stats().consumer ?? NOT_CONNECTED, { stallAfterMs: stall }))
      const dep = this.deployments
      if (dep !== undefined) this.admin.addReadinessCheck(dep.name, consumerCheck(() => dep.stats().consumer ?? NOT_CONNECTED, { stallAfterMs: stall }))
      this.admin.addReadinessCheck('publisher', () => {
        const s = this.publisher.stats()
        return s.depth < this.o.config.publish.maxQueue ? ok(`${s.depth} queued`) : failing(`decision queue full (${s.depth})`)
      })
      this.admin.setStatusProvider(() => ({ ...this.tracker.status(), decider: this.service.stats() }))
      const cfg = this.o.config
      this.admin.addStatusSection('readiness', () => ladder(cfg, (this.o.clock ?? systemClock).now(), [...configuredServices(cfg), '*']))
      const history = this.history
      if (history !== undefined) this.admin.addStatusSection('history', () => history.stats())
      await this.admin.start()
    }
    if (this.metrics !== undefined) {
      this.metrics.registerEngine(() => this.tracker.snapshot())
      this.metrics.registerEvents('decider', () => deciderEvents(this.service.stats()))
      this.metrics.registerConsumer('decider', () => this.service.stats().consumer ?? NOT_CONNECTED)
      const dep = this.deployments
      if (dep !== undefined) this.metrics.registerConsumer(dep.name, () => dep.stats().consumer ?? NOT_CONNECTED)
      const adminServer = this.admin
      if (adminServer !== undefined) this.metrics.registerEvents('admin', () => adminEvents(adminServer.security()))
      await this.metrics.start()
    }
    this.o.logger.info({ transport: this.o.transport.kind, admin: this.admin?.address() }, 'decider process started')
  }

  /** Idempotent. */
  async shutdown(): Promise<void> {
    await this.drain()
  }

  /** The ordered drain (file comment); idempotent, never rejects; resolves with its report. */
  drain(): Promise<ShutdownReport> {
    if (!this.started) return Promise.resolve({ result: 'clean', ms: 0, steps: [] })
    return this.shutdownCtl.run()
  }

  private decide(v: Verdict): void {
    const outcome = this.publisher.publish(v)
    this.o.logger.info(
      { verdict: v.kind, id: v.id, service: v.namespace ? `${v.namespace}/${v.service}` : v.service, version: v.version, dryRun: v.dryRun, publish: outcome.kind, reason: v.reason },
      'decision',
    )
  }
}
