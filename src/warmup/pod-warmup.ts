import type { WarmupConfig } from './config.js'

/** What the warm-up stage counted (merged into the normalizer's stats, exported as self-metrics). */
export interface WarmupStats {
  /** requests left out because their process was in its warm-up (spans: one each; metric points: their count) */
  warmupExcluded: number
  /** processes forgotten at `maxPods`: their next request starts a warm-up again */
  warmupPodsEvicted: number
}

/** a metric point is left out when more of its interval than this lies in its process's warm-up */
const WARM_SHARE = 0.25

/**
 * A process's warm-up: its requests that started within `duration` of its first request seen. The
 * normalizer asks before a request reaches the signal store, and leaves out what falls inside.
 *
 * Contract:
 * - a process is keyed by its resource's attributes (the normalizer's stream prefix), which hold
 *   its pod, instance, host or container identity; a resource without one is never asked (replicas
 *   that cannot be told apart have no "first request" of their own);
 * - the start is the earliest request start seen for the process, so a span arriving late can only
 *   end the warm-up sooner, never extend it; a far-future span is outvoted by the next true one;
 * - a metric point stands for requests anywhere in its interval (the store spreads them evenly): it
 *   is left out when more than WARM_SHARE of its interval lies in the warm-up (a point without an
 *   interval: when its time does). A 10-15 s export holding a 5-10 s warm-up is left out; a 60 s
 *   export keeps it (the warm-up is a sixth of its requests, and one report of a series never
 *   confirms a breach). A cumulative stream's first point covers the process's life; when the
 *   process exported before, a stream new in this export holds requests since its previous export
 *   (an SDK exports every stream that has data at each collection);
 * - the clock is the data's (telemetry time): no timers, replay and live agree;
 * - the map holds at most `maxPods` processes, least recently seen forgotten first; one forgotten
 *   (or first seen after a pullback restart, a rebalance of the spans' partitions) starts a warm-up
 *   again: at worst `duration` of a running process's requests left out, counted.
 */
export class PodWarmup {
  private readonly durationMs: number
  private readonly maxPods: number
  /** process key -> what is remembered of it; insertion order is recency */
  private readonly pods = new Map<string, Pod>()
  private readonly st: WarmupStats = { warmupExcluded: 0, warmupPodsEvicted: 0 }

  constructor(config: WarmupConfig) {
    this.durationMs = config.duration
    this.maxPods = config.maxPods
  }

  /** A stage is needed only when the warm-up is on. */
  static of(config: WarmupConfig): PodWarmup | undefined {
    return config.duration > 0 ? new PodWarmup(config) : undefined
  }

  /**
   * The end of the process's warm-up (ms), given the earliest start of the requests at hand (one
   * resource's spans of an export): a request that started before it does not count. The caller
   * tells how many it left out (`excluded`), so that the map is touched once per batch, not per span.
   */
  until(proc: string, earliestStartMs: number): number {
    return this.pod(proc, earliestStartMs).firstMs + this.durationMs
  }

  /** `n` requests left out by the caller after `until` */
  excluded(n: number): void {
    this.st.warmupExcluded += n
  }

  /**
   * `count` requests of a metric point covering (`startMs`, `timeMs`]; `streamStart` when
   * `startMs` is the stream's own start (a first point counted whole). True when they count.
   */
  admitInterval(proc: string, startMs: number | undefined, timeMs: number, streamStart: boolean, count: number): boolean {
    const from = startMs ?? timeMs
    const p = this.pod(proc, from)
    if (timeMs > p.exportMs) {
      p.prevExportMs = p.exportMs
      p.exportMs = timeMs
    }
    // a new stream of a process that exported before: its requests are since that export
    const at = streamStart && timeMs === p.exportMs && p.prevExportMs > from ? p.prevExportMs : from
    const end = p.firstMs + this.durationMs
    const span = timeMs - at
    const warming = span > 0 ? Math.min(timeMs, end) - Math.max(at, p.firstMs) > WARM_SHARE * span : at < end
    if (!warming) return true
    this.st.warmupExcluded += count
    return false
  }

  stats(): WarmupStats {
    return { ...this.st }
  }

  /** processes remembered now */
  size(): number {
    return this.pods.size
  }

  /** The process's record, its first request moved back to `startMs` when earlier; now the most recent. */
  private pod(key: string, startMs: number): Pod {
    let p = this.pods.get(key)
    if (p !== undefined) {
      this.pods.delete(key)
      if (startMs < p.firstMs) p.firstMs = startMs
    } else {
      if (this.pods.size >= this.maxPods) {
        const oldest = this.pods.keys().next().value as string
        this.pods.delete(oldest)
        this.st.warmupPodsEvicted += 1
      }
      p = { firstMs: startMs, exportMs: -Infinity, prevExportMs: -Infinity }
    }
    this.pods.set(key, p)
    return p
  }
}

interface Pod {
  /** earliest request start seen (ms) */
  firstMs: number
  /** newest metric point time of the process, and the one before it (its previous export) */
  exportMs: number
  prevExportMs: number
}
