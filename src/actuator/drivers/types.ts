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

export type ApplyOutcome = { kind: 'applied'; detail: string } | { kind: 'already-applied'; detail: string } | { kind: 'failed'; reason: string }

export type ReadyOutcome = { kind: 'ready'; detail: string } | { kind: 'not-ready'; reason: string }

export interface Driver {
  readonly name: string
  apply(req: CutoverRequest, signal: AbortSignal): Promise<ApplyOutcome>
  /** polls the readiness gates until they pass or `timeoutMs` elapses */
  awaitReady(req: CutoverRequest, timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome>
}

export { sleep } from '../../common/sleep.js'
