/** Bundles test/actuator/phase-child.ts once per test file and starts actuator child processes from it. */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'rolldown'
import { artifactTopicSpec } from '../../src/actuator/artifacts.js'
import { stateTopicSpec } from '../../src/actuator/state.js'
import type { KafkaConfig } from '../../src/kafka/config.js'
import type { KafkaTransport } from '../../src/kafka/types.js'
import { uniqueName } from '../setup/kafka.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

export interface ChildActuator {
  child: ChildProcess
  out: string[]
  ready: Promise<void>
  exited: Promise<void>
  /** resolves when a stdout line satisfies `pred` (or rejects when the child exits first) */
  line(pred: (l: string) => boolean, ms?: number): Promise<string>
}

export class ChildBundle {
  private dir = ''
  private entry = ''
  private readonly started: ChildProcess[] = []

  async build(): Promise<void> {
    // inside the repo so that the bundle resolves packages from ./node_modules
    this.dir = join(root, 'node_modules', '.cache', 'pullback-test', uniqueName('phase-child'))
    mkdirSync(this.dir, { recursive: true })
    this.entry = join(this.dir, 'phase-child.mjs')
    await build({
      input: join(root, 'test/actuator/phase-child.ts'),
      platform: 'node',
      external: (id) => !id.startsWith('.') && !id.startsWith('/'),
      output: { dir: this.dir, entryFileNames: 'phase-child.mjs', format: 'esm' },
      logLevel: 'silent',
    })
  }

  start(config: unknown): ChildActuator {
    const child = spawn(process.execPath, [this.entry], { env: { ...process.env, PULLBACK_CHILD: JSON.stringify(config) }, stdio: ['ignore', 'pipe', 'inherit'] })
    this.started.push(child)
    const out: string[] = []
    const waiters = new Set<() => void>()
    let gone = false
    const exited = new Promise<void>((r) =>
      child.on('exit', () => {
        gone = true
        for (const w of waiters) w()
        r()
      }),
    )
    child.stdout!.on('data', (c: Buffer) => {
      out.push(...c.toString().split('\n').filter(Boolean))
      for (const w of waiters) w()
    })
    const line = (pred: (l: string) => boolean, ms = 60_000) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`timed out waiting for a child line; got: ${out.slice(-5).join(' | ')}`)), ms)
        const check = () => {
          const hit = out.find(pred)
          if (hit !== undefined) done(undefined, hit)
          else if (gone) done(new Error(`child exited (${child.exitCode ?? child.signalCode}) before the line; got: ${out.slice(-5).join(' | ')}`))
        }
        function done(err: Error | undefined, hit?: string) {
          clearTimeout(timer)
          waiters.delete(check)
          if (err) reject(err)
          else resolve(hit!)
        }
        waiters.add(check)
        check()
      })
    return { child, out, exited, line, ready: line((l) => l === 'ready').then(() => undefined) }
  }

  cleanup(): void {
    for (const c of this.started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    if (this.dir) rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * Creates the topics an actuator uses before a child starts: a consumer subscribing to a topic
 * created a moment earlier may not see it until its next metadata refresh (issue 11, item 0, the
 * start-up sync timeout); the tests are about crashes, not about that.
 */
export async function precreateTopics(transport: KafkaTransport, kafka: KafkaConfig, actuator: { stateTopic: string; escalationsTopic: string }): Promise<void> {
  const admin = transport.admin()
  await admin.connect()
  try {
    const t = kafka.topics
    await admin.ensureTopics([stateTopicSpec(actuator.stateTopic), artifactTopicSpec(t.artifacts), ...[t.decisions, t.deployments, t.audit, actuator.escalationsTopic].map((topic) => ({ topic }))])
  } finally {
    await admin.disconnect()
  }
}
