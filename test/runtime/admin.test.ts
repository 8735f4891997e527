import { connect as connectTcp, createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { AdminServer } from '../../src/runtime/admin.js'
import { ShutdownController, consumerCheck, failing, listeningCheck, memoryGuardCheck, ok, roundTripCheck } from '../../src/runtime/health.js'
import { MemoryGuard } from '../../src/receivers/memory.js'
import { adminSchema } from '../../src/runtime/config.js'
import { ManualClock } from '../../src/common/clock.js'
import { PermanentError } from '../../src/common/errors.js'
import type { ConsumerStats } from '../../src/kafka/types.js'
import { silentLogger } from '../../src/common/logger.js'
import { SelfMetrics } from '../../src/publish/self-metrics.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'

const cfg = (over: Record<string, unknown> = {}) => adminSchema.parse({ endpoint: '127.0.0.1:0', ...over })

async function get(admin: AdminServer, path: string, method = 'GET'): Promise<{ status: number; body: Record<string, unknown> }> {
  const port = admin.address()!.port
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method })
  const text = await res.text()
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) }
}

const servers: { close: () => Promise<void> }[] = []
afterEach(async () => {
  for (const s of servers.splice(0).reverse()) await s.close()
})

async function startAdmin(over: Record<string, unknown> = {}, extra: { clock?: ManualClock; heartbeatMs?: number } = {}): Promise<AdminServer> {
  const admin = new AdminServer({ config: cfg(over), ...extra })
  await admin.start()
  servers.push({ close: () => admin.shutdown() })
  return admin
}

async function listenTcp(): Promise<Server> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  return s
}

describe('AdminServer over real HTTP', () => {
  it('/livez is 200 while the heartbeat is fresh and 503 once it is older than livenessMaxDelay', async () => {
    const clock = new ManualClock(1_000_000)
    const admin = await startAdmin({ livenessMaxDelay: '5s' }, { clock, heartbeatMs: 3_600_000 })
    let r = await get(admin, '/livez')
    expect(r.status).toBe(200)
    expect(r.body.status).toBe('alive')
    clock.advance(5_001)
    r = await get(admin, '/livez')
    expect(r.status).toBe(503)
    expect(r.body).toMatchObject({ status: 'stalled', heartbeatAgeMs: 5_001, limitMs: 5_000 })
  })

  it('/livez fails after a tick that came later than livenessMaxDelay, and recovers on the next prompt tick', async () => {
    const clock = new ManualClock(1_000_000)
    // a period the real timer never reaches during the test; ticks are driven by hand
    const period = 3_600_000
    const admin = await startAdmin({ livenessMaxDelay: '5s' }, { clock, heartbeatMs: period })
    clock.advance(period)
    admin.beat()
    expect((await get(admin, '/livez')).status).toBe(200)
    clock.advance(period + 6_000) // the loop was blocked for 6 s before this tick
    admin.beat()
    const r = await get(admin, '/livez')
    expect(r.status).toBe(503)
    expect(r.body).toMatchObject({ status: 'stalled', heartbeatAgeMs: 0, lastTickLateMs: 6_000 })
    clock.advance(period)
    admin.beat()
    expect((await get(admin, '/livez')).status).toBe(200)
  })

  it('/livez recovers when the real heartbeat timer turns', async () => {
    const admin = await startAdmin({ livenessMaxDelay: '2s' }, { heartbeatMs: 20 })
    await new Promise((r) => setTimeout(r, 60))
    const r = await get(admin, '/livez')
    expect(r.status).toBe(200)
    expect(r.body.heartbeatAgeMs as number).toBeLessThan(2_000)
  })

  it('/readyz follows a real listening socket', async () => {
    const admin = await startAdmin()
    const tcp = await listenTcp()
    let server: Server | undefined = tcp
    admin.addReadinessCheck('otlp-grpc', listeningCheck('otlp grpc', () => server))
    let r = await get(admin, '/readyz')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ status: 'ready', checks: [{ name: 'otlp-grpc', status: 'ok' }] })
    await new Promise<void>((res) => tcp.close(() => res()))
    r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(r.body).toMatchObject({ status: 'not_ready', checks: [{ name: 'otlp-grpc', status: 'failing', detail: 'otlp grpc not listening' }] })
    server = undefined
    expect((await get(admin, '/readyz')).status).toBe(503)
  })

  it('/readyz is not ready while the OTLP memory guard refuses every request, and ready again when it stops (issue 11 item 9)', async () => {
    const admin = await startAdmin()
    let heapUsed = 100 * 1048576
    const guard = new MemoryGuard({ highWaterBytes: 448 * 1048576, retryAfterMs: 5000, source: () => ({ heapUsed }) })
    admin.addReadinessCheck('memory', memoryGuardCheck(() => guard.state()))
    expect((await get(admin, '/readyz')).status).toBe(200)
    heapUsed = 600 * 1048576
    const r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(r.body).toMatchObject({ status: 'not_ready', checks: [{ name: 'memory', status: 'failing' }] })
    heapUsed = 100 * 1048576
    expect((await get(admin, '/readyz')).status).toBe(200)
  })

  it('/readyz fails on a stalled or disconnected consumer, a slow check and a throwing check', async () => {
    const clock = new ManualClock(10_000)
    const admin = await startAdmin({ readinessCheckTimeout: '100ms' })
    const stats: ConsumerStats = { lastPollMs: 9_000, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: 0, connected: true }
    admin.addReadinessCheck('kafka-spans', consumerCheck(() => stats, { stallAfterMs: 30_000, clock }))
    expect((await get(admin, '/readyz')).status).toBe(200)
    clock.advance(40_000)
    let r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(JSON.stringify(r.body)).toContain('consumer stalled')
    stats.lastPollMs = clock.now()
    stats.connected = false
    expect(JSON.stringify((await get(admin, '/readyz')).body)).toContain('consumer not connected')
    stats.connected = true
    expect((await get(admin, '/readyz')).status).toBe(200)

    const removeSlow = admin.addReadinessCheck('slow', () => new Promise((res) => setTimeout(() => res(ok()), 1_000)))
    r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(JSON.stringify(r.body)).toContain('timed out after 100 ms')
    removeSlow()
    const removeThrow = admin.addReadinessCheck('throws', () => {
      throw new Error('producer gone')
    })
    r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(JSON.stringify(r.body)).toContain('producer gone')
    removeThrow()
    admin.addReadinessCheck('producer', () => failing('producer disconnected'))
    expect((await get(admin, '/readyz')).status).toBe(503)
  })

  it('/readyz with a round-trip check: a real TCP dependency, probed at most once per interval', async () => {
    const clock = new ManualClock(0)
    const admin = await startAdmin()
    const dep = await listenTcp()
    const depPort = (dep.address() as { port: number }).port
    let probes = 0
    const connect = () =>
      new Promise<void>((resolve, reject) => {
        probes += 1
        const sock = connectTcp(depPort, '127.0.0.1', () => {
          sock.end()
          resolve()
        })
        sock.on('error', reject)
      })
    admin.addReadinessCheck('kafka', roundTripCheck('broker', connect, { minIntervalMs: 10_000, clock }))
    expect((await get(admin, '/readyz')).status).toBe(200)
    expect((await get(admin, '/readyz')).status).toBe(200)
    expect(probes).toBe(1) // cached within the interval
    await new Promise<void>((r) => dep.close(() => r()))
    clock.advance(10_000)
    const r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(JSON.stringify(r.body)).toMatch(/broker unreachable: .*ECONNREFUSED/)
    expect(probes).toBe(2)
  })

  it('/readyz answers 503 draining once draining starts, even with passing checks', async () => {
    const admin = await startAdmin()
    admin.addReadinessCheck('x', () => ok())
    expect((await get(admin, '/readyz')).status).toBe(200)
    admin.markDraining()
    const r = await get(admin, '/readyz')
    expect(r.status).toBe(503)
    expect(r.body.status).toBe('draining')
  })

  it('/status serves the provider JSON; 404 without one; 500 when it throws', async () => {
    const admin = await startAdmin()
    expect((await get(admin, '/status')).status).toBe(404)
    admin.setStatusProvider(() => ({ watched: [{ namespace: 'shop', service: 'cart', version: 'v2', signals: { error_rate: 'breach' } }], lastVerdicts: [] }))
    const r = await get(admin, '/status')
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ watched: [{ namespace: 'shop', service: 'cart', version: 'v2', signals: { error_rate: 'breach' } }], lastVerdicts: [] })
    admin.setStatusProvider(() => {
      throw new Error('engine busy')
    })
    expect(await get(admin, '/status')).toEqual({ status: 500, body: { error: 'engine busy' } })
  })

  it('refuses other methods and paths; HEAD has no body', async () => {
    const admin = await startAdmin()
    expect((await get(admin, '/livez', 'POST')).status).toBe(405)
    expect((await get(admin, '/nope')).status).toBe(404)
    expect(await get(admin, '/livez', 'HEAD')).toEqual({ status: 200, body: {} })
  })

  it('frees its port on shutdown, shuts down idempotently and without start, and reports a taken port as permanent', async () => {
    const never = new AdminServer({ config: cfg() })
    await never.shutdown()
    await never.shutdown()

    const admin = new AdminServer({ config: cfg() })
    await admin.start()
    const port = admin.address()!.port
    const clash = new AdminServer({ config: cfg({ endpoint: `127.0.0.1:${port}` }) })
    await expect(clash.start()).rejects.toBeInstanceOf(PermanentError)
    await admin.shutdown()
    await admin.shutdown()
    const again = new AdminServer({ config: cfg({ endpoint: `127.0.0.1:${port}` }) })
    await again.start()
    expect(again.address()!.port).toBe(port)
    await again.shutdown()
  })

  it('accepts the project pino logger (as do ShutdownController and SelfMetrics)', async () => {
    const admin = new AdminServer({ config: cfg(), log: silentLogger })
    await admin.start()
    await admin.shutdown()
    expect((await new ShutdownController({ timeoutMs: 10, log: silentLogger }).run()).result).toBe('clean')
    await new SelfMetrics({ telemetry: { state: 'disabled', reason: 'test' }, log: silentLogger }).shutdown()
  })

  it('does not listen when disabled', async () => {
    const admin = new AdminServer({ config: cfg({ enabled: false }) })
    await admin.start()
    expect(admin.address()).toBeUndefined()
    await admin.shutdown()
  })
})

describe('ShutdownController', () => {
  it('runs steps in order and reports clean', async () => {
    const order: string[] = []
    const sc = new ShutdownController({ timeoutMs: 1_000 })
    for (const name of ['stop receivers', 'flush engine', 'flush publisher', 'commit offsets', 'close']) {
      sc.add(name, async () => {
        await new Promise((r) => setTimeout(r, 5))
        order.push(name)
      })
    }
    expect(sc.draining).toBe(false)
    const report = await sc.run('SIGTERM')
    expect(sc.draining).toBe(true)
    expect(order).toEqual(['stop receivers', 'flush engine', 'flush publisher', 'commit offsets', 'close'])
    expect(report.result).toBe('clean')
    expect(report.steps.map((s) => s.outcome)).toEqual(['done', 'done', 'done', 'done', 'done'])
  })

  it('goes on after a failing step, times out a slow one with an aborted signal, skips what no longer fits', async () => {
    const logs: string[] = []
    const log = { info: (_o: object, m: string) => logs.push(m), warn: (_o: object, m: string) => logs.push(m) }
    const sc = new ShutdownController({ timeoutMs: 150, log })
    let aborted = false
    let committed = false
    sc.add('flush publisher', () => Promise.reject(new Error('broker down')))
    sc.add('commit offsets', () => {
      committed = true
      return Promise.resolve()
    })
    sc.add('hang', (signal) => {
      signal.addEventListener('abort', () => (aborted = true))
      return new Promise(() => {})
    })
    sc.add('close', () => Promise.resolve())
    const t0 = Date.now()
    const report = await sc.run()
    expect(Date.now() - t0).toBeLessThan(1_000)
    expect(committed).toBe(true)
    expect(aborted).toBe(true)
    expect(report.result).toBe('degraded')
    expect(report.steps.map((s) => [s.name, s.outcome])).toEqual([
      ['flush publisher', 'failed'],
      ['commit offsets', 'done'],
      ['hang', 'timed_out'],
      ['close', 'skipped'],
    ])
    expect(report.steps[0]!.detail).toBe('broker down')
    expect(logs).toContain('shutdown started')
    expect(logs).toContain('shutdown finished')
  })

  it('is idempotent and refuses steps once started; a synchronous throw counts as failed', async () => {
    let runs = 0
    const sc = new ShutdownController({ timeoutMs: 1_000 })
    sc.add('count', () => {
      runs += 1
      return Promise.resolve()
    })
    sc.add('sync throw', () => {
      throw new Error('sync')
    })
    const [a, b] = await Promise.all([sc.run(), sc.run()])
    expect(a).toBe(b)
    expect(runs).toBe(1)
    expect(a.steps[1]).toMatchObject({ outcome: 'failed', detail: 'sync' })
    expect(() => sc.add('late', () => Promise.resolve())).toThrow(/already started/)
  })
})

describeKafka('/readyz against the real broker', () => {
  it('is ready while the consumer polls and the broker answers metadata; not ready once the consumer left', async () => {
    const transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-readyz-test' })
    const kadmin = transport.admin()
    const topic = uniqueName('it-readyz')
    await kadmin.ensureTopics([{ topic, numPartitions: 1, replicationFactor: 1 }])
    const consumer = transport.consumer({ groupId: uniqueName('it-readyz'), topics: [topic] })
    const admin = await startAdmin({ readinessCheckTimeout: '5s' })
    admin.addReadinessCheck('kafka-consumer', consumerCheck(() => consumer.stats(), { stallAfterMs: 30_000 }))
    admin.addReadinessCheck('kafka-broker', roundTripCheck('broker', () => kadmin.listTopics(), { minIntervalMs: 0 }))
    try {
      let r = await get(admin, '/readyz')
      expect(r.status).toBe(503) // the consumer has not joined yet
      await consumer.start(() => Promise.resolve())
      const deadline = Date.now() + 60_000
      while ((r = await get(admin, '/readyz')).status !== 200 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200))
      expect(r.body).toMatchObject({ status: 'ready', checks: [{ name: 'kafka-consumer', status: 'ok' }, { name: 'kafka-broker', status: 'ok' }] })
      await consumer.stop()
      r = await get(admin, '/readyz')
      expect(r.status).toBe(503)
      expect(JSON.stringify(r.body)).toContain('consumer not connected')
    } finally {
      await consumer.stop()
      await kadmin.deleteTopics([topic]).catch(() => undefined)
      await kadmin.disconnect()
    }
  })
})
