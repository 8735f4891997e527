import { describe, expect, it } from 'vitest'
import { RUNTIME_V8_FLAGS, runtimeV8Flags } from '../../src/cli/v8-flags.js'

describe('runtime V8 flags', () => {
  it('turns allocation-site pretenuring off unless node was started with a choice of its own', () => {
    expect(RUNTIME_V8_FLAGS).toContain('--no-allocation-site-pretenuring')
    expect(runtimeV8Flags([])).toEqual(['--no-allocation-site-pretenuring'])
    expect(runtimeV8Flags(['--max-semi-space-size=2', '--trace-gc'])).toEqual(['--no-allocation-site-pretenuring'])
    expect(runtimeV8Flags(['--allocation-site-pretenuring'])).toEqual([])
    expect(runtimeV8Flags(['--no-allocation-site-pretenuring'])).toEqual([])
    expect(runtimeV8Flags(['--allocation_site_pretenuring'])).toEqual([])
  })
})
