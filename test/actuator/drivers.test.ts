import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { actuatorSchema, type DriverConfig } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import type { CutoverRequest } from '../../src/actuator/drivers/types.js'
import { Pager, pageBody } from '../../src/actuator/paging.js'
import { silentLogger } from '../../src/common/logger.js'
import { MemoryBus } from '../../src/kafka/memory.js'
import { FakeK8s } from '../support/fake-k8s.js'
import { IMG, verdict, webhookReceiver } from './helpers.js'

const driverCfg = (d: Record<string, unknown>): DriverConfig => actuatorSchema.parse({ driver: d }).driver!
const req = (over: Partial<CutoverRequest> = {}): CutoverRequest => ({
  decisionId: 'dec-1',
  namespace: 'default',
  service: 'web',
  failed: { artifact: IMG('1.3.0'), version: '1.3.0' },
  target: { artifact: IMG('1.2.0'), version: '1.2.0' },
  resume: false,
  verdict: verdict('rollback'),
  ...over,
})
const signal = new AbortController().signal

let k8s: FakeK8s | undefined
afterEach(async () => {
  await k8s?.stop()
  k8s = undefined
})

describe('kubernetes deployment driver', () => {
  it('patches to the ReplicaSet carrying the verified image (not simply the previous one), keeps kubectl annotations, is level-triggered', async () => {
    k8s = new FakeK8s({ history: [IMG('1.1.0'), IMG('1.2.0'), IMG('1.3.0')] })
    const d = createDriver(driverCfg({ type: 'kubernetes', server: await k8s.start(), pollInterval: '20ms' }))
    const target = { artifact: IMG('1.1.0'), version: '1.1.0' }
    expect((await d.apply(req({ target }), signal)).kind).toBe('applied')
    expect(k8s.currentImage()).toBe(IMG('1.1.0'))
    const ops = k8s.patches()[0]!.body as { op: string; path: string; value: Record<string, string> }[]
    expect(ops.map((o) => `${o.op} ${o.path}`)).toEqual(['test /metadata/resourceVersion', 'replace /spec/template', 'replace /metadata/annotations'])
    expect(ops[2]!.value['kubectl.kubernetes.io/last-applied-configuration']).toBe('{}')
    expect(ops[2]!.value['deployment.kubernetes.io/revision']).toBe('3')
    expect(ops[2]!.value['pullback.test/image']).toBeUndefined() // pod-template annotations stay in the template
    expect((await d.awaitReady(req({ target }), 5000, signal)).kind).toBe('ready')
    expect((await d.apply(req({ target }), signal)).kind).toBe('already-applied')
    expect(k8s.patches()).toHaveLength(1)
  })

  it('re-reads and retries when the resourceVersion test op fails', async () => {
    k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')] })
    const d = createDriver(driverCfg({ type: 'kubernetes', server: await k8s.start() }))
    let first = true
    const fake = k8s
    // a concurrent writer bumps resourceVersion between our GET and our PATCH, once
    fake.beforePatch = () => {
      if (!first) return
      first = false
      fake.owner.metadata.resourceVersion = String(Number(fake.owner.metadata.resourceVersion) + 7)
    }
    expect((await d.apply(req(), signal)).kind).toBe('applied')
    expect(k8s.patches()).toHaveLength(2)
    expect(k8s.requests.filter((r) => r.method === 'GET' && r.path.includes('/deployments/')).length).toBe(2)
  })

  it('refuses a paused deployment and fails when no ReplicaSet carries the artifact; readiness times out', async () => {
    k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')], ready: 'never' })
    const d = createDriver(driverCfg({ type: 'kubernetes', server: await k8s.start(), pollInterval: '20ms' }))
    expect(await d.apply(req({ target: { artifact: IMG('0.9.0'), version: '0.9.0' } }), signal)).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/no ReplicaSet/) })
    expect((await d.apply(req(), signal)).kind).toBe('applied')
    expect(await d.awaitReady(req(), 200, signal)).toMatchObject({ kind: 'not-ready', reason: expect.stringMatching(/updatedReplicas|old replicas/) })
    k8s.owner.spec.paused = true
    expect(await d.apply(req({ failed: { artifact: IMG('1.2.0'), version: '1.2.0' }, target: { artifact: IMG('1.3.0'), version: '1.3.0' } }), signal)).toMatchObject({ kind: 'failed', reason: 'you cannot rollback a paused deployment' })
  })

  it('refuses a stale decision: the deployment runs neither the failed nor the target artifact', async () => {
    k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0'), IMG('1.4.0')] })
    const d = createDriver(driverCfg({ type: 'kubernetes', server: await k8s.start() }))
    expect(await d.apply(req(), signal)).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/^stale decision/) })
    expect(k8s.patches()).toHaveLength(0)
  })
})

describe('argo rollouts driver', () => {
  for (const noStatusSubresource of [false, true]) {
    it(`aborts (status subresource${noStatusSubresource ? ', 404 -> main resource' : ''}) then undoes to the verified revision`, async () => {
      k8s = new FakeK8s({ history: [IMG('1.2.0'), IMG('1.3.0')], kind: 'rollout', noStatusSubresource })
      const d = createDriver(driverCfg({ type: 'argo-rollouts', server: await k8s.start(), pollInterval: '20ms' }))
      expect((await d.apply(req(), signal)).kind).toBe('applied')
      const patches = k8s.patches().map((p) => `${p.path} ${p.contentType}`)
      const base = '/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/web'
      expect(patches).toEqual([
        `${base}/status application/merge-patch+json`,
        ...(noStatusSubresource ? [`${base} application/merge-patch+json`] : []),
        `${base} application/json-patch+json`,
      ])
      expect(k8s.patches()[0]!.body).toEqual({ status: { abort: true } })
      expect(k8s.currentImage()).toBe(IMG('1.2.0'))
      expect((await d.awaitReady(req(), 5000, signal)).kind).toBe('ready')
    })
  }
})

describe('exec driver', () => {
  it('passes the documented env and JSON stdin; exit 0 is cut over, non-zero failed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-exec-'))
    const script = join(dir, 'cutover.sh')
    writeFileSync(script, `#!/bin/sh\nenv | grep ^PULLBACK_ | sort > "${dir}/env"\ncat > "${dir}/stdin"\n[ "$PULLBACK_TARGET_VERSION" = "1.2.0" ] || { echo "wrong target" >&2; exit 3; }\n`)
    chmodSync(script, 0o755)
    const d = createDriver(driverCfg({ type: 'exec', command: [script] }))
    expect((await d.apply(req(), signal)).kind).toBe('applied')
    const env = readFileSync(join(dir, 'env'), 'utf8')
    expect(env).toContain('PULLBACK_DECISION_ID=dec-1')
    expect(env).toContain('PULLBACK_SERVICE=default/web')
    expect(env).toContain(`PULLBACK_TARGET_ARTIFACT=${IMG('1.2.0')}`)
    expect(env).toContain('PULLBACK_RESUME=0')
    const stdin = JSON.parse(readFileSync(join(dir, 'stdin'), 'utf8'))
    expect(stdin).toMatchObject({ decisionId: 'dec-1', service: 'default/web', target: { version: '1.2.0' }, failed: { version: '1.3.0' }, resume: false })
    expect(stdin.verdict.kind).toBe('rollback')
    expect(await d.apply(req({ target: { artifact: 'x', version: '9' } }), signal)).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/exited 3: wrong target/) })
  })
})

describe('paging', () => {
  it('sends generic, Slack and PagerDuty Events v2 bodies, retries 5xx, and writes the escalation record', async () => {
    const hook = await webhookReceiver()
    try {
      const page = { dedupKey: 'dec-1', summary: 'default/web: rollback halted', severity: 'critical' as const, service: 'default/web', details: { outcome: 'halted' } }
      expect(pageBody({ type: 'slack', url: hook.url }, page)).toMatchObject({ text: expect.stringContaining('rollback halted'), blocks: expect.any(Array) })
      const bus = new MemoryBus()
      const p = bus.producer()
      const pager = new Pager({
        targets: [
          { type: 'generic', url: hook.url },
          { type: 'slack', url: hook.url },
          { type: 'pagerduty', url: hook.url, routingKey: 'rk' },
          { type: 'generic', url: 'http://127.0.0.1:1/unreachable' },
        ],
        retry: { attempts: 2, initial: 10, max: 10 },
        producer: p,
        escalationsTopic: 'esc',
        logger: silentLogger,
      })
      const { pages } = await pager.escalate(page)
      const outcomes = await pages
      expect(outcomes.map((o) => o.kind)).toEqual(['delivered', 'delivered', 'delivered', 'failed'])
      expect(outcomes[3]!.attempts).toBe(2)
      expect(hook.bodies).toContainEqual({ routing_key: 'rk', event_action: 'trigger', dedup_key: 'dec-1', payload: { summary: page.summary, source: 'pullback-actuator', severity: 'critical', custom_details: { service: 'default/web', outcome: 'halted' } } })
      expect(hook.bodies).toContainEqual(expect.objectContaining({ type: 'pullback.escalation', dedupKey: 'dec-1' }))
      expect(bus.stats().records).toBe(1)
    } finally {
      await hook.close()
    }
  })
})

describe('simulated driver', () => {
  it('waits the delay, calls the hook once per target, and is level-triggered', async () => {
    const calls: string[] = []
    const d = createDriver(driverCfg({ type: 'simulated', delay: '30ms' }), { simulated: (r) => void calls.push(r.target.version) })
    const t0 = Date.now()
    expect((await d.apply(req(), signal)).kind).toBe('applied')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25)
    expect((await d.apply(req({ resume: true }), signal)).kind).toBe('already-applied')
    expect(calls).toEqual(['1.2.0'])
    expect((await d.awaitReady(req(), 10, signal)).kind).toBe('ready')
  })
})
