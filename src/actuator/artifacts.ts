/**
 * Verified artifacts. CI runs `pullback artifacts promote` when an artifact passes staging; that
 * writes a signed verification record to the compacted, single-partition topic `pullback.artifacts`
 * with key `<service>|<artifact>`, so compaction keeps one record per (service, artifact): every
 * promoted artifact of a service survives, at least the newest `keepArtifacts` (>= 3) are listed.
 *
 * Record (JSON): { schemaVersion: 1, service: "ns/name", artifact, digest?, version, promotedAt,
 * keyId, signature } where signature = base64 Ed25519 over canonicalJson(record without signature).
 * A record verifies only against the configured `actuator.artifactKeys`.
 *
 * Shadowing (issue 13, item 5): a record that fails verification never replaces a verified record
 * of the same key, in the store (ignored, counted in `shadowed`) nor on the compacted topic (the
 * store appends the verified record again: authentic.ts, ShadowRepair). An unverified record of a
 * key with no verified one is kept, so that `artifacts list` can show it as INVALID. A tombstone
 * (null value) of a verified record's key is treated the same way: the record is appended again.
 */
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import type { KafkaTransport, Producer } from '../kafka/types.js'
import type { Signer, Verifier } from '../publish/signing.js'
import { ShadowRepair } from './authentic.js'
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
  private readonly byKey = new Map<string, ArtifactView>()
  private readonly tail: TopicTail
  malformed = 0
  /** unverified records that arrived for a key holding a verified one: ignored */
  shadowed = 0
  /** records not kept because the store was at its limit */
  overflow = 0
  readonly repair: ShadowRepair

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
        const key = artifactKey(r.service, r.artifact)
        const view = verifyArtifact(r, o.verifier)
        const cur = this.byKey.get(key)
        // a record under another key than its own would be kept by compaction beside the real one: judged by its own key only
        if (e.key !== key || (view.verification === 'invalid' && cur?.verification === 'valid')) {
          this.shadowed++
          const valid = this.byKey.get(e.key)
          if (valid?.verification === 'valid') this.repair.forged(e.key, recordOf(valid))
          return
        }
        if (view.verification === 'valid') this.repair.verified(key)
        // bounded: one entry per (service, artifact), as compaction keeps it; the limit guards memory
        if (this.byKey.size >= (o.limit ?? 100_000) && cur === undefined) {
          this.overflow++
          return
        }
        this.byKey.set(key, view)
      },
      // pullback never deletes a verification record: a tombstone would erase a verified artifact at the next compaction
      onTombstone: (key) => {
        const valid = this.byKey.get(key)
        if (valid?.verification !== 'valid') return
        this.shadowed++
        this.repair.forged(key, recordOf(valid))
      },
    })
    this.repair = new ShadowRepair((key, value) => this.tail.append(key, value))
  }

  async start(): Promise<void> {
    await this.tail.start()
    await this.tail.sync()
  }

  refresh(): Promise<void> {
    return this.tail.sync()
  }

  list(service: string): ArtifactView[] {
    return [...this.byKey.values()].filter((r) => r.service === service).sort((a, b) => b.promotedAt - a.promotedAt)
  }

  shutdown(): Promise<void> {
    return this.tail.shutdown()
  }
}

/** the record as it was written (without the store's verification verdict) */
function recordOf(v: ArtifactView): ArtifactRecord {
  const { verification: _v, ...rest } = v as ArtifactView & { reason?: string }
  delete (rest as { reason?: string }).reason
  return rest
}

export type TargetOutcome =
  | { kind: 'found'; target: ArtifactView & { verification: 'valid' }; failed: ArtifactView | undefined }
  | { kind: 'none'; reason: string; invalid: number; failed: ArtifactView | undefined }

/**
 * The rollback target: the newest artifact with a valid signature promoted before the failed one
 * (when the failed one is known to the store; otherwise the newest valid one that is not it).
 */
export function selectRollbackTarget(views: readonly ArtifactView[], failed: { artifact: string; version: string }): TargetOutcome {
  const { older, failedView } = olderThan(views, failed)
  const target = older.find(isValid)
  const invalid = older.filter((v) => v.verification === 'invalid').length
  if (target) return { kind: 'found', target, failed: failedView }
  return {
    kind: 'none',
    failed: failedView,
    invalid,
    reason: older.length === 0 ? 'no artifact promoted before the failed one' : `none of the ${older.length} older artifacts has a valid signature`,
  }
}

const isValid = (v: ArtifactView): v is ArtifactView & { verification: 'valid' } => v.verification === 'valid'

function olderThan(views: readonly ArtifactView[], failed: { artifact: string; version: string }): { older: ArtifactView[]; failedView: ArtifactView | undefined } {
  const isFailed = (v: ArtifactView) => v.artifact === failed.artifact || v.version === failed.version
  const failedView = views.find(isFailed)
  const cutoff = failedView?.promotedAt ?? Number.POSITIVE_INFINITY
  return { older: views.filter((v) => !isFailed(v) && v.promotedAt < cutoff), failedView }
}

/**
 * Every artifact the rollback of `failed` may go to: verified and promoted before the failed one,
 * newest first. A resumed decision keeps its recorded target only when it is one of these.
 */
export function eligibleTargets(views: readonly ArtifactView[], failed: { artifact: string; version: string }): (ArtifactView & { verification: 'valid' })[] {
  return olderThan(views, failed).older.filter(isValid)
}
