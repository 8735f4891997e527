import net from 'node:net'
import { describe, expect, it, vi } from 'vitest'
import { parseBytes, receiversSchema } from '../../src/receivers/config.js'
import { createReceivers } from '../../src/receivers/index.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { CountingConsumer } from './helpers.js'

describe('receivers config', () => {
  it('has documented defaults', () => {
    expect(receiversSchema.parse(undefined)).toEqual({
      otlp: {
        grpc: { enabled: true, endpoint: '127.0.0.1:4317', maxConnections: 256, maxConcurrentCalls: 64, idleTimeout: 300_000, server: 'http2', bufferPool: 8 * 1024 * 1024 },
        http: { enabled: true, endpoint: '127.0.0.1:4318', maxConnections: 1024, maxInFlight: 64, headersTimeout: 10_000, idleTimeout: 30_000, minBodyRate: 1024 },
      },
      maxRequestBytes: 8 * 1024 * 1024,
      memoryHighWater: 448 * 1024 * 1024,
      readTimeout: 30_000,
      retryAfter: 5000,
      maxAttributes: 1024,
      workers: 0,
      kafkaSpans: { enabled: false, encoding: 'otlp_proto', startFrom: 'latest', stallTimeout: 60_000, maxBatchSize: 500, maxBufferedBytes: 4 * 1024 * 1024 },
      deployments: { enabled: true, verifyKeys: [], requireSigned: 'auto' },
    })
  })

  it('parses byte sizes and durations; rejects unknown keys and bad values', () => {
    const c = receiversSchema.parse({ memoryHighWater: '400MiB', maxRequestBytes: '20MB', kafkaSpans: { stallTimeout: '2m', deadLetterTopic: 'dlq' } })
    expect(c.memoryHighWater).toBe(400 * 1024 * 1024)
    expect(c.maxRequestBytes).toBe(20_000_000)
    expect(c.kafkaSpans.stallTimeout).toBe(120_000)
    expect(parseBytes('1.5GiB')).toBe(1.5 * 1024 ** 3)
    expect(parseBytes('12 parsecs')).toBeNaN()
    expect(receiversSchema.safeParse({ otlp: { grpc: { port: 1 } } }).success).toBe(false)
    expect(receiversSchema.safeParse({ memoryHighWater: 'lots' }).success).toBe(false)
    expect(receiversSchema.safeParse({ otlp: { http: { endpoint: 'localhost' } } }).success).toBe(false)
    expect(receiversSchema.safeParse({ kafkaSpans: { encoding: 'otlp_avro' } }).success).toBe(false)
  })

  it('createReceivers builds the enabled receivers and refuses Kafka receivers without a transport', () => {
    const kafka = kafkaSchema.parse({})
    const consumer = new CountingConsumer()
    const r = createReceivers({ config: receiversSchema.parse({ deployments: { enabled: false } }), kafka, consumer })
    expect(r.all.map((x) => x.name)).toEqual(['otlp-grpc', 'otlp-http'])
    // deployment events are on by default: they need a transport (Kafka or the embedded bus)
    expect(() => createReceivers({ config: receiversSchema.parse({}), kafka, consumer })).toThrow(/deployments is enabled but no Kafka transport/)
    expect(() => createReceivers({ config: receiversSchema.parse({ kafkaSpans: { enabled: true } }), kafka, consumer })).toThrow(/transport/)
  })

  it('refuses values that used to pass and then crash or disable the receivers (issue 11 item 9)', () => {
    const bad = (v: unknown) => receiversSchema.safeParse(v).success
    expect(bad({ otlp: { grpc: { endpoint: '0.0.0.0:99999' } } })).toBe(false)
    expect(bad({ otlp: { http: { endpoint: '[::]:65536' } } })).toBe(false)
    expect(bad({ otlp: { http: { endpoint: '[::]:4318' } } })).toBe(true)
    expect(bad({ maxRequestBytes: 0 })).toBe(false)
    expect(bad({ maxRequestBytes: '100GiB', memoryHighWater: 0 })).toBe(false)
    expect(bad({ maxRequestBytes: '200MiB' })).toBe(false)
    expect(bad({ otlp: { grpc: { maxConnections: 0 } } })).toBe(false)
    expect(bad({ otlp: { http: { maxInFlight: -1 } } })).toBe(false)
    expect(bad({ readTimeout: 0 })).toBe(false)
    expect(bad({ otlp: { http: { idleTimeout: '0s' } } })).toBe(false)
  })

  it('createReceivers passes the limits to the receivers and exposes the shared memory guard', async () => {
    const kafka = kafkaSchema.parse({})
    const consumer = new CountingConsumer()
    const config = receiversSchema.parse({
      deployments: { enabled: false },
      otlp: { grpc: { endpoint: '127.0.0.1:0', maxConnections: 1 }, http: { endpoint: '127.0.0.1:0', maxConnections: 1 } },
    })
    const r = createReceivers({ config, kafka, consumer })
    expect(r.memoryGuard.state().state).toBe('ok')
    await r.http!.start()
    await r.grpc!.start()
    try {
      const sockets = [0, 1].flatMap(() => [net.connect(r.http!.port, '127.0.0.1'), net.connect(r.grpc!.port, '127.0.0.1')])
      await Promise.all(sockets.map((s) => new Promise((res) => s.once('connect', res))))
      await vi.waitFor(() => {
        expect(r.http!.limits().connectionsRefused).toBe(1)
        expect(r.grpc!.limits().connectionsRefused).toBe(1)
      })
      for (const s of sockets) s.destroy()
    } finally {
      await r.http!.shutdown()
      await r.grpc!.shutdown()
    }
  })
})
