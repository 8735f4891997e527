/**
 * A driver whose cutover worked but leaves work for a human (the GitOps drivers: Git still points at
 * the bad version) gets that work paged as a warning, once per decision, and stamped in the audit.
 */
import { join } from 'node:path'
import { readFileSync, existsSync } from 'node:fs'
import { afterEach, expect, it } from 'vitest'
import { Actuator } from '../../src/actuator/actuator.js'
import { TopicArtifactStore } from '../../src/actuator/artifacts.js'
import { stateAuthOf } from '../../src/actuator/authentic.js'
import type { Driver } from '../../src/actuator/drivers/types.js'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { Verifier } from '../../src/publish/signing.js'
import { actuatorConfig, buildPublisher, kafkaConfig, makeKeys, promote, until, verdict, webhookReceiver, type WebhookReceiver } from './helpers.js'

let stop: (() => Promise<void>) | undefined
afterEach(async () => {
  await stop?.()
  stop = undefined
})

function gitopsLikeDriver(followUp: string | undefined): Driver {
  return {
    name: 'stub-gitops',
    apply: () => Promise.resolve(followUp === undefined ? { kind: 'applied', detail: 'patched' } : { kind: 'applied', detail: 'rolled back by the GitOps tool', followUp }),
    awaitReady: () => Promise.resolve({ kind: 'ready', detail: 'ready' }),
  }
}

async function run(followUp: string | undefined): Promise<{ hook: WebhookReceiver; audit: () => string }> {
  const transport = new MemoryBus({ redeliveryBackoffMs: 20 })
  const kafka = kafkaConfig([])
  const keys = makeKeys()
  const hook = await webhookReceiver()
  const auditFile = join(keys.dir, 'audit.jsonl')
  await promote(transport, kafka, [
    ['1.2.0', keys.artifact.signer],
    ['1.3.0', keys.artifact.signer],
  ])
  const cfg = actuatorConfig(keys, { driver: { type: 'simulated' }, paging: [{ type: 'generic', url: hook.url }], auditFile })
  const actuator = new Actuator({
    transport,
    kafka,
    config: cfg,
    verifier: Verifier.fromFiles(cfg.verifyKeys),
    artifacts: new TopicArtifactStore({ transport, topic: kafka.topics.artifacts, groupPrefix: kafka.groupPrefix, verifier: Verifier.fromFiles(cfg.artifactKeys), logger: silentLogger }),
    driver: gitopsLikeDriver(followUp),
    logger: silentLogger,
    stateAuth: stateAuthOf(cfg),
  })
  const publisher = buildPublisher(transport, kafka, keys.decision.signer)
  await publisher.start()
  await actuator.start()
  stop = async () => {
    await actuator.shutdown()
    await publisher.shutdown()
    await hook.close()
  }
  const rb = verdict('rollback')
  publisher.publish(rb)
  await until(() => actuator.counters.executed > 0 && (followUp === undefined || hook.bodies.length > 0), 20_000, 'cutover')
  publisher.publish(verdict('recovered', { restoredVersion: '1.2.0' }))
  await until(() => existsSync(auditFile) && readFileSync(auditFile, 'utf8').includes('"recovered"'), 20_000, 'audit')
  return { hook, audit: () => readFileSync(auditFile, 'utf8') }
}

it('pages the follow-up of a cutover that worked (warning, deduplicated by decision) and stamps it in the audit', async () => {
  const { hook, audit } = await run('Git still points at the bad version: revert it, then re-enable automated sync')
  expect(hook.bodies).toHaveLength(1)
  expect(hook.bodies[0]).toMatchObject({ severity: 'warning', service: 'default/web', dedupKey: expect.stringMatching(/\/follow-up$/), summary: expect.stringContaining('Git still points at the bad version') })
  expect(audit()).toContain('follow-up')
})

it('pages nothing for a plain cutover that recovered (the test can fail: paging is not unconditional)', async () => {
  const { hook, audit } = await run(undefined)
  expect(audit()).toContain('"recovered"')
  expect(hook.bodies).toHaveLength(0)
})
