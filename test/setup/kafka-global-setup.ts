/**
 * Finds a Kafka broker for the integration tests, in this order:
 *   1. KAFKA_BROKERS, if set (CI starts the local broker and sets it);
 *   2. testcontainers, if a container runtime answers (a laptop with Docker);
 *   3. the local Maven-jar broker (tools/kafka/broker.sh), if `java` and `mvn` exist;
 *   4. otherwise: fail under CI; elsewhere provide "" so Kafka tests skip with a loud message.
 * Tests read the address with `inject('kafkaBrokers')` (see test/setup/kafka.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string
  }
}

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.KAFKA_BROKERS
  if (external) {
    project.provide('kafkaBrokers', external)
    return undefined
  }
  try {
    const { getContainerRuntimeClient } = await import('testcontainers')
    await getContainerRuntimeClient()
    const { KafkaContainer } = await import('@testcontainers/kafka')
    const kafka = await new KafkaContainer('confluentinc/cp-kafka:7.9.1').withKraft().start()
    project.provide('kafkaBrokers', `${kafka.getHost()}:${kafka.getMappedPort(9093)}`)
    return async () => {
      await kafka.stop()
    }
  } catch {
    // no container runtime: fall through to the local broker
  }
  if (has('java') && has('mvn')) {
    const script = fileURLToPath(new URL('../../tools/kafka/broker.sh', import.meta.url))
    const env = { ...process.env, KAFKA_PORT: process.env.KAFKA_PORT ?? '19292', KAFKA_CONTROLLER_PORT: process.env.KAFKA_CONTROLLER_PORT ?? '19293' }
    const address = execFileSync('bash', [script, 'start'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim()
    project.provide('kafkaBrokers', address)
    return async () => {
      execFileSync('bash', [script, 'stop'], { env, stdio: 'inherit' })
    }
  }
  if (process.env.CI) {
    throw new Error('no Kafka broker: KAFKA_BROKERS is unset, no container runtime answers, and java/mvn are missing')
  }
  process.stderr.write(
    '\n*** KAFKA TESTS SKIPPED: set KAFKA_BROKERS, or install Docker, or Java 17+ and Maven for the local broker ***\n\n',
  )
  project.provide('kafkaBrokers', '')
  return undefined
}
