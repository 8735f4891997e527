/**
 * The history stage as a process assembles it (src/runtime/sidecar.ts, decider-process.ts): a
 * HistoryWriter and its feed, chosen by the process's role:
 *   - `store`: the sidecar deciding alone; a ServiceTap around the receivers' consumer names the
 *     services, a StoreSampler reads their finished steps from the signal store before each flush;
 *   - `partials`: a decider (the `pullback decider` process, or a distributed sidecar with
 *     decider.enabled); the partials topic in the group `<groupPrefix>.history`;
 *   - disabled (`history.enabled: false`, or an ingest-only node): no stage at all.
 * start: writer (creates the topic) then feed; shutdown (idempotent): feed, then the writer (which
 * writes the open hours).
 */
import type { Clock } from '../common/clock.js'
import { errorMessage } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { PullbackConfig } from '../config/schema.js'
import type { KafkaTransport } from '../kafka/types.js'
import type { TelemetryConsumer } from '../receivers/consumer.js'
import type { SignalView } from '../signals/view.js'
import { PartialsHistoryFeed, ServiceTap, StoreSampler } from './feeds.js'
import { HistoryWriter, type HistoryWriterStats } from './writer.js'

export type HistoryRole = { kind: 'store'; view: () => SignalView | undefined } | { kind: 'partials' }

export interface HistoryStageOptions {
  config: PullbackConfig
  transport: KafkaTransport
  logger: Logger
  clock: Clock
  role: HistoryRole
}

export class HistoryStage implements Component {
  readonly name = 'history'
  readonly writer: HistoryWriter
  private readonly partials: PartialsHistoryFeed | undefined
  private tapped: ServiceTap | undefined
  private sampler: StoreSampler | undefined
  private feedStarting: Promise<void> | undefined

  constructor(private readonly o: HistoryStageOptions) {
    const cfg = o.config
    const logger = o.logger.child({ component: 'history' })
    this.writer = new HistoryWriter({ transport: o.transport, topic: cfg.kafka.topics.history, config: cfg.history, logger, clock: o.clock })
    if (o.role.kind === 'partials') {
      this.partials = new PartialsHistoryFeed({ transport: o.transport, topic: cfg.kafka.topics.partials, groupId: `${cfg.kafka.groupPrefix}.history`, accumulator: this.writer.accumulator, logger })
    }
  }

  /** The stage for a process, or undefined when history is off for it. */
  static for(o: Omit<HistoryStageOptions, 'role'> & { role: HistoryRole | undefined }): HistoryStage | undefined {
    if (!o.config.history.enabled || o.role === undefined) return undefined
    return new HistoryStage({ ...o, role: o.role })
  }

  /** single process: wraps the receivers' consumer (the services to sample); other roles: unchanged */
  tap(consumer: TelemetryConsumer): TelemetryConsumer {
    const role = this.o.role
    if (role.kind !== 'store') return consumer
    const cfg = this.o.config
    const tap = new ServiceTap(consumer, cfg.history.maxServices)
    this.tapped = tap
    const sampler = new StoreSampler({
      view: role.view,
      services: () => tap.services(),
      feed: this.writer.feed,
      boundsUs: this.writer.accumulator.boundsUs,
      stepMs: cfg.history.step,
      // complete once a report interval (at most a step) and the lateness have passed; read before its hour is written
      lagMs: Math.min(cfg.history.grace, cfg.engine.lateness + cfg.history.step),
      maxBackMs: cfg.signals.retention,
    })
    this.sampler = sampler
    this.writer.beforeFlush((now, final) => sampler.sample(now, final))
    return tap
  }

  /** the services this process has seen (single process), for the readiness ladder */
  seenServices(): string[] {
    return (this.tapped?.services() ?? []).map((s) => (s.namespace === '' ? s.service : `${s.namespace}/${s.service}`))
  }

  stats(): HistoryWriterStats & { servicesUntapped: number; stepsSkipped: number; undecodablePartials: number } {
    return { ...this.writer.stats(), servicesUntapped: this.tapped?.dropped ?? 0, stepsSkipped: this.sampler?.skipped ?? 0, undecodablePartials: this.partials?.undecodable ?? 0 }
  }

  /** the partials feed joins its group in the background: a group join (seconds) must not delay the decider */
  async start(): Promise<void> {
    await this.writer.start()
    const partials = this.partials
    if (partials !== undefined && this.feedStarting === undefined) {
      this.feedStarting = partials.start().catch((err: unknown) => this.o.logger.error({ err: errorMessage(err) }, 'history partials feed did not start; no history is written from partials'))
    }
  }

  /** idempotent; the feed's part is bounded (2 s) so an unreachable broker cannot hold the process */
  async shutdown(): Promise<void> {
    const partials = this.partials
    if (partials !== undefined) {
      let t: NodeJS.Timeout | undefined
      const stop = (this.feedStarting ?? Promise.resolve()).then(() => partials.shutdown())
      const ok = await Promise.race([stop.then(() => true), new Promise<boolean>((r) => (t = setTimeout(() => r(false), 2000)))])
      clearTimeout(t)
      if (!ok) this.o.logger.warn({}, 'history partials feed did not stop within 2 s; left behind')
    }
    await this.writer.shutdown()
  }
}
