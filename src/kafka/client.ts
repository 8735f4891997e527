/**
 * Loads the Kafka client library (@confluentinc/kafka-javascript, librdkafka) on first use, never at
 * module load: the embedded bus, `pullback demo` and `pullback replay` run without it, so a machine
 * where its native part did not build (or an install that left the optional dependency out) still
 * runs everything that needs no broker. Only a real-broker transport calls `kafkaClient()`.
 */
import { createRequire } from 'node:module'
import { PermanentError, errorMessage } from '../common/errors.js'

/*
 * The part of the library's KafkaJS-compatible API that confluent.ts uses, declared here rather
 * than imported from the package's types, so that `tsc` (npm run build) works where the optional
 * package is absent. test/kafka/client-loader.test.ts checks that the real module fits these.
 */
export interface LibLogger {
  info(message: string, extra?: object): void
  error(message: string, extra?: object): void
  warn(message: string, extra?: object): void
  debug(message: string, extra?: object): void
  namespace(namespace: string): LibLogger
  setLogLevel(level: number): void
}
export interface LibProducer {
  connect(): Promise<void>
  send(record: { topic: string; messages: { key: string | Buffer | null; value: Buffer | null; headers?: Record<string, string> | undefined; partition?: number | undefined }[] }): Promise<unknown>
  disconnect(): Promise<void>
}
export interface LibBatch {
  topic: string
  partition: number
  messages: { offset: string; key: Buffer | null; value: Buffer | null; headers?: unknown; timestamp: string }[]
  offsetLag(): string
  offsetLagLow(): string
}
export interface LibConsumer {
  connect(): Promise<void>
  subscribe(subscription: { topics: string[] }): Promise<void>
  run(config: { eachBatchAutoResolve: boolean; eachBatch: (payload: { batch: LibBatch; resolveOffset(offset: string): void }) => Promise<void> }): Promise<void>
  commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void>
  disconnect(): Promise<void>
}
export interface LibAdmin {
  connect(): Promise<void>
  listTopics(): Promise<string[]>
  createTopics(options: { topics: { topic: string; numPartitions: number; replicationFactor: number; configEntries: { name: string; value: string }[] }[] }): Promise<boolean>
  deleteTopics(options: { topics: string[] }): Promise<void>
  /** `low` / `high`: the partition's first retained offset and its high watermark, decimal strings */
  fetchTopicOffsets(topic: string): Promise<{ partition: number; low: string; high: string }[]>
  disconnect(): Promise<void>
}
export interface LibKafka {
  producer(config: Record<string, unknown>): LibProducer
  consumer(config: Record<string, unknown>): LibConsumer
  admin(): LibAdmin
}
/** one record as the lower-level consumer API returns it (confluent-budget.ts) */
export interface LibRawMessage {
  value: Buffer | null
  size: number
  topic: string
  partition: number
  offset: number
  key?: Buffer | string | null
  timestamp?: number
  headers?: Record<string, Buffer | string>[]
}
export interface LibTopicPartitionOffset {
  topic: string
  partition: number
  offset: number
}
/** the broker metadata the lower-level client answers (only what a reader uses) */
export interface LibMetadata {
  topics: { name: string; partitions: { id: number }[] }[]
}
/** the library's lower-level (node-rdkafka style) consumer, for what the KafkaJS layer cannot size in bytes */
export interface LibRawConsumer {
  connect(metadataOptions: { timeout?: number } | undefined, cb: (err: unknown) => void): unknown
  subscribe(topics: string[]): unknown
  /** partitions taken without a group (a reader); offset -2: from the beginning */
  assign(assignments: LibTopicPartitionOffset[]): unknown
  getMetadata(options: { topic?: string; timeout?: number }, cb: (err: unknown, metadata: LibMetadata) => void): unknown
  setDefaultConsumeTimeout(ms: number): void
  /** in the library (lib/kafka-consumer.js), not in its type declarations */
  setDefaultIsTimeoutOnlyForFirstMessage?(only: boolean): void
  consume(count: number, cb: (err: unknown, messages: LibRawMessage[]) => void): unknown
  commit(offsets: LibTopicPartitionOffset[]): unknown
  commitSync(offsets: LibTopicPartitionOffset[]): unknown
  seek(toppar: LibTopicPartitionOffset, timeoutMs: number, cb: (err: unknown) => void): unknown
  getWatermarkOffsets(topic: string, partition: number): { highOffset: number; lowOffset: number }
  disconnect(cb: (err: unknown) => void): unknown
  on(event: 'event.log', listener: (log: { severity: number; fac: string; message: string }) => void): unknown
  on(event: 'event.stats', listener: (stats: { message?: unknown }) => void): unknown
  on(event: 'event.error', listener: (err: unknown) => void): unknown
}
export interface KafkaClientModule {
  KafkaConsumer: new (conf: Record<string, unknown>, topicConf: Record<string, unknown>) => LibRawConsumer
  KafkaJS: {
    Kafka: new (config: Record<string, unknown>) => LibKafka
    logLevel: { WARN: number; DEBUG: number }
  }
}

/** returns the module or throws as `require` does; tests inject their own */
export type ClientResolver = () => unknown

export const KAFKA_CLIENT_PACKAGE = '@confluentinc/kafka-javascript'

/** the fix, named in every load failure */
export const KAFKA_CLIENT_FIX =
  'install its build dependencies (Debian/Ubuntu: `apt-get install libzstd-dev liblz4-dev libsasl2-dev`), then run `CKJS_LINKING=dynamic npm ci`;' +
  ' or run without Kafka: with kafka.brokers empty the in-process embedded bus carries every topic, and `pullback demo` and `pullback replay` need no Kafka'

const requireHere = createRequire(import.meta.url)
const defaultResolver: ClientResolver = () => requireHere(KAFKA_CLIENT_PACKAGE)

function missing(err: unknown): boolean {
  const e = err as { code?: unknown } | undefined
  // "Cannot find module '@confluentinc/kafka-javascript'": the package itself, not a file inside it
  return e?.code === 'MODULE_NOT_FOUND' && errorMessage(err).includes(`'${KAFKA_CLIENT_PACKAGE}'`)
}

/**
 * Resolves the client with `resolve`. PermanentError 'KAFKA_CLIENT_MISSING' when the package is not
 * installed, 'KAFKA_CLIENT_BROKEN' when it is but does not load (its native binding failed to build
 * or to link: a missing libzstd/liblz4/libsasl2, a binary for another platform); both messages name
 * the fix. Exported for tests; everything else uses `kafkaClient()`.
 */
export function loadKafkaClient(resolve: ClientResolver): KafkaClientModule {
  let mod: unknown
  try {
    mod = resolve()
  } catch (err) {
    if (missing(err)) {
      throw new PermanentError('KAFKA_CLIENT_MISSING', `kafka.brokers is set but the Kafka client ${KAFKA_CLIENT_PACKAGE} is not installed: ${KAFKA_CLIENT_FIX}`, { cause: err })
    }
    throw new PermanentError('KAFKA_CLIENT_BROKEN', `the Kafka client ${KAFKA_CLIENT_PACKAGE} is installed but does not load (${errorMessage(err)}): ${KAFKA_CLIENT_FIX}`, { cause: err })
  }
  const kafkaJS = (mod as Partial<KafkaClientModule> | undefined)?.KafkaJS
  if (typeof kafkaJS?.Kafka !== 'function' || typeof (mod as Partial<KafkaClientModule>).KafkaConsumer !== 'function') {
    throw new PermanentError('KAFKA_CLIENT_BROKEN', `the Kafka client ${KAFKA_CLIENT_PACKAGE} loaded without its KafkaJS API or its KafkaConsumer (an incompatible version?): ${KAFKA_CLIENT_FIX}`)
  }
  return mod as KafkaClientModule
}

let loaded: KafkaClientModule | undefined

/** The client library, loaded once on first call; a failed load is not cached (the next call tries again). */
export function kafkaClient(): KafkaClientModule {
  loaded ??= loadKafkaClient(defaultResolver)
  return loaded
}

/** whether this process has loaded the client library (tests: the no-Kafka paths never do) */
export function kafkaClientLoaded(): boolean {
  return loaded !== undefined
}
