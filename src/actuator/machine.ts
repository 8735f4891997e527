/**
 * The rollback path of DESIGN.md as an explicit state machine. Each phase ends with an event; the
 * table says where that event leads. Terminal states are the audit outcomes plus `ignored` (a
 * decision that is not for the actuator to act on: dry-run, or a kind that never acts).
 *
 *   phase      ok          fail        other
 *   verify     gate        rejected
 *   gate       artifact    ignored     frozen -> halted (service frozen, or another rollback of it in flight)
 *   artifact   cutover     halted
 *   cutover    readiness   halted
 *   readiness  announce    halted      timeout -> halted
 *   announce   recovery    escalated
 *   recovery   recovered   escalated   timeout -> escalated
 *
 * `halted` and `escalated` page on-call, write an escalation record and freeze the service.
 */
import type { AuditOutcome } from './audit.js'

export type Phase = 'verify' | 'gate' | 'artifact' | 'cutover' | 'readiness' | 'announce' | 'recovery'
export type Terminal = AuditOutcome | 'ignored'
export type PhaseEvent = 'ok' | 'fail' | 'frozen' | 'timeout'

export const INITIAL_PHASE: Phase = 'verify'

export const TRANSITIONS: { readonly [P in Phase]: Readonly<Partial<Record<PhaseEvent, Phase | Terminal>>> } = {
  verify: { ok: 'gate', fail: 'rejected' },
  gate: { ok: 'artifact', fail: 'ignored', frozen: 'halted' },
  artifact: { ok: 'cutover', fail: 'halted' },
  cutover: { ok: 'readiness', fail: 'halted' },
  readiness: { ok: 'announce', fail: 'halted', timeout: 'halted' },
  announce: { ok: 'recovery', fail: 'escalated' },
  recovery: { ok: 'recovered', fail: 'escalated', timeout: 'escalated' },
}

const PHASES = new Set<string>(Object.keys(TRANSITIONS))

export function isTerminal(s: Phase | Terminal): s is Terminal {
  return !PHASES.has(s)
}

/** The next state; an event a phase does not define is a programmer error. */
export function transition(phase: Phase, event: PhaseEvent): Phase | Terminal {
  const to = TRANSITIONS[phase][event]
  if (to === undefined) throw new TypeError(`no transition from ${phase} on ${event}`)
  return to
}

/** terminal states that page on-call and freeze the service */
export function escalates(t: Terminal): boolean {
  return t === 'halted' || t === 'escalated'
}
