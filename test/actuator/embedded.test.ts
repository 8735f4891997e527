import { describe } from 'vitest'
import { MemoryBus } from '../../src/kafka/memory.js'
import { actuatorScenarios } from './scenarios.js'

describe('actuator over the embedded bus', () => {
  actuatorScenarios(() => Promise.resolve({ transport: new MemoryBus({ redeliveryBackoffMs: 20 }), brokers: [] }))
})
