import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * `normalize.warmup`: a pod's first requests after it starts serving, kept out of its version's
 * request series (src/warmup/README.md). Off by default, as Argo Rollouts' `initialDelay` and
 * Kayenta's warm-up are: it delays every detection by about its length.
 */
export const warmupSchema = z
  .strictObject({
    /** how long after a pod's first request its requests are left out; 0 turns the stage off */
    duration: duration()
      .default(0)
      .refine((ms) => ms <= 600_000, { message: 'at most 10m (a longer warm-up is a readiness problem, not a deployment signal)' }),
    /** pods whose first request is remembered; least recently seen are forgotten first (counted) */
    maxPods: z.number().int().min(1).default(50_000),
  })
  .prefault({})

export type WarmupConfig = z.output<typeof warmupSchema>
