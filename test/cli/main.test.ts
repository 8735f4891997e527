import { describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import type { Io } from '../../src/cli/args.js'
import { COMMANDS } from '../../src/cli/commands/index.js'

function capture(): Io & { stdout: () => string; stderr: () => string } {
  let o = ''
  let e = ''
  return { out: (s) => void (o += s), err: (s) => void (e += s), stdout: () => o, stderr: () => e }
}

describe('pullback CLI', () => {
  it('--help lists every subcommand and exits 0', async () => {
    const io = capture()
    expect(await main(['--help'], io)).toBe(0)
    for (const c of ['demo', 'sidecar', 'actuator', 'replay', 'sim', 'artifacts', 'keys', 'audit', 'config']) {
      expect(io.stdout()).toContain(`  ${c} `)
    }
  })

  it('an unknown subcommand exits 2 and names it', async () => {
    const io = capture()
    expect(await main(['rollbak'], io)).toBe(2)
    expect(io.stderr()).toContain('unknown command "rollbak"')
  })

  it('an unknown global flag exits 2 and names it', async () => {
    const io = capture()
    expect(await main(['--frobnicate'], io)).toBe(2)
    expect(io.stderr()).toContain('--frobnicate')
  })

  it('an unknown subcommand flag exits 2 and names it', async () => {
    const io = capture()
    expect(await main(['config', '--frobnicate'], io)).toBe(2)
    expect(io.stderr()).toContain("'--frobnicate'")
  })

  it('no arguments prints help and exits 2', async () => {
    const io = capture()
    expect(await main([], io)).toBe(2)
    expect(io.stdout()).toContain('usage: pullback <command>')
  })

  it('an unknown PULLBACK_LOG_LEVEL exits 2 with one line naming it, not a stack trace', async () => {
    const before = process.env.PULLBACK_LOG_LEVEL
    process.env.PULLBACK_LOG_LEVEL = 'loud'
    try {
      const io = capture()
      expect(await main(['decider'], io)).toBe(2)
      expect(io.stderr().trimEnd().split('\n')).toEqual(['pullback decider: PULLBACK_LOG_LEVEL: unknown level "loud" (one of fatal, error, warn, info, debug, trace, silent)'])
    } finally {
      if (before === undefined) delete process.env.PULLBACK_LOG_LEVEL
      else process.env.PULLBACK_LOG_LEVEL = before
    }
  })

  it("the help's summary of each command is the command's own", async () => {
    for (const e of COMMANDS) {
      const cmd = await e.load()
      expect(cmd.summary, e.name).toBe(e.summary)
      expect(cmd.name).toBe(e.name)
    }
  })
})
