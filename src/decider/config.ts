import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * Scale-out (section `decider:` of the YAML file; src/decider/README.md "Broker path"). The default
 * (`distributed: false`) is one process deciding on its own telemetry, as before issue 12.
 */
export const deciderSchema = z
  .strictObject({
    /**
     * true: the sidecar is an ingest node (receivers -> partials on `kafka.topics.partials`) and
     * decides only as a member of the decider group (`enabled`); false: it decides alone on its data
     */
    distributed: z.boolean().default(false),
    /** with `distributed`: also run the decider role in this sidecar (else only `pullback decider` processes decide) */
    enabled: z.boolean().default(true),
    /** partitions of the partials topic and of the decider state topic when pullback creates them; must equal their real count */
    partitions: z.number().int().min(1).max(1024).default(12),
    /**
     * retention.ms of the partials topic when pullback creates it: what a new partition owner refills
     * its windows from, and re-reads at every rebalance. Default 15m: the signal store's retention
     * (signals.retention, 10m) plus margin; longer only costs refill time. Segments roll every
     * retention/3, so records older than about 4/3 x retention are gone.
     */
    retention: duration().default(900_000),
    /** an ingest node not heard from this long (telemetry clock) no longer holds a partition's watermark back */
    nodeTimeout: duration().default(30_000),
    /** compacted topic of the deciders' engine state; unset: `<kafka.groupPrefix>.decider.state` */
    stateTopic: z.string().min(1).optional(),
    /** partials records waiting to be sent by an ingest node; past it a batch is dropped whole (counted) */
    maxQueue: z.number().int().min(1).default(100_000),
  })
  .prefault({})

export type DeciderConfig = z.output<typeof deciderSchema>

export const deciderStateTopic = (cfg: DeciderConfig, groupPrefix: string): string => cfg.stateTopic ?? `${groupPrefix}.decider.state`
export const deciderGroup = (groupPrefix: string): string => `${groupPrefix}.decider`
/** the StateStore scope every decider writes and reads: any decider may restore any partition's watches */
export const DECIDER_STATE_SCOPE = 'decider'
