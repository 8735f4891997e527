import { z } from 'zod'

/**
 * Calibration markers (section `calibration:` of the YAML file): `pullback calibrate` writes one per
 * service next to its `engine.services` override, so that whoever merges the contracts carries the
 * evidence that they were calibrated, and when. The readiness ladder (ladder.ts) reads them.
 */
const markerSchema = z.strictObject({
  /** ISO 8601 time the contract was calibrated */
  at: z.string().refine((s) => Number.isFinite(Date.parse(s)), 'an ISO 8601 time'),
  /** where the history came from ("prometheus http://...", "kafka pullback.history") */
  source: z.string().min(1),
  /** days of history the contract was calibrated on */
  days: z.number().min(0),
  /** false rollbacks on the held-out pseudo-deployments / their number */
  heldOut: z.string().regex(/^\d+\/\d+$/, '"<false rollbacks>/<deploys>"'),
  /** whether calibrate recommended enforce, or observe (with its reason) */
  recommended: z.enum(['enforce', 'observe']),
  reason: z.string().optional(),
})

export const calibrationSchema = z
  .strictObject({
    services: z.record(z.string().regex(/^[^\s/]+(?:\/[^\s/]+)?$/, 'a service key must be "namespace/name" or "name"'), markerSchema).default({}),
  })
  .prefault({})

export type CalibrationMarker = z.output<typeof markerSchema>
export type CalibrationConfig = z.output<typeof calibrationSchema>
