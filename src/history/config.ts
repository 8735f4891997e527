import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * pullback's own compact history (section `history:` of the YAML file; src/history/README.md): the
 * sidecar (single-process) or the decider (distributed) writes one summary per service and hour to
 * `kafka.topics.history`, which `pullback calibrate --kafka` and `pullback audit requests --kafka`
 * read back.
 */
export const historySchema = z
  .strictObject({
    /** write the hourly summaries (needs a Kafka transport or the embedded bus) */
    enabled: z.boolean().default(true),
    /** retention.ms of the history topic when pullback creates it: what `calibrate --kafka` can read back */
    retention: duration().default(30 * 86_400_000),
    /** resolution of the request counts and latency histogram inside a summary; must divide an hour */
    step: duration()
      .default(60_000)
      .refine((v) => v >= 1000 && v % 1000 === 0 && 3_600_000 % v === 0, 'a whole number of seconds that divides 1h (e.g. 10s, 30s, 60s, 5m)'),
    /** an hour is written once telemetry time (the wall clock) is this far past its end: late data still lands */
    grace: duration().default(120_000),
    /** services summarised at once; observations of further services are dropped (counted) */
    maxServices: z.number().int().min(1).default(5_000),
    /** pods per service and hour whose resource readings are kept; further pods are dropped (counted) */
    maxPods: z.number().int().min(1).default(64),
    /** summaries waiting to be acknowledged by the broker; past it the oldest are dropped (counted) */
    maxPending: z.number().int().min(1).default(20_000),
    /** how often finished hours are checked for and written */
    flushInterval: duration().default(10_000),
  })
  .prefault({})

export type HistoryConfig = z.output<typeof historySchema>
