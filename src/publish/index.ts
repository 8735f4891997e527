/** Public surface of the publish stage. */
import type { Logger } from '../common/logger.js'
import { PermanentError } from '../common/errors.js'
import type { PullbackConfig } from '../config/schema.js'
import type { KafkaTransport } from '../kafka/types.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DecisionPublisher } from './publisher.js'
import { loadSigner, type Signer } from './signing.js'
import { DecisionWal } from './wal.js'

export { DecisionPublisher } from './publisher.js'
export type { PublishOutcome, AckOutcome, DrainOutcome, PublisherCounters } from './publisher.js'
export { DecisionWal } from './wal.js'
export { sealDecision, openDecision, serviceId, DECISION_SCHEMA_VERSION } from './envelope.js'
export type { DecisionEnvelope, OpenOutcome } from './envelope.js'
export { Verifier, loadSigner, signerFromKey, canonicalJson, keyIdOf, generateKeyPairFiles } from './signing.js'
export type { Signer } from './signing.js'

/** Where the decision write-ahead log lives when publish.wal.file is unset. */
export function defaultWalFile(decisionsTopic: string): string {
  return join(tmpdir(), 'pullback', `${decisionsTopic.replace(/[^A-Za-z0-9._-]/g, '_')}.wal`)
}

/** The publisher of a config; `signer` overrides publish.signingKey (the demo passes a generated one). */
export function createPublisher(cfg: PullbackConfig, transport: KafkaTransport, logger: Logger, signer?: Signer): DecisionPublisher {
  const s = signer ?? (cfg.publish.signingKey ? loadSigner(cfg.publish.signingKey, cfg.publish.keyId) : undefined)
  if (!s) throw new PermanentError('PUBLISH_NO_KEY', 'publish.signingKey is not set: decisions must be signed (create a key with `pullback keys generate --out DIR`)')
  return new DecisionPublisher({
    producer: transport.producer(),
    signer: s,
    config: cfg.publish,
    topics: { decisions: cfg.kafka.topics.decisions, incidents: cfg.kafka.topics.incidents },
    logger,
    wal:
      transport.kind === 'kafka' && cfg.publish.wal.enabled
        ? new DecisionWal({ file: cfg.publish.wal.file ?? defaultWalFile(cfg.kafka.topics.decisions), maxBytes: cfg.publish.wal.maxBytes })
        : undefined,
  })
}
