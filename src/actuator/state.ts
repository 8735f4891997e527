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
 * Memory bound: at most `maxDecisions` decision records are kept; past it the oldest `done` ones
 * are forgotten (counted in `evicted`); a forgotten decision redelivered later still cannot act
 * twice because the cutover is level-triggered and a failed one froze its service.
 */
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { Verdict } from '../engine/verdict.js'
import type { KafkaTransport, Producer } from '../kafka/types.js'
import type { AuditOutcome, PhaseStamp } from './audit.js'
import { TopicTail } from './log.js'

export interface DecisionProgress {
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
}

export interface FreezeRecord {
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
  private readonly tail: TopicTail

  constructor(
    private readonly o: { transport: KafkaTransport; topic: string; groupPrefix: string; producer: Producer; logger: Logger; maxDecisions?: number; onLoaded?: (p: DecisionProgress) => void },
  ) {
    this.tail = new TopicTail({
      transport: o.transport,
      topic: o.topic,
      groupPrefix: o.groupPrefix,
      logger: o.logger,
      producer: o.producer,
      spec: stateTopicSpec(o.topic),
      onRecord: (e) => {
        const v = JSON.parse(e.value.toString()) as DecisionProgress | FreezeRecord
        if (e.key.startsWith('decision/')) this.applyProgress(v as DecisionProgress, true)
        else if (e.key.startsWith('freeze/')) this.freezes.set((v as FreezeRecord).service, v as FreezeRecord)
      },
    })
  }

  async start(): Promise<void> {
    await this.tail.start()
    await this.tail.sync()
  }

  shutdown(): Promise<void> {
    return this.tail.shutdown()
  }

  /** re-reads what other writers (a previous incarnation, `actuator rearm`) wrote so far */
  sync(): Promise<void> {
    return this.tail.sync()
  }

  async put(p: DecisionProgress): Promise<void> {
    await this.o.producer.send(this.o.topic, [{ key: `decision/${p.decisionId}`, value: JSON.stringify(p) }])
    this.applyProgress(p, false)
  }

  async setFreeze(f: FreezeRecord): Promise<void> {
    await this.o.producer.send(this.o.topic, [{ key: `freeze/${f.service}`, value: JSON.stringify(f) }])
    this.freezes.set(f.service, f)
  }

  frozen(service: string): FreezeRecord | undefined {
    const f = this.freezes.get(service)
    return f?.frozen ? f : undefined
  }

  private applyProgress(p: DecisionProgress, fromLog: boolean): void {
    const prev = this.decisions.get(p.decisionId)
    // the tail also reads back our own writes: never let an older phase overwrite a newer one
    if (prev && rank(prev.phase) > rank(p.phase)) return
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

const rank = (p: DecisionProgress['phase']) => (p === 'cutover' ? 0 : p === 'awaiting-recovery' ? 1 : 2)
