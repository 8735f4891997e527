/**
 * When did a cumulative stream's siblings last export? A stream's siblings are the points of the
 * same metric from the same resource with the same start time: one process's cumulative streams,
 * which an OpenTelemetry SDK exports together at every collection, every attribute set it has ever
 * seen included (cumulative temporality keeps them).
 *
 * Why it matters: a stream that first appears at export T, while its siblings were already exported
 * at T' < T, did not exist at T'. Its whole count accrued in (T', T]. Without this, such a stream's
 * first point only primes the stream (its count may hold the process's whole life), and its count
 * is lost. The streams that appear late are the sparse ones, and the sparsest are the 5xx of a
 * quiet service (`http.response.status_code=503` on one route): a low-traffic replay lost 8 of its
 * 48 errors that way, 17 %, exactly the evidence the error test was waiting for.
 *
 * Contract: `seen(group, t)` records an export of the group at t (points of one export share t) and
 * returns the group's latest export strictly before t, or undefined when none is known. Bounded:
 * at most `max` groups, the least recently updated dropped first (counted in `evicted`); a dropped
 * group only means its next new stream falls back to the start-time rule. Groups idle for longer
 * than `idleTtlMs` (telemetry time) are forgotten the same way.
 */
export class ExportGroups {
  /** group -> its two latest export times; in update order (delete + set) */
  private readonly groups = new Map<string, { prev: number | undefined; last: number }>()
  evicted = 0

  constructor(
    private readonly max: number,
    private readonly idleTtlMs: number,
  ) {}

  seen(group: string, t: number): number | undefined {
    const g = this.groups.get(group)
    if (g === undefined) {
      this.expire(t)
      if (this.groups.size >= this.max) {
        const oldest = this.groups.keys().next().value
        if (oldest !== undefined) this.groups.delete(oldest)
        this.evicted++
      }
      this.groups.set(group, { prev: undefined, last: t })
      return undefined
    }
    if (t > g.last) {
      g.prev = g.last
      g.last = t
      this.groups.delete(group)
      this.groups.set(group, g)
      return g.prev
    }
    // another point of the latest export (or a late one): the export before it
    return t === g.last ? g.prev : undefined
  }

  get size(): number {
    return this.groups.size
  }

  private expire(now: number): void {
    const limit = now - this.idleTtlMs
    for (const [k, g] of this.groups) {
      if (g.last >= limit) break
      this.groups.delete(k)
    }
  }
}
