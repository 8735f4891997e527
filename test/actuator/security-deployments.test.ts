/**
 * Issue 13, item 2: a forged deployment event (for instance a "deploy" of the previous version two
 * seconds after a bad deploy, which made the failing version its own baseline: no rollback at all)
 * must not reach the engine once deployment events are authenticated. Before the fix the receiver
 * handed every well-formed event on. Also: CI signs with `pullback keys sign`, the actuator signs
 * its rollback announcements with its state key, and both pass.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import { sealRecord } from '../../src/publish/signing.js'
import { receiversSchema } from '../../src/receivers/config.js'
import { eventAuthOf } from '../../src/receivers/deployments/auth.js'
import { DeploymentsReceiver } from '../../src/receivers/deployments/receiver.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { makeKeys, until, verdict } from './helpers.js'
import { rig, type Rig } from './security-rig.js'

describeKafka('authenticated deployment events', () => {
  let receiver: DeploymentsReceiver | undefined
  let r: Rig | undefined
  afterEach(async () => {
    await receiver?.shutdown()
    receiver = undefined
    await r?.stop()
    r = undefined
  })

  async function receive(transport: KafkaTransport, topic: string, deployments: Record<string, unknown>): Promise<DeploymentEvent[]> {
    const seen: DeploymentEvent[] = []
    const c = receiversSchema.parse({ deployments }).deployments
    receiver = new DeploymentsReceiver({ transport, topic, groupId: uniqueName('g'), onEvent: (e) => void seen.push(e), auth: eventAuthOf(c) })
    await receiver.start()
    return seen
  }

  it('with a trusted CI key configured (requireSigned: auto), unsigned and wrongly signed events never reach the engine; CI-signed ones do', async () => {
    const transport = await createTransport(kafkaSchema.parse({ brokers: kafkaBrokers().split(',') }))
    const keys = makeKeys()
    const topic = uniqueName('deployments')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([{ topic }])
    await admin.disconnect()
    const seen = await receive(transport, topic, { verifyKeys: [keys.artifact.pub] })
    const bad = { service: 'checkout', namespace: 'shop', version: '1.5.0', time: Date.now() }
    const suppress = { service: 'checkout', namespace: 'shop', version: '1.4.0', previousVersion: '1.5.0', time: Date.now() + 2000 }
    // CI signs through the CLI
    const inFile = join(keys.dir, 'event.json')
    writeFileSync(inFile, JSON.stringify(bad))
    let out = ''
    expect(await main(['keys', 'sign', '--key', keys.artifact.key, '--in', inFile], { out: (s) => void (out += s), err: (s) => void (out += s) })).toBe(0)
    const rogueSigned = sealRecord(suppress, keys.rogue.signer)
    const tampered = { ...(JSON.parse(out) as object), version: '1.4.0' }
    const p = transport.producer()
    await p.connect()
    await p.send(topic, [out.trim(), JSON.stringify(suppress), JSON.stringify(rogueSigned), JSON.stringify(tampered)].map((value) => ({ key: 'shop/checkout', value })))
    await p.disconnect()
    await until(() => (receiver!.stats().consumer?.messages ?? 0) >= 4, 20_000, 'four events read')
    expect(seen.map((e) => e.version)).toEqual(['1.5.0'])
    expect(receiver!.stats()).toMatchObject({ accepted: 1, unsigned: 0, invalid: { unsigned: 1, signature: 2 } })
  })

  it("the actuator's rollback announcement is signed with its state key and passes a receiver that requires signatures", async () => {
    r = await rig()
    const seen = await receive(r.transport, r.kafka.topics.deployments, { verifyKeys: [r.keys.state.pub], requireSigned: true })
    await r.start()
    r.publisher.publish(verdict('rollback'))
    await until(() => seen.length === 1, 20_000, 'announcement accepted')
    expect(seen[0]).toMatchObject({ kind: 'rollback', source: 'pullback-actuator', version: '1.2.0' })
  })

  it('without keys (the default for keyless installations) unsigned events are accepted and counted', async () => {
    const transport = await createTransport(kafkaSchema.parse({ brokers: kafkaBrokers().split(',') }))
    const topic = uniqueName('deployments')
    const admin = transport.admin()
    await admin.connect()
    await admin.ensureTopics([{ topic }])
    await admin.disconnect()
    const seen = await receive(transport, topic, {})
    const p = transport.producer()
    await p.connect()
    await p.send(topic, [{ key: 'shop/checkout', value: JSON.stringify({ service: 'checkout', namespace: 'shop', version: '1.5.0', time: Date.now() }) }])
    await p.disconnect()
    await until(() => seen.length === 1, 20_000, 'event')
    expect(receiver!.stats()).toMatchObject({ accepted: 1, unsigned: 1 })
  })
})
