/**
 * Issue 11, item 9: "on SIGTERM with the broker down the publisher step took 11.4 s against a 3 s
 * drain timeout and the shutdown report said `clean` while logging `abandonedAtShutdown: 5`".
 * A Kafka-kind transport whose producer never answers stands in for the unreachable broker. The
 * same for `pullback decider` (DeciderProcess), whose drain only logged a warning until session 34.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { KafkaTransport, Producer } from '../../src/kafka/types.js'
import { DISCONNECT_FLOOR_MS } from '../../src/publish/publisher.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { DeciderProcess } from '../../src/runtime/decider-process.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { verdict } from '../actuator/helpers.js'

/** the embedded bus for consumers and admin; a producer whose sends and close never answer */
function brokerDown(bus: MemoryBus): KafkaTransport {
  const unreachable: Producer = {
    connect: () => Promise.resolve(),
    send: () => new Promise<void>(() => undefined),
    disconnect: () => new Promise<void>(() => undefined),
  }
  return { kind: 'kafka', producer: () => unreachable, consumer: (o) => bus.consumer(o), reader: (o) => bus.reader(o), admin: () => bus.admin() }
}

describe('sidecar SIGTERM with the broker down', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-sigterm-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('the publisher step keeps to drainTimeout and the report is degraded, naming the write-ahead file', async () => {
    const bus = new MemoryBus()
    const transport = brokerDown(bus)
    const walFile = join(dir, 'decisions.wal')
    const sidecar = new Sidecar({
      config: parseConfig({
        receivers: { otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { endpoint: '127.0.0.1:0' } } },
        publish: { drainTimeout: '300ms', wal: { file: walFile } },
        runtime: { telemetry: { enabled: false }, state: { enabled: false } },
      }),
      transport,
      logger: silentLogger,
      signer: signerFromKey(generateKeyPairSync('ed25519').privateKey),
      headless: true,
    })
    await sidecar.start()
    for (let i = 0; i < 5; i++) expect(sidecar.publisher!.publish(verdict('rollback', { id: `down-${i}` }))).toMatchObject({ kind: 'queued', durable: true })

    const report = await sidecar.drain()
    const step = report.steps.find((s) => s.name === 'publisher')
    expect(step?.outcome).toBe('failed')
    expect(step?.detail).toMatch(/5 decisions unacknowledged; kept in .*decisions\.wal/)
    expect(step!.ms).toBeLessThan(300 + DISCONNECT_FLOOR_MS + 200)
    expect(report.result).toBe('degraded')
    // every other step completes: a producer close that never answers (span coverage, partials,
    // state) is given up after PRODUCER_CLOSE_MS; it held the close step to the whole budget (25 s)
    expect(report.steps.filter((s) => s.name !== 'publisher').map((s) => s.outcome)).toEqual(['done', 'done', 'done', 'done'])
    expect(sidecar.publisher!.stats().abandonedAtShutdown).toBe(5)
    const kept = readFileSync(walFile, 'utf8')
    for (let i = 0; i < 5; i++) expect(kept).toContain(`down-${i}`)
  })

  it('pullback decider: the same publisher step, its report degraded; the drain is idempotent', async () => {
    const bus = new MemoryBus({ defaultPartitions: 3 })
    const transport = brokerDown(bus)
    const walFile = join(dir, 'decider-decisions.wal')
    const proc = new DeciderProcess({
      config: parseConfig({
        decider: { partitions: 3 },
        publish: { drainTimeout: '300ms', wal: { file: walFile } },
        history: { enabled: false },
        runtime: { admin: { enabled: false }, telemetry: { enabled: false }, state: { enabled: false }, shutdownTimeout: '5s' },
      }),
      transport,
      logger: silentLogger,
      signer: signerFromKey(generateKeyPairSync('ed25519').privateKey),
      headless: true,
      clock: null,
    })
    await proc.start()
    for (let i = 0; i < 3; i++) expect(proc.publisher.publish(verdict('rollback', { id: `decider-down-${i}` }))).toMatchObject({ kind: 'queued', durable: true })

    const report = await proc.drain()
    expect(report.steps.map((s) => s.name)).toEqual(['not-ready', 'deployments', 'decider', 'publisher', 'close'])
    const step = report.steps.find((s) => s.name === 'publisher')
    expect(step?.outcome).toBe('failed')
    expect(step?.detail).toMatch(/3 decisions unacknowledged; kept in .*decider-decisions\.wal/)
    expect(step!.ms).toBeLessThan(300 + DISCONNECT_FLOOR_MS + 200)
    expect(report.result).toBe('degraded')
    expect(report.steps.filter((s) => s.name !== 'publisher').every((s) => s.outcome === 'done')).toBe(true)
    expect(await proc.drain()).toBe(report)
    await proc.shutdown()
  })
})
