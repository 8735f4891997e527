/**
 * Issue 13, items 1 and 5: records planted on the actuator's state topic (by anyone who can produce
 * to it) must neither redirect, suppress nor fake the outcome of a rollback. Each case failed before
 * the fix: the resumed cutover went to the planted target, a planted `done` or freeze record
 * suppressed the rollback, a planted `awaiting-recovery` record escalated and froze a service that
 * had no decision at all, and an unsigned "unfreeze" lifted a freeze.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { main } from '../../src/cli/main.js'
import type { DecisionProgress, FreezeRecord } from '../../src/actuator/state.js'
import { check } from '../../src/actuator/authentic.js'
import { readTopic } from '../../src/actuator/log.js'
import { silentLogger } from '../../src/common/logger.js'
import { describeKafka } from '../setup/kafka.js'
import { IMG, until, verdict } from './helpers.js'
import { never, rig, type Rig } from './security-rig.js'

const EVIL = 'evil.example/checkout:backdoor'

describeKafka('attacks through the actuator state topic', () => {
  let r: Rig | undefined
  afterEach(async () => {
    await r?.stop()
    r = undefined
  })

  const plant = async (key: string, value: object) => r!.raw.send(r!.cfg.stateTopic, [{ key, value: JSON.stringify(value) }])
  const plantedCutover = (id: string, v = verdict('rollback', { id })): DecisionProgress => ({
    decisionId: id,
    service: 'default/web',
    phase: 'cutover',
    verdict: v,
    failed: { artifact: IMG('1.3.0'), version: '1.3.0' },
    target: { artifact: EVIL, version: '1.2.0' },
    phases: [],
    driver: 'kubernetes',
    updatedAt: Date.now(),
    epoch: 7,
  })

  for (const mode of ['state key', 'no state key'] as const) {
    it(`redirected rollback (${mode}): a planted cutover record's target is never used; the target comes from the signed artifact records`, async () => {
      r = await rig(mode === 'no state key' ? { over: { stateKey: undefined } } : {})
      const rb = verdict('rollback')
      await plant(`decision/${rb.id}`, plantedCutover(rb.id, rb))
      await r.start()
      r.publisher.publish(rb)
      await until(() => r!.events.length === 1 || r!.audits().length > 0, 20_000, 'rollback event or audit')
      expect(r.cutovers.map((c) => c.target.artifact)).toEqual([IMG('1.2.0')])
      expect(r.k8s.currentImage()).toBe(IMG('1.2.0'))
      expect(r.events[0]).toMatchObject({ kind: 'rollback', version: '1.2.0', artifact: IMG('1.2.0') })
      if (mode === 'state key') expect(r.actuator.state.unauthenticated.unsigned).toBe(1)
      else expect(r.actuator.counters.targetReselected).toBe(1)
    })
  }

  it('suppressed rollback: a planted `done` record does not make the real decision a duplicate', async () => {
    r = await rig()
    const rb = verdict('rollback')
    await plant(`decision/${rb.id}`, { ...plantedCutover(rb.id, rb), phase: 'done', outcome: 'recovered', epoch: 99 })
    await r.start()
    r.publisher.publish(rb)
    await until(() => r!.events.length === 1 || r!.actuator.counters.duplicates > 0, 20_000, 'rollback event or duplicate')
    expect(r.actuator.counters.duplicates).toBe(0)
    expect(r.k8s.currentImage()).toBe(IMG('1.2.0'))
  })

  it('false escalation: a planted `awaiting-recovery` record with a deadline does not page or freeze anything', async () => {
    r = await rig()
    const id = 'planted-awaiting'
    await plant(`decision/${id}`, { ...plantedCutover(id), phase: 'awaiting-recovery', recoveryDeadline: Date.now() + 300, target: { artifact: IMG('1.2.0'), version: '1.2.0' } })
    await r.start()
    await never(() => r!.hook.bodies.length > 0 || r!.actuator.state.frozen('default/web') !== undefined || r!.audits().length > 0, 1500, 'page, freeze or audit for a planted record')
    expect(r.actuator.counters.escalated).toBe(0)
    expect(r.actuator.state.unauthenticated.unsigned).toBe(1)
  })

  it('planted freeze: an unsigned freeze record does not halt a real rollback', async () => {
    r = await rig()
    const f: FreezeRecord = { service: 'default/web', frozen: true, at: Date.now(), reason: 'maintenance', by: 'attacker' }
    await plant('freeze/default/web', f)
    await r.start()
    const rb = verdict('rollback')
    r.publisher.publish(rb)
    await until(() => r!.events.length === 1 || r!.audits().length > 0, 20_000, 'rollback event or audit')
    expect(r.audits().filter((a) => a.outcome === 'halted')).toHaveLength(0)
    expect(r.k8s.currentImage()).toBe(IMG('1.2.0'))
  })

  it('unsigned unfreeze and deletion: a genuine freeze holds, and stays the newest record of its key on the compacted topic', async () => {
    r = await rig()
    await r.start()
    await r.actuator.state.setFreeze({ service: 'default/web', frozen: true, at: Date.now(), reason: 'escalated: not recovered', decisionId: 'd-real' })
    await plant('freeze/default/web', { service: 'default/web', frozen: false, at: Date.now(), reason: 'rearmed', by: 'attacker' })
    // a forged record signed with a key the actuator does not trust is no better
    const body = { service: 'default/web', frozen: false, at: Date.now(), reason: 'rearmed', keyId: r.keys.rogue.signer.keyId }
    await plant('freeze/default/web', { ...body, signature: r.keys.rogue.signer.sign(body) })
    // and a deletion, which compaction would honour
    await r.raw.send(r.cfg.stateTopic, [{ key: 'freeze/default/web', value: null }])
    await r.actuator.state.sync()
    expect(r.actuator.state.frozen('default/web')?.decisionId).toBe('d-real')
    expect(r.actuator.state.unauthenticated).toMatchObject({ unsigned: 1, 'unknown-key': 1, tombstone: 1 })
    const rb = verdict('rollback')
    r.publisher.publish(rb)
    await until(() => r!.audits().length === 1, 20_000, 'audit of the refused decision')
    expect(r.audits()[0]).toMatchObject({ decisionId: rb.id, outcome: 'halted' })
    expect(r.cutovers).toHaveLength(0)
    // compaction keeps the last record of a key: that one must be the genuine freeze again
    await until(
      async () => {
        const recs = (await readTopic(r!.transport, r!.cfg.stateTopic, { groupPrefix: r!.kafka.groupPrefix, logger: silentLogger, withTombstones: true })).filter((e) => e.key === 'freeze/default/web')
        const lastValue = recs[recs.length - 1]!.value
        if (lastValue.length === 0) return false
        const last = JSON.parse(lastValue.toString()) as FreezeRecord
        return last.frozen && check(last, r!.actuator.state.auth).kind === 'valid'
      },
      10_000,
      'the genuine freeze appended again',
    )
    expect(r.actuator.state.repair.counters.repaired).toBeGreaterThanOrEqual(1)
  })

  it('re-arm: an operator key listed in actuator.stateKeys lifts a freeze through the CLI; a re-arm signed with another key does not', async () => {
    // the artifact key pair stands in for an operator's key
    r = await rig({ over: (keys) => ({ stateKeys: [keys.artifact.pub] }) })
    await r.start()
    await r.actuator.state.setFreeze({ service: 'default/web', frozen: true, at: Date.now(), reason: 'escalated', decisionId: 'd-real' })
    const cfgFile = join(r.keys.dir, 'rearm.yaml')
    const rearm = async (key: string) => {
      writeFileSync(cfgFile, stringify({ kafka: r!.kafka, actuator: { stateTopic: r!.cfg.stateTopic, stateKeys: [r!.keys.artifact.pub] } }))
      let out = ''
      const code = await main(['actuator', 'rearm', '--service', 'default/web', '--config', cfgFile, '--key', key], { out: (x) => void (out += x), err: (x) => void (out += x) })
      expect(code, out).toBe(0)
    }
    await rearm(r.keys.decision.key)
    await r.actuator.state.sync()
    expect(r.actuator.state.frozen('default/web')?.decisionId).toBe('d-real')
    await rearm(r.keys.artifact.key)
    await until(() => r!.actuator.state.frozen('default/web') === undefined, 10_000, 're-armed')
  })
})
