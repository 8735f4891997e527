/** Public surface of the publish stage. */
import type { Logger } from '../common/logger.js'
import { PermanentError } from '../common/errors.js'
import type { PullbackConfig } from '../config/schema.js'
import type { KafkaTransport } from '../kafka/types.js'
import { DecisionPublisher } from './publisher.js'
import { loadSigner, type Signer } from './signing.js'

export { DecisionPublisher } from './publisher.js'
export type { PublishOutcome, AckOutcome, PublisherCounters } from './publisher.js'
export { sealDecision, openDecision, serviceId, DECISION_SCHEMA_VERSION } from './envelope.js'
export type { DecisionEnvelope, OpenOutcome } from './envelope.js'
export { Verifier, loadSigner, signerFromKey, canonicalJson, keyIdOf, generateKeyPairFiles } from './signing.js'
export type { Signer } from './signing.js'

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
  })
}
