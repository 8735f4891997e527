/**
 * The decision envelope, schemaVersion 1: what `pullback.decisions` and `pullback.incidents` carry
 * (JSON, UTF-8, key = service id "namespace/service").
 *
 *   { schemaVersion: 1, id, kind, issuedAt, keyId, payload: Verdict, signature }
 *
 * `id` and `kind` repeat the Verdict's (deterministic id: same deployment, same decision, same id).
 * `signature` is base64 Ed25519 over canonicalJson(envelope without `signature`), so the payload and
 * every envelope field are covered. A reader rejects an envelope whose id/kind disagree with the
 * payload, whose schemaVersion it does not know, or whose signature does not verify.
 */
import type { Verdict, VerdictKind } from '../engine/verdict.js'
import type { Signer, Verifier, VerifyOutcome } from './signing.js'

export const DECISION_SCHEMA_VERSION = 1

export interface DecisionEnvelope {
  schemaVersion: 1
  id: string
  kind: VerdictKind
  /** unix ms when the publisher signed it */
  issuedAt: number
  keyId: string
  payload: Verdict
  signature: string
}

export const serviceId = (v: { namespace: string; service: string }) => `${v.namespace}/${v.service}`

export function sealDecision(verdict: Verdict, signer: Signer, issuedAt: number): DecisionEnvelope {
  const body = { schemaVersion: 1 as const, id: verdict.id, kind: verdict.kind, issuedAt, keyId: signer.keyId, payload: verdict }
  return { ...body, signature: signer.sign(body) }
}

export type OpenOutcome =
  | { kind: 'valid'; envelope: DecisionEnvelope }
  | { kind: 'malformed'; reason: string }
  | { kind: 'rejected'; reason: Exclude<VerifyOutcome, { kind: 'valid' }>['reason'] | 'id-mismatch'; envelope: DecisionEnvelope }

/** Parses and verifies one record value. Never throws. */
export function openDecision(value: Buffer | string | null, verifier: Verifier): OpenOutcome {
  if (value === null) return { kind: 'malformed', reason: 'empty record' }
  let raw: unknown
  try {
    raw = JSON.parse(value.toString())
  } catch {
    return { kind: 'malformed', reason: 'not JSON' }
  }
  if (typeof raw !== 'object' || raw === null) return { kind: 'malformed', reason: 'not an object' }
  const e = raw as Partial<DecisionEnvelope>
  if (e.schemaVersion !== DECISION_SCHEMA_VERSION) return { kind: 'malformed', reason: `unknown schemaVersion ${String(e.schemaVersion)}` }
  const p = e.payload as Partial<Verdict> | undefined
  if (typeof e.id !== 'string' || typeof e.kind !== 'string' || typeof p !== 'object' || p === null || typeof p.service !== 'string' || typeof p.namespace !== 'string') {
    return { kind: 'malformed', reason: 'missing id, kind or payload' }
  }
  const env = e as DecisionEnvelope
  const { signature, ...body } = env
  const v = verifier.verify(body, env.keyId, signature)
  if (v.kind === 'invalid') return { kind: 'rejected', reason: v.reason, envelope: env }
  if (p.id !== env.id || p.kind !== env.kind) return { kind: 'rejected', reason: 'id-mismatch', envelope: env }
  return { kind: 'valid', envelope: env }
}
