/**
 * The server request-duration histograms pullback reads requests from, by OpenTelemetry semantic
 * conventions, old and new. Instrumentations in the field export different names for the same thing:
 *
 * | metric | conventions | unit when unset | error |
 * |---|---|---|---|
 * | `http.server.request.duration` | HTTP, stable (semconv 1.23+) | s | status >= 500, or `error.type` without a status |
 * | `http.server.duration` | HTTP, before 1.23 (the default of many JS, Python and Go instrumentations until they opt in) | ms | same |
 * | `rpc.server.duration` | RPC (gRPC, Connect) | ms | a server-side status: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS (numeric or by name), or `error.type` without a status |
 * | `traces.span.metrics.duration` | the Collector's spanmetrics connector (SERVER points only; derived, below) | ms | `status.code` ERROR, or without it status >= 500 |
 * | `http.server.requests` | Micrometer's server timer (Spring Boot, Quarkus, Micronaut, Jersey), through Micrometer's OTLP registry or the OpenTelemetry Java agent's Micrometer bridge | ms (the OTLP registry's default base time unit; it always sets one) | tag `status` >= 500; without a numeric status, `outcome` SERVER_ERROR or an `exception` other than `none` |
 *
 * With `OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` an HTTP instrumentation exports both HTTP names for
 * every request: the legacy one is then a duplicate (`legacy: true`) and is not counted for a
 * service-version that exports the stable one (src/normalize/README.md "One source"). A Spring Boot
 * application run with the OpenTelemetry Java agent exports the agent's stable metric and, through
 * its Micrometer bridge, Micrometer's timer for the same requests: the timer is a duplicate then too.
 *
 * `traces.span.metrics.duration` is the OpenTelemetry Collector's spanmetrics connector (its default
 * namespace; `duration` under its legacy-names gate or another namespace: configure it with
 * `errors: spanmetrics`). It is computed from spans, of every kind: a point counts requests only
 * when its `span.kind` is SERVER, failed when its `status.code` is ERROR (a SERVER span's status is
 * ERROR for a 5xx; without `status.code`, the HTTP status when it is a dimension). It carries the
 * spans' resource attributes (the connector copies them unless its `excludeResourceMetrics` gate is
 * on), so it is keyed by service, version and pod as the spans are. Being derived (`derived: true`),
 * it counts only for a service-version that sends neither spans nor a request metric of its own.
 */
import type { Attributes } from '../receivers/otlp/model.js'

export interface RequestMetricSpec {
  /** microseconds per unit when the metric's unit is "" (unset): the unit its conventions define */
  defaultUnitUs: number
  /** the requests of a point with these attributes failed (server-side) */
  isError(attributes: Attributes): boolean
  /** an older name of a request another name of the same service-version may also count */
  legacy: boolean
  /**
   * Computed from the service's spans by a Collector (spanmetrics): not counted where the same
   * service-version's spans or own request metric (any non-derived one) count its requests.
   */
  derived?: true
  /**
   * Whether a point holds a server's requests; absent: every point does. A metric computed from
   * spans of every kind keeps its SERVER points only (the span path's rule).
   */
  server?(attributes: Attributes): boolean
}

const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN
  return Number.isFinite(n) ? n : undefined
}

/** `error.type` is set by stable conventions when a request failed without a status (an exception, a timeout) */
const errorTypeOnly = (a: Attributes): boolean => typeof a['error.type'] === 'string' && a['error.type'] !== ''

/** HTTP status of a point or span: `http.response.status_code`, else the older `http.status_code`; 0 when absent */
export function httpStatusOf(a: Attributes): number {
  return num(a['http.response.status_code'] ?? a['http.status_code']) ?? 0
}

/** gRPC codes a server reports as its own failure (OTel semconv for gRPC server spans) */
const GRPC_SERVER_ERROR_CODES = new Set([2, 4, 12, 13, 14, 15])
const GRPC_SERVER_ERROR_NAMES = new Set(['unknown', 'deadline_exceeded', 'unimplemented', 'internal', 'unavailable', 'data_loss'])

/**
 * The error rules of one family of conventions: where a point's status is, and whether that status
 * (with the rest of the attributes) says the server failed. A configured `statusAttribute` replaces
 * `statusOf` where a point has it.
 */
interface ErrorRule {
  statusOf(a: Attributes): unknown
  failed(status: unknown, a: Attributes): boolean
}

/** a span status of ERROR as the spanmetrics connector writes it (`STATUS_CODE_ERROR`; `Error` in older connectors' docs) */
const SPAN_STATUS_ERROR = /^(status_code_)?error$/i

const ERROR_RULES: Readonly<Record<'http' | 'rpc' | 'micrometer' | 'spanmetrics', ErrorRule>> = {
  http: {
    statusOf: httpStatusOf,
    failed: (v, a) => {
      const s = num(v) ?? httpStatusOf(a)
      return s >= 500 || (s === 0 && errorTypeOnly(a))
    },
  },
  rpc: {
    statusOf: (a) => a['rpc.grpc.status_code'] ?? a['rpc.response.status_code'] ?? a['rpc.connect_rpc.error_code'],
    failed: (v, a) => {
      if (v === undefined) return errorTypeOnly(a)
      const n = num(v)
      if (n !== undefined) return GRPC_SERVER_ERROR_CODES.has(n)
      return typeof v === 'string' && GRPC_SERVER_ERROR_NAMES.has(v.toLowerCase())
    },
  },
  /**
   * Micrometer's `http.server.requests` tags (Spring's `status`, `outcome`, `exception`): the status
   * is a string (`"503"`, or `"UNKNOWN"` when the response never got one); the OpenTelemetry
   * attribute names are read too, for a bridge that renames them.
   */
  micrometer: {
    statusOf: (a) => a['status'],
    failed: (v, a) => {
      const s = num(v) ?? httpStatusOf(a)
      if (s > 0) return s >= 500
      if (a['outcome'] === 'SERVER_ERROR') return true
      const ex = a['exception'] ?? a['error']
      return (typeof ex === 'string' && ex !== '' && ex.toLowerCase() !== 'none') || errorTypeOnly(a)
    },
  },
  /**
   * The spanmetrics connector's dimensions: `status.code` (`STATUS_CODE_ERROR`, `_UNSET`, `_OK`);
   * without it (a renamed dimension read through `statusAttribute`, or none), an HTTP status >= 500.
   */
  spanmetrics: {
    statusOf: (a) => a['status.code'],
    failed: (v, a) => {
      if (typeof v === 'string' && v !== '') {
        const n = num(v)
        return n !== undefined ? n >= 500 : SPAN_STATUS_ERROR.test(v)
      }
      if (typeof v === 'number') return v >= 500
      return httpStatusOf(a) >= 500
    },
  },
}

/** SPAN_KIND_SERVER as the spanmetrics connector writes `span.kind`; a point without the dimension is taken as a server's */
const SERVER_KIND = /^(span_kind_)?server$/i
const serverSpanKind = (a: Attributes): boolean => {
  const k = a['span.kind']
  return k === undefined || (typeof k === 'string' && SERVER_KIND.test(k))
}

const isErrorBy = (rule: ErrorRule, statusAttribute?: string): RequestMetricSpec['isError'] =>
  statusAttribute === undefined ? (a) => rule.failed(rule.statusOf(a), a) : (a) => rule.failed(a[statusAttribute] ?? rule.statusOf(a), a)

export const STABLE_HTTP_METRIC = 'http.server.request.duration'
/** the spanmetrics connector's duration histogram under its default namespace */
export const SPANMETRICS_DURATION = 'traces.span.metrics.duration'

export const REQUEST_METRICS: ReadonlyMap<string, RequestMetricSpec> = new Map([
  [STABLE_HTTP_METRIC, { defaultUnitUs: 1e6, isError: isErrorBy(ERROR_RULES.http), legacy: false }],
  ['http.server.duration', { defaultUnitUs: 1e3, isError: isErrorBy(ERROR_RULES.http), legacy: true }],
  ['rpc.server.duration', { defaultUnitUs: 1e3, isError: isErrorBy(ERROR_RULES.rpc), legacy: false }],
  ['http.server.requests', { defaultUnitUs: 1e3, isError: isErrorBy(ERROR_RULES.micrometer), legacy: true }],
  // ms: the connector's unit unless its useSecondAsDefaultMetricsUnit gate is on; it always sets the metric's unit
  [SPANMETRICS_DURATION, { defaultUnitUs: 1e3, isError: isErrorBy(ERROR_RULES.spanmetrics), legacy: false, derived: true, server: serverSpanKind }],
])

const UNIT_US = { s: 1e6, ms: 1e3, us: 1, ns: 1e-3 } as const

/**
 * The spec of a configured request metric (`normalize.requestMetrics`): its conventions' error rules,
 * the status read from `statusAttribute` when one is named (else, or where a point lacks it, from
 * the conventions' own attributes). Never a legacy duplicate.
 */
export function customRequestMetric(m: { unit: keyof typeof UNIT_US; errors: keyof typeof ERROR_RULES; statusAttribute?: string | undefined }): RequestMetricSpec {
  const spec: RequestMetricSpec = { defaultUnitUs: UNIT_US[m.unit], isError: isErrorBy(ERROR_RULES[m.errors], m.statusAttribute), legacy: false }
  // a spanmetrics connector's histogram under another name (another namespace, the legacy names)
  if (m.errors === 'spanmetrics') {
    spec.derived = true
    spec.server = serverSpanKind
  }
  return spec
}

/**
 * Microseconds per unit of a duration metric; undefined when the unit is not a time unit pullback
 * knows. UCUM symbols (OpenTelemetry) and the lower-case `TimeUnit` names Micrometer writes as a
 * timer's base unit (`milliseconds`, `seconds`).
 */
export function unitToUs(unit: string, spec: RequestMetricSpec): number | undefined {
  switch (unit) {
    case '':
      return spec.defaultUnitUs
    case 's':
    case 'seconds':
      return 1e6
    case 'ms':
    case 'milliseconds':
      return 1e3
    case 'us':
    case 'µs':
    case 'microseconds':
      return 1
    case 'ns':
    case 'nanoseconds':
      return 1e-3
    default:
      return undefined
  }
}
