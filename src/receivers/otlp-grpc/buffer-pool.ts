/**
 * Reusable message buffers for the node:http2 gRPC transport (h2-server.ts).
 *
 * Why: a gRPC call's message is read into one buffer sized from its 5-byte length prefix. Allocated
 * per call, that buffer usually outlives a scavenge (the message arrives over several event-loop
 * turns), is promoted to the old space and is freed only at the next full GC; at ~2,000 calls/s
 * that was tens of MiB of dead request bytes resident (issue 16). Buffers taken from here are
 * handed back when the call's message has been decoded (decoding is synchronous and copies every
 * string it keeps: otlp/proto.ts), so the working set stays what is in flight plus what is idle here.
 *
 * Contract:
 * - `acquire(n)` returns a buffer of at least `n` bytes with its own ArrayBuffer (never node's
 *   shared 8 KiB pool); the caller uses `subarray(0, n)` and gives the buffer back once with
 *   `release`, after which it must not touch it.
 * - Sizes are rounded up to powers of two from `minBytes` to `maxPooledBytes`; a larger request gets
 *   an exact buffer of its own that `release` drops (`unpooled`).
 * - At most `maxIdleBytes` of buffers are kept idle; a buffer released beyond that is dropped
 *   (`dropped`), so the pool never holds more than its limit between calls.
 * - Buffers in use are not limited here: the memory guard's reservation of each call bounds them
 *   (the transport reserves `sizeFor(length)`, what the buffer really takes, before acquiring). Idle
 *   buffers are not reserved with the guard (they are external memory, not V8 heap): at most
 *   `maxIdleBytes` of them.
 */

export interface BufferPoolOptions {
  /** idle bytes kept at most; default 8 MiB. 0 disables pooling (every buffer is dropped on release) */
  maxIdleBytes?: number
  /** the smallest size class; default 16 KiB */
  minBytes?: number
  /** the largest size class; larger messages are not pooled. Default 1 MiB */
  maxPooledBytes?: number
}

export interface BufferPoolStats {
  /** acquisitions served from an idle buffer */
  hits: number
  /** acquisitions that allocated a new pooled-size buffer */
  misses: number
  /** acquisitions larger than the largest class (allocated exactly, never pooled) */
  unpooled: number
  /** releases dropped because `maxIdleBytes` were idle */
  dropped: number
  idleBytes: number
  idleBuffers: number
}

export const BUFFER_POOL_DEFAULTS = { maxIdleBytes: 8 * 1024 * 1024, minBytes: 16 * 1024, maxPooledBytes: 1024 * 1024 } as const

export class MessageBufferPool {
  private readonly maxIdleBytes: number
  private readonly minBytes: number
  private readonly maxPooledBytes: number
  /** idle buffers by size class (index = log2(size / minBytes)) */
  private readonly idle: Buffer[][] = []
  private idleBytes = 0
  private idleBuffers = 0
  private hits = 0
  private misses = 0
  private unpooled = 0
  private dropped = 0

  constructor(opts: BufferPoolOptions = {}) {
    this.maxIdleBytes = Math.max(0, opts.maxIdleBytes ?? BUFFER_POOL_DEFAULTS.maxIdleBytes)
    this.minBytes = Math.max(1, opts.minBytes ?? BUFFER_POOL_DEFAULTS.minBytes)
    this.maxPooledBytes = Math.max(this.minBytes, opts.maxPooledBytes ?? BUFFER_POOL_DEFAULTS.maxPooledBytes)
  }

  /** The length of the buffer `acquire(n)` returns: n rounded up to its class, or n when not pooled. */
  sizeFor(n: number): number {
    return n > this.maxPooledBytes ? n : this.minBytes * 2 ** this.classOf(n)
  }

  /** A buffer of at least `n` bytes (see the contract). */
  acquire(n: number): Buffer {
    if (n > this.maxPooledBytes) {
      this.unpooled++
      return Buffer.allocUnsafeSlow(n)
    }
    const c = this.classOf(n)
    const list = this.idle[c]
    const b = list?.pop()
    if (b !== undefined) {
      this.hits++
      this.idleBytes -= b.length
      this.idleBuffers--
      return b
    }
    this.misses++
    return Buffer.allocUnsafeSlow(this.minBytes * 2 ** c)
  }

  /** Gives back a buffer from `acquire` (the whole buffer, not a subarray). */
  release(b: Buffer): void {
    if (b.length > this.maxPooledBytes || b.length < this.minBytes) return
    if (this.idleBytes + b.length > this.maxIdleBytes) {
      this.dropped++
      return
    }
    const c = this.classOf(b.length)
    // only exact class sizes come from acquire(); anything else is not ours
    if (this.minBytes * 2 ** c !== b.length) return
    ;(this.idle[c] ??= []).push(b)
    this.idleBytes += b.length
    this.idleBuffers++
  }

  stats(): BufferPoolStats {
    return { hits: this.hits, misses: this.misses, unpooled: this.unpooled, dropped: this.dropped, idleBytes: this.idleBytes, idleBuffers: this.idleBuffers }
  }

  /** Drops every idle buffer (shutdown). */
  clear(): void {
    this.idle.length = 0
    this.idleBytes = 0
    this.idleBuffers = 0
  }

  private classOf(n: number): number {
    let c = 0
    let size = this.minBytes
    while (size < n) {
      size *= 2
      c++
    }
    return c
  }
}
