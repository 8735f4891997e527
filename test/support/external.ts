/**
 * Tests that need something outside the repository (real peers built from the Go module proxy, a
 * real kube-apiserver): under CI a missing dependency is one failing test that says how to get it (a
 * CI without it must not pass silently); elsewhere a skip with a visible note.
 */
import { describe, it } from 'vitest'

export interface Requirement {
  /** what is missing, one reason each; empty: run the suite */
  missing: string[]
  /** how to get it, appended to the reasons */
  hint: string
  /** the CI test's name, e.g. 'has its real peers' */
  check: string
  /** the banner of the local skip, e.g. 'INTEROP SKIPPED' */
  banner: string
}

export function describeWhenAvailable(name: string, req: Requirement, fn: () => void): void {
  if (req.missing.length === 0) {
    describe(name, fn)
    return
  }
  const why = `${req.missing.join('; ')}: ${req.hint}`
  if (process.env.CI === 'true') {
    describe(name, () => {
      it(req.check, () => {
        throw new Error(why)
      })
    })
    return
  }
  process.stderr.write(`\n*** ${req.banner} (${name}): ${why} ***\n\n`)
  describe.skip(name, fn)
}

export { freePort } from './ports.js'
