/**
 * Issue 11, item 7b: an actuator SIGKILLed while its exec driver's command runs leaves the command
 * running (an orphan). The actuator that resumes the decision must not run the command again while
 * the orphan still runs: it finds the orphan from the pid + start time in the state record and waits
 * for it. The command logs its start and end; the runs must not overlap. (The resumed actuator gets
 * the decision only once the killed member's session expired, ~10 s, so the first run lasts 20 s.)
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseAudit } from '../../src/actuator/audit.js'
import { kafkaSchema } from '../../src/kafka/config.js'
import { createTransport } from '../../src/kafka/index.js'
import { sealDecision } from '../../src/publish/envelope.js'
import { describeKafka, kafkaBrokers, uniqueName } from '../setup/kafka.js'
import { ChildBundle, precreateTopics } from './children.js'
import { kafkaConfig, makeKeys, promote, until, verdict } from './helpers.js'

const bundle = new ChildBundle()
beforeAll(() => bundle.build())
afterAll(() => bundle.cleanup())

/** [start, end] per run, in ns; end undefined for a run that never finished */
function runs(log: string): { start: bigint; end: bigint | undefined; resume: string }[] {
  const out = new Map<string, { start: bigint; end: bigint | undefined; resume: string }>()
  for (const l of log.split('\n').filter(Boolean)) {
    const [what, pid, ns, resume] = l.split(' ') as [string, string, string, string]
    if (what === 'start') out.set(pid, { start: BigInt(ns), end: undefined, resume })
    else out.get(pid)!.end = BigInt(ns)
  }
  return [...out.values()].sort((a, b) => (a.start < b.start ? -1 : 1))
}

describeKafka('exec driver: SIGKILLed actuator mid-cutover', () => {
  it('the resumed actuator waits for the orphaned command before running it again: no overlap, one audit record', async () => {
    const brokers = kafkaBrokers().split(',')
    const transport = await createTransport(kafkaSchema.parse({ brokers }))
    const kafka = kafkaConfig(brokers)
    const keys = makeKeys()
    const auditFile = join(keys.dir, 'audit.jsonl')
    const log = join(keys.dir, 'cutover.log')
    const doneMark = join(keys.dir, 'cutover.done')
    const script = join(keys.dir, 'cutover.sh')
    // idempotent, as the exec contract asks of a resumed command: a second run after a finished first one is quick
    writeFileSync(
      script,
      `#!/bin/sh
echo "start $$ $(date +%s%N) $PULLBACK_RESUME" >> "${log}"
if [ "$PULLBACK_RESUME" = 1 ] && [ -f "${doneMark}" ]; then echo "end $$ $(date +%s%N)" >> "${log}"; exit 0; fi
sleep 20
touch "${doneMark}"
echo "end $$ $(date +%s%N)" >> "${log}"
`,
    )
    chmodSync(script, 0o755)
    await promote(transport, kafka, [
      ['1.2.0', keys.artifact.signer],
      ['1.3.0', keys.artifact.signer],
    ])
    const config = {
      kafka,
      actuator: {
        driver: { type: 'exec', command: [script], timeout: '60s' },
        verifyKeys: [keys.decision.pub],
        artifactKeys: [keys.artifact.pub],
        stateTopic: uniqueName('state'),
        escalationsTopic: uniqueName('esc'),
        auditFile,
        recoveryTimeout: '60s',
      },
    }
    await precreateTopics(transport, kafka, config.actuator)
    const first = bundle.start(config)
    await first.ready
    const rb = verdict('rollback')
    const p = transport.producer()
    await p.connect()
    await p.send(kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(sealDecision(rb, keys.decision.signer, Date.now())) }])
    await until(() => existsSync(log) && readFileSync(log, 'utf8').includes('start'), 30_000, 'first run started')
    // the child's pid reaches the state record a few ms after the spawn
    await new Promise((r) => setTimeout(r, 500))
    first.child.kill('SIGKILL')
    await first.exited

    const second = bundle.start(config)
    await second.ready
    await second.line((l) => l.startsWith(`transition ${rb.id} announce recovery`), 90_000)
    await p.send(kafka.topics.decisions, [{ key: 'default/web', value: JSON.stringify(sealDecision(verdict('recovered', { restoredVersion: '1.2.0' }), keys.decision.signer, Date.now())) }])
    await until(() => existsSync(auditFile), 30_000, 'audit record')
    second.child.kill('SIGTERM')
    await second.exited
    await p.disconnect()

    const r = runs(readFileSync(log, 'utf8'))
    expect(r).toHaveLength(2)
    expect(r[0]!.end).toBeDefined()
    // the second run started only after the first ended
    expect(r[1]!.start >= r[0]!.end!).toBe(true)
    expect(r[1]!.resume).toBe('1')
    const records = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => parseAudit(l)!)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ decisionId: rb.id, outcome: 'recovered' })
    expect(records[0]!.phases.map((x) => x.phase)).toContain('previous-attempt-ended')
  }, 150_000)
})
