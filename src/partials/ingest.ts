/**
 * One ingest node (a sidecar of the DaemonSet, or one simulated by `pullback replay --nodes`): its
 * own Normalizer feeding a PartialAggregator instead of a signal store. The normalizer's state
 * (cumulative streams, span-source preference, pod requests) is per node, as it is per sidecar.
 */
import { Normalizer, type NormalizerHooks, type NormalizerStats } from '../normalize/normalizer.js'
import type { NormalizeConfigInput } from '../normalize/config.js'
import type { ConsumeResult } from '../receivers/consumer.js'
import type { MetricsRequest, TracesRequest } from '../receivers/otlp/model.js'
import type { ObservationSink } from '../normalize/observations.js'
import { PartialAggregator, type AggregatorOptions, type AggregatorStats } from './aggregator.js'

export interface IngestNodeOptions extends AggregatorOptions {
  normalize?: NormalizeConfigInput
  /** the normalizer's lifecycle events (the sidecar logs them) */
  normalizeHooks?: NormalizerHooks
  /** also hands every observation here (replay --nodes: the simulated cluster's clock) */
  tap?: ObservationSink
}

export class IngestNode {
  readonly name: string
  private readonly agg: PartialAggregator
  private readonly normalizer: Normalizer

  constructor(opts: IngestNodeOptions) {
    this.name = opts.node
    this.agg = new PartialAggregator(opts)
    const agg = this.agg
    const tap = opts.tap
    this.normalizer = new Normalizer(opts.normalize ?? {}, tap === undefined ? agg : { record: (o) => (agg.record(o), tap.record(o)) }, opts.normalizeHooks)
  }

  consumeTraces(req: TracesRequest): ConsumeResult {
    return this.normalizer.traces(req)
  }

  /** the histograms its normalizer did not read as request durations (Normalizer.unreadHistograms) */
  unreadHistograms(): ReturnType<Normalizer['unreadHistograms']> {
    return this.normalizer.unreadHistograms()
  }

  consumeMetrics(req: MetricsRequest): ConsumeResult {
    return this.normalizer.metrics(req)
  }

  /** See PartialAggregator.advance. */
  advance(nowMs: number): void {
    this.agg.advance(nowMs)
  }

  flush(): void {
    this.agg.flush()
  }

  stats(): { normalizer: NormalizerStats; partials: AggregatorStats } {
    return { normalizer: this.normalizer.stats(), partials: this.agg.stats() }
  }
}
