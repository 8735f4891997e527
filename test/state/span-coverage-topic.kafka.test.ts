/**
 * The span-coverage share on the real broker: the topic created compacted by the first sidecar, a
 * judgement published by one sidecar read by another that starts later (a new node, a restart)
 * and by one already following the topic.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { ConfluentTransport } from '../../src/kafka/confluent.js'
import { SpanCoverageTopic } from '../../src/state/span-coverage-topic.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { waitFor } from '../support/wait.js'

describeKafka('span-coverage topic (real broker)', () => {
  let transport: ConfluentTransport
  const topic = uniqueName('it-span-coverage')
  const open: SpanCoverageTopic[] = []
  const share = () => {
    const s = new SpanCoverageTopic({ transport, topic, groupPrefix: uniqueName('it-cov'), logger: silentLogger, flushTimeoutMs: 20_000 })
    open.push(s)
    return s
  }

  beforeAll(() => {
    transport = new ConfluentTransport({ brokers: kafkaBrokers().split(','), clientId: 'pullback-test' })
  })

  afterAll(async () => {
    for (const s of open) await s.shutdown()
    const admin = transport.admin()
    await admin.deleteTopics([topic]).catch(() => undefined)
    await admin.disconnect()
  })

  it('a judgement reaches a sidecar following the topic and one that starts after it', async () => {
    const a = share()
    const b = share()
    await a.start()
    await b.start()
    await a.ready()
    await b.ready()
    const topics = await transport.admin().listTopics()
    expect(topics).toContain(topic)
    a.put({ service: 'shop/checkout', state: 'sampled', spans: 41, requests: 812, intervals: 2 })
    await waitFor(() => a.stats().published === 1, 'the judgement written', 60_000)
    await waitFor(() => b.get('shop/checkout') === 'sampled', 'the following sidecar reads it', 60_000)
    await a.shutdown()
    const late = share()
    await late.start()
    await waitFor(() => late.get('shop/checkout') === 'sampled', 'a sidecar started later reads it from the beginning', 60_000)
    expect(late.anySampled()).toBe(true)
    expect(late.stats().malformed).toBe(0)
  }, 120_000)
})
