import { randomUUID } from 'node:crypto'
import { describe, inject } from 'vitest'

/** The broker address for integration tests; "" only outside CI on a machine with no broker at all. */
export function kafkaBrokers(): string {
  return inject('kafkaBrokers')
}

/** describe() for tests that need the real broker; skipped (loudly, by the global setup) only when none exists. */
export const describeKafka = (name: string, fn: () => void) => describe.skipIf(kafkaBrokers() === '')(name, fn)

/** A topic or group name unique to one test run, so test files can share the broker in parallel. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}
