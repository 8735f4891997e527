/**
 * The `exec` driver: runs `actuator.driver.command` (argv, no shell) once per cutover.
 *
 * Contract:
 *   env    PULLBACK_DECISION_ID, PULLBACK_SERVICE ("ns/name"), PULLBACK_NAMESPACE, PULLBACK_SERVICE_NAME,
 *          PULLBACK_FAILED_ARTIFACT, PULLBACK_FAILED_VERSION, PULLBACK_TARGET_ARTIFACT,
 *          PULLBACK_TARGET_VERSION, PULLBACK_TARGET_DIGEST (may be empty), PULLBACK_RESUME ("1" when a
 *          previous attempt of the same decision may have run: the command must then be idempotent)
 *   stdin  one JSON object: {decisionId, service, namespace, name, failed:{artifact,version},
 *          target:{artifact,version,digest?}, resume, verdict}
 *   exit   0 = cut over AND ready (the command owns its readiness wait); anything else = failed;
 *          past `timeout` the command's process group is killed (SIGKILL) and the cutover failed.
 *   stdout/stderr: the last 2 KiB of stderr are kept as the failure reason.
 *
 * Process group: the command runs in a process group of its own (`detached`), so that a timeout,
 * an actuator shutdown or a lost claim kills the command and everything it started (SIGKILL to
 * -pid), not only its first process. Its pid and start time are handed to the actuator
 * (`hooks.onChild`), which records them in the decision's state before the driver waits; an
 * actuator resuming the decision after a crash calls `settle` with that record: on the same host a
 * command still running (an orphan of the killed actuator) is waited for, up to its own deadline,
 * or killed (`orphans: kill`), before the command runs again. On another host (another pod) the
 * orphan cannot be seen; a container's processes die with it, so nothing is waited for.
 */
import { spawn } from 'node:child_process'
import type { DriverConfig } from '../config.js'
import { presence, procStartTime, thisHost } from '../proc.js'
import type { ApplyHooks, ApplyOutcome, ChildRef, CutoverRequest, Driver, OrphanOutcome, ReadyOutcome } from './types.js'
import { sleep } from './types.js'

type ExecConfig = Extract<DriverConfig, { type: 'exec' }>

const ORPHAN_POLL_MS = 100
const ORPHAN_KILL_GRACE_MS = 5_000

/** SIGKILL to the process group led by `pid` (the command and what it started); the leader alone if the group is gone */
function killTree(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

export class ExecDriver implements Driver {
  readonly name = 'exec'
  constructor(private readonly cfg: ExecConfig) {}

  apply(req: CutoverRequest, signal: AbortSignal, hooks?: ApplyHooks): Promise<ApplyOutcome> {
    const [cmd, ...args] = this.cfg.command as [string, ...string[]]
    const env = {
      ...process.env,
      PULLBACK_DECISION_ID: req.decisionId,
      PULLBACK_SERVICE: `${req.namespace}/${req.service}`,
      PULLBACK_NAMESPACE: req.namespace,
      PULLBACK_SERVICE_NAME: req.service,
      PULLBACK_FAILED_ARTIFACT: req.failed.artifact,
      PULLBACK_FAILED_VERSION: req.failed.version,
      PULLBACK_TARGET_ARTIFACT: req.target.artifact,
      PULLBACK_TARGET_VERSION: req.target.version,
      PULLBACK_TARGET_DIGEST: req.target.digest ?? '',
      PULLBACK_RESUME: req.resume ? '1' : '0',
    }
    const stdin = JSON.stringify({
      decisionId: req.decisionId,
      service: `${req.namespace}/${req.service}`,
      namespace: req.namespace,
      name: req.service,
      failed: req.failed,
      target: req.target,
      resume: req.resume,
      verdict: req.verdict,
    })
    return new Promise((resolve) => {
      let stderr = ''
      let settled = false
      let killedFor: string | undefined
      const child = spawn(cmd, args, { env, stdio: ['pipe', 'ignore', 'pipe'], detached: true })
      const finish = (o: ApplyOutcome) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        resolve(o)
      }
      const killGroup = (why: string) => {
        if (settled) return
        killedFor ??= why
        if (child.pid !== undefined) killTree(child.pid)
      }
      const onAbort = () => killGroup('actuator shutdown')
      const timer = setTimeout(() => killGroup(`timeout after ${this.cfg.timeout} ms`), this.cfg.timeout)
      signal.addEventListener('abort', onAbort, { once: true })
      if (signal.aborted) onAbort()
      child.stderr.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-2048)
      })
      child.stdin.on('error', () => {
        // the command may exit without reading stdin
      })
      child.stdin.end(stdin)
      child.on('error', (err) => finish({ kind: 'failed', reason: `exec ${cmd}: ${err.message}` }))
      child.on('close', (code, sig) => {
        if (code === 0 && killedFor === undefined) finish({ kind: 'applied', detail: `exec ${cmd} exited 0` })
        else finish({ kind: 'failed', reason: `exec ${cmd} ${killedFor ? `killed (${killedFor})` : sig ? `killed by ${sig}` : `exited ${code}`}${stderr ? `: ${stderr.trim()}` : ''}` })
      })
      if (child.pid !== undefined && hooks?.onChild) {
        const pid = child.pid
        const startedAt = Date.now()
        const ref: ChildRef = { host: thisHost, pid, startTime: procStartTime(pid) ?? '', startedAt, deadline: startedAt + this.cfg.timeout }
        hooks.onChild(ref).then(
          (d) => {
            if (d === 'abandon') killGroup('another actuator owns this decision')
          },
          // the state record of the child could not be written: a crash now would leave an orphan nobody can find
          () => killGroup('its process could not be recorded'),
        )
      }
    })
  }

  async settle(prev: ChildRef, signal: AbortSignal): Promise<OrphanOutcome> {
    const t0 = Date.now()
    const what = `previous command pid ${prev.pid} on ${prev.host}`
    const p0 = presence(prev)
    if (p0 === 'gone') return { kind: 'none', detail: `${what} no longer runs` }
    if (p0 === 'unknown') return { kind: 'unidentifiable', detail: `${what} cannot be seen from ${thisHost}` }
    if (this.cfg.orphans === 'wait') {
      while (Date.now() < prev.deadline && presence(prev) === 'running') {
        if (signal.aborted) return { kind: 'aborted', detail: `stopped waiting for ${what}` }
        await sleep(ORPHAN_POLL_MS, signal)
      }
      if (presence(prev) !== 'running') return { kind: 'ended', detail: `waited for ${what} to end`, waitedMs: Date.now() - t0 }
    }
    killTree(prev.pid)
    const until = Date.now() + ORPHAN_KILL_GRACE_MS
    while (presence(prev) === 'running' && Date.now() < until) await sleep(ORPHAN_POLL_MS, signal)
    return { kind: 'killed', detail: `killed ${what}${this.cfg.orphans === 'wait' ? ' past its deadline' : ''}`, waitedMs: Date.now() - t0 }
  }

  /** the command's exit 0 already means ready */
  awaitReady(): Promise<ReadyOutcome> {
    return Promise.resolve({ kind: 'ready', detail: 'exec command reported ready' })
  }
}
