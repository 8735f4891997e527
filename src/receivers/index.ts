/**
 * The receivers stage from config: builds the enabled receivers (not started). Start them after the
 * pipeline behind `consumer` is ready and shut them down first (src/common/lifecycle.ts).
 */
import type { Logger } from '../common/logger.js'
import { silentLogger } from '../common/logger.js'
import type { DeploymentEvent } from '../engine/events.js'
import type { KafkaConfig } from '../kafka/config.js'
import type { KafkaTransport } from '../kafka/types.js'
import type { ReceiversConfig } from './config.js'
import type { TelemetryConsumer } from './consumer.js'
import { DeploymentsReceiver } from './deployments/receiver.js'
import { eventAuthOf } from './deployments/auth.js'
import { KafkaSpansReceiver } from './kafka-spans/receiver.js'
import { MemoryGuard } from './memory.js'
import { OtlpGrpcReceiver } from './otlp-grpc/receiver.js'
import { OtlpHttpReceiver } from './otlp-http/receiver.js'
import { resolveWorkerThreads, WorkerPool } from '../workers/pool.js'

export { DeploymentsReceiver } from './deployments/receiver.js'
export { KafkaSpansReceiver } from './kafka-spans/receiver.js'
export { MemoryGuard } from './memory.js'
export { OtlpGrpcReceiver } from './otlp-grpc/receiver.js'
export { OtlpHttpReceiver } from './otlp-http/receiver.js'
export type { ReceiverStats, RejectReason } from './stats.js'
export type { MemoryGuardState, MemorySource } from './memory.js'

export interface ReceiversDeps {
  config: ReceiversConfig
  kafka: KafkaConfig
  consumer: TelemetryConsumer
  /** required when receivers.kafkaSpans or receivers.deployments is enabled */
  transport?: KafkaTransport
  onDeployment?: (e: DeploymentEvent) => void
  /** distinguishes this instance's deployments consumer group (every instance needs every event) */
  instanceId?: string
  logger?: Logger
  /** the decode workers' entry when not dist's worker.js (tests running from sources) */
  workerScript?: string | URL
}

export interface Receivers {
  grpc: OtlpGrpcReceiver | undefined
  http: OtlpHttpReceiver | undefined
  kafkaSpans: KafkaSpansReceiver | undefined
  deployments: DeploymentsReceiver | undefined
  /** decode workers shared by the OTLP receivers and the Kafka span receiver (receivers.workers > 0), started before and stopped after them */
  workers: WorkerPool | undefined
  /** shared by the OTLP receivers; readiness fails while it refuses every request (runtime/health.ts memoryGuardCheck) */
  memoryGuard: MemoryGuard
  /** the enabled ones, in start order */
  all: Array<OtlpGrpcReceiver | OtlpHttpReceiver | KafkaSpansReceiver | DeploymentsReceiver | WorkerPool>
}

export function createReceivers(deps: ReceiversDeps): Receivers {
  const { config: c, kafka, consumer } = deps
  const logger = deps.logger ?? silentLogger
  // the Kafka span consumer waits while less than this is left under the mark (receivers/memory.ts): a quarter of it, or two consumer budgets
  const backgroundHeadroomBytes = Math.min(Math.floor(c.memoryHighWater / 2), Math.max(Math.floor(c.memoryHighWater / 4), 2 * c.kafkaSpans.maxBufferedBytes))
  const memoryGuard = new MemoryGuard({ highWaterBytes: c.memoryHighWater, retryAfterMs: c.retryAfter, backgroundHeadroomBytes })
  const threads = c.otlp.grpc.enabled || c.otlp.http.enabled || c.kafkaSpans.enabled ? resolveWorkerThreads(c.workers) : 0
  const workers =
    threads > 0
      ? new WorkerPool({ threads, retryAfterMs: c.retryAfter, ...(deps.workerScript !== undefined ? { script: deps.workerScript } : {}), logger: logger.child({ component: 'workers' }) })
      : undefined
  const common = { consumer, maxRequestBytes: c.maxRequestBytes, memoryGuard, maxAttributes: c.maxAttributes, readTimeoutMs: c.readTimeout, workers }
  const g = c.otlp.grpc
  const grpc = g.enabled
    ? new OtlpGrpcReceiver({
        ...common,
        endpoint: g.endpoint,
        maxConnections: g.maxConnections,
        maxConcurrentCalls: g.maxConcurrentCalls,
        idleTimeoutMs: g.idleTimeout,
        server: g.server,
        bufferPoolBytes: g.bufferPool,
        ...(g.tls !== undefined ? { tls: g.tls } : {}),
        ...(g.auth !== undefined ? { auth: g.auth } : {}),
        logger: logger.child({ component: 'otlp-grpc' }),
      })
    : undefined
  const h = c.otlp.http
  const http = h.enabled
    ? new OtlpHttpReceiver({
        ...common,
        endpoint: h.endpoint,
        maxConnections: h.maxConnections,
        maxInFlight: h.maxInFlight,
        headersTimeoutMs: h.headersTimeout,
        idleTimeoutMs: h.idleTimeout,
        minBodyRate: h.minBodyRate,
        ...(h.tls !== undefined ? { tls: h.tls } : {}),
        ...(h.auth !== undefined ? { auth: h.auth } : {}),
        logger: logger.child({ component: 'otlp-http' }),
      })
    : undefined
  const needTransport = (what: string): KafkaTransport => {
    if (deps.transport === undefined) throw new Error(`receivers.${what} is enabled but no Kafka transport was given`)
    return deps.transport
  }
  const kafkaSpans = c.kafkaSpans.enabled
    ? new KafkaSpansReceiver({
        transport: needTransport('kafkaSpans'),
        consumer,
        topic: kafka.topics.spans,
        groupId: `${kafka.groupPrefix}.spans`,
        encoding: c.kafkaSpans.encoding,
        startFrom: c.kafkaSpans.startFrom,
        deadLetterTopic: c.kafkaSpans.deadLetterTopic,
        stallTimeoutMs: c.kafkaSpans.stallTimeout,
        maxBatchSize: c.kafkaSpans.maxBatchSize,
        maxBufferedBytes: c.kafkaSpans.maxBufferedBytes,
        memoryGuard,
        maxAttributes: c.maxAttributes,
        ...(workers !== undefined ? { workers } : {}),
        logger: logger.child({ component: 'kafka-spans' }),
      })
    : undefined
  const deployments = c.deployments.enabled
    ? new DeploymentsReceiver({
        transport: needTransport('deployments'),
        topic: kafka.topics.deployments,
        groupId: `${kafka.groupPrefix}.deployments${deps.instanceId ? `.${deps.instanceId}` : ''}`,
        onEvent: deps.onDeployment ?? (() => undefined),
        logger: logger.child({ component: 'deployments' }),
        auth: eventAuthOf(c.deployments),
      })
    : undefined
  // the workers start before and stop after every receiver that decodes in them
  const all = [deployments, workers, kafkaSpans, grpc, http].filter((r) => r !== undefined)
  return { grpc, http, kafkaSpans, deployments, workers, memoryGuard, all }
}
