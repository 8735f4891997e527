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
 *   others. One active actuator per cluster is the intended deployment (the group gives failover,
 *   not parallelism), but two at once are safe: a cutover and a terminal transition happen only
 *   under a claim won on the state topic (state.ts, "Fencing"). Another actuator that receives the
 *   same decision (a rebalance, a zombie whose session expired mid-cutover, a second group) waits
 *   while the claim's owner holds it, and resumes only once the owner is gone; an owner that finds
 *   its claim superseded stops before its next side effect (counted in `fenced`). Recovery
 *   deadlines are armed by every actuator for every decision awaiting recovery; the claim makes one
 *   of them finish it.
 * - exec driver: the command's pid is recorded in the state record; a resumed decision waits for
 *   (or kills) the previous attempt's command still running before running it again.
 *
 * Trust (issue 13, docs/threat-model.md): only signed decisions act; the rollback target always
 * comes from signed artifact records, also on resume (a state record's target is kept only when it
 * is still one of the verified candidates); state records are sealed with the state key when one is
 * configured (state.ts); a recovered/not-recovered verdict finishes only the decision of its own
 * deployment and only within `maxDecisionAge`; rejected envelopes are audited rate-limited, with
 * sanitised text, under their own key (`REJECTED_KEY`), never in a service's outcome history.
 *
 * Recovery is asynchronous: after announcing the rollback event the handler returns (so the
 * engine's recovered/not-recovered decision, which arrives on the same partition, can be
 * consumed); the decision waits in phase `awaiting-recovery` with a deadline (`recoveryTimeout`)
 * that survives restarts because it is part of the state record.
 */
import { createHash, randomUUID } from 'node:crypto'
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
import { sealRecord, type Verifier } from '../publish/signing.js'
import { eligibleTargets, selectRollbackTarget, type ArtifactStore } from './artifacts.js'
import type { RecordAuth } from './authentic.js'
import { namespaceScope, outOfScope, type NamespaceScope } from './scope.js'
import { AuditSink, evidence, recoveryOf, type AuditOutcome, type AuditRecord, type PhaseStamp } from './audit.js'
import type { ActuatorConfig } from './config.js'
import type { CutoverRequest, Driver } from './drivers/types.js'
import { sleep } from './drivers/types.js'
import { presence, self } from './proc.js'
import { escalates, transition, type Phase, type PhaseEvent, type Terminal } from './machine.js'
import { Pager } from './paging.js'
import { Claim } from './claim.js'
import { ActuatorState, type DecisionProgress, type Finishing, type Owner } from './state.js'

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
  /** rollbacks refused because the decision's namespace is not in actuator.namespaces (audited, paged) */
  outOfScope: number
  /** claims lost or writes refused because another actuator holds the decision */
  fenced: number
  /** decisions received while another live actuator held them (waited for it) */
  heldElsewhere: number
  /** previous attempts' commands waited for / killed before a resumed cutover */
  orphansWaited: number
  orphansKilled: number
  /** audit records not written again (already on the topic / in the file) */
  auditDuplicates: number
  /** rejected envelopes beyond the audit rate limit: counted, not audited */
  rejectedUnaudited: number
  /** resumed decisions whose recorded target was not a verified candidate: re-selected from the signed artifact records */
  targetReselected: number
  /** recovered/not-recovered verdicts older than maxDecisionAge: ignored */
  staleRecovery: number
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
  /** how state records are protected (default: open, no state key) */
  stateAuth?: RecordAuth
  /** test/bench hook: called on every state-machine transition */
  onTransition?: (decisionId: string, from: Phase, to: Phase | Terminal) => void
}

export class Actuator implements Component {
  readonly name = 'actuator'
  readonly counters: ActuatorCounters = {
    received: 0,
    malformed: 0,
    rejected: 0,
    duplicates: 0,
    ignored: 0,
    executed: 0,
    patched: 0,
    recovered: 0,
    halted: 0,
    escalated: 0,
    unmatchedRecovery: 0,
    resumed: 0,
    stale: 0,
    outOfScope: 0,
    fenced: 0,
    heldElsewhere: 0,
    orphansWaited: 0,
    orphansKilled: 0,
    auditDuplicates: 0,
    rejectedUnaudited: 0,
    targetReselected: 0,
    staleRecovery: 0,
  }
  /** this instance, as written into the decision records it claims */
  readonly owner: Owner = { id: randomUUID(), ...self }
  readonly state: ActuatorState
  readonly pager: Pager
  private readonly producer: Producer
  private readonly audit: AuditSink
  private readonly clock: Clock
  private readonly scope: NamespaceScope
  private consumer: Consumer | undefined
  private readonly ac = new AbortController()
  private chain: Promise<unknown> = Promise.resolve()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private status: 'new' | 'running' | 'stopped' = 'new'
  /** token bucket of rejection audit records: REJECT_AUDIT_BURST, refilled at REJECT_AUDIT_PER_MINUTE */
  private rejectTokens = REJECT_AUDIT_BURST
  private rejectRefilledAt: number | undefined
  private rejectWarnedAt: number | undefined

  constructor(private readonly o: ActuatorOptions) {
    this.scope = namespaceScope(o.config)
    this.clock = o.clock ?? systemClock
    this.producer = o.producer ?? o.transport.producer()
    this.state = new ActuatorState({
      transport: o.transport,
      topic: o.config.stateTopic,
      groupPrefix: o.kafka.groupPrefix,
      producer: this.producer,
      logger: o.logger,
      ...(o.stateAuth ? { auth: o.stateAuth } : {}),
      // a peer's decision reaching awaiting-recovery gets a deadline here too: if the peer dies, this one times it out
      onLoaded: (p) => {
        if (p.phase === 'awaiting-recovery') this.armRecoveryTimer(p)
      },
    })
    this.pager = new Pager({ targets: o.config.paging, retry: o.config.pageRetry, producer: this.producer, escalationsTopic: o.config.escalationsTopic, logger: o.logger })
    this.audit = new AuditSink({ producer: this.producer, topic: o.kafka.topics.audit, file: o.config.auditFile, transport: o.transport, groupPrefix: o.kafka.groupPrefix, logger: o.logger })
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
        await this.reject(opened.envelope, opened.reason, m.value)
        continue
      }
      const env = opened.envelope
      switch (env.kind) {
        case 'rollback':
          await this.rollback(env)
          break
        case 'recovered':
        case 'not-recovered':
          await this.recovery(env)
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

  /**
   * A rejected envelope is an attacker's (or a misconfigured publisher's) text: its audit record is
   * rate-limited (REJECT_AUDIT_BURST, then REJECT_AUDIT_PER_MINUTE; beyond: `rejectedUnaudited`),
   * keyed REJECTED_KEY with a decision id of its own (`rejected/<hash of the record>`), so it can
   * neither appear in the claimed service's history nor mark the claimed decision id as audited
   * (which would suppress the genuine decision's audit record), and what it claims is sanitised.
   */
  private async reject(env: DecisionEnvelope, reason: string, raw: Buffer | null): Promise<void> {
    this.counters.rejected++
    this.move(sanitise(env.id), 'verify', transition('verify', 'fail'))
    const now = this.clock.now()
    if (this.rejectWarnedAt === undefined || now - this.rejectWarnedAt >= 60_000) {
      this.rejectWarnedAt = now
      this.o.logger.warn({ rejected: this.counters.rejected, unaudited: this.counters.rejectedUnaudited, reason }, 'decision envelopes rejected: signature check failed (at most one such line a minute)')
    }
    if (!this.takeRejectToken(now)) {
      this.counters.rejectedUnaudited++
      return
    }
    const p = env.payload as Partial<Verdict> | undefined
    const phases: PhaseStamp[] = [
      { phase: 'received', at: now },
      { phase: 'rejected', at: now, note: reason },
    ]
    const w = await this.audit.write({
      schemaVersion: 1,
      decisionId: `rejected/${createHash('sha256').update(raw ?? '').digest('hex').slice(0, 32)}`,
      service: REJECTED_KEY,
      outcome: 'rejected',
      reason: `signature check failed: ${reason}`,
      claimed: { decisionId: sanitise(env.id), service: `${sanitise(p?.namespace)}/${sanitise(p?.service)}`, keyId: sanitise(env.keyId), kind: sanitise(env.kind) },
      breach: [],
      phases,
      escalated: false,
      completedAt: now,
    })
    if (w.file === 'duplicate') this.counters.auditDuplicates++
  }

  private takeRejectToken(now: number): boolean {
    const last = this.rejectRefilledAt ?? now
    this.rejectTokens = Math.min(REJECT_AUDIT_BURST, this.rejectTokens + ((now - last) * REJECT_AUDIT_PER_MINUTE) / 60_000)
    this.rejectRefilledAt = now
    if (this.rejectTokens < 1) return false
    this.rejectTokens -= 1
    return true
  }

  private async rollback(env: DecisionEnvelope): Promise<void> {
    const v = env.payload
    const sid = serviceId(v)
    let existing = this.state.decisions.get(v.id)
    if (existing && existing.phase !== 'cutover') {
      this.counters.duplicates++
      return
    }
    if (existing && !this.mine(existing)) {
      const free = await this.awaitHolder(v.id, (d) => d.phase === 'cutover')
      if (free === undefined || free.phase !== 'cutover') {
        this.counters.duplicates++
        return
      }
      existing = free
    }
    const resume = existing !== undefined
    if (resume) this.counters.resumed++
    const phases: PhaseStamp[] = existing ? [...existing.phases] : []
    if (!resume) this.stamp(phases, 'received')
    this.stamp(phases, resume ? 'resumed' : 'verified', `key ${env.keyId}`)
    if (existing?.finishing) {
      // a terminal transition was under way when the previous attempt stopped: complete it as decided
      await this.finish({ ...existing, phases }, existing.finishing.outcome, existing.finishing.reason)
      return
    }
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
    const refused = outOfScope(this.scope, v.namespace)
    if (refused !== undefined) {
      // a bad deployment stays live: a person must know (page), but nothing about the service is frozen
      this.counters.outOfScope++
      this.stamp(phases, 'gate-namespace', refused)
      const t = this.move(v.id, 'gate', transition('gate', 'frozen'))
      await this.finish(this.progress(v, phases, { artifact: v.artifact ?? v.version, version: v.version }), t as AuditOutcome, refused, { page: true, freeze: false })
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
    this.step(v.id, 'gate', 'ok')
    this.stamp(phases, 'gate-passed')

    // artifact retrieval: from the signed artifact records, on resume too; what a state record says
    // about the target is kept only when it is still a verified candidate (issue 13, item 1)
    const failed = { artifact: v.artifact ?? v.version, version: v.version }
    const views = this.o.artifacts.list(sid)
    const sel = selectRollbackTarget(views, failed)
    if (sel.kind === 'none') {
      this.stamp(phases, 'artifact-missing', sel.reason)
      const t = this.step(v.id, 'artifact', 'fail')
      await this.finish(this.progress(v, phases, failed), t as AuditOutcome, `no verified artifact to roll back to: ${sel.reason}`)
      return
    }
    const recorded = existing?.target
    const kept = recorded === undefined ? undefined : eligibleTargets(views, failed).find((c) => c.artifact === recorded.artifact && c.version === recorded.version)
    const chosen = kept ?? sel.target
    if (recorded !== undefined && kept === undefined) {
      this.counters.targetReselected++
      this.stamp(phases, 'target-reselected', `recorded target ${sanitise(recorded.artifact)} is not a verified candidate`)
    }
    // the decision's own fields come from the signed envelope; the state record adds only its claim and attempt bookkeeping
    const progress: DecisionProgress = existing ? { ...existing, service: sid, verdict: v, failed, driver: this.o.driver.name, phases } : this.progress(v, phases, failed)
    progress.target = { artifact: chosen.artifact, version: chosen.version, ...(chosen.digest ? { digest: chosen.digest } : {}) }
    if (kept === undefined) this.stamp(phases, 'artifact-selected', `${chosen.artifact} promoted ${new Date(chosen.promotedAt).toISOString()} key ${chosen.keyId}`)
    this.step(v.id, 'artifact', 'ok')
    const target = progress.target

    // cutover: the claim (the idempotency record) goes first; only its winner acts
    this.stamp(phases, 'cutover-started')
    const { child: previousChild, ...rest } = progress
    const claimed = await this.state.claim({ ...rest, phase: 'cutover', phases: [...phases], updatedAt: this.clock.now(), lease: this.clock.now() + this.o.config.claimLease }, this.owner, (d) =>
      this.holderAlive(d),
    )
    if (claimed.kind === 'lost') {
      this.counters.fenced++
      return
    }
    this.counters.executed++
    const lease = new Claim(this.state, claimed.record, this.o.config.claimLease, this.clock, this.ac.signal)
    try {
      if (previousChild && this.o.driver.settle) {
        const o = await this.o.driver.settle(previousChild, lease.signal)
        if (o.kind === 'ended') this.counters.orphansWaited++
        if (o.kind === 'killed') this.counters.orphansKilled++
        this.stamp(phases, `previous-attempt-${o.kind}`, o.detail)
        this.abortIfStopping()
        if (lease.lost) return this.fencedOut()
      }
      const req: CutoverRequest = { decisionId: v.id, namespace: v.namespace, service: v.service, failed, target, resume, verdict: v }
      const applied = await this.o.driver.apply(req, lease.signal, {
        onChild: async (child) => ((await lease.write((p) => ({ ...p, child }))) ? 'continue' : 'abandon'),
      })
      this.abortIfStopping()
      if (lease.lost) return this.fencedOut()
      if (applied.kind === 'failed') {
        this.stamp(phases, 'cutover-failed', applied.reason)
        const t = this.step(v.id, 'cutover', 'fail')
        await lease.release()
        await this.finish({ ...lease.record, phases }, t as AuditOutcome, `cutover failed: ${applied.reason}`)
        return
      }
      const patched = applied.kind === 'applied' || existing?.patched === true
      if (applied.kind === 'applied') this.counters.patched++
      this.stamp(phases, applied.kind === 'applied' ? 'cutover-applied' : 'cutover-already-in-place', applied.detail)
      this.step(v.id, 'cutover', 'ok')
      if (applied.followUp !== undefined) {
        // the rollback stands, but a human must act (e.g. revert Git before GitOps sync is re-enabled);
        // the dedup key makes a resumed decision's second page the same incident
        this.stamp(phases, 'follow-up', applied.followUp)
        this.pager.notify({ dedupKey: `${v.id}/follow-up`, summary: `${serviceId(v)}: ${applied.followUp}`, severity: 'warning', service: serviceId(v), details: { decisionId: v.id, driver: this.o.driver.name } })
      }

      // readiness gates
      const ready = await this.o.driver.awaitReady(req, this.o.config.readinessTimeout, lease.signal)
      this.abortIfStopping()
      if (lease.lost) return this.fencedOut()
      if (ready.kind === 'not-ready') {
        this.stamp(phases, 'readiness-failed', ready.reason)
        const t = this.step(v.id, 'readiness', 'timeout')
        await lease.release()
        await this.finish({ ...lease.record, phases, patched }, t as AuditOutcome, `readiness gates failed: ${ready.reason}`)
        return
      }
      this.stamp(phases, 'ready', ready.detail)
      this.step(v.id, 'readiness', 'ok')

      // the announcement is the next side effect: make sure no other actuator took the decision over meanwhile
      await lease.release()
      await this.state.sync()
      if (!this.holds(v.id, lease.record)) return this.fencedOut()

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
        // signed with the state key when there is one: sidecars that require signed events trust its public half
        const auth = this.state.auth
        const sealed = auth.kind === 'signed' && auth.signer !== undefined ? sealRecord(event, auth.signer) : event
        await this.producer.send(this.o.kafka.topics.deployments, [{ key: sid, value: JSON.stringify(sealed) }])
      } catch (err) {
        if (classify(err) !== 'permanent') throw err
        this.stamp(phases, 'announce-failed', errorMessage(err))
        const t = this.step(v.id, 'announce', 'fail')
        await this.finish({ ...lease.record, phases, patched }, t as AuditOutcome, `could not announce the rollback: ${errorMessage(err)}`)
        return
      }
      this.stamp(phases, 'rollback-announced', `${target.version}`)
      this.step(v.id, 'announce', 'ok')
      const waiting: DecisionProgress = { ...lease.record, phase: 'awaiting-recovery', phases, patched, recoveryDeadline: this.clock.now() + this.o.config.recoveryTimeout, updatedAt: this.clock.now() }
      if ((await this.state.put(waiting)).kind === 'fenced') return this.fencedOut()
      this.armRecoveryTimer(waiting)
    } finally {
      await lease.release()
    }
  }

  private mine(p: DecisionProgress): boolean {
    return p.owner?.id === this.owner.id
  }

  /** whether `held` (epoch and owner) is still the record in force for `id` */
  private holds(id: string, held: DecisionProgress): boolean {
    const cur = this.state.decisions.get(id)
    return cur !== undefined && cur.owner?.id === this.owner.id && cur.epoch === held.epoch
  }

  private fencedOut(): void {
    this.counters.fenced++
  }

  /**
   * Another actuator's claim on a decision it is working on (`busy`: a cutover, a terminal
   * transition): wait while its owner is alive and its lease holds; answers the record once nobody
   * works on it any more (the owner moved it on, or is gone). Bounded by the owner's lease renewals,
   * which stop with its driver's own timeouts.
   */
  private async awaitHolder(id: string, busy: (p: DecisionProgress) => boolean): Promise<DecisionProgress | undefined> {
    let counted = false
    for (;;) {
      const cur = this.state.decisions.get(id)
      if (cur === undefined || !busy(cur) || this.mine(cur) || !this.holderAlive(cur)) return cur
      if (!counted) {
        this.counters.heldElsewhere++
        counted = true
      }
      this.abortIfStopping()
      await sleep(HOLDER_POLL_MS, this.ac.signal)
    }
  }

  private holderAlive(p: DecisionProgress): boolean {
    if (p.owner === undefined) return false
    if (presence(p.owner) === 'gone') return false
    return (p.lease ?? 0) > this.clock.now()
  }

  private abortIfStopping(): void {
    if (this.ac.signal.aborted) throw new RetryableError('ACTUATOR_STOPPING', 'actuator is shutting down; the decision resumes on redelivery')
  }

  private progress(v: Verdict, phases: PhaseStamp[], failed: DecisionProgress['failed']): DecisionProgress {
    return { decisionId: v.id, service: serviceId(v), phase: 'cutover', verdict: v, failed, phases, driver: this.o.driver.name, updatedAt: this.clock.now() }
  }

  /**
   * The engine's recovered / not-recovered decision. It finishes only a decision awaiting recovery
   * of the SAME deployment (the verdict's signed deploymentId is the rollback decision's: the engine
   * verifies recovery of the deployment it rolled back) and of the restored version when it names
   * one, and only within `maxDecisionAge` of its signing: a replayed verdict of another deployment,
   * or an old one, is counted (`unmatchedRecovery`, `staleRecovery`) and changes nothing.
   */
  private async recovery(env: DecisionEnvelope): Promise<void> {
    const r = env.payload
    if (this.clock.now() - env.issuedAt > this.o.config.maxDecisionAge) {
      this.counters.staleRecovery++
      return
    }
    const sid = serviceId(r)
    const p = [...this.state.decisions.values()].find(
      (c) => c.service === sid && c.phase === 'awaiting-recovery' && c.verdict.deploymentId === r.deploymentId && (r.restoredVersion === undefined || c.target?.version === r.restoredVersion),
    )
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
   * Terminal bookkeeping, under a claim (only one actuator finishes a decision), in crash-safe
   * order: claim with the decided outcome (`finishing`) -> escalation record + freeze (durable) +
   * pages -> `finishing.paged` -> audit record -> state `done`. Whoever resumes a decision found
   * `finishing` completes it with the recorded outcome, skips pages already sent, and writes the
   * audit record only where it is not yet (topic and file are checked for the decision id).
   */
  private async finish(p: DecisionProgress, outcome: AuditOutcome, reason: string, opts: { recovery?: Verdict; page?: boolean; freeze?: boolean } = {}): Promise<void> {
    const sid = p.service
    const timer = this.timers.get(p.decisionId)
    if (timer) {
      clearTimeout(timer)
      this.timers.delete(p.decisionId)
    }
    const phases = [...p.phases]
    const cur = await this.awaitHolder(p.decisionId, (d) => d.finishing !== undefined && d.phase !== 'done')
    if (cur?.phase === 'done') {
      this.counters.duplicates++
      return
    }
    const earlier = cur?.finishing ?? p.finishing
    const f: Finishing = earlier ?? { outcome, reason, escalate: escalates(outcome) && opts.page !== false, freeze: escalates(outcome) && opts.freeze !== false, paged: false }
    const { child: _child, ...rest } = p
    const claimed = await this.state.claim({ ...rest, phases, finishing: f, updatedAt: this.clock.now(), lease: this.clock.now() + this.o.config.claimLease }, this.owner, (d) =>
      d.finishing !== undefined && d.phase !== 'done' && this.holderAlive(d),
    )
    if (claimed.kind === 'lost') {
      this.counters.fenced++
      return
    }
    let held = claimed.record
    if (f.outcome === 'recovered') this.counters.recovered++
    else if (f.outcome === 'halted') this.counters.halted++
    else if (f.outcome === 'escalated') this.counters.escalated++
    if (f.freeze) {
      await this.state.setFreeze({ service: sid, frozen: true, at: this.clock.now(), reason: `${f.outcome}: ${f.reason}`, decisionId: p.decisionId })
      this.stamp(phases, 'frozen')
    }
    if (f.escalate && !f.paged) {
      this.stamp(phases, 'escalated')
      await this.pager.escalate({
        dedupKey: p.decisionId,
        summary: `${sid}: rollback ${f.outcome} - ${f.reason}`,
        severity: 'critical',
        service: sid,
        details: { decisionId: p.decisionId, outcome: f.outcome, reason: f.reason, failedArtifact: p.failed.artifact, restoredArtifact: p.target?.artifact ?? '', version: p.verdict.version },
      })
      // the escalation record is awaited (durable); webhook retries run on without holding the partition
      const paged: DecisionProgress = { ...held, phases: [...phases], finishing: { ...f, paged: true }, updatedAt: this.clock.now() }
      if ((await this.state.put(paged)).kind === 'fenced') return this.fencedOut()
      held = paged
    }
    const record: AuditRecord = {
      schemaVersion: 1,
      decisionId: p.decisionId,
      service: sid,
      deploymentId: p.verdict.deploymentId,
      outcome: f.outcome,
      reason: f.reason,
      decidedAt: p.verdict.decidedAt,
      breach: evidence(p.verdict.signals, true),
      phases,
      failedArtifact: p.failed.artifact,
      failedVersion: p.failed.version,
      ...(p.target ? { restoredArtifact: p.target.artifact, restoredVersion: p.target.version } : {}),
      driver: p.driver,
      ...(p.patched !== undefined ? { patched: p.patched } : {}),
      ...(opts.recovery ? { recovery: recoveryOf(opts.recovery) } : {}),
      escalated: f.escalate,
      completedAt: this.clock.now(),
    }
    const w = await this.audit.write(record, { resumed: earlier !== undefined })
    if (w.topic === 'duplicate' || w.file === 'duplicate') this.counters.auditDuplicates++
    if ((await this.state.put({ ...held, phases, phase: 'done', outcome: f.outcome, updatedAt: this.clock.now() })).kind === 'fenced') return this.fencedOut()
    this.o.logger.info({ decisionId: p.decisionId, service: sid, outcome: f.outcome }, 'decision finished')
  }
}

/** the audit topic key (and `service`) of rejection records: kept out of every service's history */
export const REJECTED_KEY = 'pullback/rejected'
/** rejection audit records: this many at once, then this many a minute */
const REJECT_AUDIT_BURST = 20
const REJECT_AUDIT_PER_MINUTE = 6
/** how much of a claimed (unverified) field a rejection record keeps */
const CLAIMED_MAX = 128

/**
 * An unverified field as text fit for a log line or terminal: control and format characters
 * (newlines, escapes, bidirectional overrides) become U+FFFD, at most CLAIMED_MAX characters.
 */
export function sanitise(v: unknown): string {
  const s = typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v) ?? ''
  const clean = s.slice(0, CLAIMED_MAX * 2).replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, '\uFFFD')
  const chars = [...clean]
  return chars.length > CLAIMED_MAX ? `${chars.slice(0, CLAIMED_MAX).join('')}...` : clean
}

/** how often a decision held by another live actuator is looked at again */
const HOLDER_POLL_MS = 200
