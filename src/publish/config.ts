import { z } from 'zod'
import { duration } from '../config/duration.js'
import { byteSize } from '../receivers/config.js'

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
    /** how long shutdown waits for queued decisions to be acknowledged (the producer's close gets 250 ms more at most) */
    drainTimeout: duration().default(10_000),
    /**
     * Write-ahead log of signed decisions not yet acknowledged by the broker (src/publish/wal.ts):
     * fsynced before a verdict counts as queued, re-published (same id) at the next start. Used
     * with a Kafka transport only (the embedded bus dies with the process anyway).
     */
    wal: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** default: <os tmpdir>/pullback/<kafka.topics.decisions>.wal (in the k8s manifests /tmp is an emptyDir: it survives container restarts) */
        file: z.string().min(1).optional(),
        /** the file never grows past this; a decision that does not fit is queued in memory only (counted as notDurable) */
        maxBytes: byteSize().default(4 * 1024 * 1024),
      })
      .prefault({}),
  })
  .prefault({})

export type PublishConfig = z.output<typeof publishSchema>
