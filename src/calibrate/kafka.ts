/**
 * KafkaHistorySource: the HistorySource over pullback's own hourly summaries on
 * `kafka.topics.history` (src/history). The topic is read once, to its end (a marker record, as the
 * actuator's readers do: the topic has one partition), keeping the encoded summaries of the wanted
 * services whose hour overlaps the range; a service's history is decoded on demand, one service at
 * a time.
 *
 * Memory: the encoded summaries kept (about the bytes per service-day of src/history/README.md x
 * services x days), bounded by `maxBytes`; summaries beyond it are counted (`droppedBytes`) and the
 * services they belong to are answered `failed` (an incomplete history would calibrate wrongly).
 *
 * Summaries of the same service and hour (a partial hour written at shutdown, then its rest; two
 * deciders across a rebalance) are summed. Steps are re-binned onto the range's grid; latency
 * buckets of a summary with other bounds than the first one are mapped by their upper bound.
 */
import type { Logger } from '../common/logger.js'
import type { KafkaTransport } from '../kafka/types.js'
import { TopicTail } from '../actuator/log.js'
import { decodeHeader, decodeSummary, HOUR_MS, type HourSummary } from '../history/codec.js'
import { emptyRequests, dataSpan, serviceKey, type HistoryOutcome, type HistoryRange, type HistorySource, type PodResourceSeries, type Resource, type ServiceHistory, type ServiceRef } from './history.js'
import { QuantileSketch } from './quantile.js'

export const DEFAULT_MAX_BYTES = 1024 * 2 ** 20

export interface KafkaHistorySourceOptions {
  transport: KafkaTransport
  topic: string
  groupPrefix: string
  logger: Logger
  /** only these services are kept (default: all) */
  services?: readonly ServiceRef[]
  maxBytes?: number
  /** bound on reading the topic to its end */
  timeoutMs?: number
}

export interface KafkaSourceStats {
  records: number
  kept: number
  bytes: number
  invalid: number
  droppedBytes: number
  outOfRange: number
}

export class KafkaHistorySource implements HistorySource {
  private loaded: Promise<void> | undefined
  private readonly byService = new Map<string, { ref: ServiceRef; records: Buffer[]; incomplete: boolean }>()
  readonly stats: KafkaSourceStats = { records: 0, kept: 0, bytes: 0, invalid: 0, droppedBytes: 0, outOfRange: 0 }
  private readonly wanted: Set<string> | undefined

  constructor(private readonly o: KafkaHistorySourceOptions) {
    this.wanted = o.services === undefined || o.services.length === 0 ? undefined : new Set(o.services.map(serviceKey))
  }

  private load(range: HistoryRange): Promise<void> {
    this.loaded ??= this.read(range)
    return this.loaded
  }

  private async read(range: HistoryRange): Promise<void> {
    const max = this.o.maxBytes ?? DEFAULT_MAX_BYTES
    const tail = new TopicTail({
      transport: this.o.transport,
      topic: this.o.topic,
      groupPrefix: this.o.groupPrefix,
      logger: this.o.logger,
      onRecord: (e) => {
        this.stats.records++
        const h = decodeHeader(e.value)
        if (h.kind !== 'ok') {
          this.stats.invalid++
          return
        }
        if (h.hourStartMs + HOUR_MS <= range.startMs || h.hourStartMs > range.endMs) {
          this.stats.outOfRange++
          return
        }
        const ref = { namespace: h.namespace, name: h.service }
        const key = serviceKey(ref)
        if (this.wanted !== undefined && !this.wanted.has(key)) return
        let s = this.byService.get(key)
        if (s === undefined) {
          s = { ref, records: [], incomplete: false }
          this.byService.set(key, s)
        }
        if (this.stats.bytes + e.value.length > max) {
          this.stats.droppedBytes += e.value.length
          s.incomplete = true
          return
        }
        // the consumer's buffer may be reused: keep a copy of exactly this record
        s.records.push(Buffer.from(e.value))
        this.stats.kept++
        this.stats.bytes += e.value.length
      },
    })
    try {
      await tail.start()
      await tail.sync('__history_marker__', this.o.timeoutMs ?? 120_000)
    } finally {
      await tail.shutdown()
    }
  }

  async services(range: HistoryRange): Promise<ServiceRef[]> {
    await this.load(range)
    return [...this.byService.values()].map((s) => s.ref).sort((a, b) => serviceKey(a).localeCompare(serviceKey(b)))
  }

  async history(service: ServiceRef, range: HistoryRange): Promise<HistoryOutcome> {
    try {
      await this.load(range)
    } catch (err) {
      return { kind: 'failed', service, reason: `reading ${this.o.topic}: ${(err as Error).message}` }
    }
    const s = this.byService.get(serviceKey(service))
    if (s === undefined || s.records.length === 0) return { kind: 'empty', service, reason: `no summaries of ${serviceKey(service)} on ${this.o.topic} in the range` }
    if (s.incomplete) return { kind: 'failed', service, reason: `its summaries exceed the read limit of ${((this.o.maxBytes ?? DEFAULT_MAX_BYTES) / 2 ** 20).toFixed(0)} MiB (--max-mib): refusing an incomplete history` }
    const sums: HourSummary[] = []
    for (const b of s.records) {
      const d = decodeSummary(b)
      if (d.kind === 'ok') sums.push(d.summary)
      else this.stats.invalid++
    }
    if (sums.length === 0) return { kind: 'empty', service, reason: 'every summary was undecodable' }
    return { kind: 'ok', history: historyFromSummaries(service, sums, range) }
  }
}

/** The resource usage of a service over the range, merged from the summaries' sketches. */
export interface UsageSketches {
  memory: QuantileSketch
  cpu: QuantileSketch
}

/** Builds a ServiceHistory on the range's grid from hourly summaries (summed where they overlap). */
export function historyFromSummaries(service: ServiceRef, sums: readonly HourSummary[], range: HistoryRange): ServiceHistory {
  const first = sums[0] as HourSummary
  const boundsS = first.boundsUs.map((u) => u / 1e6)
  const req = emptyRequests(range, boundsS)
  const width = boundsS.length + 1
  const n = req.counts.length
  const usage: UsageSketches = { memory: new QuantileSketch(), cpu: new QuantileSketch() }
  const pods = new Map<string, { pod: string; resource: Resource; request: number; requestAt: number; points: [number, number][] }>()
  for (const s of sums) {
    const sw = s.boundsUs.length + 1
    const map = new Array<number>(sw)
    for (let j = 0; j < sw; j++) {
      if (j === s.boundsUs.length) map[j] = width - 1
      else {
        const ub = (s.boundsUs[j] as number) / 1e6
        let k = 0
        while (k < boundsS.length && ub > (boundsS[k] as number) + 1e-12) k++
        map[j] = k
      }
    }
    for (let k = 0; k < s.counts.length; k++) {
      const c = s.counts[k] as number
      if (Number.isNaN(c)) continue
      // slot k covers [h + k step, h + (k+1) step): the grid step ending at or after its end
      const t = s.hourStartMs + (k + 1) * s.stepMs
      const i = Math.ceil((t - range.startMs) / range.stepMs)
      if (i < 0 || i >= n) continue
      req.counts[i] = (Number.isNaN(req.counts[i] as number) ? 0 : (req.counts[i] as number)) + c
      req.errors[i] = (req.errors[i] as number) + (s.errors[k] as number)
      for (let j = 0; j < sw; j++) {
        const v = s.latency[k * sw + j] as number
        if (v > 0) req.latency[i * width + (map[j] as number)] = (req.latency[i * width + (map[j] as number)] as number) + v
      }
    }
    for (const r of s.resources) {
      const sk = new QuantileSketch()
      if (r.zeros > 0) sk.addBucket(0, r.zeros, true)
      for (const [k, c] of r.buckets) sk.addBucket(k, c)
      usage[r.resource].merge(sk)
      const id = `${r.resource}\u0000${r.pod}`
      let p = pods.get(id)
      if (p === undefined) {
        p = { pod: r.pod, resource: r.resource, request: Number.NaN, requestAt: -Infinity, points: [] }
        pods.set(id, p)
      }
      if (Number.isFinite(r.request) && s.hourStartMs >= p.requestAt) {
        p.request = r.request
        p.requestAt = s.hourStartMs
      }
      // the backtest's per-pod series: the hour's median at every step of the hour (a summary keeps no order inside the hour)
      if (sk.count > 0) p.points.push([s.hourStartMs, sk.quantile(0.5)])
    }
  }
  const resources: PodResourceSeries[] = []
  for (const p of pods.values()) {
    p.points.sort((a, b) => a[0] - b[0])
    const times: number[] = []
    const values: number[] = []
    for (const [h, v] of p.points) {
      for (let t = h + range.stepMs; t <= h + HOUR_MS; t += range.stepMs) {
        if (t < range.startMs || t > range.endMs) continue
        if (times.length > 0 && t <= (times[times.length - 1] as number)) continue
        times.push(t)
        values.push(v)
      }
    }
    resources.push({ pod: p.pod, container: service.name, resource: p.resource, timesMs: Float64Array.from(times), values: Float64Array.from(values), request: p.request })
  }
  const span = dataSpan(req)
  return { service, requests: req, resources, firstDataMs: span.firstMs, lastDataMs: span.lastMs, usage }
}
