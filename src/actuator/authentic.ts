/**
 * Authenticated records on the actuator's compacted topics (issue 13, items 1 and 5).
 *
 * The state topic (decision progress, freezes and re-arms) and the artifacts topic are writable by
 * whoever may produce to them; what the actuator acts on must not be. A record is sealed by adding
 * `keyId` and `signature` (base64 Ed25519 over canonicalJson of the record without `signature`, in
 * its JSON form, so what a reader parses is exactly what was signed).
 *
 * Shadowing: compaction keeps the LAST record per key, so a forged record appended after a genuine
 * one would, once compacted, delete the genuine one from the topic even though every reader ignores
 * the forgery. `ShadowRepair` makes a reader that sees a record fail verification for a key whose
 * record in force verified append that verified record again, so the newest record of every key is a
 * verified one again. At most one repair per key is in flight (cleared when a verified record of the
 * key is read back); a forgery read while one is in flight is already followed by it in the log.
 */
import { Verifier, loadSigner, sealRecord, verifyRecord, type Signer, type VerifyOutcome } from '../publish/signing.js'

/**
 * How the state topic is protected:
 * - `signed`: records are sealed with `signer` (absent: a reader that never writes, e.g. a listing)
 *   and records that do not verify against `verifier` are ignored and counted;
 * - `open`: no state key is configured; records are neither sealed nor checked (the default of
 *   older configurations, warned about at start: see docs/threat-model.md).
 */
export type RecordAuth = { kind: 'open' } | { kind: 'signed'; signer: Signer | undefined; verifier: Verifier }

export const OPEN: RecordAuth = { kind: 'open' }

export interface Sealed {
  keyId?: string
  signature?: string
}

/** the record's JSON form with `keyId` and `signature`; unchanged (JSON form) when `auth` is open */
export function seal<T extends object>(record: T, auth: RecordAuth): T & Sealed {
  if (auth.kind === 'signed' && auth.signer !== undefined) return sealRecord(record, auth.signer)
  const { signature: _s, keyId: _k, ...rest } = record as T & Sealed
  return JSON.parse(JSON.stringify(rest)) as T
}

export type CheckOutcome = { kind: 'valid' } | { kind: 'open' } | { kind: 'invalid'; reason: Exclude<VerifyOutcome, { kind: 'valid' }>['reason'] }

/** whether a parsed record may be acted on under `auth`; never throws */
export function check(record: Sealed & object, auth: RecordAuth): CheckOutcome {
  if (auth.kind === 'open') return { kind: 'open' }
  const v = verifyRecord(record, auth.verifier)
  return v.kind === 'valid' ? { kind: 'valid' } : { kind: 'invalid', reason: v.reason }
}

export interface RepairCounters {
  /** verified records appended again after a forgery shadowed them */
  repaired: number
  /** repairs that could not be written (retried at the next forgery of the key) */
  repairFailures: number
}

/**
 * Per-key bookkeeping of shadow repairs (see the file comment). Bounded by the keys of the table it
 * serves (whose own bound applies): an entry lives only while a repair is in flight.
 */
export class ShadowRepair {
  readonly counters: RepairCounters = { repaired: 0, repairFailures: 0 }
  private readonly inFlight = new Set<string>()

  constructor(private readonly append: (key: string, value: string) => Promise<void>) {}

  /** a record under `key` failed verification; `current` is the verified record in force, if any */
  forged(key: string, current: object | undefined): void {
    if (current === undefined || this.inFlight.has(key)) return
    this.inFlight.add(key)
    this.append(key, JSON.stringify(current)).then(
      () => {
        this.counters.repaired++
      },
      () => {
        this.counters.repairFailures++
        this.inFlight.delete(key)
      },
    )
  }

  /** a verified record of `key` was read: any repair of it has landed (or is no longer needed) */
  verified(key: string): void {
    this.inFlight.delete(key)
  }
}

/**
 * The state topic's protection from the actuator config: open without `stateKey`; else sealed with
 * `signerFile` (default the state key; `actuator rearm --key` passes an operator's key) and checked
 * against the state key's public half, `stateKeys` and the signer's own public half.
 */
export function stateAuthOf(a: { stateKey?: string | undefined; stateKeys: readonly string[] }, signerFile: string | undefined = a.stateKey): RecordAuth {
  if (a.stateKey === undefined && signerFile === undefined) return OPEN
  const files = [...(a.stateKey !== undefined ? [a.stateKey] : []), ...a.stateKeys, ...(signerFile !== undefined ? [signerFile] : [])]
  return { kind: 'signed', signer: signerFile !== undefined ? loadSigner(signerFile) : undefined, verifier: Verifier.fromFiles(files) }
}
