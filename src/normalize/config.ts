import { z } from 'zod'
import { duration } from '../config/duration.js'
import { REQUEST_METRICS } from './request-metrics.js'
import { warmupSchema } from '../warmup/config.js'

/**
 * Configuration of the normalize stage. Owned by src/normalize; meant to be composed into the
 * top-level schema as `normalize:` (src/config/schema.ts, owned by the lead).
 */
export const normalizeSchema = z
  .strictObject({
    cumulative: z
      .strictObject({
        /** cumulative streams (resource + metric + point attributes) remembered for cumulative->delta; more are rejected and counted */
        maxStreams: z.number().int().min(1).default(100_000),
        /** a stream not updated for this long (telemetry time) is forgotten; its next point primes again */
        idleTtl: duration().default(900_000),
        /**
         * the first point of a stream is emitted whole (as if it were a delta from zero) when its
         * start time is at most this far before its time: the process just started (a new pod of a
         * new version), so all of it is recent. Otherwise the first point only primes the state.
         * The point after a reset (restart, counter decrease) follows the same rule.
         */
        freshStart: duration().default(120_000),
      })
      .prefault({}),
    sourcePreference: z
      .strictObject({
        /**
         * One source of requests per service-version: the OpenTelemetry HTTP instrumentations export
         * SERVER spans AND `http.server.request.duration` for the same requests. Request metric
         * points of a service-version whose SERVER spans were seen up to this long before the
         * point's time (telemetry time) are not counted; when spans stop for longer, metrics count
         * again. Longer than any export interval and span batching delay, short enough that a lost
         * span pipeline is noticed within one watch.
         */
        spanRecency: duration().default(300_000),
        /** service-versions whose last SERVER span time is remembered; least recently updated are forgotten first */
        maxServiceVersions: z.number().int().min(1).default(50_000),
        /**
         * Are a service's spans all its requests? Each metric export interval of a process that sends
         * both is compared with the SERVER spans that ended in it (src/normalize/span-coverage.ts).
         * A service whose spans hold fewer than `sampledBelow` of its metric requests (head or tail
         * sampling, tracing on some routes only) is `sampled`: its request metrics count instead of
         * its spans, for all its versions, until the spans hold `completeAbove` again.
         */
        coverage: z
          .strictObject({
            enabled: z.boolean().default(true),
            /** metric requests compared (over at least two intervals) before a service is judged */
            minRequests: z.number().int().min(1).default(200),
            sampledBelow: z.number().gt(0).lt(1).default(0.75),
            completeAbove: z.number().gt(0).max(1).default(0.9),
            /** how far past an interval's end the process's spans must reach before it is compared (span batching, Kafka lag) */
            settle: duration().default(15_000),
            /** processes (and services) remembered; least recently updated are forgotten first */
            maxResources: z.number().int().min(1).default(10_000),
          })
          .refine((c) => c.completeAbove > c.sampledBelow, { message: 'completeAbove must be above sampledBelow', path: ['completeAbove'] })
          .prefault({}),
      })
      .prefault({}),
    /**
     * Each process's first requests after it starts serving, left out of its version's request
     * series (a JIT warming, cold caches and pools): src/warmup/README.md. Off by default.
     */
    warmup: warmupSchema,
    /** pods whose container resource requests are remembered; least recently updated are forgotten first */
    maxPods: z.number().int().min(1).default(50_000),
    /**
     * Request-duration histograms under names the conventions do not give (request-metrics.ts
     * reads `http.server.request.duration`, `http.server.duration`, `rpc.server.duration` and
     * Micrometer's `http.server.requests` without being told): a team's own instrument, or a
     * server histogram renamed on its way. Each is read exactly as the built-in names are.
     */
    requestMetrics: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          /** the unit when the metric's own is unset ("") */
          unit: z.enum(['s', 'ms', 'us', 'ns']).default('s'),
          /**
           * whose rules say a point's requests failed: HTTP status >= 500, gRPC server codes,
           * Micrometer's tags, or a spanmetrics connector's `status.code` (which also keeps only
           * its SERVER points and counts it only where nothing else counts the requests)
           */
          errors: z.enum(['http', 'rpc', 'micrometer', 'spanmetrics']).default('http'),
          /** the attribute holding the status, when it is not the conventions' own (e.g. `status`, `code`) */
          statusAttribute: z.string().min(1).optional(),
        }),
      )
      .max(32)
      .default([])
      .superRefine((list, ctx) => {
        const seen = new Set<string>()
        list.forEach((m, i) => {
          if (REQUEST_METRICS.has(m.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${m.name} is read already (a built-in request metric)` })
          else if (seen.has(m.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${m.name} is listed twice` })
          seen.add(m.name)
        })
      }),
  })
  .prefault({})

export type NormalizeConfig = z.output<typeof normalizeSchema>
export type NormalizeConfigInput = z.input<typeof normalizeSchema>
