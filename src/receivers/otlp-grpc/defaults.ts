/** Defaults of the OTLP/gRPC receiver's limits, shared with the config schema (receivers/config.ts) without loading the server. */
export const GRPC_DEFAULTS = {
  maxConnections: 256,
  maxConcurrentCalls: 64,
  readTimeoutMs: 30_000,
  idleTimeoutMs: 300_000,
  /**
   * the transport: `http2` is pullback's own (h2-server.ts): 0.24-0.36x the Collector's CPU per span
   * and 0.87-1.09x its peak RSS, against grpc-js's 0.50-0.72x and 1.32-1.48x (bench/peer-spanmetrics.ts);
   * `grpc-js` stays selectable as the fallback
   */
  server: 'http2',
  /** http2 server: idle message buffers kept for reuse at most (buffer-pool.ts) */
  bufferPoolBytes: 8 * 1024 * 1024,
} as const
