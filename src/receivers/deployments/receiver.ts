/**
 * The deployment-event receiver: consumes `kafka.topics.deployments` (default `pullback.deployments`),
 * one JSON object per record, validates it (./schema.ts) and hands the DeploymentEvent to a callback.
 * Invalid records are counted by reason and skipped (offset moves on); a throwing callback is counted
 * and the record skipped, so one bad event never blocks the stream. With `auth`, signatures are
 * checked (./auth.ts): events failing the check are counted (`invalid.signature`, `invalid.unsigned`)
 * and dropped; accepted unsigned events are counted in `unsigned`.
 */
import { errorMessage } from '../../common/errors.js'
import type { Component } from '../../common/lifecycle.js'
import type { Logger } from '../../common/logger.js'
import { silentLogger } from '../../common/logger.js'
import type { DeploymentEvent } from '../../engine/events.js'
import type { Batch, Consumer, ConsumerStats, KafkaTransport } from '../../kafka/types.js'
import type { EventAuth } from './auth.js'
import { openDeploymentEvent, type InvalidReason } from './schema.js'

export interface DeploymentsReceiverOptions {
  transport: KafkaTransport
  /** kafka.topics.deployments */
  topic: string
  /** every sidecar instance needs every event: give each instance its own group, e.g. `${groupPrefix}.deployments.${podName}` */
  groupId: string
  onEvent: (e: DeploymentEvent) => void
  logger?: Logger
  /** signature policy; absent: events are not checked (every one counts as unsigned) */
  auth?: EventAuth
}

export interface DeploymentsStats {
  accepted: number
  /** accepted events that carried no signature */
  unsigned: number
  invalid: Record<InvalidReason, number>
  /** the callback threw */
  callbackFailures: number
  /** the most recent validation failure, for operators ("time: expected RFC3339 or unix ms") */
  lastInvalid: string | undefined
  consumer: ConsumerStats | undefined
}

export class DeploymentsReceiver implements Component {
  readonly name = 'deployments'
  private readonly opts: DeploymentsReceiverOptions
  private readonly logger: Logger
  private consumer: Consumer | undefined
  private started = false
  private stopping: Promise<void> | undefined
  private readonly counters = {
    accepted: 0,
    unsigned: 0,
    invalid: { json: 0, schema: 0, empty: 0, unsigned: 0, signature: 0 } as Record<InvalidReason, number>,
    callbackFailures: 0,
    lastInvalid: undefined as string | undefined,
  }

  constructor(opts: DeploymentsReceiverOptions) {
    this.opts = opts
    this.logger = opts.logger ?? silentLogger
  }

  async start(): Promise<void> {
    if (this.started) throw new Error(`${this.name}: start() called twice`)
    this.started = true
    this.consumer = this.opts.transport.consumer({
      groupId: this.opts.groupId,
      topics: [this.opts.topic],
      fromBeginning: true,
      onError: (err) => this.logger.warn({ err: errorMessage(err) }, 'deployments consumer error'),
    })
    await this.consumer.start((batch) => this.handle(batch))
    const auth = this.opts.auth
    this.logger.info({ topic: this.opts.topic, groupId: this.opts.groupId, trustedKeys: auth?.verifier.size ?? 0, requireSigned: auth?.requireSigned ?? false }, 'deployments receiver started')
    if (auth?.requireSigned !== true) {
      this.logger.warn('deployment events are accepted unsigned (receivers.deployments.requireSigned): anyone who can write to the deployments topic can suppress a rollback (docs/threat-model.md)')
    }
  }

  private handle(batch: Batch): Promise<void> {
    for (const m of batch.messages) {
      const parsed = openDeploymentEvent(m.value, this.opts.auth)
      if (parsed.kind === 'invalid') {
        this.counters.invalid[parsed.reason]++
        this.counters.lastInvalid = `${m.topic}/${m.partition}@${m.offset}: ${parsed.message}`
        continue
      }
      try {
        this.opts.onEvent(parsed.event)
        this.counters.accepted++
        if (parsed.signature === 'none') this.counters.unsigned++
      } catch (err) {
        this.counters.callbackFailures++
        this.logger.warn({ err: errorMessage(err) }, 'deployment event callback failed; event skipped')
      }
    }
    return Promise.resolve()
  }

  stats(): DeploymentsStats {
    return { ...this.counters, invalid: { ...this.counters.invalid }, consumer: this.consumer?.stats() }
  }

  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      await this.consumer?.stop()
    })()
    return this.stopping
  }
}
