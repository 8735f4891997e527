import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * The engine's changelog store (section `runtime.state:` of the YAML file). Owned by src/state; see
 * src/state/README.md for the topic, its keys and what happens at each limit.
 */
export const stateSchema = z
  .strictObject({
    /** persist watch state and restore it on start; off = every restart forgets the watches */
    enabled: z.boolean().default(true),
    /** compacted topic; unset: `<kafka.groupPrefix>.engine.state` (pullback.engine.state) */
    topic: z.string().min(1).optional(),
    /**
     * whose records these are: several sidecars share the topic, each restores only its own scope.
     * Unset: the NODE_NAME environment variable (a DaemonSet pod's node: stable across its restarts),
     * else "default". No "/" or whitespace.
     */
    scope: z
      .string()
      .regex(/^[^/\s]+$/, 'no "/" or whitespace')
      .optional(),
    /** partitions of the topic when pullback creates it; must equal the topic's real count */
    partitions: z.number().int().min(1).max(1024).default(1),
    /** a watch is written at most once per interval unless its status, decision or baseline changed */
    minWriteInterval: duration().default(10_000),
    /** distinct records waiting to be written; past it new ones are refused, counted, and re-exported later */
    maxQueue: z.number().int().min(1).default(50_000),
    /** records per produce call */
    maxBatch: z.number().int().min(1).default(500),
    /** on shutdown, how long pending records may take to be written */
    flushTimeout: duration().default(3_000),
    /** at start, how long reading the topic to its end may take before the sidecar starts without restored state */
    restoreTimeout: duration().default(120_000),
    /** records of this scope held while reading at start; past it further keys are ignored (counted) */
    maxRecords: z.number().int().min(1).default(200_000),
    /**
     * span-coverage judgements (a service's SERVER spans found sampled: its request metrics count,
     * src/normalize/span-coverage.ts) shared by the fleet's sidecars on a compacted topic, and
     * kept across restarts (src/state/span-coverage-topic.ts)
     */
    spanCoverage: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** compacted topic, one partition; unset: `<kafka.groupPrefix>.span-coverage` */
        topic: z.string().min(1).optional(),
      })
      .prefault({}),
    versions: z
      .strictObject({
        /** services whose known versions are tracked */
        maxServices: z.number().int().min(1).default(20_000),
        /** versions tracked per service (least recently seen forgotten first) */
        maxPerService: z.number().int().min(2).default(16),
        /** how often last-seen times are refreshed (telemetry time); records hold them rounded down to max(refresh, signals.idleTtl / 2) */
        refresh: duration().default(60_000),
      })
      .prefault({}),
  })
  .prefault({})

export type StateConfig = z.output<typeof stateSchema>

/** The topic and scope a config resolves to. */
export function resolveState(cfg: StateConfig, groupPrefix: string, env: NodeJS.ProcessEnv = process.env): { topic: string; scope: string } {
  const node = env.NODE_NAME?.trim()
  const scope = cfg.scope ?? (node !== undefined && /^[^/\s]+$/.test(node) ? node : 'default')
  return { topic: cfg.topic ?? `${groupPrefix}.engine.state`, scope }
}
