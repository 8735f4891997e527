import { describe, expect, it } from 'vitest'
import { theilSenSlope } from '../../src/signals/theilsen.js'

describe('theilSenSlope', () => {
  it('recovers the slope of a line and ignores a minority of outliers (least squares would not)', () => {
    const xs = Array.from({ length: 15 }, (_, i) => i)
    const ys = xs.map((x) => 3 * x + 10)
    expect(theilSenSlope(xs, ys)).toBe(3)
    ys[4] = 1e6
    ys[11] = -1e6
    expect(theilSenSlope(xs, ys)).toBeCloseTo(3, 9)
    // least squares slope for comparison: far off
    const mx = xs.reduce((a, b) => a + b) / xs.length
    const my = ys.reduce((a, b) => a + b) / ys.length
    const ls = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0)
    expect(Math.abs(ls - 3)).toBeGreaterThan(1000)
  })

  it('is NaN without two distinct x values, and handles an even number of slopes', () => {
    expect(theilSenSlope([1], [1])).toBeNaN()
    expect(theilSenSlope([1, 1], [1, 5])).toBeNaN()
    expect(theilSenSlope([0, 1, 2], [0, 1, 4])).toBe(2) // slopes 1, 2, 3
    expect(theilSenSlope([0, 1, 2, 3], [0, 0, 0, 6])).toBe(1) // slopes 0,0,0,2,3,6 -> (0+2)/2
  })
})
