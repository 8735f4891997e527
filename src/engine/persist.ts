/**
 * The engine's state as changelog records, so a restarted process resumes its watches (issue 11
 * items 6-7; the scale-out deciders of issue 12 restore the same records). Pure: no I/O, no timers,
 * no wall clock; `now` comes in as an argument. src/state carries the records to Kafka and back.
 *
 * Records (key -> JSON value, every value an envelope `{ schema, kind, service, data, ... }`):
 *   `<deploymentId>`       kind `watch`: one Watch (deploy or recovery), plus the byVersion index
 *                          keys that point at it. Deleted (tombstone) when the watch ends.
 *   `pending/<serviceId>`  kind `pending`: a decided rollback awaiting its rollback event.
 *   `versions/<serviceId>` kind `versions`: the versions of a service seen in telemetry with their
 *                          first-seen (and coarse last-seen) times: what makes a restarted process
 *                          give a re-seen version its ORIGINAL first-seen time (same deployment id,
 *                          same verdict ids) and not take a long-known version for a new deployment.
 *
 * The codec is generic: it walks plain objects, arrays, Map, Set, undefined, NaN, +-Infinity and -0
 * (JSON cannot hold them), so fields added to the engine's Watch carry over without changes here.
 * What it cannot carry (functions, class instances, bigint, symbols, cycles) is refused and counted.
 * Compatibility: a record whose `schema` differs from ENGINE_STATE_SCHEMA is not restored (older
 * ones are deleted, newer ones left for the newer release); nor is a watch whose top-level fields
 * differ from those of a watch this release makes. Bump ENGINE_STATE_SCHEMA when a field changes
 * meaning, or a nested field (or one of a pending recovery) is added or removed.
 */
import { hash } from 'node:crypto'
import type { SeriesKey } from '../normalize/observations.js'
import { serviceId } from '../normalize/observations.js'
import type { SignalView, VersionInfo } from '../signals/view.js'
import { contractFor, type EngineConfig } from './config.js'
import { evaluate, initialState, type EngineState, type VersionSeen } from './evaluate.js'
import { JsonWriter, UnserializableError } from './json-writer.js'

/** Version of the record layout and of the engine state it carries. */
export const ENGINE_STATE_SCHEMA = 5

type Watch = EngineState['watches'] extends Map<string, infer W> ? W : never
type Pending = EngineState['pendingRecovery'] extends Map<string, infer P> ? P : never

/**
 * Fields of a watch (and of a pending recovery) whose value objects are never changed in place
 * once set, only replaced: the contract (config), the frozen baseline and the gate's judgement of
 * it (both set at freeze). The writer encodes each such object once and copies its bytes after
 * (json-writer.ts `fixed`): the baseline with its pooled history (history-pool.ts) made every
 * re-encoded watch ~300 bytes longer, and encoding it at every export cost 15 % of a 10,000-watch
 * pass (bench/engine.ts). Mutating one of them in place would export stale bytes.
 */
const FIXED_FIELDS: ReadonlySet<string> = new Set(['contract', 'baseline', 'health'])

// ---------------------------------------------------------------------------------------------
// codec

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

export { UnserializableError }

const MAX_DEPTH = 64

/** The tags, shared: encoding allocates nothing for them. */
const TAG_UNDEFINED: Json = Object.freeze({ $u: 1 })
const TAG_NAN: Json = Object.freeze({ $n: 'NaN' })
const TAG_INFINITY: Json = Object.freeze({ $n: 'Infinity' })
const TAG_MINUS_INFINITY: Json = Object.freeze({ $n: '-Infinity' })
const TAG_MINUS_ZERO: Json = Object.freeze({ $n: '-0' })
/** '$' */
const DOLLAR = 36

/**
 * Encodes any plain value as JSON-safe data. Tags are single-key objects whose key starts with one
 * `$` (`$u` undefined, `$n` a non-finite number or -0, `$m` Map entries, `$s` Set values); plain keys
 * starting with `$` get one more `$`, so no plain object is ever read back as a tag.
 *
 * A record's text is JSON.stringify(envelope with encodeValue(data)); the export writes that same
 * text with JsonWriter (json-writer.ts), without building it: copying every object of ~10,000 watch
 * records every `minWriteInterval` was most of an evaluation pass's garbage. Here too, copy on need:
 * an array or plain object that needs no tag and no escaped key anywhere inside is returned as it
 * is (JSON.stringify writes the same text as for a copy), one that does is copied with its clean
 * parts shared. So the result may share objects with `v`: serialize (or compare) it at once, never
 * change it, and do not keep it past a change of `v`.
 */
export function encodeValue(v: unknown, depth = 0): Json {
  if (depth > MAX_DEPTH) throw new UnserializableError(`nested deeper than ${MAX_DEPTH} (a cycle?)`)
  switch (typeof v) {
    case 'undefined':
      return TAG_UNDEFINED
    case 'boolean':
    case 'string':
      return v
    case 'number':
      if (v - v === 0 && (v !== 0 || 1 / v > 0)) return v // finite, and not -0
      return Number.isNaN(v) ? TAG_NAN : v === Infinity ? TAG_INFINITY : v === -Infinity ? TAG_MINUS_INFINITY : TAG_MINUS_ZERO
    case 'object': {
      if (v === null) return null
      if (Array.isArray(v)) {
        const a = v as unknown[]
        let out: Json[] | undefined
        for (let i = 0; i < a.length; i++) {
          // a hole reads as undefined: tagged, so the array is copied (JSON would write null)
          const x = a[i]
          const e = encodeValue(x, depth + 1)
          if (out === undefined) {
            if (e === x) continue
            out = a.slice(0, i) as Json[]
          }
          out.push(e)
        }
        return out ?? (a as Json[])
      }
      if (v instanceof Map) {
        const out: Json[] = []
        for (const [k, x] of v) out.push([encodeValue(k, depth + 1), encodeValue(x, depth + 1)])
        return { $m: out }
      }
      if (v instanceof Set) {
        const out: Json[] = []
        for (const x of v) out.push(encodeValue(x, depth + 1))
        return { $s: out }
      }
      const proto = Object.getPrototypeOf(v) as unknown
      if (proto !== Object.prototype && proto !== null) {
        throw new UnserializableError(`cannot encode an instance of ${(v as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}`)
      }
      const o = v as Record<string, unknown>
      let out: { [k: string]: Json } | undefined
      // for-in: the own enumerable string keys in Object.keys order (the prototype is Object.prototype
      // or null, which enumerate nothing), without an array of keys or entries
      for (const k in o) {
        const x = o[k]
        const e = encodeValue(x, depth + 1)
        const escaped = k.charCodeAt(0) === DOLLAR
        if (out === undefined) {
          if (e === x && !escaped) continue
          // the keys before this one were clean: shared as they are
          out = {}
          for (const p in o) {
            if (p === k) break
            out[p] = o[p] as Json
          }
        }
        out[escaped ? `$${k}` : k] = e
      }
      return out ?? (o as { [k: string]: Json })
    }
    default:
      throw new UnserializableError(`cannot encode a ${typeof v}`)
  }
}

const NUMBERS: Record<string, number> = { NaN, Infinity, '-Infinity': -Infinity, '-0': -0 }

/** Inverse of encodeValue. Throws UnserializableError on data encodeValue cannot have produced. */
export function decodeValue(j: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new UnserializableError(`nested deeper than ${MAX_DEPTH}`)
  if (j === null || typeof j !== 'object') return j
  if (Array.isArray(j)) return j.map((x) => decodeValue(x, depth + 1))
  const o = j as Record<string, unknown>
  const keys = Object.keys(o)
  if (keys.length === 1 && keys[0]!.startsWith('$') && !keys[0]!.startsWith('$$')) {
    const tag = keys[0]!
    const x = o[tag]
    if (tag === '$u') return undefined
    if (tag === '$n' && typeof x === 'string' && x in NUMBERS) return NUMBERS[x]
    if (tag === '$m' && Array.isArray(x)) {
      const m = new Map<unknown, unknown>()
      for (const e of x) {
        if (!Array.isArray(e) || e.length !== 2) throw new UnserializableError('malformed map entry')
        m.set(decodeValue(e[0], depth + 1), decodeValue(e[1], depth + 1))
      }
      return m
    }
    if (tag === '$s' && Array.isArray(x)) return new Set(x.map((e) => decodeValue(e, depth + 1)))
    throw new UnserializableError(`unknown tag ${tag}`)
  }
  const out: Record<string, unknown> = {}
  for (const k of keys) out[k.startsWith('$$') ? k.slice(1) : k] = decodeValue(o[k], depth + 1)
  return out
}

// ---------------------------------------------------------------------------------------------
// records

/** One changelog record: `service` is the service id ("namespace/name"), the topic's partitioning key. */
export interface StateRecord {
  key: string
  service: string
  value: string
}

export interface StateDelete {
  key: string
  service: string
}

/** Applied deletes first, then upserts (a key in both ends up upserted). */
export interface StateChanges {
  upserts: StateRecord[]
  deletes: StateDelete[]
}

/** A record as read back from the changelog (value null = deleted, already applied by the reader). */
export interface StoredRecord {
  key: string
  value: string
}

interface Envelope {
  schema: number
  kind: 'watch' | 'pending' | 'versions'
  service: string
  /** watch records: the byVersion keys that list this watch */
  index?: string[]
  data: Json
}

const PENDING = 'pending/'
const VERSIONS = 'versions/'

// ---------------------------------------------------------------------------------------------
// versions known per service

interface KnownVersion {
  firstSeenMs: number
  lastSeenMs: number
}

interface ServiceVersions {
  namespace: string
  service: string
  versions: Map<string, KnownVersion>
  /** the value last handed out for export ('' = never): a refresh that changes nothing in it writes nothing */
  exported: string
}

export interface VersionLedgerOptions {
  /** services tracked at most; a new service past it is not tracked (counted in `versionsRefused`) */
  maxServices: number
  /** versions kept per service; past it the least recently seen are forgotten (counted) */
  maxPerService: number
  /**
   * a known version not seen for this long is forgotten, as the signal store expires an idle series
   * (signals.idleTtl): when it returns it is a new appearance, as it would be without a restart
   */
  ttlMs: number
  /** how often (telemetry time) last-seen times are refreshed from the store; records hold them rounded down to max(refreshMs, ttlMs / 2) */
  refreshMs: number
}

export interface ChangelogOptions {
  engine: EngineConfig
  /** a watch is written at most once per this interval unless its status, decision or baseline changed */
  minWriteIntervalMs: number
  versions: VersionLedgerOptions
}

export interface ChangelogStats {
  /** records handed out for writing / deletions handed out */
  upserts: number
  deletes: number
  /** watches re-encoded on their interval but unchanged: nothing written */
  unchanged: number
  /** watches or pending recoveries the codec refused (not persisted) */
  unserializable: number
  /** records handed back by the store (queue full) and re-exported later */
  forgotten: number
  /** new versions given their restored first-seen time / dropped because their watch would be over */
  versionsContinued: number
  versionsSettled: number
  /** new services not tracked because `maxServices` were / versions forgotten past `maxPerService` */
  versionsRefused: number
  versionsEvicted: number
  trackedServices: number
}

export interface RestoreReport {
  watches: number
  pending: number
  services: number
  /** records not restored, by reason */
  skipped: { corrupt: number; olderSchema: number; newerSchema: number; conflict: number; overflow: number; expired: number; shape: number }
  /** series of the restored watches, to pin in the signal store */
  pins: SeriesKey[]
  /** records this incarnation supersedes or cannot hold: write these deletions */
  deletes: StateDelete[]
}

interface WatchMark {
  /** digest of the value last handed out ('' = the codec refused it) */
  digest: string
  /** when the watch was last encoded (decision time) */
  at: number
  status: string
  decided: string
  frozen: boolean
  service: string
}

// one-shot `hash` (Node >= 20.12): the same digest as createHash().update().digest(), without a Hash
// object, its buffers and the string's bytes on the JavaScript heap (ids.ts does the same)
const digest = (s: string) => hash('sha256', s, 'base64')

/** One step of a bounded export (EngineChangelog.exportStep): its changes, and whether the export is complete. */
export interface ExportStep {
  changes: StateChanges
  done: boolean
}

/**
 * Work of an export step in the units of the engine's pass bound (PASS_WORK in evaluate.ts: an
 * evaluation is 8): a watch encoded (codec, JSON and SHA-256 of about 2.5 KB: 50-80 us on the
 * 2-core bench machine, where an evaluation is 10-60 us) counts 4 evaluations, a service's versions
 * (refreshed or encoded, a few hundred bytes) 1, a watch passed over (not due) 1/8 as a watch with
 * nothing new does in the engine.
 */
const EXPORT_WORK = { evaluation: 8, encode: 32, versions: 8, visit: 1 } as const

interface ExportScan {
  state: EngineState
  watches: EngineState['watches']
  pending: Iterator<[string, Pending]>
  /** the services whose versions were to export when the export began, and the next one's index */
  versions: string[]
  v: number
  /** the watches of the export (EngineChangelog.order, filled when it began: no iterator result per watch), and the next one's index */
  n: number
  w: number
  now: number
  force: boolean
  /** the watches' byVersion keys, built at the first watch encoded */
  index: Map<string, string | string[]> | undefined
}

/** Pending recoveries restored at most (the engine keeps as many). */
const MAX_PENDING_RESTORED = 10_000

/**
 * Tracks what of one EngineState was handed out for writing, and the versions known per service.
 * One per pipeline; not thread-safe (nothing here is).
 */
export class EngineChangelog {
  private readonly marks = new Map<string, WatchMark>()
  /** writes the watch and pending records (the text of envelope(encodeValue(...)), without its garbage) */
  private readonly writer = new JsonWriter()
  /**
   * The ids and watches of the open export, reused from export to export (one array per export and
   * per pass would be ~80 KB of garbage each at 10,000 watches); cleared when the export is done.
   */
  private readonly orderIds: (string | undefined)[] = []
  private readonly order: (Watch | undefined)[] = []
  private readonly pendingMarks = new Map<string, { ref: Pending | undefined; digest: string }>()
  /** deletions handed back by the store, re-exported next time */
  private readonly retryDeletes = new Map<string, string>()
  private readonly ledger = new Map<string, ServiceVersions>()
  private readonly ledgerDeletes = new Map<string, string>()
  /** services whose record must be exported */
  private readonly ledgerDirty = new Set<string>()
  private lastRefresh = -Infinity
  /** the top-level fields of a Watch made by this code ('' = unknown: not checked) */
  private shape: string | undefined
  /** the export exportStep left open (its watches not all visited yet) */
  private scan: ExportScan | undefined
  /** the refresh of the versions left open by a bounded refreshVersions */
  private refresh: { it: Iterator<[string, ServiceVersions]>; cutoff: number } | undefined
  private readonly st: Omit<ChangelogStats, 'trackedServices'> = {
    upserts: 0,
    deletes: 0,
    unchanged: 0,
    unserializable: 0,
    forgotten: 0,
    versionsContinued: 0,
    versionsSettled: 0,
    versionsRefused: 0,
    versionsEvicted: 0,
  }

  constructor(private readonly o: ChangelogOptions) {}

  stats(): ChangelogStats {
    return { ...this.st, trackedServices: this.ledger.size }
  }

  /**
   * What changed since the last call, in one call. A watch is re-encoded when it is new, when its
   * status, its decision or its frozen baseline changed (at once), or else at most every
   * `minWriteIntervalMs` (`force` ignores the interval: the last export before shutdown); it is
   * handed out only if its encoding differs from the last one. Ended watches and consumed pending
   * recoveries are deletions. An export left open by exportStep is abandoned (see there).
   */
  exportChanges(state: EngineState, now: number, force = false): StateChanges {
    this.scan = undefined
    return this.exportStep(state, now, { force, maxEvaluations: Infinity }).changes
  }

  /**
   * The same export as exportChanges, in bounded steps (a Pipeline pass spreads it over event-loop
   * turns): each call does about `maxEvaluations` evaluations' worth of work (EXPORT_WORK; at least
   * one record) and says whether the export is `done`. The first step of an export hands out every
   * deletion, then the steps the pending recoveries, the services' versions and the watches, from
   * cursors kept here; the steps' changes, handed over in order, are the one-call export's
   * (deletions come first, as within one StateChanges). The state must not
   * change between the steps of one export (in a Pipeline pass the engine's calls are over). A step
   * with another `state`, watches map, `now` or `force` than the open export's begins a new export;
   * so does one after exportChanges. Neither duplicates records: what an abandoned export handed out
   * is marked.
   */
  exportStep(state: EngineState, now: number, opts: { force?: boolean; maxEvaluations: number }): ExportStep {
    const force = opts.force === true
    const out: StateChanges = { upserts: [], deletes: [] }
    let s = this.scan
    if (s === undefined || s.state !== state || s.watches !== state.watches || s.now !== now || s.force !== force) {
      this.exportDeletes(state, out)
      const n = this.fillOrder(state.watches)
      s = this.scan = { state, watches: state.watches, pending: state.pendingRecovery.entries(), versions: [...this.ledgerDirty], v: 0, n, w: 0, now, force, index: undefined }
    }
    const limit = Number.isFinite(opts.maxEvaluations) ? Math.max(1, opts.maxEvaluations * EXPORT_WORK.evaluation) : Infinity
    let work = 0
    // pending recoveries, then the services' versions, then the watches
    while (work < limit) {
      const n = s.pending.next()
      if (n.done === true) break
      work += this.exportPending(n.value[0], n.value[1], out) ? EXPORT_WORK.encode : EXPORT_WORK.visit
    }
    while (work < limit && s.v < s.versions.length) {
      const sid = s.versions[s.v++] as string
      // still dirty: not exported since the export began (by an export that abandoned this one)
      if (!this.ledgerDirty.delete(sid)) continue
      const e = this.ledger.get(sid)
      if (e !== undefined) this.exportVersions(sid, e, out)
      work += EXPORT_WORK.versions
    }
    while (work < limit) {
      if (s.w >= s.n) {
        this.scan = undefined
        this.clearOrder(0)
        break
      }
      const i = s.w++
      work += this.exportWatch(s, this.orderIds[i] as string, this.order[i] as Watch, out) ? EXPORT_WORK.encode : EXPORT_WORK.visit
    }
    this.st.upserts += out.upserts.length
    this.st.deletes += out.deletes.length
    return { changes: out, done: this.scan === undefined }
  }

  /** Puts the watches in `order` (the scan's snapshot of the map, as its iterator would visit them); returns how many. */
  private fillOrder(watches: EngineState['watches']): number {
    let n = 0
    // forEach: no [key, value] pair per entry (a for-of over entries() made one per watch)
    watches.forEach((w, id) => {
      this.orderIds[n] = id
      this.order[n++] = w
    })
    this.clearOrder(n)
    return n
  }

  /** Drops the references from index `from` on (the arrays keep their length: no reallocation next time). */
  private clearOrder(from: number): void {
    for (let i = from; i < this.order.length && this.order[i] !== undefined; i++) {
      this.order[i] = undefined
      this.orderIds[i] = undefined
    }
  }

  /** One watch of an export: true when it was encoded. */
  private exportWatch(s: ExportScan, id: string, w: Watch, out: StateChanges): boolean {
    const m = this.marks.get(id)
    const frozen = w.baseline !== undefined
    const urgent = m === undefined || m.status !== w.status || m.decided !== w.decided || m.frozen !== frozen
    if (!urgent && !s.force && s.now - m.at < this.o.minWriteIntervalMs) return false
    s.index ??= reverseIndex(s.state)
    const service = serviceId(w.namespace, w.service)
    // the digest is taken from the written bytes; the string is made only for a record handed out
    let d = ''
    try {
      d = this.writeRecord('watch', service, s.index.get(id) ?? NO_INDEX, w)
    } catch {
      this.st.unserializable += 1
    }
    const prev = m?.digest
    // the mark is long-lived (old space): updated in place, not replaced at every encoding
    if (m === undefined) this.marks.set(id, { digest: d, at: s.now, status: w.status, decided: w.decided, frozen, service })
    else {
      m.digest = d
      m.at = s.now
      m.status = w.status
      m.decided = w.decided
      m.frozen = frozen
      m.service = service
    }
    if (d === '') return true
    if (prev === d) this.st.unchanged += 1
    else out.upserts.push({ key: id, service, value: this.writer.text() })
    return true
  }

  /**
   * Writes `envelope({ schema, kind, service, index }, encodeValue(data))` into the writer (the
   * record's contract through its cache) and returns the text's digest; `writer.text()` is the value.
   */
  private writeRecord(kind: 'watch' | 'pending', service: string, index: string | readonly string[] | undefined, data: object): string {
    const wr = this.writer
    wr.begin()
    wr.raw('{"schema":')
    wr.number(ENGINE_STATE_SCHEMA)
    wr.raw(kind === 'watch' ? ',"kind":"watch","service":' : ',"kind":"pending","service":')
    wr.string(service)
    if (typeof index === 'string') {
      wr.raw(',"index":[')
      wr.string(index)
      wr.raw(']')
    } else if (index !== undefined) {
      wr.raw(',"index":[')
      for (let i = 0; i < index.length; i++) {
        if (i > 0) wr.raw(',')
        wr.string(index[i] as string)
      }
      wr.raw(']')
    }
    wr.raw(',"data":')
    wr.object(data, 0, FIXED_FIELDS)
    wr.raw('}')
    return wr.digest()
  }

  /** One pending recovery of an export: true when it was encoded. */
  private exportPending(sid: string, p: Pending, out: StateChanges): boolean {
    const m = this.pendingMarks.get(sid)
    if (m !== undefined && m.ref === p) return false
    try {
      const d = this.writeRecord('pending', sid, undefined, p)
      this.pendingMarks.set(sid, { ref: p, digest: d })
      if (m === undefined || m.digest !== d) out.upserts.push({ key: PENDING + sid, service: sid, value: this.writer.text() })
    } catch {
      this.st.unserializable += 1
      this.pendingMarks.set(sid, { ref: p, digest: '' })
    }
    return true
  }

  /** The first step of an export: every deletion (ended watches, consumed pending recoveries, forgotten services, retries). */
  private exportDeletes(state: EngineState, out: StateChanges): void {
    // forEach: no [key, value] pair per mark (this runs over every watch at every export)
    this.marks.forEach((m, id) => {
      if (state.watches.has(id)) return
      this.marks.delete(id)
      if (m.digest !== '') out.deletes.push({ key: id, service: m.service })
    })
    for (const [sid, m] of this.pendingMarks) {
      if (state.pendingRecovery.has(sid)) continue
      this.pendingMarks.delete(sid)
      if (m.digest !== '') out.deletes.push({ key: PENDING + sid, service: sid })
    }
    for (const [key, service] of this.ledgerDeletes) out.deletes.push({ key, service })
    this.ledgerDeletes.clear()
    for (const [key, service] of this.retryDeletes) out.deletes.push({ key, service })
    this.retryDeletes.clear()
  }

  /** Records the store could not take (its queue was full): they are exported again next time. */
  forget(refused: readonly StateDelete[]): void {
    for (const r of refused) {
      this.st.forgotten += 1
      if (this.marks.delete(r.key)) continue
      if (r.key.startsWith(PENDING) && this.pendingMarks.delete(r.key.slice(PENDING.length))) continue
      const sid = r.key.startsWith(VERSIONS) ? r.key.slice(VERSIONS.length) : undefined
      if (sid !== undefined && this.ledger.has(sid)) this.ledgerDirty.add(sid)
      else this.retryDeletes.set(r.key, r.service)
    }
  }

  /**
   * Restores records read from the changelog into a fresh state (before the first evaluation).
   * Restored watches keep their ids, deployment times, baselines, probe tracking and decisions.
   * What the state already holds wins over a record (counted as a conflict). With `now`, a watch that
   * ended more than `staleAfterMs` (default 10 min) before it is not restored but deleted (counted
   * `expired`): a record left over from a long outage or an abandoned restore must not produce a
   * verdict about a window nobody can observe any more. One that ended less long ago is restored and
   * judged once at the next tick, as the engine judges every watch at its end.
   */
  restore(state: EngineState, records: Iterable<StoredRecord>, opts: { now?: number; staleAfterMs?: number } = {}): RestoreReport {
    const r: RestoreReport = { watches: 0, pending: 0, services: 0, skipped: { corrupt: 0, olderSchema: 0, newerSchema: 0, conflict: 0, overflow: 0, expired: 0, shape: 0 }, pins: [], deletes: [] }
    const staleBefore = opts.now === undefined ? -Infinity : opts.now - (opts.staleAfterMs ?? 600_000)
    for (const rec of records) {
      let env: Envelope
      let data: unknown
      try {
        env = parseEnvelope(rec.value)
        if (env.schema !== ENGINE_STATE_SCHEMA) {
          if (env.schema < ENGINE_STATE_SCHEMA) {
            r.skipped.olderSchema += 1
            r.deletes.push({ key: rec.key, service: env.service })
          } else r.skipped.newerSchema += 1
          continue
        }
        data = decodeValue(env.data)
      } catch {
        r.skipped.corrupt += 1
        continue
      }
      if (env.kind === 'watch') this.restoreWatch(state, rec, env, data, r, staleBefore)
      else if (env.kind === 'pending') this.restorePending(state, rec, env, data, r)
      else this.restoreVersions(rec, env, data, r)
    }
    return r
  }

  /**
   * Filters the store's newly seen versions through what an earlier incarnation knew. A version
   * known and still live (seen within `ttlMs`) keeps its original first-seen time, hence its
   * original deployment id; if a watch started at that time would already be over it is dropped
   * (counted `versionsSettled`): an old version re-seen after a restart is not a new deployment.
   * Unknown versions are recorded and passed on unchanged.
   */
  seenVersions(list: readonly VersionSeen[], watermark: number, newestMs: number): VersionSeen[] {
    const r = this.classifyVersions(list, watermark, newestMs)
    this.noteVersions(r.toNote, 0)
    return r.seen
  }

  /**
   * seenVersions in two parts, for a pass spread over event-loop turns: this one only looks up
   * (the engine's list, and the unknown versions), `noteVersions` records the unknown ones in
   * bounded steps. Record them all before the engine sees the list: the ledger is its view of the
   * versions (`view`). Detection at 10,000 services noted 10,000 ledger entries in the pass's first
   * turn (~10-30 ms, once 93 ms when V8's incremental marking advanced on that allocation).
   * The versions of one list are distinct, so no lookup depends on a note of the same list.
   */
  classifyVersions(list: readonly VersionSeen[], watermark: number, newestMs: number): { seen: VersionSeen[]; toNote: VersionSeen[] } {
    const seen: VersionSeen[] = []
    const toNote: VersionSeen[] = []
    const cutoff = newestMs - this.o.versions.ttlMs
    for (const v of list) {
      const sid = serviceId(v.namespace, v.service)
      const e = this.ledger.get(sid)
      const kv = e?.versions.get(v.version)
      if (e !== undefined && kv !== undefined && kv.lastSeenMs >= cutoff) {
        if (kv.firstSeenMs + contractFor(this.o.engine, sid).watch <= watermark) {
          this.st.versionsSettled += 1
          continue
        }
        this.st.versionsContinued += 1
        seen.push({ ...v, firstSeenMs: kv.firstSeenMs })
        continue
      }
      toNote.push(v)
      seen.push(v)
    }
    return { seen, toNote }
  }

  /**
   * Records `list[from..]` (unknown versions from classifyVersions) in the ledger, about
   * `maxEvaluations` evaluations' worth of them (EXPORT_WORK; all without a bound). Returns the
   * index of the first one not recorded yet (`list.length` when done).
   */
  noteVersions(list: readonly VersionSeen[], from: number, maxEvaluations = Infinity): number {
    const limit = Number.isFinite(maxEvaluations) ? Math.max(1, maxEvaluations * EXPORT_WORK.evaluation) : Infinity
    let i = from
    for (let work = 0; i < list.length && work < limit; work += EXPORT_WORK.versions, i++) {
      const v = list[i] as VersionSeen
      this.note(serviceId(v.namespace, v.service), v.namespace, v.service, v.version, v.firstSeenMs, v.firstSeenMs)
    }
    return i
  }

  /**
   * Refreshes last-seen times from the store and forgets versions idle past `ttlMs`, at most once
   * per `refreshMs` of telemetry time. A service record is re-exported when its coarse content changed.
   * In bounded steps with `maxEvaluations` (about that many evaluations' worth of services per call,
   * as exportStep): true once the refresh is complete (or none was due); a refresh left open goes on
   * at the next call, whatever its `newestMs`. Nothing else changes the ledger between the steps
   * (versions are noted when a pass begins, and a Pipeline pass refreshes before it exports).
   */
  refreshVersions(view: SignalView, newestMs: number, maxEvaluations = Infinity): boolean {
    let r = this.refresh
    if (r === undefined) {
      if (!(newestMs - this.lastRefresh >= this.o.versions.refreshMs)) return true
      this.lastRefresh = newestMs
      r = this.refresh = { it: this.ledger.entries(), cutoff: newestMs - this.o.versions.ttlMs }
    }
    const limit = Number.isFinite(maxEvaluations) ? Math.max(1, maxEvaluations * EXPORT_WORK.evaluation) : Infinity
    for (let work = 0; work < limit; work += EXPORT_WORK.versions) {
      const n = r.it.next()
      if (n.done === true) {
        this.refresh = undefined
        return true
      }
      const [sid, e] = n.value
      // known versions only: one the store holds but no pass has handed to the engine yet is noted
      // by seenVersions when one does. Noted here, a pass that comes late (a burst of partials on
      // the decider) would take the new version for an old one re-seen and never watch it.
      for (const info of view.versions(e.namespace, e.service)) {
        const kv = e.versions.get(info.version)
        if (kv !== undefined && info.lastSeenMs > kv.lastSeenMs) kv.lastSeenMs = info.lastSeenMs
      }
      for (const [ver, kv] of e.versions) if (kv.lastSeenMs < r.cutoff) e.versions.delete(ver)
      this.trim(e)
      if (e.versions.size === 0) {
        this.ledger.delete(sid)
        this.ledgerDirty.delete(sid)
        if (e.exported !== '') this.ledgerDeletes.set(VERSIONS + sid, sid)
        continue
      }
      if (e.exported !== this.versionsValue(sid, e)) this.ledgerDirty.add(sid)
    }
    return false
  }

  /**
   * `base` with each service's versions as an earlier incarnation knew them: original first-seen
   * times, and versions known and still live but not seen since the restart. The engine then picks
   * the same previous version (baseline) as before the restart.
   */
  view(base: SignalView, newestMs: () => number): SignalView {
    const versions = (namespace: string, service: string): VersionInfo[] => {
      const list = base.versions(namespace, service)
      const e = this.ledger.get(serviceId(namespace, service))
      if (e === undefined) return list
      const cutoff = newestMs() - this.o.versions.ttlMs
      const out = list.map((v) => {
        const kv = e.versions.get(v.version)
        return kv !== undefined && kv.lastSeenMs >= cutoff ? { ...v, firstSeenMs: kv.firstSeenMs } : v
      })
      for (const [version, kv] of e.versions) {
        if (kv.lastSeenMs < cutoff || list.some((v) => v.version === version)) continue
        out.push({ namespace, service, version, firstSeenMs: kv.firstSeenMs, lastSeenMs: kv.lastSeenMs })
      }
      return out.sort((a, b) => a.firstSeenMs - b.firstSeenMs || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0))
    }
    const bound = new Map<PropertyKey, unknown>()
    // a Proxy rather than a wrapper class: methods the view gains later pass through unchanged
    return new Proxy(base, {
      get(target, prop) {
        if (prop === 'versions') return versions
        const v = Reflect.get(target, prop, target) as unknown
        if (typeof v !== 'function') return v
        let b = bound.get(prop)
        if (b === undefined) bound.set(prop, (b = (v as (...a: unknown[]) => unknown).bind(target)))
        return b
      },
    })
  }

  // ---- internals ----

  private restoreWatch(state: EngineState, rec: StoredRecord, env: Envelope, data: unknown, r: RestoreReport, staleBefore: number): void {
    const w = data as Watch
    if (!isObject(w) || typeof w.id !== 'string' || w.id !== rec.key || typeof w.namespace !== 'string' || typeof w.service !== 'string') {
      r.skipped.corrupt += 1
      return
    }
    // a record from a release whose Watch had other fields (ENGINE_STATE_SCHEMA not bumped) would
    // break every later evaluation: forget it instead (what happened before this stage existed)
    this.shape ??= watchShape(this.o.engine)
    if (this.shape !== '' && Object.keys(w).sort().join(',') !== this.shape) {
      r.skipped.shape += 1
      r.deletes.push({ key: rec.key, service: env.service })
      return
    }
    if (w.endsAt < staleBefore) {
      r.skipped.expired += 1
      r.deletes.push({ key: rec.key, service: env.service })
      return
    }
    if (state.watches.has(w.id)) {
      r.skipped.conflict += 1
      return
    }
    if (state.watches.size >= this.o.engine.maxWatched) {
      r.skipped.overflow += 1
      r.deletes.push({ key: rec.key, service: env.service })
      return
    }
    state.watches.set(w.id, w)
    for (const k of env.index ?? []) {
      let set = state.byVersion.get(k)
      if (set === undefined) state.byVersion.set(k, (set = new Set()))
      set.add(w.id)
    }
    r.pins.push({ namespace: w.namespace, service: w.service, version: w.version })
    if (w.baselineVersion !== '' && w.baselineVersion !== w.version) r.pins.push({ namespace: w.namespace, service: w.service, version: w.baselineVersion })
    this.marks.set(w.id, { digest: digest(rec.value), at: -Infinity, status: w.status, decided: w.decided, frozen: w.baseline !== undefined, service: env.service })
    r.watches += 1
  }

  private restorePending(state: EngineState, rec: StoredRecord, env: Envelope, data: unknown, r: RestoreReport): void {
    const sid = rec.key.startsWith(PENDING) ? rec.key.slice(PENDING.length) : ''
    if (sid === '' || !isObject(data)) {
      r.skipped.corrupt += 1
      return
    }
    if (state.pendingRecovery.has(sid)) {
      r.skipped.conflict += 1
      return
    }
    if (state.pendingRecovery.size >= MAX_PENDING_RESTORED) {
      r.skipped.overflow += 1
      r.deletes.push({ key: rec.key, service: env.service })
      return
    }
    const p = data as unknown as Pending
    state.pendingRecovery.set(sid, p)
    this.pendingMarks.set(sid, { ref: p, digest: digest(rec.value) })
    r.pending += 1
  }

  private restoreVersions(rec: StoredRecord, env: Envelope, data: unknown, r: RestoreReport): void {
    const sid = rec.key.startsWith(VERSIONS) ? rec.key.slice(VERSIONS.length) : ''
    const d = data as { namespace?: unknown; service?: unknown; versions?: unknown }
    if (sid === '' || !isObject(d) || typeof d.namespace !== 'string' || typeof d.service !== 'string' || !Array.isArray(d.versions)) {
      r.skipped.corrupt += 1
      return
    }
    if (!this.ledger.has(sid) && this.ledger.size >= this.o.versions.maxServices) {
      r.skipped.overflow += 1
      r.deletes.push({ key: rec.key, service: env.service })
      return
    }
    for (const x of d.versions as unknown[]) {
      if (!Array.isArray(x) || typeof x[0] !== 'string' || typeof x[1] !== 'number' || typeof x[2] !== 'number') continue
      this.note(sid, d.namespace, d.service, x[0], x[1], x[2])
    }
    const e = this.ledger.get(sid)
    if (e !== undefined) {
      e.exported = this.versionsValue(sid, e)
      this.ledgerDirty.delete(sid)
      r.services += 1
    }
  }

  private note(sid: string, namespace: string, service: string, version: string, firstSeenMs: number, lastSeenMs: number): void {
    let e = this.ledger.get(sid)
    if (e === undefined) {
      if (this.ledger.size >= this.o.versions.maxServices) {
        this.st.versionsRefused += 1
        return
      }
      this.ledger.set(sid, (e = { namespace, service, versions: new Map(), exported: '' }))
      this.ledgerDeletes.delete(VERSIONS + sid)
    }
    this.merge(e, version, firstSeenMs, lastSeenMs)
    this.trim(e)
    this.ledgerDirty.add(sid)
  }

  /**
   * The first-seen time of a known version never changes: it is the time the engine was handed (the
   * deployment's identity), even when late data later moves the store's first-seen time earlier.
   */
  private merge(e: ServiceVersions, version: string, firstSeenMs: number, lastSeenMs: number): void {
    const kv = e.versions.get(version)
    if (kv === undefined) e.versions.set(version, { firstSeenMs, lastSeenMs })
    else kv.lastSeenMs = Math.max(kv.lastSeenMs, lastSeenMs)
  }

  private trim(e: ServiceVersions): void {
    while (e.versions.size > this.o.versions.maxPerService) {
      let oldest: string | undefined
      let t = Infinity
      for (const [ver, kv] of e.versions) {
        if (kv.lastSeenMs < t) {
          t = kv.lastSeenMs
          oldest = ver
        }
      }
      if (oldest === undefined) return
      e.versions.delete(oldest)
      this.st.versionsEvicted += 1
    }
  }

  private versionsValue(sid: string, e: ServiceVersions): string {
    const g = Math.max(this.o.versions.refreshMs, Math.floor(this.o.versions.ttlMs / 2))
    // last-seen rounded down to max(refresh, ttl / 2): a live service is rewritten every 5 minutes at
    // most (defaults), and a restored time is never later than the truth (it errs towards "expired",
    // which is what happens without a restore)
    const versions: Json[] = [...e.versions].map(([v, kv]) => [v, kv.firstSeenMs, Math.floor(kv.lastSeenMs / g) * g])
    return envelope({ schema: ENGINE_STATE_SCHEMA, kind: 'versions', service: sid }, { namespace: e.namespace, service: e.service, versions })
  }

  private exportVersions(sid: string, e: ServiceVersions, out: StateChanges): void {
    const value = this.versionsValue(sid, e)
    e.exported = value
    out.upserts.push({ key: VERSIONS + sid, service: sid, value })
  }
}

/**
 * The sorted top-level field names of a watch as this release's engine makes one: a throwaway
 * evaluate() of one announced deployment on an empty view (pure, no clock). '' when that fails.
 */
function watchShape(cfg: EngineConfig): string {
  try {
    // nothing is known to this view: every question is answered with "no data"
    const view = new Proxy({} as SignalView, { get: (_t, prop) => (prop === 'bucketMs' ? 1000 : prop === 'versions' ? () => [] : () => undefined) })
    const ev = { namespace: 'ns', service: 'svc', version: 'v', time: 0, kind: 'deploy' as const, source: 'persist-shape' }
    const w = evaluate(cfg, initialState(), { now: 0, watermark: -Infinity, view, deployments: [ev] }).state.watches.values().next().value
    return w === undefined ? '' : Object.keys(w).sort().join(',')
  } catch {
    return ''
  }
}

/** Watch id -> the byVersion keys that list it: one key as it is (the usual case), several as an array. */
function reverseIndex(state: EngineState): Map<string, string | string[]> {
  const out = new Map<string, string | string[]>()
  state.byVersion.forEach((ids, k) => {
    ids.forEach((id) => {
      const had = out.get(id)
      if (had === undefined) out.set(id, k)
      else if (typeof had === 'string') out.set(id, [had, k])
      else had.push(k)
    })
  })
  return out
}

const NO_INDEX: string[] = []

function envelope(e: Omit<Envelope, 'data'>, data: Json): string {
  // the same keys in the same order as { ...e, data }, without the spread's copy
  return JSON.stringify(e.index === undefined ? { schema: e.schema, kind: e.kind, service: e.service, data } : { schema: e.schema, kind: e.kind, service: e.service, index: e.index, data })
}

function parseEnvelope(value: string): Envelope {
  const e = JSON.parse(value) as unknown
  if (!isObject(e)) throw new UnserializableError('not an object')
  const { schema, kind, service, index } = e as Partial<Envelope>
  if (typeof schema !== 'number' || typeof service !== 'string' || (kind !== 'watch' && kind !== 'pending' && kind !== 'versions')) throw new UnserializableError('not an engine state record')
  if (index !== undefined && !(Array.isArray(index) && index.every((k) => typeof k === 'string'))) throw new UnserializableError('bad index')
  return e as unknown as Envelope
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
