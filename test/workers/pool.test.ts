/**
 * WorkerPool (src/workers/pool.ts) with real worker threads: the same requests and the same errors
 * as the inline decoders, the bounded queue (refused + counted), a crashing worker (retryable +
 * replaced), body transfer vs copy, lifecycle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { WorkerPool, resolveWorkerThreads } from '../../src/workers/pool.js'
import { decodeRequest } from '../../src/receivers/otlp/ingest.js'
import { DecodeError, OverloadedError } from '../../src/receivers/errors.js'
import { protocolError } from '../../src/receivers/status.js'
import { TraceReq } from '../receivers/oracle.js'
import { tracesRequest } from '../receivers/arbitraries.js'
import { generate } from '../support/otlp-fixtures.js'
import { bundleDecodeWorker, spansOf, type BundledWorker } from './bundle-worker.js'

let bundle: BundledWorker
let pool: WorkerPool

beforeAll(async () => {
  bundle = await bundleDecodeWorker()
  pool = new WorkerPool({ threads: 2, retryAfterMs: 1234, script: bundle.file })
  await pool.start()
}, 60_000)

afterAll(async () => {
  await pool?.shutdown()
  bundle?.remove()
})

const worker = (code: string) =>
  new URL(`data:text/javascript,${encodeURIComponent(`import { parentPort } from 'node:worker_threads'\n${code}\nparentPort.postMessage({ outcome: 'ready' })`)}`)

/** inline outcome: spans, or how the receivers would answer the error (receivers/status.ts) */
function inline(format: 'proto' | 'json', body: Buffer): unknown {
  try {
    return spansOf(decodeRequest('traces', format, body, 16))
  } catch (err) {
    return protocolError(err, 0)
  }
}

async function viaPool(format: 'proto' | 'json', body: Buffer, owned = false): Promise<unknown> {
  try {
    return spansOf(await pool.decodeTraces(format, body, 16, owned))
  } catch (err) {
    return protocolError(err, 0)
  }
}

describe('WorkerPool', () => {
  it('decodes random OTLP protobuf requests exactly as the inline decoder, errors included (property)', async () => {
    await fc.assert(
      fc.asyncProperty(tracesRequest, fc.uint8Array({ maxLength: 40 }), async (obj, junk) => {
        const good = Buffer.from(TraceReq.encode(TraceReq.fromObject(obj)).finish())
        expect(await viaPool('proto', good)).toEqual(inline('proto', good))
        // random trailing bytes: mostly undecodable, sometimes still valid
        const bad = Buffer.concat([good, junk])
        expect(await viaPool('proto', bad)).toEqual(inline('proto', bad))
      }),
      { numRuns: 150 },
    )
  })

  it('decodes OTLP/JSON as the inline decoder; an undecodable body is a DecodeError with the same message', async () => {
    const lines = [...generate({ seed: 3, durationS: 3, load: () => [{ version: 'v1', rps: 20, errorRate: 0.1, medianMs: 30 }] })]
    for (const line of lines) {
      if (!line.includes('resourceSpans')) continue
      const body = Buffer.from(line)
      const out = await viaPool('json', body)
      expect(out).toEqual(inline('json', body))
      expect((out as Array<{ spans: unknown[] }>)[0]?.spans.length).toBeGreaterThan(0)
    }
    const err = await pool.decodeTraces('json', Buffer.from('{"resourceSpans": 3}'), 16, false).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DecodeError)
    expect(await viaPool('json', Buffer.from('{"resourceSpans": 3}'))).toEqual(inline('json', Buffer.from('{"resourceSpans": 3}')))
  })

  it('moves an owned, non-pooled body to the worker and copies any other', async () => {
    const before = pool.stats()
    const obj = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'big' } }] }, scopeSpans: [{ spans: Array.from({ length: 200 }, () => ({ kind: 2, name: 'x'.repeat(40) })) }] }] }
    const encoded = TraceReq.encode(TraceReq.fromObject(obj)).finish()
    const owned = Buffer.alloc(encoded.length)
    owned.set(encoded)
    expect(owned.buffer.byteLength).toBeGreaterThan(Buffer.poolSize)
    const out = (await pool.decodeTraces('proto', owned, 16, true)).resourceSpans[0]
    expect(out?.spans.length).toBe(200)
    expect(owned.length).toBe(0) // detached: it was moved, not copied
    const kept = Buffer.from(encoded)
    await pool.decodeTraces('proto', kept, 16, false)
    expect(kept.length).toBe(encoded.length)
    const small = Buffer.from([0x0a, 0x00]) // pooled: never moved even when owned
    await pool.decodeTraces('proto', small, 16, true)
    expect(small.length).toBe(2)
    const after = pool.stats()
    expect(after.transferred - before.transferred).toBe(1)
    expect(after.copied - before.copied).toBe(2)
  })

  it('refuses a job beyond maxQueued with a retryable OverloadedError, counted; pending jobs fail retryable at shutdown', async () => {
    const stuck = new WorkerPool({ threads: 1, maxQueued: 2, retryAfterMs: 777, drainTimeoutMs: 200, script: worker("parentPort.on('message', () => {})") })
    await stuck.start()
    const a = stuck.decodeTraces('proto', Buffer.alloc(1), 16, false).catch((e: unknown) => e)
    const b = stuck.decodeTraces('proto', Buffer.alloc(1), 16, false).catch((e: unknown) => e)
    const c = await stuck.decodeTraces('proto', Buffer.alloc(1), 16, false).catch((e: unknown) => e)
    expect(c).toBeInstanceOf(OverloadedError)
    expect((c as OverloadedError).retryAfterMs).toBe(777)
    expect(stuck.stats()).toMatchObject({ inFlight: 2, refused: 1, peakInFlight: 2 })
    await stuck.shutdown()
    expect(await a).toBeInstanceOf(OverloadedError)
    expect(await b).toBeInstanceOf(OverloadedError)
    expect(stuck.stats().inFlight).toBe(0)
    // after shutdown: refused, counted
    expect(await stuck.decodeTraces('proto', Buffer.alloc(1), 16, false).catch((e: unknown) => e)).toBeInstanceOf(OverloadedError)
    expect(stuck.stats().refused).toBe(2)
    await stuck.shutdown()
  })

  it('a worker that dies fails its job as retryable and is replaced', async () => {
    const crashing = new WorkerPool({ threads: 1, retryAfterMs: 500, script: worker("parentPort.on('message', () => process.exit(3))") })
    await crashing.start()
    const err = await crashing.decodeTraces('proto', Buffer.alloc(1), 16, false).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OverloadedError)
    expect(crashing.stats().crashes).toBe(1)
    // replaced after a short delay: a second job reaches a (new) worker, which dies again
    await new Promise((r) => setTimeout(r, 400))
    expect(await crashing.decodeTraces('proto', Buffer.alloc(1), 16, false).catch((e: unknown) => e)).toBeInstanceOf(OverloadedError)
    expect(crashing.stats().crashes).toBe(2)
    await crashing.shutdown()
  })

  it('lifecycle: shutdown without start is fine and idempotent; a missing script fails the start', async () => {
    const never = new WorkerPool({ threads: 1, retryAfterMs: 1 })
    await never.shutdown()
    await never.shutdown()
    const missing = new WorkerPool({ threads: 1, retryAfterMs: 1, script: '/nonexistent/worker.mjs' })
    await expect(missing.start()).rejects.toThrow()
    expect(() => new WorkerPool({ threads: 0, retryAfterMs: 1 })).toThrow(RangeError)
  })

  it("'auto' is cores - 1, at least 1 with more than one core, 0 on one core", () => {
    expect(resolveWorkerThreads('auto', 1)).toBe(0)
    expect(resolveWorkerThreads('auto', 2)).toBe(1)
    expect(resolveWorkerThreads('auto', 8)).toBe(7)
    expect(resolveWorkerThreads(3, 2)).toBe(3)
  })
})
