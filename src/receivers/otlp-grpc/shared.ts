/**
 * What both OTLP/gRPC transports (receiver.ts: grpc-js; h2-server.ts: node:http2) share: the method
 * paths, the options and stats shapes, the TCP listener that bounds connections, and the TLS
 * handshake done before HTTP/2. Loaded by both without loading either server.
 */
import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from '../../common/logger.js'
import type { OtlpReceiverOptions } from '../otlp/options.js'
import { TLS_HANDSHAKE_TIMEOUT_MS, type TlsConfig, type TlsMaterial, type TlsStats } from '../tls.js'
import type { AuthConfig, AuthStats } from '../auth.js'
import type { BufferPoolStats } from './buffer-pool.js'
import type { ReceiverStats } from '../stats.js'

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export'
export const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export'

/** Endpoint default 127.0.0.1:4317 (set 0.0.0.0 explicitly to accept other hosts, as k8s/ does). */
export const DEFAULT_GRPC_ENDPOINT = '127.0.0.1:4317'

/** Which implementation serves gRPC (`receivers.otlp.grpc.server`). */
export type GrpcServerKind = 'grpc-js' | 'http2'

export interface OtlpGrpcReceiverOptions extends OtlpReceiverOptions {
  /** the transport: grpc-js (default) or pullback's own over node:http2 (h2-server.ts) */
  server?: GrpcServerKind
  /** open TCP connections at most; more are closed on accept and counted. Default 256 */
  maxConnections?: number
  /** calls in progress at most, all connections together; more => UNAVAILABLE. Default 64 */
  maxConcurrentCalls?: number
  /** a call's request message must arrive within this of the call's start. Default 30 s */
  readTimeoutMs?: number
  /** a connection without calls for this long is closed (GOAWAY). Default 5 min */
  idleTimeoutMs?: number
  /** TLS (mTLS with clientCaFile); unset: plaintext */
  tls?: TlsConfig
  /** bearer-token authentication; unset: none */
  auth?: AuthConfig
  /** http2 server only: idle message buffers kept for reuse at most (buffer-pool.ts); default 8 MiB, 0 = no reuse */
  bufferPoolBytes?: number
}

/** What the transport security refused; `tls` / `auth` are absent when not configured. */
export interface TransportSecurityStats {
  /** connections whose TLS handshake failed or timed out (plaintext clients, missing or untrusted client certificates) */
  tlsHandshakeFailures: number
  tls?: TlsStats
  auth?: AuthStats
}

/** Counters of the connection and call limits (the per-request outcomes are in stats()). */
export interface GrpcLimitStats {
  connectionsOpen: number
  /** connections closed on accept because maxConnections were open */
  connectionsRefused: number
  callsInProgress: number
  /** calls answered UNAVAILABLE because maxConcurrentCalls were in progress */
  callsRefused: number
  /** calls whose message did not arrive within readTimeoutMs */
  readTimeouts: number
  /** calls cancelled by the client while a decode worker had their message: not recorded (the client resends) */
  cancelledWhileDecoding: number
}

/** The http2 server's message buffers (undefined for grpc-js, which allocates its own). */
export type GrpcBufferStats = BufferPoolStats

/** The API both transports offer; OtlpGrpcReceiver (receiver.ts) delegates to one of them. */
export interface GrpcTransport {
  readonly port: number
  start(): Promise<void>
  shutdown(): Promise<void>
  stats(): ReceiverStats
  limits(): GrpcLimitStats
  security(): TransportSecurityStats
  buffers(): GrpcBufferStats | undefined
}

/**
 * A tls.Server that never listens: accepted sockets are emitted into it, and each connection that
 * completes the handshake (with a trusted client certificate when one is required) is handed to
 * `secured`; failed or timed-out handshakes call `failed` and destroy the socket. Reloaded
 * certificates apply to new connections.
 */
export function handshakeServer(material: TlsMaterial, secured: (socket: tls.TLSSocket) => void, failed: () => void): tls.Server {
  const server = tls.createServer({ ...material.serverOptions(), ALPNProtocols: ['h2'], handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS }, (socket) => {
    // node destroys unauthorized sockets before this point when rejectUnauthorized; checked again as the contract
    if (material.requireClientCert && !socket.authorized) {
      failed()
      socket.destroy()
      return
    }
    secured(socket)
  })
  server.on('tlsClientError', (_err, socket) => {
    failed()
    socket.destroy()
  })
  material.onReload((options) => server.setSecureContext(options))
  return server
}

/**
 * Listens on "host:port" with a net.Server capped at `maxConnections` (excess closed on accept:
 * `dropped`); each accepted socket goes to `accepted`. Later listener errors (EMFILE on accept...)
 * are logged, never thrown.
 */
export async function listenTcp(
  endpoint: string,
  maxConnections: number,
  accepted: (socket: net.Socket) => void,
  dropped: () => void,
  logger: Logger,
  name: string,
): Promise<net.Server> {
  const listener = net.createServer(accepted)
  listener.maxConnections = maxConnections
  listener.on('drop', dropped)
  const i = endpoint.lastIndexOf(':')
  const host = endpoint.slice(0, i).replace(/^\[|\]$/g, '')
  const port = Number(endpoint.slice(i + 1))
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject)
    listener.listen(port, host, () => {
      listener.off('error', reject)
      resolve()
    })
  })
  listener.on('error', (err) => logger.warn({ err: err.message }, `${name} listener error`))
  return listener
}
