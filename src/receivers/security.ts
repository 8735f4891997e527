/**
 * A receiver's transport security, the same for OTLP/gRPC (both transports) and OTLP/HTTP: the TLS
 * material and the bearer token, loaded by `load()` at start (their errors fail the start),
 * reloading between `start()` and `stop()`, and what they refused.
 */
import type { Logger } from '../common/logger.js'
import { BearerAuth, type AuthConfig, type AuthStats } from './auth.js'
import { TlsMaterial, type TlsConfig, type TlsStats } from './tls.js'

/** What the transport security refused; `tls` / `auth` are absent when not configured. */
export interface TransportSecurityStats {
  /** connections whose TLS handshake failed or timed out (plaintext clients, missing or untrusted client certificates) */
  tlsHandshakeFailures: number
  tls?: TlsStats
  auth?: AuthStats
}

export class TransportSecurity {
  /** loaded by load(); undefined when not configured */
  tls: TlsMaterial | undefined
  auth: BearerAuth | undefined
  /** counted by the receiver's handshake path */
  handshakeFailures = 0

  constructor(private readonly o: { name: string; logger: Logger; tls: TlsConfig | undefined; auth: AuthConfig | undefined }) {}

  async load(): Promise<void> {
    const ctx = { name: this.o.name, logger: this.o.logger }
    if (this.o.tls) this.tls = await TlsMaterial.load(this.o.tls, ctx)
    if (this.o.auth) this.auth = await BearerAuth.load(this.o.auth, ctx)
  }

  /** the material's reloads begin (the receiver is listening) */
  start(): void {
    this.tls?.start()
    this.auth?.start()
  }

  /** Idempotent: the reloads end. */
  stop(): void {
    this.tls?.stop()
    this.auth?.stop()
  }

  stats(): TransportSecurityStats {
    const out: TransportSecurityStats = { tlsHandshakeFailures: this.handshakeFailures }
    if (this.tls) out.tls = this.tls.stats()
    if (this.auth) out.auth = this.auth.stats()
    return out
  }

  /** for the receiver's "started" log line */
  describe(): { tls: 'off' | 'tls' | 'mtls'; auth: 'none' | 'bearer' } {
    return { tls: this.tls === undefined ? 'off' : this.tls.requireClientCert ? 'mtls' : 'tls', auth: this.auth === undefined ? 'none' : 'bearer' }
  }
}
