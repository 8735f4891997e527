import type { Verdict } from '../../engine/verdict.js'

/**
 * A cutover driver: the same mechanism that deployed the bad release puts the verified artifact
 * back. `apply` must be level-triggered: when the target is already in place it answers
 * `already-applied` and changes nothing (this is what makes a resumed decision safe).
 */
export interface CutoverRequest {
  decisionId: string
  namespace: string
  /** service name (without namespace) */
  service: string
  failed: { artifact: string; version: string }
  target: { artifact: string; version: string; digest?: string }
  /** true when a previous attempt of this decision may have started the cutover (restart, redelivery) */
  resume: boolean
  verdict: Verdict
}

/**
 * `followUp`: what on-call must still do although the cutover worked, e.g. a GitOps source (Argo CD,
 * Flux) that still points at the bad version and whose automation the driver switched off. It is
 * meant for a page even when the decision ends `recovered`; `detail` (the audit trail) says it too.
 */
export type ApplyOutcome =
  | { kind: 'applied'; detail: string; followUp?: string }
  | { kind: 'already-applied'; detail: string; followUp?: string }
  | { kind: 'failed'; reason: string }

export type ReadyOutcome = { kind: 'ready'; detail: string } | { kind: 'not-ready'; reason: string }

/**
 * An operating-system process a driver started for a cutover. The actuator records it in the
 * decision's state record before the driver waits for it, so that an actuator resuming the decision
 * after a crash can find a still-running orphan: `pid` plus the kernel's `startTime` (field 22 of
 * /proc/<pid>/stat, "" where /proc does not exist) identify it even if the pid was reused.
 */
export interface ChildRef {
  host: string
  pid: number
  startTime: string
  /** unix ms */
  startedAt: number
  /** unix ms after which the starting driver would have killed it (its timeout) */
  deadline: number
}

/** What the driver did about a previous attempt's process before running the cutover again. */
export type OrphanOutcome =
  | { kind: 'none'; detail: string }
  | { kind: 'ended'; detail: string; waitedMs: number }
  | { kind: 'killed'; detail: string; waitedMs: number }
  | { kind: 'unidentifiable'; detail: string }
  | { kind: 'aborted'; detail: string }

export interface ApplyHooks {
  /**
   * Awaited after the driver started a process and before it waits for it. `abandon` (this
   * actuator lost the decision to another one) makes the driver kill the process group and fail.
   */
  onChild?: (child: ChildRef) => Promise<'continue' | 'abandon'>
}

export interface Driver {
  readonly name: string
  apply(req: CutoverRequest, signal: AbortSignal, hooks?: ApplyHooks): Promise<ApplyOutcome>
  /** polls the readiness gates until they pass or `timeoutMs` elapses */
  awaitReady(req: CutoverRequest, timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome>
  /**
   * Drivers that start processes: make sure a previous attempt's process (recorded in the state
   * record) is no longer running before `apply` runs again (wait for it or kill it, by config).
   */
  settle?(child: ChildRef, signal: AbortSignal): Promise<OrphanOutcome>
}

export { sleep } from '../../common/sleep.js'
