/**
 * Issue 11 item 1 end to end on the replay path: one span dated year 2300 of the very service that
 * is about to deploy badly must not blind the node (the store keeps time per series, the replay
 * clock follows the store's confirmed time), and /status must format any time.
 */
import { describe, expect, it } from 'vitest'
import { replayLines } from '../../src/cli/commands/replay.js'
import { loadConfig } from '../../src/config/load.js'
import { findScenario, recordToLines } from '../../src/sim/index.js'
import { EngineTracker } from '../../src/publish/self-metrics/engine-tracker.js'

const YEAR_2300_NS = String(BigInt(Date.UTC(2300, 0, 1)) * 1_000_000n)

function futureSpanLine(): string {
  const attrs = [
    ['service.name', 'checkout'],
    ['service.namespace', 'shop'],
    ['service.version', 'v1.4.0'],
    ['k8s.namespace.name', 'shop'],
    ['k8s.pod.name', 'attacker-0'],
  ].map(([key, v]) => ({ key, value: { stringValue: v } }))
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: attrs },
        scopeSpans: [
          {
            scope: { name: 'x' },
            spans: Array.from({ length: 1000 }, (_, i) => ({
              traceId: '0af7651916cd43dd8448eb211c80319c',
              spanId: (0xb7ad6b7169203331n + BigInt(i)).toString(16).padStart(16, '0'),
              name: 'GET /api/cart',
              kind: 2,
              startTimeUnixNano: YEAR_2300_NS,
              endTimeUnixNano: YEAR_2300_NS,
              attributes: [{ key: 'http.response.status_code', value: { intValue: '200' } }],
              status: {},
            })),
          },
        ],
      },
    ],
  })
}

describe('far-future telemetry', () => {
  it('1,000 spans dated 2300 at the start of a recording: the bad deployment is still rolled back', async () => {
    const lines = await recordToLines(findScenario('error-spike')!)
    const out: string[] = []
    const quiet = { out: (s: string) => out.push(s), err: () => undefined }
    await replayLines([futureSpanLine(), ...lines], loadConfig(undefined), quiet)
    const verdicts = out.map((l) => JSON.parse(l) as { kind: string; version: string; deployedAt: number; decidedAt: number })
    expect(verdicts.map((v) => `${v.kind} ${v.version}`)[0]).toBe('rollback v1.5.0')
    // decided on telemetry time, within the watch: not at the year 2300
    expect(verdicts[0]!.decidedAt - verdicts[0]!.deployedAt).toBeLessThan(120_000)
  }, 60_000)

  it('/status formats any deployment time (was: 500 "Invalid time value")', () => {
    const t = new EngineTracker()
    t.observe([{ deploymentId: 'd', kind: 'deploy', namespace: 'n', service: 's', version: 'v', baselineVersion: 'u', deployedAt: Infinity, t: 0, status: 'insufficient', baselineHealth: 'unknown', signals: [] }], [])
    expect(() => JSON.stringify(t.status())).not.toThrow()
  })
})
