/**
 * Deterministic ids, so that a replay, a restarted sidecar and a redelivered event name the same
 * deployment and the same decision identically (the actuator deduplicates on the verdict id).
 * sha256 is computation, not I/O; the engine stays pure.
 */
import { hash } from 'node:crypto'

function h(parts: readonly (string | number)[]): string {
  // \u001f (unit separator) cannot occur in the parts' ordinary text, so concatenations cannot collide
  // one-shot `hash` (Node >= 20.12): the same digest as createHash().update().digest() at half the cost, and a
  // mass rollout names thousands of deployments in one tick
  return hash('sha256', parts.join('\u001f'), 'hex').slice(0, 32)
}

/** Id of a deployment: namespace, service, version and the deployment time (unix ms). */
export function deploymentId(namespace: string, service: string, version: string, deployedAt: number): string {
  return h(['deployment', namespace, service, version, deployedAt])
}

/** Id of a verdict: one per deployment and decision kind (a dry-run decision is a kind of its own). */
export function verdictId(deploymentIdValue: string, kind: string): string {
  return h(['verdict', deploymentIdValue, kind])
}

/**
 * A watch's phase in [0, mod) from 6 characters of its id (hex digits of a hash) starting at `at`,
 * so that watches deployed in the same tick run periodic work in different ticks.
 */
export function idPhase(id: string, at: number, mod: number): number {
  let h = 0
  for (let i = at; i < at + 6 && i < id.length; i++) h = h * 16 + (id.charCodeAt(i) & 15)
  return h % mod
}
