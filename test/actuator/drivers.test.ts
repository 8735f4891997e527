import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { actuatorSchema, type DriverConfig } from '../../src/actuator/config.js'
import { createDriver } from '../../src/actuator/drivers/index.js'
import type { ChildRef, CutoverRequest } from '../../src/actuator/drivers/types.js'
import { presence, procStartTime, thisHost } from '../../src/actuator/proc.js'
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

describe('exec driver: process group and orphans', () => {
  const alive = (pid: number) => presence({ host: thisHost, pid, startTime: procStartTime(pid) ?? 'x' }) === 'running'
  function slowScript(dir: string): string {
    // the command starts a grandchild (sleep) and records both pids
    const script = join(dir, 'slow.sh')
    writeFileSync(script, `#!/bin/sh\nsleep 30 &\necho "$$ $!" > "${dir}/pids"\nwait\n`)
    chmodSync(script, 0o755)
    return script
  }
  const pidsIn = (dir: string) => readFileSync(join(dir, 'pids'), 'utf8').trim().split(' ').map(Number)

  it('a timeout kills the whole process group (the command and what it started)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-exec-'))
    const d = createDriver(driverCfg({ type: 'exec', command: [slowScript(dir)], timeout: '500ms' }))
    const out = await d.apply(req(), signal)
    expect(out).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/killed \(timeout after 500 ms\)/) })
    const [sh, sleeper] = pidsIn(dir) as [number, number]
    await new Promise((r) => setTimeout(r, 100))
    expect(alive(sh)).toBe(false)
    // before the process group, the grandchild outlived the timeout
    expect(alive(sleeper)).toBe(false)
  })

  it('records the child (pid + start time) before waiting, and kills it when the claim is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-exec-'))
    const d = createDriver(driverCfg({ type: 'exec', command: [slowScript(dir)], timeout: '20s' }))
    const seen: ChildRef[] = []
    const t0 = Date.now()
    const out = await d.apply(req(), signal, {
      onChild: async (c) => {
        seen.push(c)
        await new Promise((r) => setTimeout(r, 200))
        return 'abandon'
      },
    })
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(out).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/another actuator owns this decision/) })
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ host: thisHost, pid: expect.any(Number), startTime: expect.stringMatching(/^\d+$/) })
    expect(seen[0]!.deadline - seen[0]!.startedAt).toBe(20_000)
  })

  it('settle: waits for a previous attempt still running (wait), or kills its group at once (kill); a gone or reused pid is not waited for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-exec-'))
    const script = join(dir, 'orphan.sh')
    writeFileSync(script, `#!/bin/sh\nsleep "$1"\n`)
    chmodSync(script, 0o755)
    const orphan = (secs: string) => {
      const c = spawn(script, [secs], { detached: true, stdio: 'ignore' })
      const ref: ChildRef = { host: thisHost, pid: c.pid!, startTime: procStartTime(c.pid!)!, startedAt: Date.now(), deadline: Date.now() + 20_000 }
      return { c, ref }
    }
    const waiter = createDriver(driverCfg({ type: 'exec', command: [script], orphans: 'wait' }))
    const a = orphan('0.8')
    const t0 = Date.now()
    const o1 = await waiter.settle!(a.ref, signal)
    expect(o1.kind).toBe('ended')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600)

    const killer = createDriver(driverCfg({ type: 'exec', command: [script], orphans: 'kill' }))
    const b = orphan('30')
    const t1 = Date.now()
    expect((await killer.settle!(b.ref, signal)).kind).toBe('killed')
    expect(Date.now() - t1).toBeLessThan(3000)
    await new Promise((r) => b.c.exitCode !== null || b.c.signalCode !== null ? r(undefined) : b.c.on('exit', r))
    expect(b.c.signalCode).toBe('SIGKILL')

    // the pid now belongs to nothing, or to another process: not the orphan
    expect((await waiter.settle!(a.ref, signal)).kind).toBe('none')
    expect((await waiter.settle!({ ...a.ref, pid: process.pid }, signal)).kind).toBe('none')
    expect((await waiter.settle!({ ...a.ref, host: 'another-pod' }, signal)).kind).toBe('unidentifiable')
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
