/**
 * The actuator's durable state on a compacted, single-partition topic (`actuator.stateTopic`,
 * default `pullback.actuator.state`), read from the beginning at start and tailed afterwards:
 *
 *   key `decision/<decisionId>`  DecisionProgress: the idempotency record of one decision. Written
 *                                with phase `cutover` BEFORE the cutover request, `awaiting-recovery`
 *                                after the rollback event, `done` once the audit record is written.
 *   key `freeze/<service>`       FreezeRecord: a frozen service gets no automatic rollback until
 *                                `pullback actuator rearm --service S` writes frozen=false.
 *
 * Fencing (two actuators at once, or a stale one resumed after a pause): every decision record
 * carries an `epoch` and the `owner` (instance id, host, pid) that wrote it. Whoever starts or
 * resumes a cutover, or finishes a decision, first CLAIMS it: reads the topic to its end, appends
 * the record with epoch+1, reads to the end again and checks that its own record is the one in
 * force. Every reader applies records in the log's order with one rule (`supersedes`): a higher
 * epoch wins, the same epoch is accepted only from the same owner, and a phase never goes back
 * (`done` is final). The single partition's total order is the arbiter: of two concurrent claimers
 * of the same epoch the first appended wins, and both see it the same way; the loser does nothing.
 * A writer whose record is no longer in force (a newer epoch was claimed) gets `fenced` from `put`
 * and stops; its late writes are ignored by every reader and counted in `fencedRecords`. A claim
 * carries a `lease` renewed by its owner while the driver works: another actuator resumes a
 * decision in phase `cutover` only once the lease lapsed or, on the same host, the owner's process
 * is provably gone. This is compare-and-set on Kafka's log, not leader election: nothing is elected,
 * each decision is claimed on its own.
 *
 * Authentication (issue 13, item 1): with a state key (`actuator.stateKey`) every record is sealed
 * (authentic.ts) and a record that does not verify against the trusted state keys (the key's public
 * half plus `actuator.stateKeys`: an operator's re-arm key, the previous key during a rotation) is
 * ignored by every reader, counted in `unauthenticated`, and the verified record it would shadow on
 * the compacted topic is appended again. A record whose key does not name the record it holds
 * (`decision/<id>` with another id) is ignored the same way, and so is a tombstone (pullback never
 * deletes a state record; one would erase the record at the next compaction). Without a state key the topic is
 * trusted as it is (`open`, warned at start).
 *
 * Memory bound: at most `maxDecisions` decision records are kept; past it the oldest `done` ones
 * are forgotten (counted in `evicted`); a forgotten decision redelivered later still cannot act
 * twice because the cutover is level-triggered and a failed one froze its service.
 */
import type { Component } from '../common/lifecycle.js'
import { classify, errorMessage } from '../common/errors.js'
import type { Logger } from '../common/logger.js'
import { sleep } from '../common/sleep.js'
import type { Verdict } from '../engine/verdict.js'
import type { KafkaTransport, Producer } from '../kafka/types.js'
import type { AuditOutcome, PhaseStamp } from './audit.js'
import type { ChildRef } from './drivers/types.js'
import { OPEN, ShadowRepair, check, seal, type RecordAuth, type Sealed } from './authentic.js'
import { TopicTail } from './log.js'

/** the actuator instance that wrote a decision record; `host`/`pid`/`startTime` let a peer on the same host see that it died */
export interface Owner {
  id: string
  host: string
  pid: number
  startTime: string
}

/** a terminal transition under way: replayed as it was by whoever resumes it (a page already sent is not sent again) */
export interface Finishing {
  outcome: AuditOutcome
  reason: string
  escalate: boolean
  freeze: boolean
  /** the escalation record was written and the pages started */
  paged: boolean
}

export interface DecisionProgress extends Sealed {
  decisionId: string
  service: string
  phase: 'cutover' | 'awaiting-recovery' | 'done'
  outcome?: AuditOutcome
  verdict: Verdict
  failed: { artifact: string; version: string }
  target?: { artifact: string; version: string; digest?: string }
  phases: PhaseStamp[]
  patched?: boolean
  driver: string
  recoveryDeadline?: number
  updatedAt: number
  /** claim number: see "Fencing" above; absent in records of older versions (epoch 0) */
  epoch?: number
  owner?: Owner
  /** unix ms until which the owner's claim holds without renewal */
  lease?: number
  /** the exec driver's command of the current attempt, recorded before the driver waits for it */
  child?: ChildRef
  finishing?: Finishing
}

export type PutOutcome = { kind: 'written' } | { kind: 'fenced'; holder: DecisionProgress }
export type ClaimOutcome = { kind: 'won'; record: DecisionProgress } | { kind: 'lost'; holder: DecisionProgress | undefined }

export interface FreezeRecord extends Sealed {
  service: string
  frozen: boolean
  at: number
  reason: string
  decisionId?: string
  by?: string
}

export const stateTopicSpec = (topic: string) => ({ topic, numPartitions: 1, configs: { 'cleanup.policy': 'compact' } })

export class ActuatorState implements Component {
  readonly name = 'actuator.state'
  readonly decisions = new Map<string, DecisionProgress>()
  readonly freezes = new Map<string, FreezeRecord>()
  evicted = 0
  /** records of a superseded claim (a stale or losing writer), read and ignored */
  fencedRecords = 0
  /** records read and ignored: not JSON / not verifying under the state key / key naming another record */
  readonly unauthenticated = { malformed: 0, unsigned: 0, 'unknown-key': 0, 'bad-signature': 0, 'key-mismatch': 0, tombstone: 0 }
  readonly repair: ShadowRepair
  readonly auth: RecordAuth
  private readonly tail: TopicTail
  private stopping = false
  private readonly stopped = new AbortController()

  constructor(
    private readonly o: {
      transport: KafkaTransport
      topic: string
      groupPrefix: string
      producer: Producer
      logger: Logger
      maxDecisions?: number
      onLoaded?: (p: DecisionProgress) => void
      syncTimeoutMs?: number
      /** default: open (no state key) */
      auth?: RecordAuth
    },
  ) {
    this.auth = o.auth ?? OPEN
    this.repair = new ShadowRepair((key, value) => this.tail.append(key, value))
    this.tail = new TopicTail({
      transport: o.transport,
      topic: o.topic,
      groupPrefix: o.groupPrefix,
      logger: o.logger,
      producer: o.producer,
      spec: stateTopicSpec(o.topic),
      onRecord: (e) => this.onRecord(e.key, e.value),
      // pullback never deletes a state record: a tombstone would erase a freeze or a decision's record at the next compaction
      onTombstone: (key) => {
        if (this.auth.kind !== 'signed') return
        this.unauthenticated.tombstone++
        this.repair.forged(key, key.startsWith('decision/') ? this.decisions.get(key.slice('decision/'.length)) : this.freezes.get(key.slice('freeze/'.length)))
      },
    })
  }

  private onRecord(key: string, value: Buffer): void {
    let v: (DecisionProgress | FreezeRecord) & Sealed
    try {
      v = JSON.parse(value.toString()) as DecisionProgress | FreezeRecord
    } catch {
      this.unauthenticated.malformed++
      return
    }
    if (typeof v !== 'object' || v === null) {
      this.unauthenticated.malformed++
      return
    }
    const decision = key.startsWith('decision/') ? key.slice('decision/'.length) : undefined
    const freeze = key.startsWith('freeze/') ? key.slice('freeze/'.length) : undefined
    if (decision === undefined && freeze === undefined) return
    const current = decision !== undefined ? this.decisions.get(decision) : this.freezes.get(freeze!)
    const named = decision !== undefined ? (v as DecisionProgress).decisionId === decision : (v as FreezeRecord).service === freeze
    const c = check(v, this.auth)
    if (c.kind === 'invalid' || !named) {
      this.unauthenticated[c.kind === 'invalid' ? c.reason : 'key-mismatch']++
      if (this.auth.kind === 'signed') this.repair.forged(key, current)
      return
    }
    this.repair.verified(key)
    if (decision !== undefined) this.applyProgress(v as DecisionProgress, true)
    else this.freezes.set(freeze!, v as FreezeRecord)
  }

  /** records ignored because they were malformed or did not verify, all reasons together */
  get unauthenticatedTotal(): number {
    return Object.values(this.unauthenticated).reduce((a, b) => a + b, 0)
  }

  /**
   * Reads the topic to its end before anything acts on it. A freshly created state topic can answer
   * "Unknown topic or partition" for a while, so a read that does not reach the end within its
   * timeout is retried with a new reader (a new consumer group), with growing timeouts and backoff,
   * one log line per attempt, until it succeeds or shutdown() is called: never an exit at start-up.
   */
  async start(): Promise<void> {
    const first = this.o.syncTimeoutMs ?? 20_000
    for (let attempt = 1; ; attempt++) {
      try {
        await this.tail.start()
        await this.tail.sync(undefined, Math.min(first * attempt, 120_000))
        if (attempt > 1) this.o.logger.info({ topic: this.o.topic, attempt, decisions: this.decisions.size }, 'actuator state read to its end')
        return
      } catch (err) {
        if (this.stopping || classify(err) === 'programmer') throw err
        this.o.logger.warn({ err: errorMessage(err), topic: this.o.topic, attempt, decisions: this.decisions.size }, 'reading the actuator state failed; retrying with a new reader')
        await this.tail.shutdown()
        await sleep(Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)), this.stopped.signal)
        if (this.stopping) throw err
      }
    }
  }

  shutdown(): Promise<void> {
    this.stopping = true
    this.stopped.abort()
    return this.tail.shutdown()
  }

  /** re-reads what other writers (a previous incarnation, `actuator rearm`) wrote so far */
  sync(): Promise<void> {
    return this.tail.sync()
  }

  /** writes a record under the writer's current claim; `fenced` (nothing written) when a newer claim is in force */
  async put(p: DecisionProgress): Promise<PutOutcome> {
    const cur = this.decisions.get(p.decisionId)
    if (cur !== undefined && !supersedes(cur, p)) return { kind: 'fenced', holder: cur }
    const sealed = seal(p, this.auth)
    await this.o.producer.send(this.o.topic, [{ key: `decision/${p.decisionId}`, value: JSON.stringify(sealed) }])
    this.applyProgress(sealed, false)
    return { kind: 'written' }
  }

  /**
   * Claims `p.decisionId` for `owner` with the next epoch (see "Fencing"). The claim record is not
   * applied locally: only the log's order decides between concurrent claimers.
   */
  /**
   * `heldElsewhere`, when given, is asked about the record in force AFTER the read to the end, in the
   * same step that picks the epoch: a claimant that sees another live holder's claim there backs off
   * instead of outbidding it (a check made before this read could be stale: two actuators whose
   * recovery deadlines fire together would otherwise both win, one after the other).
   */
  async claim(p: DecisionProgress, owner: Owner, heldElsewhere?: (cur: DecisionProgress) => boolean): Promise<ClaimOutcome> {
    await this.sync()
    const cur = this.decisions.get(p.decisionId)
    if (cur !== undefined && (cur.owner?.id ?? '') !== owner.id && heldElsewhere?.(cur) === true) return { kind: 'lost', holder: cur }
    const mine: DecisionProgress = { ...p, epoch: (cur?.epoch ?? 0) + 1, owner }
    if (cur !== undefined && !supersedes(cur, mine)) return { kind: 'lost', holder: cur }
    await this.o.producer.send(this.o.topic, [{ key: `decision/${p.decisionId}`, value: JSON.stringify(seal(mine, this.auth)) }])
    await this.sync()
    const now = this.decisions.get(p.decisionId)
    return now?.owner?.id === owner.id && now.epoch === mine.epoch ? { kind: 'won', record: now } : { kind: 'lost', holder: now }
  }

  /** freezes and re-arms are sealed like decision records: an unverified one is ignored (issue 13, item 5) */
  async setFreeze(f: FreezeRecord): Promise<void> {
    const sealed = seal(f, this.auth)
    await this.o.producer.send(this.o.topic, [{ key: `freeze/${f.service}`, value: JSON.stringify(sealed) }])
    this.freezes.set(f.service, sealed)
  }

  frozen(service: string): FreezeRecord | undefined {
    const f = this.freezes.get(service)
    return f?.frozen ? f : undefined
  }

  private applyProgress(p: DecisionProgress, fromLog: boolean): void {
    const prev = this.decisions.get(p.decisionId)
    if (prev && !supersedes(prev, p)) {
      // the tail also reads back our own writes, older than what was applied locally: not fencing
      if (fromLog && (p.owner?.id ?? '') !== (prev.owner?.id ?? '')) this.fencedRecords++
      return
    }
    this.decisions.delete(p.decisionId)
    this.decisions.set(p.decisionId, p)
    if (fromLog) this.o.onLoaded?.(p)
    const max = this.o.maxDecisions ?? 100_000
    if (this.decisions.size > max) {
      for (const [id, d] of this.decisions) {
        if (this.decisions.size <= max) break
        if (d.phase === 'done') {
          this.decisions.delete(id)
          this.evicted++
        }
      }
    }
  }
}

/**
 * Whether `next` may replace `cur`, applied identically by every reader in log order: phases never
 * go back; a higher epoch wins; within an epoch only its owner writes, and newer over older.
 */
export function supersedes(cur: DecisionProgress, next: DecisionProgress): boolean {
  if (rank(next.phase) < rank(cur.phase)) return false
  const ce = cur.epoch ?? 0
  const ne = next.epoch ?? 0
  if (ne !== ce) return ne > ce
  if ((next.owner?.id ?? '') !== (cur.owner?.id ?? '')) return false
  return rank(next.phase) > rank(cur.phase) || next.updatedAt >= cur.updatedAt
}

const rank = (p: DecisionProgress['phase']) => (p === 'cutover' ? 0 : p === 'awaiting-recovery' ? 1 : 2)
