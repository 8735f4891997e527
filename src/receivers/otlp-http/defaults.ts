/** Defaults of the OTLP/HTTP receiver's limits, shared with the config schema (receivers/config.ts) without loading the server. */
export const HTTP_DEFAULTS = {
  maxInFlight: 64,
  maxConnections: 1024,
  readTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  minBodyRate: 1024,
} as const
