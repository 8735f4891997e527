import { z } from 'zod'
import { duration } from '../config/duration.js'
import { DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MEMORY_HIGH_WATER } from './otlp/options.js'
import { GRPC_DEFAULTS } from './otlp-grpc/defaults.js'
import { HTTP_DEFAULTS } from './otlp-http/defaults.js'
import { deploymentAuthFields } from './deployments/auth.js'
import { tlsSchema } from './tls.js'
import { MIN_BUFFERED_BYTES } from '../kafka/buffer-limits.js'
import { DEFAULT_KAFKA_MAX_BUFFERED_BYTES } from './kafka-spans/receiver.js'
import { authSchema } from './auth.js'

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
}

/** Parses 8388608, "8MiB", "400MiB", "1GiB", "512KiB", "20MB"; NaN when invalid. */
export function parseBytes(input: string | number): number {
  if (typeof input === 'number') return Number.isSafeInteger(input) && input >= 0 ? input : NaN
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input)
  if (!m) return NaN
  const unit = BYTE_UNITS[(m[2] as string).toLowerCase()]
  return unit === undefined ? NaN : Math.floor(Number(m[1]) * unit)
}

/** A byte-size field: a number of bytes or a string with a unit; yields bytes. */
export const byteSize = () =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = parseBytes(v)
    if (Number.isNaN(n)) {
      ctx.addIssue({ code: 'custom', message: `invalid byte size ${JSON.stringify(v)} (use e.g. 8388608, "8MiB", "400MiB")` })
      return z.NEVER
    }
    return n
  })

/** "host:port" with a port a socket can bind (0 = any free port); 99999 used to pass and crash the sidecar with a RangeError */
const endpoint = (def: string) =>
  z
    .string()
    .regex(/^[^\s]+:\d{1,5}$/, 'expected "host:port"')
    .refine((e) => Number(e.slice(e.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535')
    .default(def)

const MiB = 1024 * 1024
/** grpc-js takes the message limit as a signed 32-bit int; larger bodies have no business in one OTLP request anyway */
export const MAX_REQUEST_BYTES_CEILING = 1024 * MiB
export const MIN_REQUEST_BYTES = 64 * 1024

const count = (def: number) => z.number().int().positive().default(def)
const positiveDuration = (def: number) =>
  duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(def)

/**
 * Configuration of the receivers stage (section `receivers:` of the YAML file). Owned by src/receivers.
 * Topic names are not here: they live in `kafka.topics` (spans, deployments).
 */
export const receiversSchema = z
  .strictObject({
    otlp: z
      .strictObject({
        grpc: z
          .strictObject({
            enabled: z.boolean().default(true),
            /** loopback by default (as the Collector since v0.104): other hosts only when set, e.g. "0.0.0.0:4317" in k8s/ */
            endpoint: endpoint('127.0.0.1:4317'),
            /** open TCP connections at most; more are closed on accept and counted */
            maxConnections: count(GRPC_DEFAULTS.maxConnections),
            /** calls in progress at most, all connections together; more => UNAVAILABLE + RetryInfo */
            maxConcurrentCalls: count(GRPC_DEFAULTS.maxConcurrentCalls),
            /** a connection without calls for this long is closed with GOAWAY */
            idleTimeout: positiveDuration(GRPC_DEFAULTS.idleTimeoutMs),
            /**
             * the transport: pullback's own on node:http2 (default; otlp-grpc/h2-server.ts: the same limits
             * and answers, one pooled buffer per message instead of grpc-js's chunks + joined copy) or grpc-js
             */
            server: z.enum(['grpc-js', 'http2']).default(GRPC_DEFAULTS.server),
            /**
             * http2 server: idle message buffers kept for reuse at most (otlp-grpc/buffer-pool.ts); 0
             * disables the reuse. Buffers in use are bounded by the memory guard, not by this
             */
            bufferPool: byteSize().default(GRPC_DEFAULTS.bufferPoolBytes),
            /** TLS like the Collector's configtls (mTLS with clientCaFile); unset: plaintext */
            tls: tlsSchema.optional(),
            /** `{ bearerTokenFile }`: every call must carry `authorization: Bearer <token>`; unset: none */
            auth: authSchema.optional(),
          })
          .prefault({}),
        http: z
          .strictObject({
            enabled: z.boolean().default(true),
            endpoint: endpoint('127.0.0.1:4318'),
            /** open sockets at most; more are closed on accept and counted */
            maxConnections: count(HTTP_DEFAULTS.maxConnections),
            /** bodies being read at once; more => 503 + Retry-After */
            maxInFlight: count(HTTP_DEFAULTS.maxInFlight),
            /** a request's headers must arrive within this */
            headersTimeout: positiveDuration(HTTP_DEFAULTS.headersTimeoutMs),
            /** a kept-alive connection without a request is closed after this */
            idleTimeout: positiveDuration(HTTP_DEFAULTS.idleTimeoutMs),
            /** bytes/s; with every in-flight slot taken, a body slower than this gives its slot to a new request */
            minBodyRate: byteSize().default(HTTP_DEFAULTS.minBodyRate),
            tls: tlsSchema.optional(),
            auth: authSchema.optional(),
          })
          .prefault({}),
      })
      .prefault({}),
    /** largest accepted request after decompression; larger => RESOURCE_EXHAUSTED / 413 */
    maxRequestBytes: byteSize()
      .refine((n) => n >= MIN_REQUEST_BYTES, `must be at least ${MIN_REQUEST_BYTES} bytes (64KiB): smaller refuses ordinary OTLP batches`)
      .refine((n) => n <= MAX_REQUEST_BYTES_CEILING, 'must be at most 1GiB')
      .default(DEFAULT_MAX_REQUEST_BYTES),
    /**
     * Above this much memory held (request bytes in flight + V8 heap in use, not RSS) the OTLP
     * receivers answer UNAVAILABLE / 503 with a retry hint; 0 disables. See receivers/memory.ts.
     */
    memoryHighWater: byteSize().default(DEFAULT_MEMORY_HIGH_WATER),
    /** a request's body (HTTP) or message (gRPC) must arrive within this of its start */
    readTimeout: positiveDuration(HTTP_DEFAULTS.readTimeoutMs),
    /** the retry hint sent with UNAVAILABLE / 503 */
    retryAfter: duration().default(5000),
    /** attributes per resource / span / data point above which a request is undecodable */
    maxAttributes: z.number().int().positive().default(1024),
    /**
     * OTLP span requests (gRPC and HTTP) and Kafka span records decoded in this many worker threads (src/workers):
     * "auto" = cores - 1 (at least 1 with more than one core, 0 on one core); 0 = on the main thread.
     */
    workers: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default(0),
    kafkaSpans: z
      .strictObject({
        enabled: z.boolean().default(false),
        encoding: z.enum(['otlp_proto', 'otlp_json']).default('otlp_proto'),
        /** where a new consumer group starts; committed offsets always win */
        startFrom: z.enum(['earliest', 'latest']).default('latest'),
        /** poison messages are produced here (with an `x-pullback-error` header) when set; always counted */
        deadLetterTopic: z.string().min(1).optional(),
        /** readiness turns red when the consumer is connected but has not polled for this long */
        stallTimeout: duration().default(60_000),
        maxBatchSize: z.number().int().positive().default(500),
        /**
         * bytes of fetched span records the consumer may hold (librdkafka's pre-fetch queue and
         * fetch sizes are derived from it; src/kafka/buffer-limits.ts): a backlog is read as fast as
         * it is handled instead of buffered. Default 4 MiB (receivers/kafka-spans/receiver.ts).
         */
        maxBufferedBytes: byteSize()
          .refine((n) => n >= MIN_BUFFERED_BYTES, `must be at least ${MIN_BUFFERED_BYTES} bytes (4MB: two fetches of librdkafka's smallest allowed size)`)
          .refine((n) => n <= MAX_REQUEST_BYTES_CEILING, 'must be at most 1GiB')
          .default(DEFAULT_KAFKA_MAX_BUFFERED_BYTES),
      })
      .prefault({}),
    /**
     * Deployment events (CI/CD, Argo CD notifications) and the actuator's `rollback` announcements,
     * which recovery verification depends on: on by default, on Kafka and on the embedded bus alike.
     */
    deployments: z.strictObject({ enabled: z.boolean().default(true), ...deploymentAuthFields }).prefault({}),
  })
  .prefault({})
  .superRefine((c, ctx) => {
    // every gRPC call reserves maxRequestBytes with the guard before its message is read
    if (c.memoryHighWater > 0 && c.maxRequestBytes * 4 > c.memoryHighWater) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxRequestBytes'],
        message: `must be at most a quarter of memoryHighWater (${c.memoryHighWater} bytes): each gRPC call reserves maxRequestBytes before its message is read`,
      })
    }
  })

export type ReceiversConfig = z.output<typeof receiversSchema>
