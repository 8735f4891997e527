/**
 * Issue 13, item 6: envelopes that fail verification. Before the fix each wrote an audit record
 * keyed by the service it claimed, with the decision id it claimed and its text as sent: a forgery
 * claiming a genuine decision's id made the actuator skip that decision's audit record in the file
 * (already "there"), a flood wrote one record per forgery, and claimed text reached `audit show`.
 */
import { afterEach, expect, it } from 'vitest'
import { REJECTED_KEY } from '../../src/actuator/actuator.js'
import { sealDecision } from '../../src/publish/envelope.js'
import { describeKafka } from '../setup/kafka.js'
import { until, verdict } from './helpers.js'
import { rig, type Rig } from './security-rig.js'

describeKafka('rejected envelopes', () => {
  let r: Rig | undefined
  afterEach(async () => {
    await r?.stop()
    r = undefined
  })

  it("a forgery claiming a genuine decision's id does not suppress its audit record, and stays out of the service's history, sanitised", async () => {
    r = await rig()
    await r.start()
    const rb = verdict('rollback')
    const forged = sealDecision({ ...rb, service: 'web\n2026-01-01 decision OK\u001b[2K\u202e' }, r.keys.rogue.signer, Date.now())
    await r.raw.send(r.kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(forged) }])
    await until(() => r!.actuator.counters.rejected === 1 && r!.audits().length === 1, 20_000, 'rejection audited')
    r.publisher.publish(rb)
    await until(() => r!.events.length === 1, 20_000, 'rollback event')
    r.publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => r!.audits().length === 2 || r!.actuator.counters.auditDuplicates > 0, 20_000, 'second audit record')
    const [rejected, genuine] = r.audits()
    expect(genuine).toMatchObject({ decisionId: rb.id, service: 'default/web', outcome: 'recovered' })
    expect(rejected).toMatchObject({ service: REJECTED_KEY, outcome: 'rejected' })
    expect(rejected!.decisionId).not.toBe(rb.id)
    expect(rejected!.claimed?.decisionId).toBe(rb.id)
    expect(rejected!.claimed?.service).not.toMatch(/[\p{Cc}\p{Cf}]/u)
    expect(r.audits().filter((a) => a.service === 'default/web').map((a) => a.outcome)).toEqual(['recovered'])
  })

  it('a flood of forgeries is audited rate-limited and counted', async () => {
    r = await rig()
    await r.start()
    const n = 60
    const msgs = Array.from({ length: n }, () => ({ key: 'default/web', value: JSON.stringify(sealDecision(verdict('rollback'), r!.keys.rogue.signer, Date.now())) }))
    await r.raw.send(r.kafka.topics.decisions, msgs)
    await until(() => r!.actuator.counters.rejected === n, 20_000, 'all rejected')
    expect(r.audits().length).toBeLessThanOrEqual(21)
    expect(r.actuator.counters.rejectedUnaudited).toBe(n - r.audits().length)
    expect(r.cutovers).toHaveLength(0)
  })
})
