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
    /**
     * an ingest node not heard from this long (the partition's data clock: the newest clock the nodes
     * announced on it) no longer holds a partition's watermark back: a node that crashed or was cut off
     */
    nodeTimeout: duration().default(30_000),
    /**
     * a node that announced it is leaving (graceful shutdown) holds the watermark back this long after
     * its announcement (same clock), then no longer: a restart within it (rolling update of the
     * DaemonSet) loses nothing. Unset: signals.bucket + engine.lateness (10s by default), at most
     * nodeTimeout: a permanent leave then delays verdicts once by about one normal decision delay.
     * 0: stop waiting at once (a restarted node's telemetry older than engine.lateness is then late).
     */
    leaveGrace: duration().optional(),
    /** compacted topic of the deciders' engine state; unset: `<kafka.groupPrefix>.decider.state` */
    stateTopic: z.string().min(1).optional(),
    /** partials records waiting to be sent by an ingest node; past it a batch is dropped whole (counted) */
    maxQueue: z.number().int().min(1).default(100_000),
  })
  .refine((d) => d.leaveGrace === undefined || d.leaveGrace <= d.nodeTimeout, {
    path: ['leaveGrace'],
    message: 'must not be longer than decider.nodeTimeout (a node that left is waited for at most as long as one that crashed)',
  })
  .prefault({})

export type DeciderConfig = z.output<typeof deciderSchema>

export const deciderStateTopic = (cfg: DeciderConfig, groupPrefix: string): string => cfg.stateTopic ?? `${groupPrefix}.decider.state`
/** decider.leaveGrace, or its default: one bucket + lateness, at most nodeTimeout (see the schema) */
export const deciderLeaveGrace = (cfg: DeciderConfig, bucketMs: number, latenessMs: number): number =>
  cfg.leaveGrace ?? Math.min(cfg.nodeTimeout, bucketMs + latenessMs)
export const deciderGroup = (groupPrefix: string): string => `${groupPrefix}.decider`
/** the StateStore scope every decider writes and reads: any decider may restore any partition's watches */
export const DECIDER_STATE_SCOPE = 'decider'
