import { generateKeyPairSync } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import type { DeploymentEvent } from '../../src/engine/events.js'
import { resolveInstanceId } from '../../src/kafka/config.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { Sidecar } from '../../src/runtime/sidecar.js'
import { DeploymentsReceiver } from '../../src/receivers/deployments/receiver.js'
import { parseDeploymentEvent } from '../../src/receivers/deployments/schema.js'
import { eventually } from './helpers.js'

describe('deployment events', () => {
  it('parses RFC 3339 and unix-ms times and fills defaults', () => {
    expect(parseDeploymentEvent(JSON.stringify({ service: 'checkout', version: '1.2.0', time: '2026-11-26T05:00:00+01:00', extra: 1 }))).toEqual({
      kind: 'event',
      event: { namespace: '', service: 'checkout', version: '1.2.0', time: Date.UTC(2026, 10, 26, 4), kind: 'deploy', source: 'kafka' },
    })
    const full = {
      service: 'checkout',
      namespace: 'shop',
      version: '1.1.0',
      artifact: 'reg/checkout@sha256:abc',
      time: 1764133200000,
      source: 'pullback-actuator',
      kind: 'rollback',
      previousVersion: '1.2.0',
      decisionId: 'd-1',
    }
    expect(parseDeploymentEvent(Buffer.from(JSON.stringify(full)))).toEqual({ kind: 'event', event: full })
  })

  it('rejects invalid events with a clear reason', () => {
    const bad = (v: unknown) => parseDeploymentEvent(typeof v === 'string' ? v : JSON.stringify(v))
    expect(bad('{')).toMatchObject({ kind: 'invalid', reason: 'json' })
    expect(parseDeploymentEvent(null)).toMatchObject({ kind: 'invalid', reason: 'empty' })
    expect(bad({ service: 'a', version: '1', time: 'yesterday' })).toMatchObject({ kind: 'invalid', reason: 'schema', message: expect.stringMatching(/^time: expected an RFC 3339 timestamp/) })
    expect(bad({ version: '1', time: 1 })).toMatchObject({ kind: 'invalid', reason: 'schema', message: expect.stringMatching(/^service:/) })
    expect(bad({ service: 'a', version: '1', time: 1, kind: 'promote' })).toMatchObject({ reason: 'schema', message: expect.stringMatching(/^kind:/) })
    expect(bad([1])).toMatchObject({ reason: 'schema' })
  })

  it('consumes the topic, hands valid events on, counts and skips invalid ones and callback failures', async () => {
    const bus = new MemoryBus({ defaultPartitions: 1 })
    const seen: DeploymentEvent[] = []
    const r = new DeploymentsReceiver({
      transport: bus,
      topic: 'pullback.deployments',
      groupId: 'g',
      onEvent: (e) => {
        if (e.service === 'boom') throw new Error('callback bug')
        seen.push(e)
      },
    })
    await r.start()
    try {
      await bus.producer().send('pullback.deployments', [
        { value: JSON.stringify({ service: 'a', version: '2', time: 5 }) },
        { value: 'nope' },
        { value: JSON.stringify({ service: 'boom', version: '2', time: 5 }) },
        { value: JSON.stringify({ service: 'b', version: '3', time: '2026-01-01T00:00:00Z', kind: 'rollback' }) },
      ])
      await eventually(() => seen.length === 2 && r.stats().callbackFailures === 1)
      expect(seen.map((e) => `${e.service}@${e.version}:${e.kind}`)).toEqual(['a@2:deploy', 'b@3:rollback'])
      expect(r.stats()).toMatchObject({ accepted: 2, invalid: { json: 1, schema: 0, empty: 0 }, callbackFailures: 1 })
      expect(r.stats().lastInvalid).toMatch(/not JSON/)
    } finally {
      await r.shutdown()
      await r.shutdown()
    }
  })
})

describe('the deployments consumer group of a sidecar instance (issue 11, item 8)', () => {
  const saved = { ...process.env }
  afterEach(() => {
    for (const k of ['PULLBACK_INSTANCE_ID', 'POD_NAME', 'HOSTNAME']) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  })

  it('comes from config, then PULLBACK_INSTANCE_ID, POD_NAME, HOSTNAME, then the host name; never random', () => {
    expect(resolveInstanceId({ instanceId: 'node-a' }, { POD_NAME: 'p' })).toEqual({ id: 'node-a', source: 'config' })
    expect(resolveInstanceId({}, { PULLBACK_INSTANCE_ID: 'node-b', POD_NAME: 'p', HOSTNAME: 'h' })).toEqual({ id: 'node-b', source: 'PULLBACK_INSTANCE_ID' })
    expect(resolveInstanceId({}, { POD_NAME: 'pullback-sidecar-x7k2p', HOSTNAME: 'h' })).toEqual({ id: 'pullback-sidecar-x7k2p', source: 'POD_NAME' })
    expect(resolveInstanceId({}, { HOSTNAME: 'h' })).toEqual({ id: 'h', source: 'HOSTNAME' })
    expect(resolveInstanceId({}, {}, () => 'laptop.local')).toEqual({ id: 'laptop.local', source: 'hostname' })
    expect(resolveInstanceId({}, { POD_NAME: ' ' }, () => 'my host:1')).toEqual({ id: 'my_host_1', source: 'hostname' })
    expect(() => parseConfig({ kafka: { instanceId: 'a b' } })).toThrow(/kafka\.instanceId/)
  })

  it('is the same for two starts of a sidecar without HOSTNAME (no new group, no re-read of the topic)', () => {
    for (const k of ['PULLBACK_INSTANCE_ID', 'POD_NAME', 'HOSTNAME']) delete process.env[k]
    const groupOf = () => {
      const sidecar = new Sidecar({
        config: parseConfig({ runtime: { telemetry: { enabled: false } } }),
        transport: new MemoryBus(),
        logger: silentLogger,
        signer: signerFromKey(generateKeyPairSync('ed25519').privateKey),
        headless: true,
      })
      return (sidecar.receivers.deployments as unknown as { opts: { groupId: string } }).opts.groupId
    }
    const first = groupOf()
    expect(groupOf()).toBe(first)
    expect(first).toBe(`pullback.deployments.${resolveInstanceId({}).id}`)
  })
})
