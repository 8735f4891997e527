/**
 * Issue 13, item 5: a forged artifact record with the key of a verified one (same service, same
 * artifact) must not replace it: not in the actuator's store (before the fix the rollback then had
 * no verified target and halted) and not on the compacted topic (where compaction would delete the
 * verified record for good).
 */
import { afterEach, expect, it } from 'vitest'
import { artifactKey, signArtifact, verifyArtifact, type ArtifactRecord } from '../../src/actuator/artifacts.js'
import { readTopic } from '../../src/actuator/log.js'
import { silentLogger } from '../../src/common/logger.js'
import { Verifier } from '../../src/publish/signing.js'
import { describeKafka } from '../setup/kafka.js'
import { IMG, until, verdict } from './helpers.js'
import { rig, type Rig } from './security-rig.js'

describeKafka('attacks through the artifacts topic', () => {
  let r: Rig | undefined
  afterEach(async () => {
    await r?.stop()
    r = undefined
  })

  it('a forged record under the key of a verified artifact shadows it neither in the store nor on the compacted topic', async () => {
    r = await rig({ promoted: [['1.1.0', 'valid'], ['1.2.0', 'valid'], ['1.3.0', 'valid']] })
    const key = artifactKey('default/web', IMG('1.2.0'))
    // same service and artifact, newer promotion, signed with a key the actuator does not trust; and an unsigned copy
    const forged = signArtifact({ service: 'default/web', artifact: IMG('1.2.0'), promotedAt: Date.now() - 60_000 }, r.keys.rogue.signer)
    const { signature: _s, ...unsigned } = forged
    await r.raw.send(r.kafka.topics.artifacts, [
      { key, value: JSON.stringify(forged) },
      { key, value: JSON.stringify(unsigned) },
      // and a deletion of the verified 1.1.0 record, which compaction would honour
      { key: artifactKey('default/web', IMG('1.1.0')), value: null },
    ])
    await r.start()
    const rb = verdict('rollback')
    r.publisher.publish(rb)
    await until(() => r!.events.length === 1 || r!.audits().length > 0, 20_000, 'rollback event or audit')
    expect(r.audits().filter((a) => a.outcome === 'halted')).toEqual([])
    expect(r.cutovers.map((c) => c.target.artifact)).toEqual([IMG('1.2.0')])
    expect(r.k8s.currentImage()).toBe(IMG('1.2.0'))
    // on the topic, the newest record of the key verifies again
    const verifier = Verifier.fromFiles([r.keys.artifact.pub])
    const lastVerifies = async (k: string) => {
      const recs = (await readTopic(r!.transport, r!.kafka.topics.artifacts, { groupPrefix: r!.kafka.groupPrefix, logger: silentLogger, withTombstones: true })).filter((e) => e.key === k)
      const last = recs[recs.length - 1]!.value
      return last.length > 0 && verifyArtifact(JSON.parse(last.toString()) as ArtifactRecord, verifier).verification === 'valid'
    }
    await until(async () => (await lastVerifies(key)) && (await lastVerifies(artifactKey('default/web', IMG('1.1.0')))), 10_000, 'the verified records appended again')
  })
})
