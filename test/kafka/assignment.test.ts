/**
 * The consumer's assignment listener and `commit: false` on the embedded bus (the real broker's are
 * exercised by test/kafka/partials.kafka.test.ts and decider-failover.kafka.test.ts): revoked before
 * the next member fetches, assigned with the member's partitions; without commits every assignment
 * starts again from the beginning of retention.
 */
import { describe, expect, it } from 'vitest'
import { MemoryBus } from '../../src/kafka/memory.js'
import type { AssignmentEvent, Consumer } from '../../src/kafka/types.js'
import { waitFor } from '../support/wait.js'

describe('embedded bus: assignment listener and commit: false', () => {
  it('announces assignments, revokes before another member reads, and re-reads from the beginning without commits', async () => {
    const bus = new MemoryBus({ defaultPartitions: 2 })
    await bus.admin().ensureTopics([{ topic: 't', numPartitions: 2 }])
    await bus.producer().send('t', [0, 1, 0, 1].map((p, i) => ({ value: `m${i}`, partition: p })))
    const log: string[] = []
    const seen: string[][] = [[], []]
    let slowRevoke = false
    const member = (i: number): Consumer =>
      bus.consumer({
        groupId: 'g',
        topics: ['t'],
        commit: false,
        onAssignment: async (ev: AssignmentEvent) => {
          log.push(`${i}:${ev.kind}:${ev.partitions.map((p) => p.partition).join(',')}`)
          if (ev.kind === 'revoked' && slowRevoke) await new Promise((r) => setTimeout(r, 50))
          if (ev.kind === 'revoked') log.push(`${i}:revoke-done`)
        },
      })
    const a = member(0)
    await a.start(async (b) => void seen[0]!.push(...b.messages.map((m) => `${b.partition}/${m.offset}`)))
    await waitFor(() => seen[0]!.length === 4, 'a reads all')
    expect(log).toEqual(['0:assigned:0,1'])
    slowRevoke = true
    const b = member(1)
    await b.start(async (x) => {
      // the revoking member finished before anyone reads its partitions again
      expect(log).toContain('0:revoke-done')
      seen[1]!.push(...x.messages.map((m) => `${x.partition}/${m.offset}`))
    })
    await waitFor(() => log.filter((l) => l.includes('assigned')).length === 3, 'the rebalance')
    expect(log.indexOf('0:revoke-done')).toBeLessThan(log.findIndex((l, i) => i > 0 && l.includes('assigned')))
    // no commits: after the rebalance each member reads its partition from the beginning again
    await waitFor(() => seen[0]!.length + seen[1]!.length === 8, 're-reads')
    await a.stop()
    await b.stop()
  })

  it('commit: true (default) resumes after what was handled', async () => {
    const bus = new MemoryBus({ defaultPartitions: 1 })
    await bus.producer().send('t', [{ value: 'a' }, { value: 'b' }])
    const got: string[] = []
    const c1 = bus.consumer({ groupId: 'g', topics: ['t'] })
    await c1.start(async (b) => void got.push(...b.messages.map((m) => m.offset)))
    await waitFor(() => got.length === 2, 'first read')
    await c1.stop()
    const c2 = bus.consumer({ groupId: 'g', topics: ['t'] })
    await c2.start(async (b) => void got.push(...b.messages.map((m) => m.offset)))
    await bus.producer().send('t', [{ value: 'c' }])
    await waitFor(() => got.length === 3, 'resume')
    expect(got).toEqual(['0', '1', '2'])
    await c2.stop()
  })
})
