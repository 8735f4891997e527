/** Defaults of the OTLP/gRPC receiver's limits, shared with the config schema (receivers/config.ts) without loading the server. */
export const GRPC_DEFAULTS = {
  maxConnections: 256,
  maxConcurrentCalls: 64,
  readTimeoutMs: 30_000,
  idleTimeoutMs: 300_000,
} as const
