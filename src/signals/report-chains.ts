/**
 * How far each exporter of a metric series has reported: the heads of its report chains. Pure,
 * bounded, no I/O.
 *
 * A metric point's delta covers (startMs, timeMs], and an exporter's next point starts where its
 * previous one ended (delta temporality: the SDK's previous collection; cumulative: the normalizer's
 * previous point of the stream, src/normalize/normalizer.ts). So the reports of one exporter form a
 * chain that the times alone reveal, with no pod identity (a partial carries exactly these times,
 * src/partials/types.ts, so a decider finds the same chains): a point that ends at a head belongs to
 * a report already counted (a report holds one point per attribute set, and replicas on the same
 * phase share a chain), one that starts at a head extends that chain, anything else starts one (a
 * fresh process, or a report after a lost one).
 *
 * `completeUntil`: the series' data is complete up to the oldest head among the chains still
 * reporting, those whose head lies within one report interval of the series' newest time. A chain
 * further behind has missed a report: its pod stopped, or its report is later than the rule before
 * chains waited for (newest - interval, which waited one whole interval for any pod in flight). So
 * it is never earlier than that rule, and for a version served by one pod it is that pod's newest
 * report: a 60 s exporter's report is judged when it arrives, not one interval later; for pods on
 * random phases it gains the interval minus their spread. What no chain can know: a pod that has not
 * reported yet (a rolling update's next pod). Its first report's share of a range already judged is
 * recorded and read by the next judgement, but not fed to the sequential evidence again
 * (src/engine/sequential.ts), as with spans under early firing: that weakens the evidence, never its
 * false-alarm bound.
 *
 * Limit: MAX_CHAINS heads per series. A new chain beyond it first drops the chains that stopped
 * reporting; when every one still reports, the series is `full` and falls back to newest - interval
 * until one stops (counted by the store: `reportChainsFull`).
 */

/** Heads kept per series (distinct export phases of its pods). */
export const MAX_CHAINS = 64

/** Times decoded from nanoseconds carry float noise: a start within this of a head is that head. */
const SAME_MS = 1

export class ReportChains {
  private readonly heads: number[] = []
  /** a chain did not fit: completeUntil falls back until one stops reporting */
  full = false

  /**
   * One aggregate point over (startMs, timeMs]. `intervalMs`: the series' report interval, to drop
   * the chains that stopped reporting when room is needed. Returns false when the point found no
   * room (the series is then `full`).
   */
  note(startMs: number, timeMs: number, intervalMs: number): boolean {
    const h = this.heads
    let extend = -1
    for (let i = 0; i < h.length; i++) {
      const x = h[i] as number
      if (Math.abs(x - timeMs) <= SAME_MS) return true
      if (extend < 0 && Math.abs(x - startMs) <= SAME_MS) extend = i
    }
    if (extend >= 0) {
      h[extend] = timeMs
      return true
    }
    if (h.length >= MAX_CHAINS) this.prune(timeMs, intervalMs)
    if (h.length >= MAX_CHAINS) {
      this.full = true
      return false
    }
    h.push(timeMs)
    return true
  }

  /**
   * Time up to which the series' data is complete: the oldest head within `intervalMs` of `newestMs`,
   * and never earlier than newestMs - intervalMs (nor later than newestMs).
   */
  completeUntil(newestMs: number, intervalMs: number): number {
    const floor = newestMs - intervalMs
    if (this.full || !(intervalMs > 0)) return floor
    let least = Infinity
    for (const x of this.heads) if (x > floor && x < least) least = x
    return least === Infinity ? floor : Math.min(least, newestMs)
  }

  /** Drops the chains whose head is one interval or more behind the newest head (or `atMs`). */
  private prune(atMs: number, intervalMs: number): void {
    let newest = atMs
    for (const x of this.heads) if (x > newest) newest = x
    const cut = newest - intervalMs
    let w = 0
    for (const x of this.heads) if (x > cut) this.heads[w++] = x
    this.heads.length = w
    if (w < MAX_CHAINS) this.full = false
  }

  get size(): number {
    return this.heads.length
  }
}
