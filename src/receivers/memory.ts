/**
 * The memory guard shared by the OTLP receivers: above its high-water mark, requests are refused
 * with a retryable answer (UNAVAILABLE / 503 + retry hint) before their bodies are buffered, so
 * compliant clients back off and resend instead of the process running out of memory.
 *
 * What it measures is what pullback holds, not what the process has mapped:
 *
 *   held = bytes of requests in flight that the receivers reserved here
 *          + bytes of background batches (Kafka records being handled) reserved here + V8 heapUsed
 *
 * - Not RSS: glibc keeps freed pages mapped, so after one burst RSS stays high and an RSS guard
 *   refused every later request until restart (issue 11 item 3: 1,000 of 1,000 refused).
 * - Not `arrayBuffers` either: a dropped Buffer stays counted there until the next GC, and a process
 *   that refuses everything allocates too little to trigger one (measured on Node 20: 1,200 MiB of
 *   dropped Buffers stayed in arrayBuffers through 20 s of idling). Request bodies, which are the
 *   Buffers that matter, are counted exactly through reservations instead.
 * - Reservations are synchronous and released when the request is answered, so a burst is seen
 *   at once and its end is seen at once; heapUsed is sampled at most every `sampleIntervalMs`.
 *
 * Two kinds of work share the process, and the guard tells them apart (issue 16 item 2):
 * - requests (the OTLP receivers): a client is waiting, and a refusal costs it a retry (the OTel
 *   Go SDK dropped 16 % of its spans during such back-offs). Admitted up to the mark.
 * - background work (the Kafka span consumer): nobody waits on it, the broker keeps its records,
 *   and it can slow down instead. Admitted only up to the mark minus `backgroundHeadroomBytes`, in
 *   its own pool of reserved bytes. A Kafka backlog therefore stops taking memory while the
 *   headroom is still free for requests, instead of filling the heap until requests are refused;
 *   a waiting consumer is counted (`backgroundWaits`), never a refused request. The headroom must
 *   be larger than what one background batch adds to the heap while it is decoded (the Kafka
 *   receiver's `maxBufferedBytes` bounds that batch).
 */
import { OverloadedError } from './errors.js'

/** One reading of the process's memory; only heapUsed is used (see above). */
export interface MemorySample {
  heapUsed: number
}

export type MemorySource = () => MemorySample

export interface MemoryGuardOptions {
  /** bytes; 0 disables the guard (reservations are still counted) */
  highWaterBytes: number
  retryAfterMs: number
  /** where heapUsed comes from; default process.memoryUsage() */
  source?: MemorySource
  /** a sample younger than this is reused; default 100 ms (process.memoryUsage() costs microseconds) */
  sampleIntervalMs?: number
  /** monotonic milliseconds; default performance.now() */
  now?: () => number
  /** background work waits once held + its bytes would pass `highWaterBytes - backgroundHeadroomBytes`; default a quarter of highWaterBytes */
  backgroundHeadroomBytes?: number
}

/** Bytes one request holds, counted against the guard until released. */
export interface Reservation {
  readonly bytes: number
  /** reserves `n` more bytes; refused (nothing reserved) when that would cross the high-water mark */
  grow(n: number): Admission
  /** sets the reservation to exactly `n` bytes when smaller (a message turned out smaller than reserved) */
  shrinkTo(n: number): void
  /** returns every byte; idempotent */
  release(): void
}

export type Admission = { outcome: 'admitted' } | { outcome: 'refused'; error: OverloadedError }

export type Reserve = { outcome: 'admitted'; reservation: Reservation } | { outcome: 'refused'; error: OverloadedError }

/** Background bytes held until released (release is idempotent). */
export interface BackgroundReservation {
  readonly bytes: number
  release(): void
}

/** `wait`: held + bytes would pass the background limit; nothing was reserved, try again later. */
export type BackgroundAdmission = { outcome: 'admitted'; reservation: BackgroundReservation } | { outcome: 'wait'; heldBytes: number; limitBytes: number }

export interface MemoryGuardState {
  /** 'refusing': heapUsed alone is above the mark, so every request is refused (readiness fails) */
  state: 'ok' | 'refusing' | 'disabled'
  heldBytes: number
  reservedBytes: number
  /** bytes reserved by background work (the Kafka span consumer's batches), part of heldBytes */
  backgroundBytes: number
  heapUsedBytes: number
  highWaterBytes: number
}

export interface MemoryGuardStats {
  reservedBytes: number
  reservations: number
  refused: number
  backgroundBytes: number
  /** background admissions told to wait (each is a consumer slowing down, not a refused request) */
  backgroundWaits: number
}

const MiB = 1048576

export class MemoryGuard {
  private readonly highWater: number
  readonly retryAfterMs: number
  private readonly source: MemorySource
  private readonly sampleIntervalMs: number
  private readonly now: () => number
  private sampledAt = -Infinity
  private heapUsed = 0
  private reserved = 0
  private open = 0
  private refusedCount = 0
  private readonly backgroundLimit: number
  private background = 0
  private backgroundWaitCount = 0

  constructor(opts: MemoryGuardOptions) {
    this.highWater = opts.highWaterBytes
    this.retryAfterMs = opts.retryAfterMs
    this.source = opts.source ?? (() => process.memoryUsage())
    this.sampleIntervalMs = opts.sampleIntervalMs ?? 100
    this.now = opts.now ?? (() => performance.now())
    const headroom = Math.min(this.highWater, Math.max(0, opts.backgroundHeadroomBytes ?? Math.floor(this.highWater / 4)))
    this.backgroundLimit = this.highWater - headroom
  }

  /** Throws OverloadedError when what pullback holds is above the high-water mark. */
  check(): void {
    const a = this.admit(0)
    if (a.outcome === 'refused') throw a.error
  }

  /** Reserves `bytes` for one request (0 is allowed: grow as the body arrives). */
  reserve(bytes: number): Reserve {
    const a = this.admit(bytes)
    if (a.outcome === 'refused') return a
    this.reserved += bytes
    this.open++
    return { outcome: 'admitted', reservation: this.reservation(bytes) }
  }

  /**
   * Reserves `bytes` for background work (see the file comment) when what is held stays at or
   * below the background limit with them; one batch is always admitted when nothing else of the
   * background is held and the heap alone is under the limit, so a batch larger than the headroom
   * still makes progress. With the guard disabled every batch is admitted (and counted).
   */
  reserveBackground(bytes: number): BackgroundAdmission {
    const n = Math.max(0, bytes)
    if (this.highWater > 0) {
      this.sample(false)
      const held = this.reserved + this.background + this.heapUsed
      const alone = this.background === 0 && this.reserved + this.heapUsed <= this.backgroundLimit
      if (held + n > this.backgroundLimit && !alone) {
        this.backgroundWaitCount++
        return { outcome: 'wait', heldBytes: held, limitBytes: this.backgroundLimit }
      }
    }
    this.background += n
    let released = false
    const reservation: BackgroundReservation = {
      bytes: n,
      release: () => {
        if (released) return
        released = true
        this.background -= n
      },
    }
    return { outcome: 'admitted', reservation }
  }

  /** Samples now (not from cache) and tells whether every request is being refused. */
  state(): MemoryGuardState {
    this.sample(true)
    const base = {
      heldBytes: this.reserved + this.background + this.heapUsed,
      reservedBytes: this.reserved,
      backgroundBytes: this.background,
      heapUsedBytes: this.heapUsed,
      highWaterBytes: this.highWater,
    }
    if (this.highWater <= 0) return { state: 'disabled', ...base }
    return { state: this.heapUsed > this.highWater ? 'refusing' : 'ok', ...base }
  }

  stats(): MemoryGuardStats {
    return { reservedBytes: this.reserved, reservations: this.open, refused: this.refusedCount, backgroundBytes: this.background, backgroundWaits: this.backgroundWaitCount }
  }

  private admit(bytes: number): Admission {
    if (this.highWater <= 0) return { outcome: 'admitted' }
    this.sample(false)
    const held = this.reserved + this.background + this.heapUsed
    if (held + bytes <= this.highWater) return { outcome: 'admitted' }
    this.refusedCount++
    const what = bytes > 0 ? ` (+${Math.round(bytes / MiB)} MiB requested)` : ''
    return {
      outcome: 'refused',
      error: new OverloadedError(
        `memory held ${Math.round(held / MiB)} MiB${what} above high-water mark ${Math.round(this.highWater / MiB)} MiB (requests in flight ${Math.round(this.reserved / MiB)} MiB, background ${Math.round(this.background / MiB)} MiB, heap ${Math.round(this.heapUsed / MiB)} MiB)`,
        this.retryAfterMs,
      ),
    }
  }

  private sample(force: boolean): void {
    const t = this.now()
    if (!force && t - this.sampledAt < this.sampleIntervalMs) return
    this.sampledAt = t
    this.heapUsed = this.source().heapUsed
  }

  private reservation(initial: number): Reservation {
    let bytes = initial
    let released = false
    const r: Reservation = {
      get bytes() {
        return bytes
      },
      grow: (n) => {
        if (released) return { outcome: 'admitted' }
        const a = this.admit(n)
        if (a.outcome === 'admitted') {
          bytes += n
          this.reserved += n
        }
        return a
      },
      shrinkTo: (n) => {
        if (released || n >= bytes) return
        this.reserved -= bytes - n
        bytes = n
      },
      release: () => {
        if (released) return
        released = true
        this.reserved -= bytes
        this.open--
        bytes = 0
      },
    }
    return r
  }
}
