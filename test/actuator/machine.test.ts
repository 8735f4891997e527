import { describe, expect, it } from 'vitest'
import { escalates, INITIAL_PHASE, isTerminal, transition, TRANSITIONS, type Phase, type PhaseEvent } from '../../src/actuator/machine.js'

describe('actuator state machine', () => {
  it('the all-ok path runs every phase in DESIGN.md order and ends recovered', () => {
    const seen: string[] = []
    let s: ReturnType<typeof transition> = INITIAL_PHASE
    while (!isTerminal(s)) {
      seen.push(s)
      s = transition(s, 'ok')
    }
    expect(seen).toEqual(['verify', 'gate', 'artifact', 'cutover', 'readiness', 'announce', 'recovery'])
    expect(s).toBe('recovered')
  })

  it('routes failures as DESIGN.md says', () => {
    expect(transition('verify', 'fail')).toBe('rejected')
    expect(transition('gate', 'fail')).toBe('ignored')
    expect(transition('gate', 'frozen')).toBe('halted')
    expect(transition('artifact', 'fail')).toBe('halted')
    expect(transition('cutover', 'fail')).toBe('halted')
    expect(transition('readiness', 'timeout')).toBe('halted')
    expect(transition('recovery', 'fail')).toBe('escalated')
    expect(transition('recovery', 'timeout')).toBe('escalated')
    expect(() => transition('verify', 'timeout')).toThrow(TypeError)
  })

  it('every failure after the signature check ends in a terminal that is rejected, ignored, or pages', () => {
    for (const [phase, edges] of Object.entries(TRANSITIONS) as [Phase, Partial<Record<PhaseEvent, string>>][]) {
      for (const [ev, to] of Object.entries(edges)) {
        if (ev === 'ok') continue
        expect(isTerminal(to as never), `${phase} ${ev}`).toBe(true)
        if (phase !== 'verify' && !(phase === 'gate' && ev === 'fail')) expect(escalates(to as never), `${phase} ${ev}`).toBe(true)
      }
    }
    expect(escalates('recovered')).toBe(false)
    expect(escalates('rejected')).toBe(false)
  })
})
