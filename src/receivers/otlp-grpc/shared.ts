/**
 * What both OTLP/gRPC transports (receiver.ts: grpc-js; h2-server.ts: node:http2) share: the method
 * paths, the options and stats shapes, the TCP listener that bounds connections, the TLS
 * handshake done before HTTP/2, and GrpcServerBase (options, counters, listening, the stop
 * bookkeeping). Loaded by both without loading either server.
 */
import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from '../../common/logger.js'
import type { TelemetryConsumer } from '../consumer.js'
import type { MemoryGuard } from '../memory.js'
import type { WorkerPool } from '../../workers/pool.js'
import { resolveOtlpOptions, type OtlpReceiverOptions } from '../otlp/options.js'
import { TLS_HANDSHAKE_TIMEOUT_MS, type TlsConfig, type TlsMaterial } from '../tls.js'
import type { AuthConfig } from '../auth.js'
import { TransportSecurity, type TransportSecurityStats } from '../security.js'
import type { BufferPoolStats } from './buffer-pool.js'
import { copyStats, newReceiverStats, type ReceiverStats } from '../stats.js'
import { GRPC_DEFAULTS } from './defaults.js'

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export'
export const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export'

/** Endpoint default 127.0.0.1:4317 (set 0.0.0.0 explicitly to accept other hosts, as k8s/ does). */
export const DEFAULT_GRPC_ENDPOINT = '127.0.0.1:4317'

/** Which implementation serves gRPC (`receivers.otlp.grpc.server`). */
export type GrpcServerKind = 'grpc-js' | 'http2'

export interface OtlpGrpcReceiverOptions extends OtlpReceiverOptions {
  /** the transport: pullback's own over node:http2 (h2-server.ts; the default) or grpc-js */
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

export type { TransportSecurityStats } from '../security.js'

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

/**
 * The part of a gRPC transport that does not depend on the server library: resolved options, the
 * per-request and limit counters, TLS / auth material, the connection-capped listener and the
 * lifecycle state. A subclass builds its server in start() between loadSecurity() and listen(),
 * and ends its shutdown() with stopped().
 */
export abstract class GrpcServerBase implements GrpcTransport {
  readonly name = 'otlp-grpc'
  protected readonly consumer: TelemetryConsumer
  protected readonly endpoint: string
  protected readonly maxRequestBytes: number
  protected readonly guard: MemoryGuard
  protected readonly maxAttributes: number
  protected readonly drainTimeoutMs: number
  protected readonly maxConnections: number
  protected readonly maxConcurrentCalls: number
  protected readonly readTimeoutMs: number
  protected readonly idleTimeoutMs: number
  protected readonly logger: Logger
  protected readonly workers: WorkerPool | undefined
  protected readonly counters: ReceiverStats = newReceiverStats()
  protected readonly sec: TransportSecurity
  protected listener: net.Server | undefined
  /** accepted sockets still open (at most maxConnections) */
  protected readonly sockets = new Set<net.Socket>()
  protected calls = 0
  protected callsRefused = 0
  protected readTimeouts = 0
  protected cancelledWhileDecoding = 0
  private connectionsRefused = 0
  protected boundPort = 0
  protected state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  protected stopping: Promise<void> | undefined

  constructor(opts: OtlpGrpcReceiverOptions) {
    const o = resolveOtlpOptions(opts, DEFAULT_GRPC_ENDPOINT)
    this.consumer = o.consumer
    this.endpoint = o.endpoint
    this.maxRequestBytes = o.maxRequestBytes
    this.guard = o.memoryGuard
    this.maxAttributes = o.maxAttributes
    this.drainTimeoutMs = o.drainTimeoutMs
    this.logger = o.logger
    this.maxConnections = opts.maxConnections ?? GRPC_DEFAULTS.maxConnections
    this.maxConcurrentCalls = opts.maxConcurrentCalls ?? GRPC_DEFAULTS.maxConcurrentCalls
    this.readTimeoutMs = opts.readTimeoutMs ?? GRPC_DEFAULTS.readTimeoutMs
    this.idleTimeoutMs = opts.idleTimeoutMs ?? GRPC_DEFAULTS.idleTimeoutMs
    this.sec = new TransportSecurity({ name: this.name, logger: this.logger, tls: opts.tls, auth: opts.auth })
    this.workers = opts.workers
  }

  /** the bound port (useful with port 0) */
  get port(): number {
    return this.boundPort
  }

  stats(): ReceiverStats {
    return copyStats(this.counters)
  }

  limits(): GrpcLimitStats {
    return {
      connectionsOpen: this.sockets.size,
      connectionsRefused: this.connectionsRefused,
      callsInProgress: this.calls,
      callsRefused: this.callsRefused,
      readTimeouts: this.readTimeouts,
      cancelledWhileDecoding: this.cancelledWhileDecoding,
    }
  }

  security(): TransportSecurityStats {
    return this.sec.stats()
  }

  abstract buffers(): GrpcBufferStats | undefined
  abstract start(): Promise<void>
  abstract shutdown(): Promise<void>

  /** The first step of start(): refuses a second start, loads the TLS and token material (their errors fail the start). */
  protected async loadSecurity(): Promise<void> {
    if (this.state !== 'new') throw new Error(`${this.name}: start() called twice`)
    await this.sec.load()
  }

  /**
   * The last step of start(): listens with at most maxConnections sockets; each accepted socket goes
   * to `connect`, after the TLS handshake when TLS is on (a handshake that completes once shutdown
   * began has no server to go to: destroyed). Then running; the material's reloads start.
   */
  protected async listen(server: GrpcServerKind, connect: (socket: net.Socket) => void): Promise<void> {
    const handshake =
      this.sec.tls === undefined
        ? undefined
        : handshakeServer(
            this.sec.tls,
            (secure) => {
              if (this.state === 'running') connect(secure)
              else secure.destroy()
            },
            () => this.sec.handshakeFailures++,
          )
    const listener = await listenTcp(
      this.endpoint,
      this.maxConnections,
      (socket) => {
        this.sockets.add(socket)
        socket.once('close', () => this.sockets.delete(socket))
        if (handshake) handshake.emit('connection', socket)
        else connect(socket)
      },
      () => this.connectionsRefused++,
      this.logger,
      this.name,
    )
    this.boundPort = (listener.address() as net.AddressInfo).port
    this.listener = listener
    this.state = 'running'
    this.sec.start()
    this.logger.info(
      {
        endpoint: this.endpoint,
        port: this.boundPort,
        server,
        maxConnections: this.maxConnections,
        maxConcurrentCalls: this.maxConcurrentCalls,
        ...this.sec.describe(),
      },
      'otlp-grpc receiver started',
    )
  }

  /** The last step of shutdown(), once the server is closed. */
  protected stopped(): void {
    this.state = 'stopped'
    this.sec.stop()
    this.logger.info({ port: this.boundPort }, 'otlp-grpc receiver stopped')
  }
}
