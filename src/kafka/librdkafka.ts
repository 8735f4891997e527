/**
 * What both librdkafka consumers (confluent.ts through the library's KafkaJS-compatible API,
 * confluent-budget.ts through its lower-level one) and the producer and admin client share: error
 * classification, headers, the security-failure watch over the library's log, and consumer lag
 * from librdkafka's statistics. No client import: loaded with the module that needs it.
 */
import { PermanentError, RetryableError, errorMessage } from '../common/errors.js'
import type { Logger } from '../common/logger.js'
import type { KafkaSecuritySummary } from './config.js'
import type { ConsumerOptions, Headers } from './types.js'

/** how long a consumer waits before a rejected batch is delivered again, after `streak` rejections in a row: 400 ms doubling to 10 s */
export function redeliveryBackoffMs(streak: number): number {
  return Math.min(10_000, 200 * 2 ** Math.min(streak, 6))
}

/** A consumer's error to its `onError`, else a warning; never throws (it runs inside the consumer loop). */
export function reportConsumerError(opts: Pick<ConsumerOptions, 'onError' | 'groupId'>, log: Logger, err: unknown): void {
  try {
    if (opts.onError) opts.onError(err)
    else log.warn({ err: errorMessage(err), group: opts.groupId }, 'consumer batch failed; will redeliver')
  } catch {
    // an error reporter must never break the consumer loop
  }
}

export function headersOf(raw: unknown): Headers {
  const out: Headers = {}
  if (raw === null || typeof raw !== 'object') return out
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const first = Array.isArray(v) ? v[0] : v
    if (first === undefined || first === null) continue
    out[k] = Buffer.isBuffer(first) ? first.toString('utf8') : String(first)
  }
  return out
}

/** librdkafka error codes that will not succeed on retry. */
const PERMANENT = new Set(['ERR_MSG_SIZE_TOO_LARGE', 'ERR_TOPIC_AUTHORIZATION_FAILED', 'ERR_INVALID_MSG', 'ERR__INVALID_ARG', 'ERR_RECORD_LIST_TOO_LARGE'])

export function classifyKafkaError(err: unknown, what: string): Error {
  const e = err as { code?: unknown; type?: unknown; retriable?: unknown }
  const code = typeof e?.type === 'string' ? e.type : String(e?.code ?? '')
  if (PERMANENT.has(code)) return new PermanentError('KAFKA_PERMANENT', `${what}: ${errorMessage(err)}`, { cause: err })
  return new RetryableError('KAFKA_RETRYABLE', `${what}: ${errorMessage(err)}`, { cause: err })
}

export type SecurityFailure = { kind: 'sasl' | 'tls'; message: string }

/**
 * An authentication or TLS failure in one of librdkafka's log lines, or undefined. While a client
 * connects, librdkafka reports these only in its log ("SASL authentication error: ...", "SSL
 * handshake failed: error:0A000086:...certificate verify failed"); the connect itself fails 30 s
 * later as a generic "broker transport failure". A plain disconnect ("SSL handshake failed:
 * Disconnected", e.g. a broker that is still starting) is not one.
 */
export function securityFailureOf(message: string): SecurityFailure | undefined {
  if (/SASL authentication error|SASL \S+ mechanism handshake failed/.test(message)) return { kind: 'sasl', message }
  if (/certificate verify failed|SSL handshake failed: error:[0-9A-Fa-f]{8}/.test(message)) return { kind: 'tls', message }
  return undefined
}

/**
 * Turns a security failure seen in the library's log during a connect into a PermanentError naming
 * the settings to check, within a second instead of after librdkafka's 30 s connect timeout. The
 * watch is per transport: its clients share one configuration, so one client's failure is every
 * connecting client's. A wrong password or CA does not fix itself (files are read at start).
 */
export class SecurityWatch {
  private readonly waiters = new Set<(f: SecurityFailure) => void>()
  constructor(private readonly summary: KafkaSecuritySummary) {}

  observe(message: string): void {
    if (this.waiters.size === 0) return
    const f = securityFailureOf(message)
    if (f === undefined) return
    for (const w of [...this.waiters]) w(f)
  }

  /**
   * `connect` settles normally unless a security failure is logged first; then the returned promise
   * rejects with PermanentError('KAFKA_AUTH' | 'KAFKA_TLS') and `abandon` runs once the library's
   * connect settles (to disconnect a client that connected after all).
   */
  guard<T>(what: string, connect: Promise<T>, abandon: () => Promise<void> = async () => undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false
      const onFailure = (f: SecurityFailure) => {
        if (done) return
        done = true
        this.waiters.delete(onFailure)
        connect.then(abandon, () => undefined).catch(() => undefined)
        reject(this.error(what, f))
      }
      this.waiters.add(onFailure)
      connect.then(
        (v) => {
          this.waiters.delete(onFailure)
          if (done) return
          done = true
          resolve(v)
        },
        (err: unknown) => {
          this.waiters.delete(onFailure)
          if (done) return
          done = true
          reject(err instanceof Error ? err : new Error(String(err)))
        },
      )
    })
  }

  private error(what: string, f: SecurityFailure): PermanentError {
    const s = this.summary
    if (f.kind === 'sasl') {
      return new PermanentError(
        'KAFKA_AUTH',
        `${what}: Kafka SASL authentication failed (${s.mechanism ?? 'no mechanism'}, user ${s.username ?? '(none)'}): check kafka.auth.sasl.username, the password in kafka.auth.sasl.passwordFile, and that the brokers enable this mechanism for this user (librdkafka: ${f.message})`,
      )
    }
    return new PermanentError(
      'KAFKA_TLS',
      `${what}: Kafka TLS handshake failed: the brokers' certificate does not verify against kafka.tls.caFile (${s.caFile ?? 'unset: the system CA store'}) or does not name the host in kafka.brokers, or the broker refused the client certificate (librdkafka: ${f.message})`,
    )
  }
}

/** librdkafka `statistics.interval.ms` of every consumer: how often lag is known */
export const PROBE_INTERVAL_MS = 5_000
/** librdkafka's rebalance_cb codes (RdKafka::ErrorCode ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS) */
export const ASSIGN_PARTITIONS = -175
export const REVOKE_PARTITIONS = -174

export type LagProbe = { kind: 'known'; lag: number; partitions: number } | { kind: 'unknown'; reason: string }

interface PartitionStatistics {
  desired?: unknown
  hi_offset?: unknown
  committed_offset?: unknown
  next_offset?: unknown
}

/**
 * Consumer lag from one librdkafka statistics document (statistics.interval.ms; fields per
 * librdkafka's STATISTICS.md): over the partitions this consumer is assigned (`desired`), the high
 * watermark minus the next offset to consume, which is `handled` (the offset after the last batch
 * the handler finished, "topic/partition" keys), else the committed offset, else the fetch position.
 * A group member assigned nothing is caught up. Exported for tests.
 */
export function lagFromStatistics(json: string, handled: ReadonlyMap<string, bigint>): LagProbe {
  const doc = JSON.parse(json) as { topics?: Record<string, { partitions?: Record<string, PartitionStatistics> }> }
  let lag = 0
  let partitions = 0
  for (const [topic, t] of Object.entries(doc.topics ?? {})) {
    for (const [id, p] of Object.entries(t.partitions ?? {})) {
      const partition = Number(id)
      if (partition < 0 || p.desired !== true) continue
      const hi = typeof p.hi_offset === 'number' ? p.hi_offset : -1
      if (hi < 0) return { kind: 'unknown', reason: `no high watermark for ${topic}/${partition} yet` }
      const mine = handled.get(`${topic}/${partition}`)
      const committed = typeof p.committed_offset === 'number' ? p.committed_offset : -1
      const next = typeof p.next_offset === 'number' ? p.next_offset : -1
      const pos = mine !== undefined ? Number(mine) : committed >= 0 ? committed : next
      if (pos < 0) return { kind: 'unknown', reason: `no position for ${topic}/${partition} yet` }
      lag += Math.max(0, hi - pos)
      partitions++
    }
  }
  return { kind: 'known', lag, partitions }
}
