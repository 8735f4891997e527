/**
 * bench/false-rollbacks.ts expectationMatrix: the README's "What to expect" table. Rows: spans
 * first, then metrics by export interval in numeric order; columns: traffic bands from the lowest;
 * a cell is median / worst over the runs rolled back and how many of its runs were.
 */
import { describe, expect, it } from 'vitest'
import { expectationMatrix, type RunResult } from '../../bench/false-rollbacks.js'

function run(n: number, telemetry: 'spans' | 'metrics', intervalS: number, rps: number, decideS: number | undefined): RunResult {
  return { run: n, rps, intervalS, telemetry, rollbacks: decideS === undefined ? 0 : 1, errorWitness: 0, corroborated: 0, incidents: 0, ms: 1, lines: 1, ...(decideS !== undefined ? { decideS } : {}), watched: true, judged: true }
}

const band = (x: number) => (x < 1 ? 'under 1 req/s' : x < 5 ? '1-5 req/s' : x < 50 ? '5-50 req/s' : '50-500 req/s')

describe('expectationMatrix', () => {
  it('orders rows and bands, and counts the runs rolled back of the runs per cell', () => {
    const m = expectationMatrix(
      [
        run(0, 'metrics', 60, 100, 100),
        run(1, 'metrics', 15, 2, 30),
        run(2, 'spans', 60, 3, 20),
        run(3, 'metrics', 60, 120, 140),
        run(4, 'metrics', 60, 110, undefined),
        run(5, 'spans', 10, 0.5, 90),
        run(6, 'metrics', 60, 150, 110),
      ],
      band,
    )
    expect(m).toEqual([
      ['telemetry', 'under 1 req/s', '1-5 req/s', '50-500 req/s'],
      ['spans', '90 / 90 (1 of 1)', '20 / 20 (1 of 1)', '-'],
      ['metrics every 15 s', '-', '30 / 30 (1 of 1)', '-'],
      ['metrics every 60 s', '-', '-', '110 / 140 (3 of 4)'],
    ])
  })

  it('says so when no run of a cell was rolled back', () => {
    expect(expectationMatrix([run(0, 'metrics', 10, 20, undefined)], band)).toEqual([
      ['telemetry', '5-50 req/s'],
      ['metrics every 10 s', '- (0 of 1)'],
    ])
  })
})
