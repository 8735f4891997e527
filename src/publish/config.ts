import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * Configuration of the publish stage (section `publish:` of the YAML file). Owned by src/publish.
 * Decisions are signed with `signingKey` (an Ed25519 PKCS#8 PEM file from `pullback keys generate`);
 * the key id defaults to the one derived from the public half.
 */
export const publishSchema = z
  .strictObject({
    signingKey: z.string().min(1).optional(),
    keyId: z.string().min(1).optional(),
    /** verdicts waiting for the broker's ack; past it new verdicts are refused (counted), queued ones are never dropped */
    maxQueue: z.number().int().positive().default(10_000),
    /** records per send */
    maxBatch: z.number().int().positive().default(100),
    retry: z
      .strictObject({
        initial: duration().default(100),
        max: duration().default(10_000),
      })
      .prefault({}),
    /** how long shutdown waits for queued decisions to be acknowledged */
    drainTimeout: duration().default(10_000),
  })
  .prefault({})

export type PublishConfig = z.output<typeof publishSchema>
