/**
 * The live sidecar: receivers -> pipeline (normalize, signals, engine) -> decision publisher, plus
 * the admin server and self-metrics. This file only assembles components; each stage's behaviour
 * lives in its own folder.
 *
 * Start order (publishers before receivers): topics -> publisher -> span-coverage share ->
 * partials publisher -> decider member -> history -> state (restored before the first evaluation)
 * -> evaluation scheduler or announcement ticker -> identity's pod index -> receivers -> admin ->
 * self-metrics (src/runtime/README.md "The sidecar"). Shutdown (SIGTERM) runs the steps below
 * through ShutdownController within runtime.shutdownTimeout: `not-ready` (admin answers draining),
 * `receivers` (OTLP stops accepting and drains in-flight requests; the Kafka consumers commit and
 * leave), `final-tick` (the open pass, a last tick, partials flushed with a leave, the decider
 * member writes its state and leaves), `publisher` (pending decisions drained), `close` (history,
 * state, span coverage, admin client, self-metrics, admin server, signal store).
 */
import { systemClock, type Clock } from '../common/clock.js'
import { errorMessage } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { NormalizerHooks } from '../normalize/normalizer.js'
import { SpanCoverageTopic } from '../state/span-coverage-topic.js'
import type { PullbackConfig } from '../config/schema.js'
import type { Verdict } from '../engine/verdict.js'
import { resolveInstanceId } from '../kafka/config.js'
import type { KafkaTransport } from '../kafka/types.js'
import { createPublisher } from '../publish/index.js'
import { drainFailure, type DecisionPublisher } from '../publish/publisher.js'
import { SelfMetrics } from '../publish/self-metrics.js'
import { EngineTracker } from '../publish/self-metrics/engine-tracker.js'
import type { Signer } from '../publish/signing.js'
import { createReceivers, type Receivers } from '../receivers/index.js'
import type { ReceiverStats } from '../receivers/stats.js'
import { AdminServer } from './admin.js'
import { resolveTelemetry } from './config.js'
import { consumerCheck, failing, memoryGuardCheck, ok, roundTripCheck, ShutdownController, type ShutdownReport } from './health.js'
import { Pipeline, type TickResult } from './pipeline.js'
import { EvaluationScheduler } from './evaluation-scheduler.js'
import { resolveState } from '../state/config.js'
import { StateStore } from '../state/store.js'
import { IngestNode } from '../partials/ingest.js'
import { adminEvents, deciderEvents, normalizerEvents, partialsEvents, securityEvents, spanCoverageEvents } from './events.js'
import { PartialsPublisher } from '../partials/publisher.js'
import { DeciderService, partialsTopicSpec } from '../decider/service.js'
import type { TelemetryConsumer } from '../receivers/consumer.js'
import { HistoryStage } from '../history/stage.js'
import { configuredServices, ladder } from '../calibrate/ladder.js'
import { IdentityStage } from '../identity/index.js'
import { AlignedTicker } from '../common/ticker.js'

export interface SidecarOptions {
  config: PullbackConfig
  transport: KafkaTransport
  logger: Logger
  /** overrides publish.signingKey (the demo generates one) */
  signer?: Signer
  clock?: Clock
  /** observers for the demo's live view; called after each tick */
  onTick?: (result: TickResult, now: number) => void
  /** no admin server / self-metrics (the demo, tests) */
  headless?: boolean
}

const NOT_CONNECTED = { lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: false }

const ingestStats = (s: ReceiverStats) => ({ accepted: s.acceptedSpans + s.acceptedPoints, rejected: { ...s.rejected, partial: s.partial } })

export class Sidecar implements Component {
  readonly name = 'sidecar'
  readonly pipeline: Pipeline
  readonly receivers: Receivers
  /**
   * the signed decision publisher; undefined on an ingest-only node (`decider.distributed` without
   * `decider.enabled`), which decides nothing and therefore loads no signing key
   */
  readonly publisher: DecisionPublisher | undefined
  readonly tracker: EngineTracker
  /** the engine's persisted watch state (runtime.state); undefined when disabled or distributed */
  readonly state: StateStore | undefined
  /** distributed: this node's pre-aggregation and its publisher */
  readonly ingest: IngestNode | undefined
  readonly partials: PartialsPublisher | undefined
  /** distributed with decider.enabled: the in-process decider group member */
  readonly decider: DeciderService | undefined
  /** pullback's own hourly history (src/history); undefined when off or on an ingest-only node */
  readonly history: HistoryStage | undefined
  /** telemetry identity bound to the sending pod (identity.mode; src/identity) */
  readonly identity: IdentityStage
  private readonly admin: AdminServer | undefined
  private readonly metrics: SelfMetrics | undefined
  private readonly clock: Clock
  private readonly shutdownCtl: ShutdownController
  /** the ingest node's announcements, on the clock's tickInterval edges (common/ticker.ts) */
  private ticker: AlignedTicker | undefined
  /** the pipeline's ticks as bounded event-loop turns (runtime.evaluation); undefined on an ingest-only node */
  private evaluation: EvaluationScheduler | undefined
  private tickFailures = 0
  private started = false
  private readonly coverageShare: SpanCoverageTopic | undefined

  constructor(private readonly o: SidecarOptions) {
    const cfg = o.config
    this.clock = o.clock ?? systemClock
    const st = cfg.runtime.state
    const distributed = cfg.decider.distributed
    if (st.enabled && !distributed) {
      const { topic, scope } = resolveState(st, cfg.kafka.groupPrefix)
      this.state = new StateStore({ transport: o.transport, config: st, topic, scope, groupPrefix: cfg.kafka.groupPrefix, logger: o.logger.child({ component: 'state' }), clock: this.clock })
    }
    // span-coverage judgements shared with the other sidecars and kept across restarts (src/state/span-coverage-topic.ts)
    if (st.spanCoverage.enabled && cfg.normalize.sourcePreference.coverage.enabled) {
      this.coverageShare = new SpanCoverageTopic({
        transport: o.transport,
        topic: st.spanCoverage.topic ?? `${cfg.kafka.groupPrefix}.span-coverage`,
        groupPrefix: cfg.kafka.groupPrefix,
        logger: o.logger.child({ component: 'span-coverage' }),
        maxServices: cfg.normalize.sourcePreference.coverage.maxResources,
      })
    }
    const normLog = o.logger.child({ component: 'normalize' })
    // a service's span source changing is a lifecycle event: one line per change, never per span
    const normalizeHooks: NormalizerHooks = {
      ...(this.coverageShare !== undefined ? { coverageShare: this.coverageShare } : {}),
      spanCoverage: (c) =>
        normLog.warn(
          { service: c.service, spans: c.spans, requests: c.requests, intervals: c.intervals },
          c.state === 'sampled'
            ? 'SERVER spans hold fewer requests than the request metrics (sampled): the metrics count for this service'
            : 'SERVER spans hold the request metrics\' requests again: the spans count for this service',
        ),
    }
    this.pipeline = new Pipeline({
      engine: cfg.engine,
      clock: this.clock,
      signals: cfg.signals,
      normalize: cfg.normalize,
      normalizeHooks,
      ...(this.state !== undefined ? { state: { sink: this.state, minWriteIntervalMs: st.minWriteInterval, versions: { maxServices: st.versions.maxServices, maxPerService: st.versions.maxPerService, refreshMs: st.versions.refresh } } } : {}),
    })
    this.publisher = cfg.decider.distributed && !cfg.decider.enabled ? undefined : createPublisher(cfg, o.transport, o.logger.child({ component: 'publisher' }), o.signer)
    let consumer: TelemetryConsumer = this.pipeline
    if (distributed) {
      const instance = resolveInstanceId(cfg.kafka).id
      const partials = new PartialsPublisher({
        producer: o.transport.producer(),
        topic: cfg.kafka.topics.partials,
        partitions: cfg.decider.partitions,
        maxQueue: cfg.decider.maxQueue,
        logger: o.logger.child({ component: 'partials' }),
      })
      this.partials = partials
      // a live node's stream ends only at shutdown (final-tick flushes it): a leave, not replay's end of stream
      this.ingest = new IngestNode({ node: instance, normalize: cfg.normalize, normalizeHooks, bucketMs: this.pipeline.store.bucketMs, lateness: cfg.engine.lateness, emit: (b) => (b.final ? partials.leave(b) : partials.publish(b)) })
      consumer = this.ingest
      if (cfg.decider.enabled) {
        this.decider = new DeciderService({
          config: cfg,
          transport: o.transport,
          logger: o.logger.child({ component: 'decider' }),
          clock: this.clock,
          onTick: (res, now) => this.onDecided(res, now),
        })
      }
    }
    const decider = this.decider
    this.history = HistoryStage.for({
      config: cfg,
      transport: o.transport,
      logger: o.logger,
      clock: this.clock,
      role: !distributed ? { kind: 'store', view: () => this.pipeline.store } : cfg.decider.enabled ? { kind: 'partials' } : undefined,
    })
    consumer = this.history?.tap(consumer) ?? consumer
    this.identity = new IdentityStage({ config: cfg.identity, logger: o.logger.child({ component: 'identity' }), retryAfterMs: cfg.receivers.retryAfter })
    // an ingest-only node has no engine to tell of a deployment (the deciders read the events): its
    // receiver would join a consumer group, fetch every event and drop it
    const ingestOnly = distributed && !cfg.decider.enabled
    if (ingestOnly && cfg.receivers.deployments.enabled) o.logger.info({ component: 'receivers' }, 'ingest-only node (decider.distributed without decider.enabled): the deployments receiver is not started; the deciders consume the deployment events')
    this.receivers = createReceivers({
      config: ingestOnly ? { ...cfg.receivers, deployments: { ...cfg.receivers.deployments, enabled: false } } : cfg.receivers,
      kafka: cfg.kafka,
      // the identity check sits where the Collector's k8sattributes processor would: receivers -> identity -> pipeline
      consumer: this.identity.wrap(consumer),
      transport: o.transport,
      onDeployment: (e) => (decider !== undefined ? decider.deployment(e) : distributed ? undefined : this.pipeline.deployment(e)),
      // every sidecar instance needs every deployment event: its own group, stable across restarts (kafka.instanceId)
      instanceId: resolveInstanceId(cfg.kafka).id,
      logger: o.logger,
    })
    this.tracker = new EngineTracker({ clock: this.clock })
    if (o.headless !== true) {
      this.admin = cfg.runtime.admin.enabled ? new AdminServer({ config: cfg.runtime.admin, log: o.logger.child({ component: 'admin' }) }) : undefined
      this.metrics = new SelfMetrics({ telemetry: resolveTelemetry(cfg.runtime.telemetry), log: o.logger.child({ component: 'self-metrics' }) })
    }
    this.shutdownCtl = new ShutdownController({ timeoutMs: cfg.runtime.shutdownTimeout, log: o.logger.child({ component: 'shutdown' }) })
  }

  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    const { config: cfg, transport, logger } = this.o
    const t = cfg.kafka.topics
    const admin = transport.admin()
    await admin.ensureTopics([
      { topic: t.decisions },
      { topic: t.incidents },
      { topic: t.deployments },
      ...(cfg.receivers.kafkaSpans.enabled ? [{ topic: t.spans }] : []),
      ...(cfg.decider.distributed ? [partialsTopicSpec(cfg)] : []),
    ])
    await this.publisher?.start()
    // in the background: until the topic is read, each normalizer judges alone
    await this.coverageShare?.start()
    if (this.partials !== undefined && this.ingest !== undefined) {
      await this.partials.start()
      this.partials.hello(this.ingest.name)
    }
    await this.decider?.start()
    await this.history?.start()
    // the engine's watches of an earlier incarnation come back before the first evaluation
    if (this.state !== undefined) {
      await this.state.start()
      const loaded = await this.state.load()
      if (loaded.kind === 'loaded') {
        const r = this.pipeline.restore(loaded.records, this.clock.now())
        logger.info({ records: loaded.records.length, watches: r?.watches, pending: r?.pending, services: r?.services, skipped: r?.skipped, ms: loaded.ms }, 'engine state restored')
      }
    }
    if (this.ingest !== undefined) {
      this.ticker = new AlignedTicker(() => this.tick(), cfg.runtime.tickInterval, this.clock)
      this.ticker.start()
    } else {
      // each tick as bounded turns: the OTLP receivers answer between them (evaluation-scheduler.ts)
      this.evaluation = new EvaluationScheduler({
        runner: this.pipeline,
        clock: this.clock,
        intervalMs: cfg.runtime.tickInterval,
        watermark: (now) => now - cfg.engine.lateness,
        turns: cfg.runtime.evaluation,
        onPass: (res, now, pass) => {
          this.metrics?.recordEvaluation(pass.busyMs)
          this.onDecided(res, now)
        },
        onFailure: (err, failures) => {
          if (failures === 1 || failures % 60 === 0) logger.error({ err: errorMessage(err), failures }, 'evaluation tick failed')
        },
      })
      await this.evaluation.start()
    }
    // the pod index before the receivers: enforce refuses (retryably) what it cannot judge yet
    await this.identity.start()
    for (const r of this.receivers.all) await r.start()
    if (this.admin) {
      for (const r of [this.receivers.grpc, this.receivers.http]) {
        if (r) this.admin.addReadinessCheck(r.name, () => (r.port > 0 ? ok(`listening on ${r.port}`) : failing('not listening')))
      }
      if (this.identity.mode !== 'off') {
        const identity = this.identity
        this.admin.addReadinessCheck(identity.name, () => {
          const r = identity.readiness()
          return r.ok ? ok(r.detail) : failing(r.detail)
        })
      }
      if (this.receivers.grpc || this.receivers.http) {
        const guard = this.receivers.memoryGuard
        this.admin.addReadinessCheck('memory', memoryGuardCheck(() => guard.state()))
      }
      const spans = this.receivers.kafkaSpans
      if (spans) {
        this.admin.addReadinessCheck(spans.name, () => {
          const h = spans.health()
          if (h.status === 'ok') return ok('consuming')
          return failing(h.status === 'stalled' ? `stalled for ${h.stalledForMs} ms` : h.status === 'undecodable' ? h.detail : h.status)
        })
      }
      const deployments = this.receivers.deployments
      if (deployments) {
        this.admin.addReadinessCheck(
          deployments.name,
          consumerCheck(() => deployments.stats().consumer ?? NOT_CONNECTED, { stallAfterMs: cfg.receivers.kafkaSpans.stallTimeout }),
        )
      }
      if (transport.kind === 'kafka') this.admin.addReadinessCheck('kafka', roundTripCheck('kafka', () => admin.listTopics(), { minIntervalMs: 10_000 }))
      const publisher = this.publisher
      if (publisher !== undefined) {
        this.admin.addReadinessCheck('publisher', () => {
          const s = publisher.stats()
          return s.depth < cfg.publish.maxQueue ? ok(`${s.depth} queued`) : failing(`decision queue full (${s.depth})`)
        })
      }
      this.admin.setStatusProvider(() => this.tracker.status())
      const history = this.history
      this.admin.addStatusSection('readiness', () => ladder(cfg, this.clock.now(), [...new Set([...configuredServices(cfg), ...(history?.seenServices() ?? [])])].sort().concat('*')))
      if (history !== undefined) this.admin.addStatusSection('history', () => history.stats())
      // a service that never gets a request signal: the histograms it sends that were not read (normalize.requestMetrics)
      const ingest = this.ingest
      this.admin.addStatusSection('unreadHistograms', () => (ingest !== undefined ? ingest.unreadHistograms() : this.pipeline.normalizer.unreadHistograms()))
      await this.admin.start()
    }
    if (this.metrics) {
      for (const r of [this.receivers.grpc, this.receivers.http]) {
        if (r) this.metrics.registerIngest(r.name, () => ingestStats(r.stats()))
      }
      const spans = this.receivers.kafkaSpans
      if (spans) {
        this.metrics.registerIngest(spans.name, () => {
          const s = spans.stats()
          return { accepted: s.acceptedSpans, rejected: { ...s.poison, partial: s.rejectedSpans } }
        })
      }
      // Kafka span records decoded in the worker pool, and batches handed back for redelivery when the pool refused one
      if (spans && this.receivers.workers !== undefined) {
        this.metrics.registerEvents(`${spans.name}.workers`, () => {
          const s = spans.stats()
          return { decoded: s.workerDecodes, handed_back: s.workerHandbacks }
        })
      }
      for (const r of [this.receivers.kafkaSpans, this.receivers.deployments]) {
        if (r) this.metrics.registerConsumer(r.name, () => r.stats().consumer ?? NOT_CONNECTED)
      }
      this.metrics.registerSignalStore(() => {
        const s = this.pipeline.store.stats()
        return { series: s.series, overflow: s.overflowed }
      })
      this.metrics.registerEngine(() => this.tracker.snapshot())
      for (const r of [this.receivers.grpc, this.receivers.http]) {
        if (r) this.metrics.registerEvents(r.name, () => securityEvents(r.security()))
      }
      // the http2 gRPC transport's message buffers: reused (hits), allocated (misses), larger than the
      // largest class (unpooled), not kept because bufferPool bytes were idle (dropped)
      const grpc = this.receivers.grpc
      if (grpc?.buffers() !== undefined) {
        this.metrics.registerEvents(`${grpc.name}.buffers`, () => {
          const b = grpc.buffers()
          return { hits: b?.hits ?? 0, misses: b?.misses ?? 0, unpooled: b?.unpooled ?? 0, dropped: b?.dropped ?? 0 }
        })
      }
      // decode workers (receivers.workers > 0): jobs answered, refused at the queue limit, worker crashes
      const workers = this.receivers.workers
      if (workers !== undefined) {
        this.metrics.registerEvents(workers.name, () => {
          const w = workers.stats()
          return { completed: w.completed, refused: w.refused, crashes: w.crashes, malformed_replies: w.malformedReplies }
        })
      }
      const adminServer = this.admin
      if (adminServer) this.metrics.registerEvents('admin', () => adminEvents(adminServer.security()))
      // evaluation passes completed / failed, begun late (a timer fire during a pass) or skipped, event-loop turns
      const evaluation = this.evaluation
      if (evaluation !== undefined) {
        this.metrics.registerEvents(evaluation.name, () => {
          const e = evaluation.stats()
          return { passes: e.passes, failed: e.failed, late: e.late, skipped: e.skipped, turns: e.turns }
        })
      }
      const { partials, ingest } = this
      if (partials !== undefined && ingest !== undefined) this.metrics.registerEvents('partials', () => partialsEvents(partials.stats(), ingest.stats().partials))
      // the normalizer's counters (src/normalize/README.md): points primed, reset, deduplicated, spans left out as sampled, ...
      const ingestNode = this.ingest
      const pipeline = this.pipeline
      this.metrics.registerEvents('normalize', () => normalizerEvents(ingestNode !== undefined ? ingestNode.stats().normalizer : pipeline.normalizer.stats()))
      const share = this.coverageShare
      if (share !== undefined) this.metrics.registerEvents(share.name, () => spanCoverageEvents(share.stats()))
      const decider = this.decider
      if (decider !== undefined) this.metrics.registerEvents('decider', () => deciderEvents(decider.stats()))
      // identity.rejected.<reason>, identity.flagged.<reason>, pod index resyncs/overflow (src/identity/README.md)
      const identity = this.identity
      if (identity.mode !== 'off') this.metrics.registerEvents(identity.name, () => identity.events())
      await this.metrics.start()
    }

    // Drain order on shutdown; see the file comment.
    this.shutdownCtl
      .add('not-ready', async () => this.admin?.markDraining())
      .add('receivers', async () => {
        for (const r of [...this.receivers.all].reverse()) await r.shutdown()
        await this.identity.shutdown()
      })
      .add('final-tick', async () => {
        this.ticker?.stop()
        this.ticker = undefined
        // an open pass is finished and delivered before the last tick
        await this.evaluation?.shutdown()
        this.tick()
        // the open buckets' partials, then "leaving" on every partition: the deciders stop waiting for
        // this node after decider.leaveGrace (a restart within it loses nothing), not decider.nodeTimeout
        this.ingest?.flush()
        await this.partials?.shutdown()
        // the decider writes its state and leaves the group (a clean revoke) before the publisher drains
        await this.decider?.shutdown()
      })
      .add('publisher', async () => {
        // unacknowledged decisions make the drain not clean, even when the write-ahead log keeps them
        const failure = this.publisher === undefined ? undefined : drainFailure(await this.publisher.drain())
        if (failure !== undefined) throw failure
      })
      .add('close', async () => {
        // after the decisions drained, before the store closes: the open hours are written (bounded, 2 s)
        await this.history?.shutdown()
        // the last state changes are written before Kafka closes (bounded by runtime.state.flushTimeout)
        if (this.state !== undefined) {
          this.pipeline.persistNow(this.clock.now())
          await this.state.shutdown()
        }
        await this.coverageShare?.shutdown()
        await admin.disconnect()
        await this.metrics?.shutdown()
        await this.admin?.shutdown()
        this.pipeline.store.shutdown()
      })
    logger.info(
      {
        transport: transport.kind,
        grpc: this.receivers.grpc?.port,
        http: this.receivers.http?.port,
        kafkaSpans: cfg.receivers.kafkaSpans.enabled,
        admin: this.admin?.address(),
      },
      'sidecar started',
    )
  }

  /** One evaluation on the wall clock. Never throws: a failing tick is logged, counted and retried next interval. */
  private tick(): void {
    const now = this.clock.now()
    const started = performance.now()
    try {
      if (this.ingest !== undefined) {
        // distributed: this node only announces; the deciders judge
        this.ingest.advance(now)
        this.tickFailures = 0
        return
      }
      const res = this.pipeline.tick(now, now - this.o.config.engine.lateness)
      this.metrics?.recordEvaluation(performance.now() - started)
      this.onDecided(res, now)
      this.tickFailures = 0
    } catch (err) {
      this.tickFailures += 1
      if (this.tickFailures === 1 || this.tickFailures % 60 === 0) {
        this.o.logger.error({ err: errorMessage(err), failures: this.tickFailures }, 'evaluation tick failed')
      }
    }
  }

  /** A tick's outcome, from this process's pipeline or its decider group member. */
  private onDecided(res: TickResult, now: number): void {
    this.tracker.observe(res.statuses, res.verdicts)
    for (const v of res.verdicts) this.decide(v)
    this.o.onTick?.(res, now)
  }

  private decide(v: Verdict): void {
    // an ingest-only node never ticks a decider, so it has no verdicts to publish
    const outcome = this.publisher?.publish(v) ?? { kind: 'refused' as const, reason: 'ingest-only node: no publisher' }
    // a decision is a lifecycle event of a deployment: one log line each, never per item
    this.o.logger.info(
      { verdict: v.kind, id: v.id, service: v.namespace ? `${v.namespace}/${v.service}` : v.service, version: v.version, dryRun: v.dryRun, publish: outcome.kind, reason: v.reason },
      'decision',
    )
  }

  /** Idempotent; resolves with the drain report. */
  async shutdown(): Promise<void> {
    await this.drain()
  }

  drain(): Promise<ShutdownReport> {
    if (!this.started) return Promise.resolve({ result: 'clean', ms: 0, steps: [] })
    return this.shutdownCtl.run()
  }
}
