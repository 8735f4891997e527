import { z } from 'zod'
import { duration } from '../config/duration.js'

/**
 * Threshold contracts (section `engine:` of the YAML file). Owned by src/engine.
 *
 * `engine.defaults` is the contract of every service; `engine.services["ns/name"]` overrides any
 * part of it for one service (deep partial, merged over the defaults by `contractFor`). The reasons
 * for every default are in config/pullback.yaml; keep the two in step.
 */

const mode = z.enum(['off', 'observe', 'enforce'])

const errorRateSchema = z.strictObject({
  mode: mode.default('enforce'),
  /** the new error ratio must exceed baseline + minDelta (absolute, 0..1) ... */
  minDelta: z.number().min(0).max(1).default(0.02),
  /** ... and baseline x relativeFactor */
  relativeFactor: z.number().min(1).default(2),
  /**
   * a confirmed breach held for two confirmation spans suffices alone when its ratio reaches
   * max(baseline x criticalFactor, baseline + criticalDelta) (relative: 10x a 0.5 % baseline and 5
   * points above it), or this absolute ratio, whichever is lower
   */
  criticalFactor: z.number().gt(1).default(10),
  criticalDelta: z.number().gt(0).max(1).default(0.05),
  critical: z.number().gt(0).max(1).default(0.3),
})

const latencySchema = z.strictObject({
  mode: mode.default('enforce'),
  quantile: z.number().gt(0).max(1).default(0.99),
  multiplier: z.number().gt(1).default(1.5),
  /** the quantile must also rise by at least this much (ms): 2 ms -> 3 ms is noise, not a regression */
  minIncreaseMs: z.number().min(0).default(20),
  /** a confirmed breach at or above critical x baseline, held for two confirmation spans, suffices alone */
  critical: z.number().gt(1).default(3),
  /**
   * further baseline quantiles whose shift the latency evidence also tests (rules.ts shiftLevels):
   * a slower bulk is evidence long before a tail of 1 % has enough samples. [] tests the tail only.
   */
  shiftQuantiles: z.array(z.number().gt(0).lt(1)).max(4).default([0.5, 0.9]),
  /**
   * latency alone (critical or held) decides only while the version serves at most this many times
   * its snapshot's request rate: a surge slows every version (load.ts). Two witnesses are not held back.
   */
  loadFactor: z.number().gt(1).default(2),
})

const resourceSchema = z.strictObject({
  mode: mode.default('enforce'),
  /** which per-pod series count; cpu follows load (a traffic spike is not a leak), so memory only by default */
  kinds: z.array(z.enum(['memory', 'cpu'])).min(1).default(['memory']),
  /** slope window: resource metrics arrive every 10-60 s, so it is longer than the request window */
  window: duration().prefault('3m'),
  /** growth right after start (caches, JIT, pools) is normal: the slope window starts this long after the deploy */
  warmup: duration().prefault('1m'),
  /** readings per pod inside the window for its slope to count */
  minPoints: z.number().int().min(3).default(4),
  /** breach when the new version's slope exceeds the baseline slope by this fraction of the request per minute */
  threshold: z.number().gt(0).default(0.02),
  /** a confirmed slope at or above this fraction per minute suffices alone (the request is reached in minutes) */
  critical: z.number().gt(0).default(0.1),
})

const probeSchema = z.strictObject({
  mode: mode.default('enforce'),
  /** a container of the new version that has never been ready is a failure only once it is older than this */
  startupGrace: duration().prefault('60s'),
})

const signalsShape = z.strictObject({
  errorRate: errorRateSchema.prefault({}),
  latency: latencySchema.prefault({}),
  resource: resourceSchema.prefault({}),
  probe: probeSchema.prefault({}),
})

const contractShape = {
  /**
   * shortest confirmation span of the request signals; a breach must hold for all of it. A floor:
   * the span is at least two reports of the series (spans: two 5 s buckets; 60 s metrics: 120 s) and
   * grows back in time until it holds `minSamples` (a quiet service is judged over a longer span than
   * a busy API). 10 s = two reports of a span series: the anytime-valid evidence (alpha) holds the
   * false-alarm rate however short the span, so the span only has to say "not one spike"
   */
  window: duration().prefault('15s'),
  /** the span is split into this many slices (one per report at the default); every slice holding its share of `minSamples` must be beyond the threshold */
  slices: z.number().int().min(1).max(30).default(3),
  /** requests (error rate, latency) in the span, and in the baseline, below which a signal is insufficient */
  minSamples: z.number().int().min(1).default(50),
  /**
   * false-alarm probability per deployment of each request signal's sequential test (error rate,
   * latency): the anytime-valid evidence must reach 1/alpha, however often the engine looks
   */
  alpha: z.number().gt(0).max(0.5).default(0.001),
  /** confirmed enforce breaches needed in the same window for a rollback (probe and critical breaches suffice alone) */
  minSignals: z.number().int().min(1).max(4).default(2),
  /**
   * one request signal suffices alone, at any size beyond its threshold, once it has been a
   * confirmed breach at every evaluation for this long, every report in that time beyond the
   * threshold (Flagger's default analysis fails a canary after 5 failed 1-minute checks); 0 turns it off
   */
  singleSignalHold: duration().prefault('5m'),
  /** pre-deploy span of the old version frozen as the baseline */
  baselineWindow: duration().prefault('5m'),
  /**
   * pool the old version's longer pre-deploy history (the store's retention and its long history,
   * up to ~70 min) with the baseline window when the validation gate finds the window healthy: it
   * only ever narrows the upper bounds the sequential tests judge against
   * (src/engine/history-pool.ts), so a quiet service's few errors decide sooner. false: the window alone
   */
  baselineHistory: z.boolean().default(true),
  /** how long after a deployment it is evaluated */
  watch: duration().prefault('10m'),
  /**
   * a deployment whose request signal is beyond its threshold but still short of the evidence bound
   * when `watch` ends stays watched, one span at a time, until it decides, the suspicion clears, or
   * this long after the deployment (a low-traffic service needs more requests than `watch` brings).
   * The sequential tests keep `alpha` however long they run; the extension only lets them finish.
   */
  maxWatch: duration().prefault('30m'),
  /** after a rollback, how long the restored version is verified against the original baseline */
  verificationWindow: duration().prefault('90s'),
  signals: signalsShape.prefault({}),
}

const contractSchema = z.strictObject(contractShape)

/** Every field optional, recursively: what a per-service override may say. */
const overrideSchema = z.strictObject({
  window: duration().optional(),
  slices: z.number().int().min(1).max(30).optional(),
  minSamples: z.number().int().min(1).optional(),
  alpha: z.number().gt(0).max(0.5).optional(),
  minSignals: z.number().int().min(1).max(4).optional(),
  singleSignalHold: duration().optional(),
  baselineWindow: duration().optional(),
  watch: duration().optional(),
  maxWatch: duration().optional(),
  verificationWindow: duration().optional(),
  signals: z
    .strictObject({
      errorRate: errorRateSchema.partial().optional(),
      latency: latencySchema.partial().optional(),
      resource: resourceSchema.partial().optional(),
      probe: probeSchema.partial().optional(),
    })
    .optional(),
})

// `.partial()` keeps the inner `.default()`s, so partial objects would come back filled with defaults
// and silently override the service's inherited values; strip what the user did not write.
function stripDefaults(raw: unknown, parsed: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const r = (raw ?? {}) as Record<string, unknown>
  for (const [k, v] of Object.entries(parsed)) {
    if (!(k in r)) continue
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? stripDefaults(r[k], v as Record<string, unknown>) : v
  }
  return out
}

export type Contract = z.output<typeof contractSchema>
export type ContractOverride = z.output<typeof overrideSchema>

/** How the engine keys services ("namespace/name", or "name" without a namespace); any other key could never match. */
const SERVICE_KEY = z
  .string()
  .regex(/^[^\s/]+(?:\/[^\s/]+)?$/, 'a service key must be "namespace/name" or "name": at most one slash, no empty part, no whitespace')

export const engineSchema = z
  .strictObject({
    defaults: contractSchema.prefault({}),
    /** per-service overrides, keyed "namespace/service" (or "service" when the namespace is empty) */
    services: z.record(SERVICE_KEY, z.unknown()).default({}),
    /** disorder tolerated in telemetry time: the watermark trails the newest telemetry by this much */
    lateness: duration().prefault('5s'),
    /**
     * Early firing (Apache Beam's term for a pane before the watermark): a span series is judged up
     * to its own newest data (and its newest bucket once the clock has passed its end), not only up
     * to the watermark; the sequential tests still consume only
     * data the watermark has passed, plus an uncommitted look at the newer data (cadence.ts earlyEnd)
     */
    earlyFiring: z.boolean().default(true),
    /** watched deployments (incl. recovery verifications) at most; more are dropped and counted */
    maxWatched: z.number().int().min(1).default(20_000),
  })
  .prefault({})
  .transform((cfg, ctx) => {
    const services: Record<string, Contract> = {}
    for (const [name, raw] of Object.entries(cfg.services)) {
      const res = overrideSchema.safeParse(raw)
      if (!res.success) {
        for (const i of res.error.issues) {
          // re-root the nested issue under engine.services[name]; unknown keys keep their list
          ctx.addIssue({ ...(i as z.core.$ZodIssue), path: ['services', name, ...i.path] } as never)
        }
        continue
      }
      services[name] = mergeContract(cfg.defaults, stripDefaults(raw, res.data as Record<string, unknown>) as ContractOverride)
    }
    for (const [where, c] of [[['defaults'], cfg.defaults] as const, ...Object.entries(services).map(([n, c]) => [['services', n], c] as const)]) {
      for (const issue of validateContract(c)) ctx.addIssue({ code: 'custom', path: [...where, ...issue.path], message: issue.message })
    }
    return { defaults: cfg.defaults, services, lateness: cfg.lateness, earlyFiring: cfg.earlyFiring, maxWatched: cfg.maxWatched }
  })

export type EngineConfig = z.output<typeof engineSchema>

export function mergeContract(base: Contract, o: ContractOverride): Contract {
  const s = o.signals ?? {}
  return {
    ...base,
    ...dropUndefined(o),
    signals: {
      errorRate: { ...base.signals.errorRate, ...dropUndefined(s.errorRate ?? {}) },
      latency: { ...base.signals.latency, ...dropUndefined(s.latency ?? {}) },
      resource: { ...base.signals.resource, ...dropUndefined(s.resource ?? {}) },
      probe: { ...base.signals.probe, ...dropUndefined(s.probe ?? {}) },
    },
  }
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined && k !== 'signals') (out as Record<string, unknown>)[k] = v
  return out
}

/** Cross-field rules of one contract; each issue names its path relative to the contract. */
export function validateContract(c: Contract): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = []
  if (c.window <= 0) out.push({ path: ['window'], message: 'must be > 0' })
  if (c.window % c.slices !== 0) out.push({ path: ['slices'], message: `window ${c.window} ms is not divisible into ${c.slices} equal slices` })
  if (c.watch < c.window) out.push({ path: ['watch'], message: `must be at least the window (${c.window} ms), or nothing is ever evaluated` })
  if (c.singleSignalHold > 0 && c.singleSignalHold < 2 * c.window) {
    out.push({ path: ['singleSignalHold'], message: `must be 0 (off) or at least two windows (${2 * c.window} ms): shorter is the critical level's hold` })
  }
  if (c.maxWatch < c.watch) out.push({ path: ['maxWatch'], message: `must be at least watch (${c.watch} ms)` })
  if (c.baselineWindow < c.window) out.push({ path: ['baselineWindow'], message: `must be at least the window (${c.window} ms)` })
  if (c.verificationWindow < c.window) {
    out.push({ path: ['verificationWindow'], message: `must be at least the window (${c.window} ms) so one full window is judged` })
  }
  const r = c.signals.resource
  if (r.critical <= r.threshold) out.push({ path: ['signals', 'resource', 'critical'], message: `must exceed threshold (${r.threshold})` })
  if (r.warmup + r.window > c.watch && r.mode !== 'off') {
    out.push({ path: ['signals', 'resource', 'window'], message: `warmup + window exceed watch (${c.watch} ms): the signal could never be evaluated` })
  }
  const e = c.signals.errorRate
  if (e.critical <= e.minDelta) out.push({ path: ['signals', 'errorRate', 'critical'], message: `must exceed minDelta (${e.minDelta})` })
  const l = c.signals.latency
  if (l.critical < l.multiplier) out.push({ path: ['signals', 'latency', 'critical'], message: `must be >= multiplier (${l.multiplier})` })
  return out
}

/** The contract of one service: its override merged over the defaults. */
export function contractFor(cfg: EngineConfig, serviceKey: string): Contract {
  return cfg.services[serviceKey] ?? cfg.defaults
}

/** The fully defaulted engine config (tests, benches). */
export function defaultEngineConfig(): EngineConfig {
  return engineSchema.parse({})
}
