/** Public surface of the actuator stage: build one from the validated config. */
import type { KeyObject } from 'node:crypto'
import type { Logger } from '../common/logger.js'
import type { PullbackConfig } from '../config/schema.js'
import type { KafkaTransport } from '../kafka/types.js'
import { Verifier } from '../publish/signing.js'
import { Actuator, type ActuatorOptions } from './actuator.js'
import { TopicArtifactStore } from './artifacts.js'
import { stateAuthOf } from './authentic.js'
import { createDriver } from './drivers/index.js'
import type { CutoverHook } from './drivers/simulated.js'

export { Actuator } from './actuator.js'
export type { ActuatorCounters } from './actuator.js'
export { TopicArtifactStore, selectRollbackTarget, signArtifact, verifyArtifact, promoteArtifact } from './artifacts.js'
export type { ArtifactRecord, ArtifactStore, ArtifactView } from './artifacts.js'
export type { AuditRecord, AuditOutcome } from './audit.js'
export { TRANSITIONS } from './machine.js'

export function createActuator(
  cfg: PullbackConfig,
  transport: KafkaTransport,
  logger: Logger,
  extra: {
    simulatedCutover?: CutoverHook
    onTransition?: ActuatorOptions['onTransition']
    /** trusted in addition to the key files (the embedded sidecar+actuator share an in-memory key) */
    decisionKeys?: readonly KeyObject[]
    artifactKeys?: readonly KeyObject[]
  } = {},
): Actuator {
  const a = cfg.actuator
  const verifier = Verifier.fromFiles(a.verifyKeys)
  for (const k of extra.decisionKeys ?? []) verifier.add(k)
  const artifactVerifier = Verifier.fromFiles(a.artifactKeys)
  for (const k of extra.artifactKeys ?? []) artifactVerifier.add(k)
  const stateAuth = stateAuthOf(a)
  if (stateAuth.kind === 'open' && cfg.kafka.brokers.length > 0) {
    logger.warn('actuator.stateKey is not set: state records (decision progress, freezes, re-arms) are not authenticated; anyone who can write to the state topic can suppress a rollback or freeze a service (docs/threat-model.md)')
  }
  return new Actuator({
    transport,
    kafka: cfg.kafka,
    config: a,
    verifier,
    stateAuth,
    artifacts: new TopicArtifactStore({ transport, topic: cfg.kafka.topics.artifacts, groupPrefix: cfg.kafka.groupPrefix, verifier: artifactVerifier, logger }),
    driver: createDriver(a.driver, { simulated: extra.simulatedCutover }),
    logger,
    ...(extra.onTransition ? { onTransition: extra.onTransition } : {}),
  })
}
