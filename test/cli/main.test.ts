import { describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import type { Io } from '../../src/cli/args.js'

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
})
