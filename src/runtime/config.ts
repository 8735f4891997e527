import { z } from 'zod'
import { duration } from '../config/duration.js'
import { stateSchema } from '../state/config.js'
import { tlsSchema } from '../receivers/tls.js'
import { evaluationTurnsSchema } from './evaluation-scheduler.js'

/**
 * Configuration of the runtime stage (section `runtime:` of the YAML file). Owned by src/runtime.
 *
 * ```yaml
 * runtime:
 *   admin:
 *     endpoint: 0.0.0.0:13134     # /livez /readyz /status
 *     livenessMaxDelay: 10s       # /livez fails when the heartbeat timer is this late
 *     readinessCheckTimeout: 2s   # a readiness check slower than this counts as failing
 *     status: full                # /status detail: full | health; unset: full on a loopback endpoint, health otherwise
 *     tls: { certFile, keyFile, clientCaFile, minVersion, reloadInterval }   # as the OTLP receivers (receivers/tls.ts)
 *   telemetry:                    # pullback's own metrics, OTLP/gRPC
 *     enabled: true               # default: on when an endpoint is configured here or in the environment
 *     endpoint: http://otel-collector.monitoring:4317
 *     interval: 15s
 *     headers: { authorization: "Bearer ..." }
 *   shutdownTimeout: 25s          # SIGTERM -> exit budget; keep below terminationGracePeriodSeconds
 * ```
 *
 * Admin port 13134: one above the Collector's health_check extension (13133), so that pullback and
 * a Collector can share a pod or the host network without colliding, and still read as "health".
 */
export const DEFAULT_ADMIN_PORT = 13134
/** OpenTelemetry's default gRPC endpoint, used when telemetry is switched on without an endpoint. */
export const DEFAULT_OTLP_GRPC_ENDPOINT = 'http://localhost:4317'
/**
 * 15 s instead of the OpenTelemetry default of 60 s: pullback decides within seconds of a deploy, and
 * a dashboard with one point a minute would hide the whole story.
 */
export const DEFAULT_TELEMETRY_INTERVAL_MS = 15_000

/** "host:port", port 0..65535 (99999 used to pass validation and crash the listener with a RangeError) */
const hostPort = () =>
  z
    .string()
    .regex(/^[^\s:]*:\d{1,5}$/, 'expected "host:port" (e.g. "0.0.0.0:13134")')
    .refine((e) => Number(e.slice(e.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535')

export const adminSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    endpoint: hostPort().default(`0.0.0.0:${DEFAULT_ADMIN_PORT}`),
    livenessMaxDelay: duration().default(10_000),
    readinessCheckTimeout: duration().default(2_000),
    /**
     * What /status reveals: `full` (every watched deployment, its readings, decision ids) or `health`
     * (liveness only). Unset: `full` when the endpoint is loopback, `health` otherwise (issue 13
     * item 8: whoever reaches the port must not read the deployments unless the operator says so).
     */
    status: z.enum(['full', 'health']).optional(),
    /** TLS on the admin port (kubelet httpGet probes then need `scheme: HTTPS`, and no client CA) */
    tls: tlsSchema.optional(),
  })
  .prefault({})

export const telemetrySchema = z
  .strictObject({
    /** unset: on when `endpoint` or OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT is set, off otherwise */
    enabled: z.boolean().optional(),
    /** OTLP/gRPC URL; `http://` means plaintext, `https://` TLS. Unset: the OTEL_* variables, then localhost:4317 */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    /** export interval; unset: OTEL_METRIC_EXPORT_INTERVAL (ms), then 15s */
    interval: duration().optional(),
    /** gRPC metadata; merged over OTEL_EXPORTER_OTLP_(METRICS_)HEADERS, these win */
    headers: z.record(z.string().min(1), z.string()).default({}),
  })
  .prefault({})

export const runtimeSchema = z
  .strictObject({
    admin: adminSchema,
    telemetry: telemetrySchema,
    /** the whole SIGTERM drain (stop receivers ... close) must fit in this; see ShutdownController */
    shutdownTimeout: duration().default(25_000),
    /**
     * How often the live sidecar evaluates. Windows close on bucket boundaries (signals.bucket), so a
     * tick more often than that only shortens the wait between a bucket closing and its verdict.
     * Ticks fall on the clock's multiples of it (every whole second at 1 s), so the nodes of a
     * DaemonSet announce a bucket together and the deciders do not wait up to one interval for the
     * node that started last (src/common/ticker.ts).
     */
    tickInterval: duration().default(1_000),
    /** one evaluation tick as bounded event-loop turns (src/runtime/evaluation-scheduler.ts) */
    evaluation: evaluationTurnsSchema,
    /** the engine's watch state on a compacted topic, restored on start (src/state/README.md) */
    state: stateSchema,
  })
  .prefault({})

export type RuntimeConfig = z.output<typeof runtimeSchema>
export type AdminConfig = z.output<typeof adminSchema>
export type TelemetryConfig = z.output<typeof telemetrySchema>

/** Telemetry settings after config and environment were combined: what the exporter actually uses. */
export type ResolvedTelemetry =
  | { state: 'disabled'; reason: string }
  | { state: 'enabled'; endpoint: string; intervalMs: number; timeoutMs: number; headers: Record<string, string> }

/**
 * Combines `runtime.telemetry` with the standard OpenTelemetry environment variables. Precedence per
 * field: the config file, then OTEL_EXPORTER_OTLP_METRICS_*, then OTEL_EXPORTER_OTLP_*, then the
 * default. OTEL_SDK_DISABLED=true and OTEL_METRICS_EXPORTER=none switch export off unless the config
 * says `enabled: true`. Invalid environment values are ignored (the default applies), since the
 * environment is shared with other software and must not stop pullback from starting.
 */
export function resolveTelemetry(cfg: TelemetryConfig, env: NodeJS.ProcessEnv = process.env): ResolvedTelemetry {
  const envEndpoint = nonEmpty(env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT)
  const endpoint = cfg.endpoint ?? envEndpoint
  if (cfg.enabled === false) return { state: 'disabled', reason: 'runtime.telemetry.enabled is false' }
  if (cfg.enabled === undefined) {
    if (nonEmpty(env.OTEL_SDK_DISABLED)?.toLowerCase() === 'true') return { state: 'disabled', reason: 'OTEL_SDK_DISABLED=true' }
    if (nonEmpty(env.OTEL_METRICS_EXPORTER)?.toLowerCase() === 'none') return { state: 'disabled', reason: 'OTEL_METRICS_EXPORTER=none' }
    if (endpoint === undefined) return { state: 'disabled', reason: 'no endpoint configured (runtime.telemetry.endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)' }
  }
  const envInterval = Number(nonEmpty(env.OTEL_METRIC_EXPORT_INTERVAL))
  const intervalMs = cfg.interval ?? (Number.isFinite(envInterval) && envInterval > 0 ? envInterval : DEFAULT_TELEMETRY_INTERVAL_MS)
  const envTimeout = Number(nonEmpty(env.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_TIMEOUT))
  // the periodic reader refuses an export timeout longer than its interval
  const timeoutMs = Math.min(Number.isFinite(envTimeout) && envTimeout > 0 ? envTimeout : 10_000, intervalMs)
  const headers = {
    ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS),
    ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_METRICS_HEADERS),
    ...cfg.headers,
  }
  return { state: 'enabled', endpoint: endpoint ?? DEFAULT_OTLP_GRPC_ENDPOINT, intervalMs, timeoutMs, headers }
}

/** W3C-baggage-like `k1=v1,k2=v2` with percent-encoded values, as the OTLP exporter spec defines it. */
export function parseOtlpHeaders(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (s === undefined) return out
  for (const part of s.split(',')) {
    const eq = part.indexOf('=')
    if (eq <= 0) continue
    const key = part.slice(0, eq).trim().toLowerCase()
    if (key === '') continue
    let value = part.slice(eq + 1).trim()
    try {
      value = decodeURIComponent(value)
    } catch {
      // keep the raw text: a stray % must not drop the header
    }
    out[key] = value
  }
  return out
}

export type StatusDetail = 'full' | 'health'

/** `runtime.admin.status` when set; otherwise `full` on a loopback endpoint, `health` on any other. */
export function statusDetailOf(cfg: Pick<AdminConfig, 'endpoint' | 'status'>): StatusDetail {
  if (cfg.status !== undefined) return cfg.status
  const { host } = splitHostPort(cfg.endpoint)
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\./.test(h) ? 'full' : 'health'
}

/** Splits "host:port"; an empty host means all interfaces. */
export function splitHostPort(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':')
  return { host: endpoint.slice(0, i) || '0.0.0.0', port: Number(endpoint.slice(i + 1)) }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s.trim()
}
