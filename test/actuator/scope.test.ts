/**
 * The actuator refuses a rollback outside `actuator.namespaces` itself: audited (halted, with the
 * reason), paged (a bad deployment stays live), no request to the API server, the service not
 * frozen. In-scope decisions and configurations without a list behave as before.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { namespaceScope, outOfScope } from '../../src/actuator/scope.js'
import { describeKafka } from '../setup/kafka.js'
import { until, verdict } from './helpers.js'
import { rig, type Rig } from './security-rig.js'

describe('namespaceScope', () => {
  const kube = { type: 'kubernetes' as const, server: 'https://k', pollInterval: 50 } as never
  it('checks the Kubernetes drivers against a non-empty list', () => {
    const s = namespaceScope({ driver: kube, namespaces: ['shop'] })
    expect(outOfScope(s, 'shop')).toBeUndefined()
    expect(outOfScope(s, 'kube-system')).toMatch(/not in actuator.namespaces \(shop\)/)
  })
  it('does not check an empty list, a pinned driver.namespace, argocd or exec', () => {
    expect(namespaceScope({ driver: kube, namespaces: [] })).toEqual({ kind: 'any' })
    expect(namespaceScope({ driver: { ...(kube as object), namespace: 'prod' } as never, namespaces: ['shop'] })).toEqual({ kind: 'any' })
    expect(namespaceScope({ driver: { type: 'exec', command: ['true'] } as never, namespaces: ['shop'] })).toEqual({ kind: 'any' })
    expect(namespaceScope({ driver: { type: 'argocd', server: 'https://a' } as never, namespaces: ['shop'] })).toEqual({ kind: 'any' })
  })
})

describeKafka('a rollback outside actuator.namespaces', () => {
  let r: Rig | undefined
  afterEach(async () => {
    await r?.stop()
    r = undefined
  })

  it('is halted with the reason, audited and paged, and no cutover request is made', async () => {
    r = await rig({ over: { namespaces: ['shop'] } })
    await r.start()
    const rb = verdict('rollback')
    r.publisher.publish(rb)
    await until(() => r!.audits().length === 1, 20_000, 'audit')
    expect(r.audits()[0]).toMatchObject({ decisionId: rb.id, outcome: 'halted' })
    expect(r.audits()[0]!.reason).toMatch(/namespace "default" is not in actuator.namespaces/)
    await until(() => r!.hook.bodies.length === 1, 10_000, 'page')
    expect(r.cutovers).toHaveLength(0)
    expect(r.events).toHaveLength(0)
    expect(r.actuator.counters.outOfScope).toBe(1)
    expect(r.actuator.state.frozen('default/web')).toBeUndefined()
  })

  it('in scope, the same decision is executed', async () => {
    r = await rig({ over: { namespaces: ['default'] } })
    await r.start()
    r.publisher.publish(verdict('rollback'))
    await until(() => r!.events.length === 1, 20_000, 'rollback event')
    expect(r.cutovers).toHaveLength(1)
    expect(r.actuator.counters.outOfScope).toBe(0)
  })
})
