/**
 * Issue 13, item 3: a replayed recovery verdict must not finish a rollback it is not about. Before
 * the fix, a validly signed `not-recovered` of ANOTHER deployment of the service (or an old one of
 * the same deployment) escalated the rollback awaiting recovery, froze the service and paged; the
 * genuine `recovered` that followed was counted as unmatched.
 */
import { afterEach, expect, it } from 'vitest'
import { sealDecision } from '../../src/publish/envelope.js'
import { describeKafka } from '../setup/kafka.js'
import { until, verdict } from './helpers.js'
import { never, rig, type Rig } from './security-rig.js'

describeKafka('replayed recovery verdicts', () => {
  let r: Rig | undefined
  afterEach(async () => {
    await r?.stop()
    r = undefined
  })

  const replay = async (v: ReturnType<typeof verdict>, issuedAt: number) =>
    r!.raw.send(r!.kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(sealDecision(v, r!.keys.decision.signer, issuedAt)) }])

  it('a not-recovered of another deployment, or one signed longer ago than maxDecisionAge, changes nothing; the genuine recovered finishes the rollback', async () => {
    r = await rig({ over: { maxDecisionAge: '10m' } })
    await r.start()
    const rb = verdict('rollback')
    r.publisher.publish(rb)
    await until(() => r!.events.length === 1, 20_000, 'rollback event')
    // a genuine verdict of an earlier deployment of the same service, replayed
    await replay(verdict('not-recovered', { id: 'old-other', deploymentId: 'dep-web-1.1.0', version: '1.1.0', restoredVersion: '1.2.0' }), Date.now() - 60_000)
    // a verdict about this very deployment, but signed an hour ago
    await replay(verdict('not-recovered', { id: 'old-same', restoredVersion: '1.2.0' }), Date.now() - 3_600_000)
    await never(() => r!.audits().length > 0 || r!.hook.bodies.length > 0, 1500, 'the replayed verdicts finished the rollback')
    expect(r.actuator.state.frozen('default/web')).toBeUndefined()
    expect(r.actuator.counters.unmatchedRecovery).toBe(1)
    expect(r.actuator.counters.staleRecovery).toBe(1)
    r.publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
    await until(() => r!.audits().length === 1, 20_000, 'audit')
    expect(r.audits()[0]).toMatchObject({ decisionId: rb.id, outcome: 'recovered', escalated: false })
  })
})
