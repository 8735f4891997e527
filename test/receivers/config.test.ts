import { describe, expect, it } from 'vitest'
import { parseBytes, receiversSchema } from '../../src/receivers/config.js'
import { createReceivers } from '../../src/receivers/index.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { CountingConsumer } from './helpers.js'

describe('receivers config', () => {
  it('has documented defaults', () => {
    expect(receiversSchema.parse(undefined)).toEqual({
      otlp: { grpc: { enabled: true, endpoint: '0.0.0.0:4317' }, http: { enabled: true, endpoint: '0.0.0.0:4318' } },
      maxRequestBytes: 8 * 1024 * 1024,
      memoryHighWater: 448 * 1024 * 1024,
      retryAfter: 5000,
      maxAttributes: 1024,
      kafkaSpans: { enabled: false, encoding: 'otlp_proto', startFrom: 'latest', stallTimeout: 60_000, maxBatchSize: 500 },
      deployments: { enabled: true },
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
})
