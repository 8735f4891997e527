import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * Configuration of the signals stage (section `signals:` of the YAML file). Owned by src/signals.
 *
 * Memory model (measured by `node dist/bench/signals.js`): a series (one service-version) keeps
 * `fineRetention / bucket` fine buckets and `retention / coarseBucket` coarse buckets; every bucket
 * that holds latency samples owns one HDR histogram (src/signals/hdr.ts, 32-bit counts, fixed size).
 * With 1 significant digit the counts of a histogram over 1 us..60 s take about 1.8 KiB, with 2
 * digits about 5x that (224 KiB per full series), with 3 digits about 24x. The default (1 digit: quantiles within +6.25 %, the same
 * quantization on baseline and candidate) keeps a fully populated series under 64 KiB.
 */
export const histogramSchema = z
  .strictObject({
    /** smallest latency that is told apart from 0, microseconds */
    lowestUs: z.number().int().min(1).default(1),
    /** larger latencies are clamped to this value (and counted in `clampedValues`), microseconds */
    highestUs: z.number().int().min(2).default(60_000_000),
    /** HDR significant value digits: 1 (+-6.25 %), 2 (+-0.8 %, 4x memory) or 3 (+-0.1 %, 24x memory) */
    significantDigits: z.number().int().min(1).max(3).default(1),
    /** idle histograms kept for reuse (reset) instead of being destroyed; beyond this they are freed */
    poolSize: z.number().int().min(0).default(1024),
  })
  .prefault({})

export const signalsSchema = z
  .strictObject({
    /** width of a fine bucket; windows are answered at this granularity */
    bucket: duration().default(5_000),
    /**
     * how far back (from the newest bucket of a series) fine buckets are kept; must cover the longest
     * observation window plus the allowed lateness. Older data is folded into coarse buckets.
     */
    fineRetention: duration().default(60_000),
    /** width of a coarse bucket (a multiple of `bucket`) */
    coarseBucket: duration().default(60_000),
    /**
     * total history per series; must cover the pre-deploy baseline window (default 5 min) plus the
     * time until the new version is noticed. Data older than `newest - retention` is dropped as late.
     */
    retention: duration().default(600_000),
    /**
     * long history per series beyond `retention`: one summary per coarse bucket (requests, errors, a
     * 48-bucket latency histogram; 6.5 KiB per series for 60 min, src/signals/history.ts) for this
     * long before the coarse ring. The engine's validation gate reads it to recognise a breach that
     * began before the retention as a breach, not as the service's normal state. 0 turns it off.
     */
    history: duration().default(3_600_000),
    /**
     * limit on tracked service-versions; observations of further series are counted in `overflowed`
     * and dropped (see `reserveForKnown` for who gets the last places)
     */
    maxSeries: z.number().int().min(1).default(20_000),
    /** a series without observations for this long (telemetry time) expires, unless pinned */
    idleTtl: duration().default(600_000),
    /**
     * an observation later than its series' newest time (or, for a series without data, the store's
     * confirmed time) plus this skew is dropped and counted as `future` (see README "Time")
     */
    maxFutureSkew: duration().default(120_000),
    /**
     * after this many consecutive `future` drops of one series (no accepted observation of that
     * series between them) the store accepts that the series' time really jumped (e.g. a gap in a
     * replay file); the same number of consecutive too-old observations re-bases a series whose
     * data lies entirely beyond its ring (`rebased`)
     */
    futureJumpAfter: z.number().int().min(1).default(1_000),
    /**
     * live mode only (the store was given a wall clock): observations later than now + this skew are
     * dropped and counted as `future`; observations older than now - `retention` as `late`
     */
    maxClockSkew: duration().default(120_000),
    /**
     * an aggregate observation (a metric point's delta over (startMs, timeMs]) is spread over the
     * buckets of at most this much time before its end; a longer interval is treated as this long
     */
    maxSpread: duration().default(300_000),
    /**
     * share of `maxSeries` that only series of known services may use (a service is known once one
     * of its versions has data spanning `knownAfter`, or is pinned): a flood of new service names
     * cannot lock out the next version of a service with history
     */
    reserveForKnown: z.number().min(0).max(1).default(0.2),
    /** how long a service's data must span before it counts as known (see `reserveForKnown`) */
    knownAfter: duration().default(60_000),
    /** per series: pods x resources tracked; more are counted in `podOverflow` */
    maxPodsPerSeries: z.number().int().min(1).default(64),
    /** per pod and resource: readings kept for the slope (oldest dropped first) */
    resourceSamples: z.number().int().min(2).default(64),
    /** per series: probe readings kept (oldest dropped first) */
    probeSamples: z.number().int().min(1).default(256),
    /** new-version events waiting for `drainNewVersions()`; more are counted in `versionsDropped` */
    maxPendingVersions: z.number().int().min(1).default(10_000),
    histogram: histogramSchema,
  })
  .superRefine((c, ctx) => {
    if (c.bucket <= 0) ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'bucket must be > 0' })
    else {
      if (c.coarseBucket % c.bucket !== 0 || c.coarseBucket < c.bucket)
        ctx.addIssue({ code: 'custom', path: ['coarseBucket'], message: 'coarseBucket must be a multiple of bucket' })
      if (c.fineRetention % c.bucket !== 0 || c.fineRetention < 2 * c.bucket)
        ctx.addIssue({ code: 'custom', path: ['fineRetention'], message: 'fineRetention must be a multiple of bucket, at least 2 buckets' })
    }
    if (c.maxFutureSkew < c.bucket)
      ctx.addIssue({ code: 'custom', path: ['maxFutureSkew'], message: 'maxFutureSkew must be >= bucket' })
    if (c.history < 0 || (c.coarseBucket > 0 && c.history % c.coarseBucket !== 0))
      ctx.addIssue({ code: 'custom', path: ['history'], message: 'history must be a multiple of coarseBucket (0 turns it off)' })
    if (c.retention < c.fineRetention)
      ctx.addIssue({ code: 'custom', path: ['retention'], message: 'retention must be >= fineRetention' })
    if (c.histogram.highestUs < 2 * c.histogram.lowestUs)
      ctx.addIssue({ code: 'custom', path: ['histogram', 'highestUs'], message: 'highestUs must be >= 2 x lowestUs' })
  })
  .prefault({})

export type SignalsConfig = z.output<typeof signalsSchema>
/** what a YAML file or a test may pass: every field optional, durations as "5s" strings or ms */
export type SignalsConfigInput = z.input<typeof signalsSchema>
