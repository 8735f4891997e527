import { describeKafka, kafkaBrokers } from '../setup/kafka.js'
import { createTransport } from '../../src/kafka/index.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { actuatorScenarios } from './scenarios.js'

describeKafka('actuator over the real broker', () => {
  actuatorScenarios(async () => {
    const brokers = kafkaBrokers().split(',')
    return { transport: await createTransport(kafkaSchema.parse({ brokers })), brokers }
  })
})
