import { accessSync, constants as fsConstants, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { z } from 'zod'
import { PermanentError, errorMessage } from '../common/errors.js'

/**
 * Kafka transport. With no `brokers`, every topic below is carried by the in-process embedded bus
 * (the laptop/demo default); with brokers it is the real Kafka cluster. Topic names are the
 * defaults of the Kafka contract in the README.
 */
export const kafkaTopicsSchema = z
  .strictObject({
    spans: z.string().min(1).default('otlp_spans'),
    deployments: z.string().min(1).default('pullback.deployments'),
    decisions: z.string().min(1).default('pullback.decisions'),
    incidents: z.string().min(1).default('pullback.incidents'),
    audit: z.string().min(1).default('pullback.audit'),
    artifacts: z.string().min(1).default('pullback.artifacts'),
    /** node-local partials for the deciders (decider.distributed; src/partials, src/decider) */
    partials: z.string().min(1).default('pullback.partials'),
    /** hourly per-service summaries (src/history), time-retained by history.retention; read by `pullback calibrate --kafka` */
    history: z.string().min(1).default('pullback.history'),
  })
  .prefault({})

/**
 * TLS to the brokers, named like the Collector kafka exporter/receiver's `tls` (configtls client
 * settings, camelCase as the rest of pullback's config). Present (even `{}`): every connection is
 * TLS (security.protocol SSL, or SASL_SSL with `auth.sasl`); absent: plaintext.
 */
export const kafkaTlsSchema = z
  .strictObject({
    /** PEM CA bundle the brokers' certificates must chain to; unset: the system CA store */
    caFile: z.string().min(1).optional(),
    /** PEM client certificate and its unencrypted PEM key, for brokers with ssl.client.auth (mTLS); both or neither */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** true: neither the chain nor the broker's host name is verified. Tests only: anyone on the path can then read and write. */
    insecureSkipVerify: z.boolean().default(false),
  })
  .superRefine((t, ctx) => {
    if ((t.certFile === undefined) !== (t.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: [t.certFile === undefined ? 'certFile' : 'keyFile'], message: 'certFile and keyFile go together (the client certificate and its key)' })
    }
  })

/**
 * SASL, named like the Collector's `auth.sasl`, except that the password comes from a file (a
 * mounted Secret), never from the config itself. The file is read once, when the transport is
 * created (process start): a rotated password takes effect at the next restart.
 */
export const kafkaSaslSchema = z.strictObject({
  mechanism: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']),
  username: z.string().min(1),
  /** the password is the file's content without a trailing newline */
  passwordFile: z.string().min(1),
})

export const kafkaAuthSchema = z.strictObject({ sasl: kafkaSaslSchema.optional() })

/** librdkafka's debug contexts (CONFIGURATION.md, `debug`), for `kafka.debug` */
export const LIBRDKAFKA_DEBUG_CONTEXTS = ['all', 'generic', 'broker', 'topic', 'metadata', 'feature', 'queue', 'msg', 'protocol', 'cgrp', 'security', 'fetch', 'interceptor', 'plugin', 'consumer', 'admin', 'eos', 'mock', 'assignor', 'conf', 'telemetry'] as const

export const kafkaSchema = z
  .strictObject({
    /** bootstrap servers, "host:port"; empty means the embedded in-process bus */
    brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected "host:port"')).default([]),
    clientId: z.string().min(1).default('pullback'),
    /** consumer group id prefix; each consumer appends its role (".spans", ".actuator", ...) */
    groupPrefix: z.string().min(1).default('pullback'),
    /**
     * This sidecar instance's stable name, for the consumer groups every instance needs of its own
     * (deployments: `<groupPrefix>.deployments.<instanceId>`). Unset: the environment variable
     * PULLBACK_INSTANCE_ID, then POD_NAME, then HOSTNAME, then the host name; never random, so a
     * restart resumes its group instead of leaving one behind and re-reading the whole topic.
     */
    instanceId: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only').optional(),
    topics: kafkaTopicsSchema,
    /** TLS for every client (producers, consumers, admin); see kafkaTlsSchema. Unset: plaintext. */
    tls: kafkaTlsSchema.optional(),
    /** `{ sasl: { mechanism, username, passwordFile } }` for every client; unset: no authentication */
    auth: kafkaAuthSchema.optional(),
    /**
     * librdkafka's debug contexts for every client (its `debug` property, comma-separated, e.g.
     * "consumer,cgrp,fetch"): its debug lines go to pullback's log at level debug (component
     * librdkafka; PULLBACK_LOG_LEVEL=debug to see them). Many lines per second: for diagnosis
     * only. Unset: none.
     */
    debug: z
      .string()
      .refine((v) => v.split(',').every((c) => (LIBRDKAFKA_DEBUG_CONTEXTS as readonly string[]).includes(c)), {
        message: `comma-separated librdkafka debug contexts, each one of ${LIBRDKAFKA_DEBUG_CONTEXTS.join(', ')}`,
      })
      .optional(),
  })
  .prefault({})

export type KafkaConfig = z.output<typeof kafkaSchema>

export type InstanceId = { id: string; source: 'config' | 'PULLBACK_INSTANCE_ID' | 'POD_NAME' | 'HOSTNAME' | 'hostname' }

/** The instance id of `kafka.instanceId`'s contract; characters a group id cannot carry become "_". */
export function resolveInstanceId(cfg: Pick<KafkaConfig, 'instanceId'>, env: NodeJS.ProcessEnv = process.env, host: () => string = hostname): InstanceId {
  const clean = (v: string) => v.replace(/[^A-Za-z0-9._-]/g, '_')
  if (cfg.instanceId !== undefined) return { id: cfg.instanceId, source: 'config' }
  for (const name of ['PULLBACK_INSTANCE_ID', 'POD_NAME', 'HOSTNAME'] as const) {
    const v = env[name]?.trim()
    if (v) return { id: clean(v), source: name }
  }
  return { id: clean(host()), source: 'hostname' }
}

export type KafkaSecurityProtocol = 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL'

/** What may be logged about a transport's security: never the password. */
export interface KafkaSecuritySummary {
  protocol: KafkaSecurityProtocol
  mechanism?: string
  username?: string
  caFile?: string
  certFile?: string
  /** broker certificate chain and host name verified */
  verify?: boolean
}

/**
 * librdkafka properties for `kafka.tls` and `kafka.auth`, made by `librdkafkaSecurity` (the one place
 * they are mapped; the real-broker transport gives them to every producer, consumer and admin client
 * it creates). It holds the SASL password: `properties()` is for the client config only; logging or
 * serialising the object itself (toJSON, inspect) shows the summary.
 */
export class LibrdkafkaSecurity {
  readonly #properties: Readonly<Record<string, string | boolean>>
  constructor(
    properties: Record<string, string | boolean>,
    readonly summary: KafkaSecuritySummary,
    /** loud configuration warnings (credentials or records in clear text, verification off), to be logged at start */
    readonly warnings: readonly string[],
  ) {
    this.#properties = Object.freeze({ ...properties })
  }
  properties(): Record<string, string | boolean> {
    return { ...this.#properties }
  }
  toJSON(): KafkaSecuritySummary {
    return this.summary
  }
  [Symbol.for('nodejs.util.inspect.custom')](): KafkaSecuritySummary {
    return this.summary
  }
}

/** File access for `librdkafkaSecurity`; tests inject their own. */
export interface SecurityFiles {
  /** throws when the file cannot be read */
  assertReadable(path: string): void
  readText(path: string): string
}

const nodeFiles: SecurityFiles = {
  assertReadable: (path) => accessSync(path, fsConstants.R_OK),
  readText: (path) => readFileSync(path, 'utf8'),
}

/** PLAINTEXT with no properties: the default and the embedded bus */
export const PLAINTEXT_SECURITY = new LibrdkafkaSecurity({}, { protocol: 'PLAINTEXT' }, [])

/**
 * Maps `kafka.tls` / `kafka.auth.sasl` to librdkafka properties (CONFIGURATION.md names):
 * security.protocol (PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL), sasl.mechanisms, sasl.username,
 * sasl.password, ssl.ca.location, ssl.certificate.location, ssl.key.location,
 * ssl.endpoint.identification.algorithm (https, or none with insecureSkipVerify, which also sets
 * enable.ssl.certificate.verification=false). Reads the password file now (once per process: a
 * rotated password needs a restart) and checks that every configured file is readable, so a wrong
 * path fails at start naming the config key. PermanentError('KAFKA_CONFIG') otherwise.
 */
export function librdkafkaSecurity(cfg: Pick<KafkaConfig, 'tls' | 'auth'>, files: SecurityFiles = nodeFiles): LibrdkafkaSecurity {
  const tls = cfg.tls
  const sasl = cfg.auth?.sasl
  if (tls === undefined && sasl === undefined) return PLAINTEXT_SECURITY
  const props: Record<string, string | boolean> = {}
  const summary: KafkaSecuritySummary = { protocol: sasl ? (tls ? 'SASL_SSL' : 'SASL_PLAINTEXT') : 'SSL' }
  const warnings: string[] = []
  props['security.protocol'] = summary.protocol
  const readable = (key: string, path: string) => {
    try {
      files.assertReadable(path)
    } catch (err) {
      throw new PermanentError('KAFKA_CONFIG', `${key}: cannot read ${path}: ${errorMessage(err)}`, { cause: err })
    }
  }
  if (tls !== undefined) {
    if (tls.caFile !== undefined) {
      readable('kafka.tls.caFile', tls.caFile)
      props['ssl.ca.location'] = tls.caFile
      summary.caFile = tls.caFile
    }
    if (tls.certFile !== undefined && tls.keyFile !== undefined) {
      readable('kafka.tls.certFile', tls.certFile)
      readable('kafka.tls.keyFile', tls.keyFile)
      props['ssl.certificate.location'] = tls.certFile
      props['ssl.key.location'] = tls.keyFile
      summary.certFile = tls.certFile
    }
    summary.verify = !tls.insecureSkipVerify
    if (tls.insecureSkipVerify) {
      props['enable.ssl.certificate.verification'] = false
      props['ssl.endpoint.identification.algorithm'] = 'none'
      warnings.push('kafka.tls.insecureSkipVerify is true: broker certificates are NOT verified; anyone on the network path can impersonate the brokers (tests only)')
    } else {
      props['ssl.endpoint.identification.algorithm'] = 'https'
    }
  }
  if (sasl !== undefined) {
    let password: string
    try {
      password = files.readText(sasl.passwordFile).replace(/\r?\n$/, '')
    } catch (err) {
      throw new PermanentError('KAFKA_CONFIG', `kafka.auth.sasl.passwordFile: cannot read ${sasl.passwordFile}: ${errorMessage(err)}`, { cause: err })
    }
    if (password === '') throw new PermanentError('KAFKA_CONFIG', `kafka.auth.sasl.passwordFile: ${sasl.passwordFile} is empty`)
    props['sasl.mechanisms'] = sasl.mechanism
    props['sasl.username'] = sasl.username
    props['sasl.password'] = password
    summary.mechanism = sasl.mechanism
    summary.username = sasl.username
    if (tls === undefined) {
      warnings.push(
        sasl.mechanism === 'PLAIN'
          ? 'kafka.auth.sasl PLAIN without kafka.tls: the Kafka password travels in CLEAR TEXT to the brokers, and every record unencrypted; set kafka.tls'
          : `kafka.auth.sasl ${sasl.mechanism} without kafka.tls: every record (decisions, audit, spans) travels unencrypted and can be altered on the way; set kafka.tls`,
      )
    }
  }
  return new LibrdkafkaSecurity(props, summary, warnings)
}
