import type { Logger } from '../common/logger.js'
import type { KafkaConfig } from './config.js'
import type { KafkaTransport } from './types.js'

export type { KafkaTransport } from './types.js'

/**
 * The transport for a config: the real cluster when `kafka.brokers` is set, else the in-process
 * embedded bus (one per process, shared by the sidecar and actuator running in it).
 */
export async function createTransport(cfg: KafkaConfig, logger?: Logger): Promise<KafkaTransport> {
  if (cfg.brokers.length > 0) {
    const { ConfluentTransport } = await import('./confluent.js')
    return new ConfluentTransport({ brokers: cfg.brokers, clientId: cfg.clientId, logger })
  }
  const { embeddedBus } = await import('./memory.js')
  return embeddedBus()
}
