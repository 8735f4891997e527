import { z } from 'zod'
import { duration } from '../config/duration.js'
import { DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MEMORY_HIGH_WATER } from './otlp/options.js'

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

const endpoint = (def: string) =>
  z
    .string()
    .regex(/^[^\s]+:\d{1,5}$/, 'expected "host:port"')
    .default(def)

/**
 * Configuration of the receivers stage (section `receivers:` of the YAML file). Owned by src/receivers.
 * Topic names are not here: they live in `kafka.topics` (spans, deployments).
 */
export const receiversSchema = z
  .strictObject({
    otlp: z
      .strictObject({
        grpc: z.strictObject({ enabled: z.boolean().default(true), endpoint: endpoint('0.0.0.0:4317') }).prefault({}),
        http: z.strictObject({ enabled: z.boolean().default(true), endpoint: endpoint('0.0.0.0:4318') }).prefault({}),
      })
      .prefault({}),
    /** largest accepted request after decompression; larger => RESOURCE_EXHAUSTED / 413 */
    maxRequestBytes: byteSize().default(DEFAULT_MAX_REQUEST_BYTES),
    /** above this process RSS the OTLP receivers answer UNAVAILABLE / 503 with a retry hint; 0 disables */
    memoryHighWater: byteSize().default(DEFAULT_MEMORY_HIGH_WATER),
    /** the retry hint sent with UNAVAILABLE / 503 */
    retryAfter: duration().default(5000),
    /** attributes per resource / span / data point above which a request is undecodable */
    maxAttributes: z.number().int().positive().default(1024),
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
      })
      .prefault({}),
    /**
     * Deployment events (CI/CD, Argo CD notifications) and the actuator's `rollback` announcements,
     * which recovery verification depends on: on by default, on Kafka and on the embedded bus alike.
     */
    deployments: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  })
  .prefault({})

export type ReceiversConfig = z.output<typeof receiversSchema>
