/**
 * Child-process entry for the crash tests (orphan.test.ts, test/reliability/actuator-phases.test.ts):
 * one real actuator (real broker) that can stop at a chosen point of a rollback, so that the test
 * kills it there. Configuration arrives as JSON in PULLBACK_CHILD: {kafka, actuator, pauseAt?}.
 * Prints "ready", every transition, and "paused <point>" when it stopped at `pauseAt`:
 *   retrieval          after the decision was received, before its cutover claim is written
 *   awaiting-recovery  after the awaiting-recovery record was written
 *   audit              after the audit record was written (topic and file), before the `done` record
 * (The cutover point is the fake Kubernetes API's `afterPatch`, in the test process.)
 * SIGKILL finds it paused; SIGTERM releases the pause and shuts down gracefully.
 */
import { Actuator } from '../../src/actuator/actuator.js'
import { TopicArtifactStore } from '../../src/actuator/artifacts.js'
import { actuatorSchema } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import { silentLogger } from '../../src/common/logger.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import type { Producer, ProducerRecord } from '../../src/kafka/types.js'
import { Verifier } from '../../src/publish/signing.js'

type PausePoint = 'retrieval' | 'awaiting-recovery' | 'audit'
const { kafka: rawKafka, actuator: rawActuator, pauseAt } = JSON.parse(process.env.PULLBACK_CHILD ?? '{}') as { kafka: unknown; actuator: unknown; pauseAt?: PausePoint }
const kafka = kafkaSchema.parse(rawKafka)
const cfg = actuatorSchema.parse(rawActuator)
const transport = await createTransport(kafka)
const inner = transport.producer()
await inner.connect()

let release: () => void = () => undefined
const released = new Promise<void>((r) => (release = r))
let paused = false
async function pause(point: PausePoint): Promise<void> {
  if (paused || point !== pauseAt) return
  paused = true
  process.stdout.write(`paused ${point}\n`)
  await released
}

const phaseOf = (topic: string, records: ProducerRecord[]): string | undefined => {
  if (topic !== cfg.stateTopic) return undefined
  const r = records[0]
  if (!r || !String(r.key).startsWith('decision/')) return undefined
  return (JSON.parse(String(r.value)) as { phase: string }).phase
}

const producer: Producer = {
  connect: () => Promise.resolve(),
  disconnect: () => Promise.resolve(),
  async send(topic, records) {
    const phase = phaseOf(topic, records)
    if (phase === 'cutover') await pause('retrieval')
    if (phase === 'done') await pause('audit')
    await inner.send(topic, records)
    if (phase === 'awaiting-recovery') await pause('awaiting-recovery')
  },
}

const actuator = new Actuator({
  transport,
  kafka,
  config: cfg,
  verifier: Verifier.fromFiles(cfg.verifyKeys),
  artifacts: new TopicArtifactStore({ transport, topic: kafka.topics.artifacts, groupPrefix: kafka.groupPrefix, verifier: Verifier.fromFiles(cfg.artifactKeys), logger: silentLogger }),
  driver: createDriver(cfg.driver),
  logger: silentLogger,
  producer,
  onTransition: (id, from, to) => process.stdout.write(`transition ${id} ${from} ${to}\n`),
})
await actuator.start()
process.stdout.write('ready\n')
process.on('SIGTERM', () => {
  release()
  void actuator
    .shutdown()
    .then(() => inner.disconnect())
    .then(() => {
      process.stdout.write(`counters ${JSON.stringify(actuator.counters)}\n`)
      process.exit(0)
    })
})
