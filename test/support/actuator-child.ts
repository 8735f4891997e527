/**
 * Child-process entry for the kill test: runs one real actuator (real broker, fake Kubernetes API)
 * until it is killed. The test bundles this file with rolldown into an .mjs (packages stay external)
 * and starts it with `node`; configuration arrives as JSON in PULLBACK_CHILD. Prints "ready\n" once
 * the actuator has started.
 */
import { Actuator } from '../../src/actuator/actuator.js'
import { TopicArtifactStore } from '../../src/actuator/artifacts.js'
import { actuatorSchema } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import { silentLogger } from '../../src/common/logger.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import { Verifier } from '../../src/publish/signing.js'

const { kafka: rawKafka, actuator: rawActuator } = JSON.parse(process.env.PULLBACK_CHILD ?? '{}') as { kafka: unknown; actuator: unknown }
const kafka = kafkaSchema.parse(rawKafka)
const cfg = actuatorSchema.parse(rawActuator)
const transport = await createTransport(kafka)
const actuator = new Actuator({
  transport,
  kafka,
  config: cfg,
  verifier: Verifier.fromFiles(cfg.verifyKeys),
  artifacts: new TopicArtifactStore({ transport, topic: kafka.topics.artifacts, groupPrefix: kafka.groupPrefix, verifier: Verifier.fromFiles(cfg.artifactKeys), logger: silentLogger }),
  driver: createDriver(cfg.driver),
  logger: silentLogger,
  onTransition: (id, from, to) => process.stdout.write(`transition ${id} ${from} ${to}\n`),
})
await actuator.start()
process.stdout.write('ready\n')
process.on('SIGTERM', () => {
  void actuator.shutdown().then(() => process.exit(0))
})
