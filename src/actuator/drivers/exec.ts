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
 *          past `timeout` the process is killed (SIGKILL) and the cutover failed.
 *   stdout/stderr: the last 2 KiB of stderr are kept as the failure reason.
 */
import { spawn } from 'node:child_process'
import type { DriverConfig } from '../config.js'
import type { ApplyOutcome, CutoverRequest, Driver, ReadyOutcome } from './types.js'

type ExecConfig = Extract<DriverConfig, { type: 'exec' }>

export class ExecDriver implements Driver {
  readonly name = 'exec'
  constructor(private readonly cfg: ExecConfig) {}

  apply(req: CutoverRequest, signal: AbortSignal): Promise<ApplyOutcome> {
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
      const child = spawn(cmd, args, { env, stdio: ['pipe', 'ignore', 'pipe'], signal, timeout: this.cfg.timeout, killSignal: 'SIGKILL' })
      child.stderr.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-2048)
      })
      child.stdin.on('error', () => {
        // the command may exit without reading stdin
      })
      child.stdin.end(stdin)
      child.on('error', (err) => resolve({ kind: 'failed', reason: `exec ${cmd}: ${err.message}` }))
      child.on('close', (code, sig) => {
        if (code === 0) resolve({ kind: 'applied', detail: `exec ${cmd} exited 0` })
        else resolve({ kind: 'failed', reason: `exec ${cmd} ${sig ? `killed by ${sig}` : `exited ${code}`}${stderr ? `: ${stderr.trim()}` : ''}` })
      })
    })
  }

  /** the command's exit 0 already means ready */
  awaitReady(): Promise<ReadyOutcome> {
    return Promise.resolve({ kind: 'ready', detail: 'exec command reported ready' })
  }
}
