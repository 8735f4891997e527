import type { Logger } from '../common/logger.js'
import { librdkafkaSecurity, type KafkaConfig } from './config.js'
import type { KafkaTransport } from './types.js'

export type { KafkaTransport } from './types.js'

/**
 * The transport for a config: the real cluster when `kafka.brokers` is set, else the in-process
 * embedded bus (one per process, shared by the sidecar and actuator running in it). Every
 * real-broker transport of the project is made here, so `kafka.tls` / `kafka.auth` (mapped once,
 * by config.ts's librdkafkaSecurity) reach every producer, consumer and admin client; the SASL
 * password file is read here, once per process. The client library is loaded only on this path.
 */
export async function createTransport(cfg: KafkaConfig, logger?: Logger): Promise<KafkaTransport> {
  if (cfg.brokers.length > 0) {
    const security = librdkafkaSecurity(cfg)
    for (const w of security.warnings) logger?.warn({ security: security.summary }, w)
    logger?.info({ brokers: cfg.brokers, security: security.summary }, 'kafka transport')
    const { ConfluentTransport } = await import('./confluent.js')
    return new ConfluentTransport({ brokers: cfg.brokers, clientId: cfg.clientId, logger, security, ...(cfg.debug !== undefined ? { debug: cfg.debug } : {}) })
  }
  const { embeddedBus } = await import('./memory.js')
  return embeddedBus()
}
