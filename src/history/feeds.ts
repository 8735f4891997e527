/**
 * Where the history accumulator's input comes from.
 *
 * Single process (the sidecar deciding alone): `ServiceTap` wraps the receivers' consumer and
 * notes each request's service identity (resource attributes only: no normalizing twice), and
 * `StoreSampler` reads each finished step of those services from the signal store (the same
 * windows the engine reads) once it is `lagMs` old: requests, errors, the latency histogram at the
 * history's bucket bounds (LatencyView.countAbove), and each pod's last resource reading.
 *
 * Distributed (the decider): `PartialsHistoryFeed` consumes the partials topic in its own group
 * `<groupPrefix>.history` (one member per partition across every decider: each service's summary
 * is written by one member; after a rebalance mid-hour two members write parts of the hour, which
 * the reader sums) and records each partial's observations.
 */
import { errorMessage } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { Consumer, KafkaTransport } from '../kafka/types.js'
import { seriesKeyOf } from '../normalize/normalizer.js'
import { serviceId, type SeriesKey } from '../normalize/observations.js'
import { decodeBatch } from '../partials/codec.js'
import { partialObservations } from '../partials/types.js'
import type { ConsumeResult, TelemetryConsumer } from '../receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../receivers/otlp/model.js'
import type { SignalView } from '../signals/view.js'
import type { HistoryAccumulator, HistoryFeed } from './accumulator.js'

/** The services a sampler reads: at most `max` (more counted in `dropped`). */
export class ServiceTap implements TelemetryConsumer {
  private readonly known = new Map<string, { namespace: string; service: string }>()
  dropped = 0

  constructor(
    private readonly inner: TelemetryConsumer,
    private readonly max: number,
  ) {}

  private note(attrs: Record<string, unknown>): void {
    const k = seriesKeyOf(attrs as Parameters<typeof seriesKeyOf>[0])
    if (k === undefined) return
    const id = serviceId(k.namespace, k.service)
    if (this.known.has(id)) return
    if (this.known.size >= this.max) {
      this.dropped++
      return
    }
    this.known.set(id, { namespace: k.namespace, service: k.service })
  }

  consumeTraces(req: TracesRequest): ConsumeResult {
    for (const rs of req.resourceSpans) this.note(rs.resource)
    return this.inner.consumeTraces(req)
  }

  consumeMetrics(req: MetricsRequest): ConsumeResult {
    for (const rm of req.resourceMetrics) this.note(rm.resource)
    return this.inner.consumeMetrics(req)
  }

  services(): { namespace: string; service: string }[] {
    return [...this.known.values()]
  }
}

export interface StoreSamplerOptions {
  view: () => SignalView | undefined
  services: () => readonly { namespace: string; service: string }[]
  feed: HistoryFeed
  boundsUs: readonly number[]
  stepMs: number
  /** a step is read once it ended this long ago (late telemetry and report intervals have landed) */
  lagMs: number
  /** how far back the store answers (signals.retention): older unread steps are skipped (counted) */
  maxBackMs: number
}

/** Reads finished steps from the store; `sample(now)` is called before each history flush. */
export class StoreSampler {
  private nextEndMs: number | undefined
  /** steps not read because the sampler fell behind the store's fine retention */
  skipped = 0

  constructor(private readonly o: StoreSamplerOptions) {}

  /** reads every step that ended `lagMs` ago; `final` (shutdown): every step up to now, the current one partly */
  sample(nowMs: number, final = false): void {
    const view = this.o.view()
    if (view === undefined) return
    const step = this.o.stepMs
    const last = final ? Math.ceil(nowMs / step) * step : Math.floor((nowMs - this.o.lagMs) / step) * step
    // never further back than the store keeps (signals.retention, 10 min by default; older steps come
    // from its coarse ring, so history.step should be a multiple of signals.coarseBucket)
    const oldest = Math.ceil((nowMs - this.o.maxBackMs + step) / step) * step
    if (this.nextEndMs === undefined) this.nextEndMs = oldest
    if (this.nextEndMs < oldest) {
      this.skipped += (oldest - this.nextEndMs) / step
      this.nextEndMs = oldest
    }
    const services = this.o.services()
    for (; this.nextEndMs <= last; this.nextEndMs += step) {
      const to = this.nextEndMs
      for (const s of services) this.readStep(view, s, to - step, to)
    }
  }

  private readStep(view: SignalView, s: { namespace: string; service: string }, from: number, to: number): void {
    const b = this.o.boundsUs
    const lat = new Array<number>(b.length + 1)
    const reps = new Array<number>(b.length + 1)
    for (let j = 0; j <= b.length; j++) reps[j] = j < b.length ? (b[j] as number) : (b[b.length - 1] as number) + 1
    for (const v of view.versions(s.namespace, s.service)) {
      const key: SeriesKey = { namespace: s.namespace, service: s.service, version: v.version }
      if (v.lastSeenMs < from || v.firstSeenMs >= to) continue
      const w = view.window(key, from, to)
      if (w.requests > 0 || w.errors > 0) {
        // bucket j of the history = samples above bound j-1 and not above bound j
        let above = w.latency.count
        for (let j = 0; j < b.length; j++) {
          const a = w.latency.countAbove(b[j] as number)
          lat[j] = Math.max(0, above - a)
          above = a
        }
        lat[b.length] = above
        this.o.feed.requests(key, to - 1, w.requests, w.errors, reps, lat)
      } else if (w.buckets.length > 0) this.o.feed.requests(key, to - 1, 0, 0, [], undefined)
      for (const r of w.resources) {
        if (r.samples > 0) this.o.feed.resource(key, r.pod, r.resource, to - 1, r.last, r.request)
      }
    }
  }
}

export interface PartialsHistoryFeedOptions {
  transport: KafkaTransport
  topic: string
  groupId: string
  accumulator: HistoryAccumulator
  logger: Logger
}

export class PartialsHistoryFeed implements Component {
  readonly name = 'history-partials'
  private consumer: Consumer | undefined
  undecodable = 0

  constructor(private readonly o: PartialsHistoryFeedOptions) {}

  async start(): Promise<void> {
    if (this.consumer !== undefined) return
    this.consumer = this.o.transport.consumer({
      groupId: this.o.groupId,
      topics: [this.o.topic],
      // a new group starts at the partials' retention (minutes): the recent past is history too
      fromBeginning: true,
      maxBatchSize: 1000,
      onError: (err) => this.o.logger.debug({ err: errorMessage(err) }, 'history partials consumer error'),
    })
    await this.consumer.start((batch) => {
      for (const m of batch.messages) {
        if (m.value === null) continue
        try {
          for (const p of decodeBatch(m.value).partials) for (const obs of partialObservations(p)) this.o.accumulator.record(obs)
        } catch {
          this.undecodable++
        }
      }
      return Promise.resolve()
    })
  }

  stats(): { undecodable: number; consumer: ReturnType<Consumer['stats']> | undefined } {
    return { undecodable: this.undecodable, consumer: this.consumer?.stats() }
  }

  async shutdown(): Promise<void> {
    const c = this.consumer
    this.consumer = undefined
    await c?.stop()
  }
}
