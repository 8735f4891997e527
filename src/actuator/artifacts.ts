/**
 * Verified artifacts. CI runs `pullback artifacts promote` when an artifact passes staging; that
 * writes a signed verification record to the compacted, single-partition topic `pullback.artifacts`
 * with key `<service>|<artifact>`, so compaction keeps one record per (service, artifact): every
 * promoted artifact of a service survives, at least the newest `keepArtifacts` (>= 3) are listed.
 *
 * Record (JSON): { schemaVersion: 1, service: "ns/name", artifact, digest?, version, promotedAt,
 * keyId, signature } where signature = base64 Ed25519 over canonicalJson(record without signature).
 * A record verifies only against the configured `actuator.artifactKeys`.
 */
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { KafkaTransport, Producer } from '../kafka/types.js'
import type { Signer, Verifier } from '../publish/signing.js'
import { TopicTail } from './log.js'

export interface ArtifactRecord {
  schemaVersion: 1
  /** "namespace/service" */
  service: string
  /** image reference as deployed, e.g. registry/shop/cart:1.4.2 or ...@sha256:... */
  artifact: string
  digest?: string
  version: string
  promotedAt: number
  keyId: string
  signature: string
}

export type ArtifactView = ArtifactRecord & ({ verification: 'valid' } | { verification: 'invalid'; reason: string })

export function artifactKey(service: string, artifact: string): string {
  return `${service}|${artifact}`
}

/** version from an image reference when none is given: the tag, else the digest */
export function versionOf(artifact: string): string {
  const at = artifact.indexOf('@')
  const name = at >= 0 ? artifact.slice(0, at) : artifact
  const slash = name.lastIndexOf('/')
  const colon = name.lastIndexOf(':')
  if (colon > slash) return name.slice(colon + 1)
  return at >= 0 ? artifact.slice(at + 1) : artifact
}

export function digestOf(artifact: string): string | undefined {
  const at = artifact.indexOf('@')
  return at >= 0 ? artifact.slice(at + 1) : undefined
}

export function signArtifact(f: { service: string; artifact: string; version?: string; digest?: string; promotedAt: number }, signer: Signer): ArtifactRecord {
  const digest = f.digest ?? digestOf(f.artifact)
  const body = {
    schemaVersion: 1 as const,
    service: f.service,
    artifact: f.artifact,
    ...(digest !== undefined ? { digest } : {}),
    version: f.version ?? versionOf(f.artifact),
    promotedAt: f.promotedAt,
    keyId: signer.keyId,
  }
  return { ...body, signature: signer.sign(body) }
}

export function verifyArtifact(r: ArtifactRecord, verifier: Verifier): ArtifactView {
  const { signature, ...body } = r
  const v = verifier.verify(body, r.keyId, signature)
  return v.kind === 'valid' ? { ...r, verification: 'valid' } : { ...r, verification: 'invalid', reason: v.reason }
}

function parseRecord(value: Buffer): ArtifactRecord | undefined {
  try {
    const r = JSON.parse(value.toString()) as Partial<ArtifactRecord>
    if (r.schemaVersion !== 1 || typeof r.service !== 'string' || typeof r.artifact !== 'string' || typeof r.version !== 'string' || typeof r.promotedAt !== 'number') return undefined
    return r as ArtifactRecord
  } catch {
    return undefined
  }
}

export interface ArtifactStore {
  /** every known artifact of a service with its verification status, newest promotion first */
  list(service: string): ArtifactView[]
  /** catches up with what was written so far */
  refresh(): Promise<void>
}

export const artifactTopicSpec = (topic: string) => ({ topic, numPartitions: 1, configs: { 'cleanup.policy': 'compact' } })

/** What CI does on promotion (and the demo on start-up): sign and write one verification record. */
export async function promoteArtifact(
  transport: KafkaTransport,
  topic: string,
  fields: { service: string; artifact: string; version?: string; digest?: string; promotedAt: number },
  signer: Signer,
): Promise<ArtifactRecord> {
  const rec = signArtifact(fields, signer)
  const admin = transport.admin()
  await admin.connect()
  try {
    await admin.ensureTopics([artifactTopicSpec(topic)])
  } finally {
    await admin.disconnect()
  }
  const p = transport.producer()
  await p.connect()
  try {
    await p.send(topic, [{ key: artifactKey(rec.service, rec.artifact), value: JSON.stringify(rec) }])
  } finally {
    await p.disconnect()
  }
  return rec
}

/** The artifact store over the compacted topic, read from the beginning and then tailed. */
export class TopicArtifactStore implements ArtifactStore, Component {
  readonly name = 'actuator.artifacts'
  private readonly byKey = new Map<string, ArtifactRecord>()
  private readonly tail: TopicTail
  malformed = 0

  constructor(private readonly o: { transport: KafkaTransport; topic: string; groupPrefix: string; verifier: Verifier; logger: Logger; producer?: Producer; limit?: number }) {
    this.tail = new TopicTail({
      transport: o.transport,
      topic: o.topic,
      groupPrefix: o.groupPrefix,
      logger: o.logger,
      producer: o.producer,
      spec: artifactTopicSpec(o.topic),
      onRecord: (e) => {
        const r = parseRecord(e.value)
        if (!r) {
          this.malformed++
          return
        }
        // bounded: one entry per (service, artifact), as compaction keeps it; the limit guards memory
        if (this.byKey.size >= (o.limit ?? 100_000) && !this.byKey.has(e.key)) return
        this.byKey.set(artifactKey(r.service, r.artifact), r)
      },
    })
  }

  async start(): Promise<void> {
    await this.tail.start()
    await this.tail.sync()
  }

  refresh(): Promise<void> {
    return this.tail.sync()
  }

  list(service: string): ArtifactView[] {
    return [...this.byKey.values()]
      .filter((r) => r.service === service)
      .sort((a, b) => b.promotedAt - a.promotedAt)
      .map((r) => verifyArtifact(r, this.o.verifier))
  }

  shutdown(): Promise<void> {
    return this.tail.shutdown()
  }
}

export type TargetOutcome =
  | { kind: 'found'; target: ArtifactView & { verification: 'valid' }; failed: ArtifactView | undefined }
  | { kind: 'none'; reason: string; invalid: number; failed: ArtifactView | undefined }

/**
 * The rollback target: the newest artifact with a valid signature promoted before the failed one
 * (when the failed one is known to the store; otherwise the newest valid one that is not it).
 */
export function selectRollbackTarget(views: readonly ArtifactView[], failed: { artifact: string; version: string }): TargetOutcome {
  const isFailed = (v: ArtifactView) => v.artifact === failed.artifact || v.version === failed.version
  const failedView = views.find(isFailed)
  const cutoff = failedView?.promotedAt ?? Number.POSITIVE_INFINITY
  const older = views.filter((v) => !isFailed(v) && v.promotedAt < cutoff)
  const target = older.find((v): v is ArtifactView & { verification: 'valid' } => v.verification === 'valid')
  const invalid = older.filter((v) => v.verification === 'invalid').length
  if (target) return { kind: 'found', target, failed: failedView }
  return {
    kind: 'none',
    failed: failedView,
    invalid,
    reason: older.length === 0 ? 'no artifact promoted before the failed one' : `none of the ${older.length} older artifacts has a valid signature`,
  }
}
