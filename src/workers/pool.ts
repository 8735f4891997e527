/**
 * WorkerPool: decodes OTLP span requests in worker_threads so the main thread (gRPC/HTTP, the
 * signal store, the engine tick) does not spend its time in the decoder. See src/workers/README.md.
 *
 * Contract:
 * - `decodeTraces(format, body, maxAttributes, owned)` resolves to a TracesRequest over a columnar
 *   batch (batch.ts; no span objects) or rejects with exactly the error the inline decoder would
 *   have thrown (DecodeError, a programmer error, an unmarked error), or an OverloadedError when
 *   the pool cannot take the job (below). The caller records the result into the pipeline on the
 *   main thread and only then answers its client.
 * - Body bytes move to the worker without a copy when `owned` (the caller holds the only reference
 *   to a non-pooled ArrayBuffer the body ends at); otherwise they are copied once.
 * - Bounded: at most `maxQueued` jobs are at the workers (sent, not answered). A job beyond it is
 *   refused at once with OverloadedError (counted in `stats().refused`): the receiver answers
 *   UNAVAILABLE / 503 with its retry hint, as for the memory limit. Jobs go to the worker with the
 *   fewest jobs in flight.
 * - A worker that dies (crash, out of memory) fails its jobs with OverloadedError (the client
 *   resends; counted in `crashes`) and is replaced while the pool runs.
 * - `start()` spawns the workers and resolves when all are online (a missing script fails the
 *   start); `shutdown()` is idempotent: it refuses new jobs, waits up to `drainTimeoutMs` for
 *   jobs in flight, then terminates the workers. Idle workers do not keep the process alive.
 */
import { Worker } from 'node:worker_threads'
import os from 'node:os'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import { silentLogger } from '../common/logger.js'
import { DecodeError, OverloadedError } from '../receivers/errors.js'
import type { Format } from '../receivers/otlp/ingest.js'
import type { TracesRequest } from '../receivers/otlp/model.js'
import { batchRequest, checkTraceBatch } from './batch.js'
import type { DecodeJob, DecodeReply, WorkerReady } from './protocol.js'

/** `receivers.workers`: 'auto' = one per core but one (the main thread's), at least 1 with more than one core; 0 = decode inline */
export type WorkersSetting = 'auto' | number

export function resolveWorkerThreads(setting: WorkersSetting, cores = os.availableParallelism()): number {
  if (setting !== 'auto') return setting
  return cores > 1 ? Math.max(1, cores - 1) : 0
}

export const DEFAULT_MAX_QUEUED = 256
/** a replacement worker starts this long after a crash, doubling (up to 10 s) while replacements die before they are ready */
const RESPAWN_DELAY_MS = 100
const MAX_RESPAWN_DELAY_MS = 10_000

export interface WorkerPoolOptions {
  threads: number
  /** jobs at the workers at most (sent, not answered); more => OverloadedError. Default 256 */
  maxQueued?: number
  /** the retry hint of the OverloadedErrors the pool produces */
  retryAfterMs: number
  /** the worker entry; default: worker.js next to this file (dist/src/workers/worker.js) */
  script?: string | URL
  /** how long shutdown() waits for jobs in flight. Default 5 s */
  drainTimeoutMs?: number
  logger?: Logger
}

export interface WorkerPoolStats {
  threads: number
  /** jobs at the workers now */
  inFlight: number
  /** highest inFlight seen */
  peakInFlight: number
  /** jobs answered (decoded or failed) */
  completed: number
  /** jobs refused because maxQueued were in flight, or the pool was not running */
  refused: number
  /** workers that exited unexpectedly (their jobs failed as retryable) */
  crashes: number
  /** bodies whose ArrayBuffer was moved to the worker / copied once */
  transferred: number
  copied: number
  /** replies that were not well-formed batches (answered INTERNAL) */
  malformedReplies: number
}

interface Pending {
  resolve(req: TracesRequest): void
  reject(err: unknown): void
}

interface Slot {
  worker: Worker
  pending: Map<number, Pending>
}

export class WorkerPool implements Component {
  readonly name = 'workers'
  readonly threads: number
  private readonly maxQueued: number
  private readonly retryAfterMs: number
  private readonly script: string | URL
  private readonly drainTimeoutMs: number
  private readonly logger: Logger
  private slots: Slot[] = []
  private nextId = 1
  private respawnDelayMs = RESPAWN_DELAY_MS
  private inFlight = 0
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private stopping: Promise<void> | undefined
  private drained: (() => void) | undefined
  private readonly st: WorkerPoolStats

  constructor(o: WorkerPoolOptions) {
    if (!Number.isInteger(o.threads) || o.threads < 1) throw new RangeError(`WorkerPool: threads must be a positive integer, got ${o.threads}`)
    this.threads = o.threads
    this.maxQueued = o.maxQueued ?? DEFAULT_MAX_QUEUED
    this.retryAfterMs = o.retryAfterMs
    this.script = o.script ?? new URL('./worker.js', import.meta.url)
    this.drainTimeoutMs = o.drainTimeoutMs ?? 5000
    this.logger = o.logger ?? silentLogger
    this.st = { threads: o.threads, inFlight: 0, peakInFlight: 0, completed: 0, refused: 0, crashes: 0, transferred: 0, copied: 0, malformedReplies: 0 }
  }

  stats(): WorkerPoolStats {
    return { ...this.st, inFlight: this.inFlight }
  }

  /** true while jobs are taken (between start() and shutdown()) */
  get running(): boolean {
    return this.state === 'running'
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`${this.name}: start() called twice`)
    this.state = 'running'
    try {
      await Promise.all(Array.from({ length: this.threads }, () => this.spawn()))
    } catch (err) {
      this.state = 'stopped'
      await Promise.all(this.slots.map((s) => s.worker.terminate()))
      this.slots = []
      throw err
    }
    this.logger.info({ threads: this.threads, maxQueued: this.maxQueued }, 'decode workers started')
  }

  /** Spawns one worker into a new slot; resolves when its module has loaded (its `ready`), rejects when it fails first. */
  private spawn(): Promise<void> {
    const worker = new Worker(this.script)
    const slot: Slot = { worker, pending: new Map() }
    this.slots.push(slot)
    return new Promise((resolve, reject) => {
      let ready = false
      worker.on('message', (m: DecodeReply | WorkerReady) => {
        if (m.outcome !== 'ready') this.settle(slot, m)
        else if (!ready) {
          ready = true
          this.respawnDelayMs = RESPAWN_DELAY_MS
          worker.unref()
          resolve()
        }
      })
      worker.on('error', (err) => {
        if (!ready) reject(err)
        else this.logger.warn({ err: err.message }, 'decode worker failed')
      })
      worker.once('exit', (code) => {
        if (!ready) reject(new Error(`decode worker exited with code ${code} before it was ready`))
        this.exited(slot, code)
      })
    })
  }

  private exited(slot: Slot, code: number): void {
    const i = this.slots.indexOf(slot)
    if (i >= 0) this.slots.splice(i, 1)
    if (this.state === 'running') {
      this.st.crashes++
      this.logger.warn({ code, pending: slot.pending.size }, 'decode worker exited; replacing it')
    }
    const lost = [...slot.pending.values()]
    slot.pending.clear()
    this.release(slot, lost.length)
    for (const p of lost) p.reject(new OverloadedError('decode worker exited', this.retryAfterMs))
    if (this.state !== 'running') return
    // a little later, so a worker that dies at once cannot spin the main thread; longer while replacements keep dying
    const delay = this.respawnDelayMs
    this.respawnDelayMs = Math.min(MAX_RESPAWN_DELAY_MS, delay * 2)
    setTimeout(() => {
      if (this.state === 'running') this.spawn().catch((err: unknown) => this.logger.error({ err: String(err) }, 'decode worker could not be replaced'))
    }, delay).unref()
  }

  /** `n` jobs of `slot` are over (already removed from its pending map). */
  private release(slot: Slot, n: number): void {
    this.inFlight -= n
    if (slot.pending.size === 0) slot.worker.unref()
    if (this.inFlight === 0) this.drained?.()
  }

  private settle(slot: Slot, reply: DecodeReply): void {
    const p = slot.pending.get(reply.id)
    if (p === undefined) return
    slot.pending.delete(reply.id)
    this.release(slot, 1)
    this.st.completed++
    if (reply.outcome === 'decoded') {
      const problem = checkTraceBatch(reply.batch)
      if (problem === undefined) p.resolve(batchRequest(reply.batch))
      else {
        this.st.malformedReplies++
        p.reject(new TypeError(`decode worker replied with a malformed batch: ${problem}`))
      }
    } else if (reply.failure === 'permanent') p.reject(new DecodeError(reply.message))
    else if (reply.failure === 'programmer') p.reject(new TypeError(reply.message))
    else p.reject(new Error(reply.message))
  }

  /**
   * Decodes an ExportTraceServiceRequest (protobuf or OTLP/JSON) in a worker. `owned`: the caller
   * gives up `body` (its ArrayBuffer may be moved to the worker; `body` is unusable afterwards).
   */
  decodeTraces(format: Format, body: Buffer, maxAttributes: number, owned: boolean): Promise<TracesRequest> {
    if (this.state !== 'running') {
      this.st.refused++
      return Promise.reject(new OverloadedError('decode workers not running', this.retryAfterMs))
    }
    if (this.inFlight >= this.maxQueued) {
      this.st.refused++
      return Promise.reject(new OverloadedError(`more than ${this.maxQueued} requests waiting for decode workers`, this.retryAfterMs))
    }
    let slot = this.slots[0]
    for (const s of this.slots) if (slot === undefined || s.pending.size < slot.pending.size) slot = s
    if (slot === undefined) {
      // every worker died at once and none is back yet
      this.st.refused++
      return Promise.reject(new OverloadedError('no decode worker available', this.retryAfterMs))
    }
    let bytes: Uint8Array
    if (owned && transferable(body)) {
      bytes = body
      this.st.transferred++
    } else {
      bytes = new Uint8Array(body.byteLength)
      bytes.set(body)
      this.st.copied++
    }
    const id = this.nextId++
    const job: DecodeJob = { id, signal: 'traces', format, bytes, maxAttributes }
    const s = slot
    return new Promise<TracesRequest>((resolve, reject) => {
      if (s.pending.size === 0) s.worker.ref()
      s.pending.set(id, { resolve, reject })
      this.inFlight++
      if (this.inFlight > this.st.peakInFlight) this.st.peakInFlight = this.inFlight
      try {
        s.worker.postMessage(job, [bytes.buffer as ArrayBuffer])
      } catch (err) {
        s.pending.delete(id)
        this.release(s, 1)
        reject(err)
      }
    })
  }

  /** Refuses new jobs, waits up to drainTimeoutMs for those in flight, terminates the workers. Idempotent. */
  shutdown(): Promise<void> {
    if (this.stopping) return this.stopping
    const wasRunning = this.state === 'running'
    this.state = 'stopping'
    this.stopping = (async () => {
      if (this.inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.drainTimeoutMs)
          timer.unref()
          this.drained = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
      this.state = 'stopped'
      await Promise.all([...this.slots].map((s) => s.worker.terminate()))
      this.slots = []
      if (wasRunning) this.logger.info({ completed: this.st.completed, refused: this.st.refused, crashes: this.st.crashes }, 'decode workers stopped')
    })()
    return this.stopping
  }
}

/**
 * True when moving `b`'s ArrayBuffer cannot hurt anyone else: not shared memory, larger than
 * node's Buffer pool (pooled small Buffers share one ArrayBuffer), and `b` runs to its end from a
 * small offset (grpc-js hands the message as the framed buffer after its 5-byte prefix).
 */
function transferable(b: Buffer): boolean {
  const ab = b.buffer
  if (!(ab instanceof ArrayBuffer)) return false
  return ab.byteLength > Buffer.poolSize && b.byteOffset <= 8 && b.byteOffset + b.byteLength === ab.byteLength
}
