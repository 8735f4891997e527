/**
 * Issue 11: "the actuator exited at start-up (`reading <prefix>.actuator.state to its end took over
 * 60000 ms` after a transient 'Unknown topic or partition' on its freshly created state topic)".
 * A reader that never reaches the end must be replaced and retried, not turned into an exit.
 */
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { ActuatorState } from '../../src/actuator/state.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { Consumer, ConsumerOptions, KafkaTransport, ReaderOptions } from '../../src/kafka/types.js'

/** the embedded bus, except that the first `deaf` consumers join but never receive anything (a consumer stuck on a topic it cannot see yet) */
function flakyTransport(deaf: number): { transport: KafkaTransport; consumers: () => number } {
  const bus = new MemoryBus({ defaultPartitions: 1 })
  let n = 0
  const transport: KafkaTransport = {
    kind: 'embedded',
    producer: () => bus.producer(),
    admin: () => bus.admin(),
    consumer: (opts: ConsumerOptions): Consumer => bus.consumer(opts),
    reader: (opts: ReaderOptions): Consumer => {
      n++
      if (n > deaf) return bus.reader(opts)
      return {
        start: () => Promise.resolve(),
        stop: () => Promise.resolve(),
        stats: () => ({ lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: true }),
      }
    },
  }
  return { transport, consumers: () => n }
}

describe('actuator state at start-up', () => {
  it('a reader that cannot reach the end is replaced and retried; start resolves with what the topic holds', async () => {
    const { transport, consumers } = flakyTransport(2)
    const producer = transport.producer()
    const freeze = { service: 'shop/web', frozen: true, at: 1, reason: 'escalated' }
    await producer.send('state', [{ key: 'freeze/shop/web', value: JSON.stringify(freeze) }])
    const state = new ActuatorState({ transport, topic: 'state', groupPrefix: 'g', producer, logger: silentLogger, syncTimeoutMs: 100 })
    await state.start()
    expect(consumers()).toBe(3)
    expect(state.frozen('shop/web')).toMatchObject({ frozen: true, reason: 'escalated' })
    await state.shutdown()
  }, 20_000)

  it('shutdown during the retries ends start() instead of retrying forever', async () => {
    const { transport } = flakyTransport(1_000)
    const state = new ActuatorState({ transport, topic: 'state', groupPrefix: 'g', producer: transport.producer(), logger: silentLogger, syncTimeoutMs: 50 })
    const started = state.start().then(
      () => 'resolved',
      () => 'rejected',
    )
    await new Promise((r) => setTimeout(r, 300))
    await state.shutdown()
    expect(await started).toBe('rejected')
  }, 20_000)
})
