/**
 * Authenticated deployment events (issue 13, item 2). A deployment event decides what the engine
 * watches and what it takes as the baseline: one forged "deploy" of the previous version right after
 * a bad deploy made the failing version its own baseline and suppressed the rollback. So events can
 * be signed by whoever announces them (CI with `pullback keys sign`, the actuator with its state
 * key): `keyId` and `signature` added to the event object, the signature over canonicalJson of
 * every other field as sent (see sealRecord in src/publish/signing.ts).
 *
 * Policy (`receivers.deployments`):
 *   verifyKeys     trusted public keys (PEM): CI's event key, the actuator's state key (its rollback
 *                  announcements; recovery verification depends on them)
 *   requireSigned  true: unsigned events are dropped and counted; false: accepted and counted;
 *                  `auto` (default): true as soon as verifyKeys is not empty.
 * An event that carries a signature that does not verify (unknown key, bad signature) is dropped in
 * every mode. The default `auto` keeps keyless installations (and Argo CD notification templates,
 * which cannot sign) working, warned at start; `requireSigned: true` is the recommended setting.
 */
import { z } from 'zod'
import { Verifier, verifyRecord, type VerifyOutcome } from '../../publish/signing.js'

export const deploymentAuthFields = {
  verifyKeys: z.array(z.string().min(1)).default([]),
  requireSigned: z.union([z.literal('auto'), z.boolean()]).default('auto'),
}

export interface EventAuth {
  verifier: Verifier
  requireSigned: boolean
}

export function eventAuthOf(c: { verifyKeys: readonly string[]; requireSigned: 'auto' | boolean }): EventAuth {
  const verifier = Verifier.fromFiles(c.verifyKeys)
  return { verifier, requireSigned: c.requireSigned === 'auto' ? verifier.size > 0 : c.requireSigned }
}

export type EventCheck = { kind: 'signed'; keyId: string } | { kind: 'unsigned' } | { kind: 'invalid'; reason: Exclude<VerifyOutcome, { kind: 'valid' }>['reason'] }

/** whether a parsed event object carries a valid signature; never throws */
export function checkEvent(raw: object, auth: EventAuth): EventCheck {
  const r = raw as { signature?: unknown; keyId?: unknown }
  if (r.signature === undefined && r.keyId === undefined) return { kind: 'unsigned' }
  const v = verifyRecord(raw, auth.verifier)
  return v.kind === 'valid' ? { kind: 'signed', keyId: v.keyId } : { kind: 'invalid', reason: v.reason }
}
