/**
 * Options both OTLP receivers (gRPC and HTTP) share, and their defaults in one place. The config
 * schema (receivers/config.ts) uses the same constants, so a receiver built without config behaves
 * like one built from the default config.
 */
import type { Logger } from '../../common/logger.js'
import { silentLogger } from '../../common/logger.js'
import type { TelemetryConsumer } from '../consumer.js'
import { MemoryGuard } from '../memory.js'
import type { WorkerPool } from '../../workers/pool.js'

export const DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
export const DEFAULT_MEMORY_HIGH_WATER = 448 * 1024 * 1024
export const DEFAULT_RETRY_AFTER_MS = 5000
export const DEFAULT_MAX_ATTRIBUTES = 1024

export interface OtlpReceiverOptions {
  consumer: TelemetryConsumer
  /** "host:port"; port 0 picks a free port (see the receiver's `port`) */
  endpoint?: string
  /** after decompression; default 8 MiB */
  maxRequestBytes?: number
  /** default: RSS guard at 448 MiB, retry after 5 s */
  memoryGuard?: MemoryGuard
  maxAttributes?: number
  /** how long shutdown() waits for in-flight requests before cutting them; default 5 s */
  drainTimeoutMs?: number
  logger?: Logger
  /**
   * decode span requests in these worker threads (src/workers) instead of inline; the pool is
   * shared by both OTLP receivers and started / shut down by its owner (receivers/index.ts).
   * Metrics requests are decoded inline either way.
   */
  workers?: WorkerPool
}

export type ResolvedOtlpOptions = Required<Omit<OtlpReceiverOptions, 'workers'>>

export function resolveOtlpOptions(o: OtlpReceiverOptions, defaultEndpoint: string): ResolvedOtlpOptions {
  return {
    consumer: o.consumer,
    endpoint: o.endpoint ?? defaultEndpoint,
    maxRequestBytes: o.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
    memoryGuard: o.memoryGuard ?? new MemoryGuard({ highWaterBytes: DEFAULT_MEMORY_HIGH_WATER, retryAfterMs: DEFAULT_RETRY_AFTER_MS }),
    maxAttributes: o.maxAttributes ?? DEFAULT_MAX_ATTRIBUTES,
    drainTimeoutMs: o.drainTimeoutMs ?? 5000,
    logger: o.logger ?? silentLogger,
  }
}
