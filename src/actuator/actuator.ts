/**
 * The actuator: a consumer group on the decisions topic executing the rollback path of DESIGN.md
 * (state machine in machine.ts) exactly once per decision id.
 *
 * Exactly-once effect:
 * - the idempotency record of a decision (state.ts) is written with phase `cutover` BEFORE the
 *   cutover request and advanced after it; a redelivered or duplicated decision whose record exists
 *   is resumed from its phase (`cutover`: the driver re-checks, and a Deployment already running
 *   the target template is not patched again) or skipped (`awaiting-recovery`, `done`).
 * - forged decisions never write an idempotency record, so they cannot mask a real one.
 * - offsets are committed by the transport only after the handler resolves, i.e. after the state
 *   record, the rollback event and, for a finished decision, the audit record were acknowledged.
 * - all decision handling is serialized (one at a time): readiness waits of one service delay the
 *   others. Run one active actuator per cluster (the group gives failover, not parallelism).
 *
 * Recovery is asynchronous: after announcing the rollback event the handler returns (so the
 * engine's recovered/not-recovered decision, which arrives on the same partition, can be
 * consumed); the decision waits in phase `awaiting-recovery` with a deadline (`recoveryTimeout`)
 * that survives restarts because it is part of the state record.
 */
import type { Component } from '../common/lifecycle.js'
import type { Clock } from '../common/clock.js'
import { systemClock } from '../common/clock.js'
import { RetryableError, classify, errorMessage } from '../common/errors.js'
import type { Logger } from '../common/logger.js'
import type { DeploymentEvent } from '../engine/events.js'
import type { Verdict } from '../engine/verdict.js'
import type { KafkaConfig } from '../kafka/config.js'
import type { Batch, Consumer, ConsumerStats, KafkaTransport, Producer } from '../kafka/types.js'
import { openDecision, serviceId, type DecisionEnvelope } from '../publish/envelope.js'
import type { Verifier } from '../publish/signing.js'
import { selectRollbackTarget, type ArtifactStore } from './artifacts.js'
import { AuditSink, evidence, recoveryOf, type AuditOutcome, type AuditRecord, type PhaseStamp } from './audit.js'
import type { ActuatorConfig } from './config.js'
import type { CutoverRequest, Driver } from './drivers/types.js'
import { escalates, transition, type Phase, type PhaseEvent, type Terminal } from './machine.js'
import { Pager } from './paging.js'
import { ActuatorState, type DecisionProgress } from './state.js'

export interface ActuatorCounters {
  received: number
  malformed: number
  rejected: number
  duplicates: number
  ignored: number
  executed: number
  patched: number
  recovered: number
  halted: number
  escalated: number
  unmatchedRecovery: number
  resumed: number
  stale: number
}

export interface ActuatorOptions {
  transport: KafkaTransport
  kafka: KafkaConfig
  config: ActuatorConfig
  verifier: Verifier
  artifacts: ArtifactStore & Partial<Component>
  driver: Driver
  logger: Logger
  /** a connected producer to share (state, audit, events, escalations); else the actuator owns one */
  producer?: Producer
  clock?: Clock
  /** test/bench hook: called on every state-machine transition */
  onTransition?: (decisionId: string, from: Phase, to: Phase | Terminal) => void
}

export class Actuator implements Component {
  readonly name = 'actuator'
  readonly counters: ActuatorCounters = { received: 0, malformed: 0, rejected: 0, duplicates: 0, ignored: 0, executed: 0, patched: 0, recovered: 0, halted: 0, escalated: 0, unmatchedRecovery: 0, resumed: 0, stale: 0 }
  readonly state: ActuatorState
  readonly pager: Pager
  private readonly producer: Producer
  private readonly audit: AuditSink
  private readonly clock: Clock
  private consumer: Consumer | undefined
  private readonly ac = new AbortController()
  private chain: Promise<unknown> = Promise.resolve()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private status: 'new' | 'running' | 'stopped' = 'new'

  constructor(private readonly o: ActuatorOptions) {
    this.clock = o.clock ?? systemClock
    this.producer = o.producer ?? o.transport.producer()
    this.state = new ActuatorState({
      transport: o.transport,
      topic: o.config.stateTopic,
      groupPrefix: o.kafka.groupPrefix,
      producer: this.producer,
      logger: o.logger,
    })
    this.pager = new Pager({ targets: o.config.paging, retry: o.config.pageRetry, producer: this.producer, escalationsTopic: o.config.escalationsTopic, logger: o.logger })
    this.audit = new AuditSink({ producer: this.producer, topic: o.kafka.topics.audit, file: o.config.auditFile })
  }

  async start(): Promise<void> {
    if (this.status !== 'new') return
    this.status = 'running'
    if (!this.o.producer) await this.producer.connect()
    // a consumer subscribed to a topic that does not exist yet may not see it for minutes (metadata refresh)
    const admin = this.o.transport.admin()
    await admin.connect()
    try {
      const t = this.o.kafka.topics
      await admin.ensureTopics([t.decisions, t.deployments, t.audit, this.o.config.escalationsTopic].map((topic) => ({ topic })))
    } finally {
      await admin.disconnect()
    }
    await this.state.start()
    await this.o.artifacts.start?.()
    for (const p of this.state.decisions.values()) if (p.phase === 'awaiting-recovery') this.armRecoveryTimer(p)
    this.consumer = this.o.transport.consumer({
      groupId: `${this.o.kafka.groupPrefix}.actuator`,
      topics: [this.o.kafka.topics.decisions],
      fromBeginning: true,
      maxBatchSize: 50,
      onError: (err) => this.o.logger.warn({ err: errorMessage(err) }, 'actuator consumer error'),
    })
    await this.consumer.start((batch) => this.serial(() => this.handleBatch(batch)))
    this.o.logger.info({ driver: this.o.driver.name, decisions: this.o.kafka.topics.decisions, trustedKeys: this.o.verifier.size }, 'actuator started')
  }

  async shutdown(): Promise<void> {
    if (this.status !== 'running') {
      this.status = 'stopped'
      return
    }
    this.status = 'stopped'
    this.ac.abort()
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    await this.consumer?.stop()
    await this.chain.catch(() => undefined)
    await this.pager.drain()
    await this.o.artifacts.shutdown?.()
    await this.state.shutdown()
    if (!this.o.producer) await this.producer.disconnect()
    this.o.logger.info(this.counters, 'actuator stopped')
  }

  /** one decision at a time, across partitions and the recovery timers */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn)
    this.chain = run.catch(() => undefined)
    return run
  }

  private async handleBatch(batch: Batch): Promise<void> {
    for (const m of batch.messages) {
      this.counters.received++
      const opened = openDecision(m.value, this.o.verifier)
      if (opened.kind === 'malformed') {
        this.counters.malformed++
        continue
      }
      if (opened.kind === 'rejected') {
        await this.reject(opened.envelope, opened.reason)
        continue
      }
      const env = opened.envelope
      switch (env.kind) {
        case 'rollback':
          await this.rollback(env)
          break
        case 'recovered':
        case 'not-recovered':
          await this.recovery(env.payload)
          break
        case 'incident':
          this.counters.ignored++
          break
      }
    }
  }

  private stamp(phases: PhaseStamp[], phase: string, note?: string): void {
    phases.push({ phase, at: this.clock.now(), ...(note ? { note } : {}) })
  }

  private step(id: string, from: Phase, event: PhaseEvent): Phase | Terminal {
    return this.move(id, from, transition(from, event))
  }

  /** the decisions consumer's progress, for readiness and self-metrics; undefined before start */
  consumerStats(): ConsumerStats | undefined {
    return this.consumer?.stats()
  }

  private move(id: string, from: Phase, to: Phase | Terminal): Phase | Terminal {
    this.o.onTransition?.(id, from, to)
    return to
  }

  private async reject(env: DecisionEnvelope, reason: string): Promise<void> {
    this.counters.rejected++
    const p = env.payload as Partial<Verdict>
    const phases: PhaseStamp[] = []
    this.stamp(phases, 'received')
    this.stamp(phases, 'rejected', reason)
    this.move(String(env.id), 'verify', transition('verify', 'fail'))
    this.o.logger.warn({ decisionId: env.id, keyId: env.keyId, reason }, 'decision rejected: signature check failed')
    await this.audit.write({
      schemaVersion: 1,
      decisionId: String(env.id),
      service: `${String(p.namespace)}/${String(p.service)}`,
      outcome: 'rejected',
      reason: `signature check failed: ${reason}`,
      breach: [],
      phases,
      escalated: false,
      completedAt: this.clock.now(),
    })
  }

  private async rollback(env: DecisionEnvelope): Promise<void> {
    const v = env.payload
    const sid = serviceId(v)
    const existing = this.state.decisions.get(v.id)
    if (existing && existing.phase !== 'cutover') {
      this.counters.duplicates++
      return
    }
    const resume = existing !== undefined
    if (resume) this.counters.resumed++
    const phases: PhaseStamp[] = existing ? [...existing.phases] : []
    if (!resume) this.stamp(phases, 'received')
    this.stamp(phases, resume ? 'resumed' : 'verified', `key ${env.keyId}`)
    this.step(v.id, 'verify', 'ok')

    // gate
    if (v.dryRun || v.kind !== 'rollback') {
      this.move(v.id, 'gate', transition('gate', 'fail'))
      this.counters.ignored++
      return
    }
    if (!resume && this.clock.now() - env.issuedAt > this.o.config.maxDecisionAge) {
      this.move(v.id, 'gate', transition('gate', 'fail'))
      this.counters.stale++
      return
    }
    const frozen = this.state.frozen(sid)
    if (frozen && frozen.decisionId !== v.id) {
      this.stamp(phases, 'gate-frozen', frozen.reason)
      const t = this.move(v.id, 'gate', transition('gate', 'frozen'))
      await this.finish(this.progress(v, phases, { artifact: v.artifact ?? v.version, version: v.version }), t as AuditOutcome, `service frozen since ${new Date(frozen.at).toISOString()} (${frozen.reason}); run \`pullback actuator rearm --service ${sid}\``, { page: false, freeze: false })
      return
    }
    // one rollback per service at a time: another decision still in flight for it wins (no page, no freeze)
    const inFlight = [...this.state.decisions.values()].find((d) => d.service === sid && d.decisionId !== v.id && d.phase !== 'done')
    if (inFlight) {
      this.stamp(phases, 'gate-busy', `decision ${inFlight.decisionId} is in phase ${inFlight.phase}`)
      const t = this.move(v.id, 'gate', transition('gate', 'frozen'))
      await this.finish(this.progress(v, phases, { artifact: v.artifact ?? v.version, version: v.version }), t as AuditOutcome, `another rollback of ${sid} (${inFlight.decisionId}) is still ${inFlight.phase}`, { page: false, freeze: false })
      return
    }
    this.counters.executed++
    this.step(v.id, 'gate', 'ok')
    this.stamp(phases, 'gate-passed')

    // artifact retrieval
    const failed = { artifact: v.artifact ?? v.version, version: v.version }
    let progress: DecisionProgress
    if (existing?.target) {
      progress = { ...existing, phases }
    } else {
      const sel = selectRollbackTarget(this.o.artifacts.list(sid), failed)
      if (sel.kind === 'none') {
        this.stamp(phases, 'artifact-missing', sel.reason)
        const t = this.step(v.id, 'artifact', 'fail')
        await this.finish(this.progress(v, phases, failed), t as AuditOutcome, `no verified artifact to roll back to: ${sel.reason}`)
        return
      }
      progress = this.progress(v, phases, failed)
      progress.target = { artifact: sel.target.artifact, version: sel.target.version, ...(sel.target.digest ? { digest: sel.target.digest } : {}) }
      this.stamp(phases, 'artifact-selected', `${sel.target.artifact} promoted ${new Date(sel.target.promotedAt).toISOString()} key ${sel.target.keyId}`)
    }
    this.step(v.id, 'artifact', 'ok')
    const target = progress.target!

    // cutover: the idempotency record goes first
    this.stamp(phases, 'cutover-started')
    progress = { ...progress, phase: 'cutover', phases: [...phases], updatedAt: this.clock.now() }
    await this.state.put(progress)
    const req: CutoverRequest = { decisionId: v.id, namespace: v.namespace, service: v.service, failed, target, resume, verdict: v }
    const applied = await this.o.driver.apply(req, this.ac.signal)
    this.abortIfStopping()
    if (applied.kind === 'failed') {
      this.stamp(phases, 'cutover-failed', applied.reason)
      const t = this.step(v.id, 'cutover', 'fail')
      await this.finish({ ...progress, phases }, t as AuditOutcome, `cutover failed: ${applied.reason}`)
      return
    }
    const patched = applied.kind === 'applied' || existing?.patched === true
    if (applied.kind === 'applied') this.counters.patched++
    this.stamp(phases, applied.kind === 'applied' ? 'cutover-applied' : 'cutover-already-in-place', applied.detail)
    this.step(v.id, 'cutover', 'ok')

    // readiness gates
    const ready = await this.o.driver.awaitReady(req, this.o.config.readinessTimeout, this.ac.signal)
    this.abortIfStopping()
    if (ready.kind === 'not-ready') {
      this.stamp(phases, 'readiness-failed', ready.reason)
      const t = this.step(v.id, 'readiness', 'timeout')
      await this.finish({ ...progress, phases, patched }, t as AuditOutcome, `readiness gates failed: ${ready.reason}`)
      return
    }
    this.stamp(phases, 'ready', ready.detail)
    this.step(v.id, 'readiness', 'ok')

    // announce the restored version; a Kafka failure throws, the batch is redelivered and resumed
    const event: DeploymentEvent = {
      namespace: v.namespace,
      service: v.service,
      version: target.version,
      artifact: target.artifact,
      previousVersion: v.version,
      time: this.clock.now(),
      kind: 'rollback',
      source: 'pullback-actuator',
      decisionId: v.id,
    }
    try {
      await this.producer.send(this.o.kafka.topics.deployments, [{ key: sid, value: JSON.stringify(event) }])
    } catch (err) {
      if (classify(err) !== 'permanent') throw err
      this.stamp(phases, 'announce-failed', errorMessage(err))
      const t = this.step(v.id, 'announce', 'fail')
      await this.finish({ ...progress, phases, patched }, t as AuditOutcome, `could not announce the rollback: ${errorMessage(err)}`)
      return
    }
    this.stamp(phases, 'rollback-announced', `${target.version}`)
    this.step(v.id, 'announce', 'ok')
    const waiting: DecisionProgress = { ...progress, phase: 'awaiting-recovery', phases, patched, recoveryDeadline: this.clock.now() + this.o.config.recoveryTimeout, updatedAt: this.clock.now() }
    await this.state.put(waiting)
    this.armRecoveryTimer(waiting)
  }

  private abortIfStopping(): void {
    if (this.ac.signal.aborted) throw new RetryableError('ACTUATOR_STOPPING', 'actuator is shutting down; the decision resumes on redelivery')
  }

  private progress(v: Verdict, phases: PhaseStamp[], failed: DecisionProgress['failed']): DecisionProgress {
    return { decisionId: v.id, service: serviceId(v), phase: 'cutover', verdict: v, failed, phases, driver: this.o.driver.name, updatedAt: this.clock.now() }
  }

  /** the engine's recovered / not-recovered decision for a service awaiting recovery */
  private async recovery(r: Verdict): Promise<void> {
    const sid = serviceId(r)
    const candidates = [...this.state.decisions.values()].filter((p) => p.service === sid && p.phase === 'awaiting-recovery')
    const p = candidates.find((c) => r.restoredVersion === undefined || c.target?.version === r.restoredVersion) ?? candidates[candidates.length - 1]
    if (!p) {
      this.counters.unmatchedRecovery++
      return
    }
    const phases = [...p.phases]
    this.stamp(phases, r.kind, r.reason)
    const t = this.move(p.decisionId, 'recovery', transition('recovery', r.kind === 'recovered' ? 'ok' : 'fail'))
    await this.finish({ ...p, phases }, t as AuditOutcome, r.kind === 'recovered' ? `recovered: ${r.reason}` : `not recovered after rollback: ${r.reason}`, { recovery: r })
  }

  private armRecoveryTimer(p: DecisionProgress): void {
    if (this.status !== 'running' || p.recoveryDeadline === undefined || this.timers.has(p.decisionId)) return
    const fire = () => {
      this.timers.delete(p.decisionId)
      this.serial(async () => {
        const cur = this.state.decisions.get(p.decisionId)
        if (!cur || cur.phase !== 'awaiting-recovery') return
        const phases = [...cur.phases]
        this.stamp(phases, 'recovery-timeout')
        const t = this.move(p.decisionId, 'recovery', transition('recovery', 'timeout'))
        await this.finish({ ...cur, phases }, t as AuditOutcome, `no recovered/not-recovered decision within ${this.o.config.recoveryTimeout} ms of the rollback`)
      }).catch((err: unknown) => {
        this.o.logger.error({ err: errorMessage(err), decisionId: p.decisionId }, 'recovery timeout handling failed; retrying in 5 s')
        if (this.status === 'running') this.timers.set(p.decisionId, setTimeout(fire, 5000))
      })
    }
    this.timers.set(p.decisionId, setTimeout(fire, Math.max(0, p.recoveryDeadline - this.clock.now())))
  }

  /**
   * Terminal bookkeeping, in crash-safe order: escalation record + freeze (durable) -> audit record
   * -> state `done`. A crash before `done` repeats the missing steps on redelivery (the audit record
   * may then appear twice with the same decisionId; readers keep the last).
   */
  private async finish(p: DecisionProgress, outcome: AuditOutcome, reason: string, opts: { recovery?: Verdict; page?: boolean; freeze?: boolean } = {}): Promise<void> {
    const sid = p.service
    const timer = this.timers.get(p.decisionId)
    if (timer) {
      clearTimeout(timer)
      this.timers.delete(p.decisionId)
    }
    const phases = [...p.phases]
    const escalate = escalates(outcome) && opts.page !== false
    if (outcome === 'recovered') this.counters.recovered++
    else if (outcome === 'halted') this.counters.halted++
    else if (outcome === 'escalated') this.counters.escalated++
    if (escalates(outcome) && opts.freeze !== false) {
      await this.state.setFreeze({ service: sid, frozen: true, at: this.clock.now(), reason: `${outcome}: ${reason}`, decisionId: p.decisionId })
      this.stamp(phases, 'frozen')
    }
    if (escalate) {
      this.stamp(phases, 'escalated')
      await this.pager.escalate({
        dedupKey: p.decisionId,
        summary: `${sid}: rollback ${outcome} - ${reason}`,
        severity: 'critical',
        service: sid,
        details: { decisionId: p.decisionId, outcome, reason, failedArtifact: p.failed.artifact, restoredArtifact: p.target?.artifact ?? '', version: p.verdict.version },
      })
      // the escalation record is awaited (durable); webhook retries run on without holding the partition
    }
    const record: AuditRecord = {
      schemaVersion: 1,
      decisionId: p.decisionId,
      service: sid,
      deploymentId: p.verdict.deploymentId,
      outcome,
      reason,
      decidedAt: p.verdict.decidedAt,
      breach: evidence(p.verdict.signals, true),
      phases,
      failedArtifact: p.failed.artifact,
      failedVersion: p.failed.version,
      ...(p.target ? { restoredArtifact: p.target.artifact, restoredVersion: p.target.version } : {}),
      driver: p.driver,
      ...(p.patched !== undefined ? { patched: p.patched } : {}),
      ...(opts.recovery ? { recovery: recoveryOf(opts.recovery) } : {}),
      escalated: escalate,
      completedAt: this.clock.now(),
    }
    await this.audit.write(record)
    await this.state.put({ ...p, phases, phase: 'done', outcome, updatedAt: this.clock.now() })
    this.o.logger.info({ decisionId: p.decisionId, service: sid, outcome }, 'decision finished')
  }
}

