/**
 * The memory guard (issue 11 items 3 and 9). The regression: after a burst of large gRPC messages
 * RSS stayed at 1,673 MiB (glibc keeps freed pages), and because the guard compared RSS with its
 * high-water mark, every later OTLP request on both protocols was refused until restart, while
 * /readyz stayed ready. The guard's memory source is injected here: RSS stays high after the burst
 * exactly as measured, the heap goes back down, and requests must be admitted again.
 */
import { describe, expect, it } from 'vitest'
import { MemoryGuard, type MemorySample } from '../../src/receivers/memory.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { memoryGuardCheck } from '../../src/runtime/health.js'
import { CountingConsumer } from './helpers.js'
import { encodeTraces } from './oracle.js'

const MiB = 1024 * 1024
const HIGH_WATER = 448 * MiB

/** what the process looked like in the report: RSS 202 MiB before, 1,673 MiB after the burst, for good */
class ReportedProcess {
  rss = 202 * MiB
  heapUsed = 60 * MiB
  sample = (): MemorySample & { rss: number } => ({ rss: this.rss, heapUsed: this.heapUsed })
}

const body = encodeTraces({
  resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'after-burst' } }] }, scopeSpans: [{ spans: [{ kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }],
})

describe('memory guard', () => {
  it('a burst is refused while it is held, and RSS that stays high afterwards refuses nothing', () => {
    const proc = new ReportedProcess()
    const guard = new MemoryGuard({ highWaterBytes: HIGH_WATER, retryAfterMs: 5000, source: proc.sample, sampleIntervalMs: 0 })
    // 12 connections x 16 streams of just-under-8 MiB messages, each reserving its message first
    const held = []
    let refused = 0
    for (let i = 0; i < 12 * 16; i++) {
      const r = guard.reserve(8 * MiB - 1)
      if (r.outcome === 'admitted') held.push(r.reservation)
      else refused++
    }
    // what was admitted fits under the mark together with the heap; the rest was refused unbuffered
    expect(guard.stats().reservedBytes + proc.heapUsed).toBeLessThanOrEqual(HIGH_WATER)
    expect(held.length).toBe(Math.floor((HIGH_WATER - proc.heapUsed) / (8 * MiB - 1)))
    expect(refused).toBe(12 * 16 - held.length)
    // the burst ends; glibc keeps the pages: RSS stays at the reported 1,673 MiB
    for (const r of held) r.release()
    proc.rss = 1673 * MiB
    expect(guard.stats().reservedBytes).toBe(0)
    let admitted = 0
    for (let i = 0; i < 1000; i++) {
      const r = guard.reserve(8 * MiB)
      if (r.outcome === 'admitted') {
        admitted++
        r.reservation.release()
      }
    }
    expect(admitted).toBe(1000)
    expect(guard.state().state).toBe('ok')
  })

  it('after the burst the OTLP/HTTP receiver answers 1,000 of 1,000 requests', async () => {
    const proc = new ReportedProcess()
    proc.rss = 1673 * MiB
    const guard = new MemoryGuard({ highWaterBytes: HIGH_WATER, retryAfterMs: 5000, source: proc.sample, sampleIntervalMs: 0 })
    const consumer = new CountingConsumer()
    const receiver = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0', memoryGuard: guard })
    await receiver.start()
    try {
      const statuses = new Map<number, number>()
      for (let i = 0; i < 1000; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: 50 }, () =>
            fetch(`http://127.0.0.1:${receiver.port}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } }).then(async (r) => {
              await r.arrayBuffer()
              return r.status
            }),
          ),
        )
        for (const s of batch) statuses.set(s, (statuses.get(s) ?? 0) + 1)
      }
      expect(Object.fromEntries(statuses)).toEqual({ 200: 1000 })
      expect(consumer.spans).toBe(1000)
      expect(guard.stats().reservedBytes).toBe(0)
    } finally {
      await receiver.shutdown()
    }
  })

  it('counts request bytes it reserved at once, and returns them exactly', () => {
    const proc = new ReportedProcess()
    const guard = new MemoryGuard({ highWaterBytes: 100 * MiB, retryAfterMs: 1000, source: proc.sample })
    const a = guard.reserve(10 * MiB)
    expect(a.outcome).toBe('admitted')
    if (a.outcome !== 'admitted') return
    expect(a.reservation.grow(20 * MiB).outcome).toBe('admitted')
    // 60 heap + 30 reserved + 20 more > 100: refused, nothing reserved
    const g = a.reservation.grow(20 * MiB)
    expect(g.outcome).toBe('refused')
    if (g.outcome === 'refused') expect(g.error.retryAfterMs).toBe(1000)
    expect(guard.stats().reservedBytes).toBe(30 * MiB)
    a.reservation.shrinkTo(MiB)
    expect(guard.stats().reservedBytes).toBe(MiB)
    a.reservation.release()
    a.reservation.release()
    expect(guard.stats()).toMatchObject({ reservedBytes: 0, reservations: 0, refused: 1 })
  })

  it('readiness fails while the heap alone is over the mark (every request refused) and recovers when it is not', async () => {
    const proc = new ReportedProcess()
    const guard = new MemoryGuard({ highWaterBytes: HIGH_WATER, retryAfterMs: 5000, source: proc.sample, sampleIntervalMs: 60_000 })
    const check = memoryGuardCheck(() => guard.state())
    expect((await check()).status).toBe('ok')
    proc.heapUsed = 500 * MiB
    // state() samples afresh, whatever the sampling interval of the request path
    const r = await check()
    expect(r.status).toBe('failing')
    expect(r.status === 'failing' && r.detail).toMatch(/refusing every request: heap 500 MiB above high-water mark 448 MiB/)
    expect(guard.reserve(0).outcome).toBe('refused')
    proc.heapUsed = 100 * MiB
    expect((await check()).status).toBe('ok')
    expect(guard.reserve(0).outcome).toBe('admitted')
    // RSS is not an input: only heapUsed is read
    proc.rss = 10 * 1024 * MiB
    expect((await check()).status).toBe('ok')
    // a disabled guard never fails readiness
    const off = new MemoryGuard({ highWaterBytes: 0, retryAfterMs: 5000, source: () => ({ heapUsed: 10 * 1024 * MiB }) })
    expect((await memoryGuardCheck(() => off.state())()).status).toBe('ok')
  })
})
