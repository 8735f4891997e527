/**
 * Ed25519 signing shared by decisions (publish -> actuator) and artifact verification records
 * (CI -> actuator). Keys are PEM files: PKCS#8 private keys and SPKI public keys, as written by
 * `pullback keys generate`. A key id is the first 16 hex digits of SHA-256 over the SPKI DER of the
 * public key, so a verifier selects the key by id and a renamed file keeps its id.
 *
 * What is signed is the canonical serialization (see `canonicalJson`) of the object to protect, so
 * a re-encoded but equal JSON value verifies, and any change of a field does not.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PermanentError } from '../common/errors.js'

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, `undefined` members
 * omitted, numbers as JSON.stringify writes them; non-finite numbers are refused.
 */
export function canonicalJson(v: unknown): string {
  if (v === null) return 'null'
  switch (typeof v) {
    case 'number':
      if (!Number.isFinite(v)) throw new PermanentError('CANONICAL_NONFINITE', 'cannot sign a non-finite number')
      return JSON.stringify(v)
    case 'string':
    case 'boolean':
      return JSON.stringify(v)
    case 'object': {
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`
      const o = v as Record<string, unknown>
      const keys = Object.keys(o)
        .filter((k) => o[k] !== undefined)
        .sort()
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
    }
    default:
      throw new PermanentError('CANONICAL_TYPE', `cannot sign a value of type ${typeof v}`)
  }
}

export function keyIdOf(pub: KeyObject): string {
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16)
}

export interface Signer {
  readonly keyId: string
  /** base64 Ed25519 signature over canonicalJson(value) */
  sign(value: unknown): string
}

export function signerFromKey(priv: KeyObject, keyId?: string): Signer {
  if (priv.asymmetricKeyType !== 'ed25519') throw new PermanentError('KEY_TYPE', `expected an ed25519 private key, got ${priv.asymmetricKeyType}`)
  const id = keyId ?? keyIdOf(createPublicKey(priv))
  return {
    keyId: id,
    sign: (value) => sign(null, Buffer.from(canonicalJson(value)), priv).toString('base64'),
  }
}

export function loadSigner(file: string, keyId?: string): Signer {
  let pem: string
  try {
    warnIfExposed(file)
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    throw new PermanentError('KEY_UNREADABLE', `cannot read private key ${file}: ${(err as Error).message}`)
  }
  try {
    return signerFromKey(createPrivateKey(pem), keyId)
  } catch (err) {
    if (err instanceof PermanentError) throw err
    throw new PermanentError('KEY_INVALID', `${file} is not a PEM private key: ${(err as Error).message}`)
  }
}

/** key files already warned about (bounded by the key files a process is configured with) */
const warnedKeyFiles = new Set<string>()

/**
 * Warns (once per file, as a process warning on stderr) when a private key file can be read by
 * others, or by a group that is not the process's own: a decision-signing key readable by another
 * account on the node lets that account sign rollbacks (issue 13, item 9). Group-readable by the
 * process's own group is the Kubernetes pattern k8s/ uses (secret `defaultMode: 0440`, files owned
 * by root:fsGroup, fsGroup = runAsGroup; 0400 would leave the key unreadable by the non-root user).
 * A warning, not a refusal: secret volumes are 0644 unless `defaultMode` says otherwise.
 */
export function warnIfExposed(file: string, warn: (message: string) => void = (m) => process.emitWarning(m, { code: 'PULLBACK_KEY_PERMISSIONS' })): 'private' | 'exposed' | 'unknown' {
  let mode: number
  let gid: number
  try {
    const st = statSync(file)
    mode = st.mode
    gid = st.gid
  } catch {
    return 'unknown'
  }
  const ownGroup = typeof process.getgid === 'function' && gid === process.getgid()
  if ((mode & 0o007) === 0 && ((mode & 0o070) === 0 || ownGroup)) return 'private'
  if (!warnedKeyFiles.has(file) && warnedKeyFiles.size < 64) {
    warnedKeyFiles.add(file)
    warn(`private key ${file} is readable by ${(mode & 0o007) !== 0 ? 'others' : 'another group'} (mode ${(mode & 0o777).toString(8).padStart(3, '0')}); chmod 600 it`)
  }
  return 'exposed'
}

export type VerifyOutcome = { kind: 'valid'; keyId: string } | { kind: 'invalid'; reason: 'unsigned' | 'unknown-key' | 'bad-signature' }

/** A set of trusted public keys, selected by key id. */
export class Verifier {
  private readonly keys = new Map<string, KeyObject>()
  constructor(keys: readonly KeyObject[] = []) {
    for (const k of keys) this.add(k)
  }
  static fromFiles(files: readonly string[]): Verifier {
    return new Verifier(files.map(loadPublicKey))
  }
  add(pub: KeyObject): string {
    if (pub.asymmetricKeyType !== 'ed25519') throw new PermanentError('KEY_TYPE', `expected an ed25519 public key, got ${pub.asymmetricKeyType}`)
    const id = keyIdOf(pub)
    this.keys.set(id, pub)
    return id
  }
  get size(): number {
    return this.keys.size
  }
  /**
   * Several keys may be trusted at once (a rotation: old and new both listed until every signer
   * uses the new one). The key is selected by its derived id; a signer configured with an explicit
   * id (`publish.keyId`) is matched by trying each trusted key (a handful).
   */
  verify(value: unknown, keyId: string | undefined, signature: string | undefined): VerifyOutcome {
    if (!keyId || !signature) return { kind: 'invalid', reason: 'unsigned' }
    let data: Buffer
    let sig: Buffer
    try {
      data = Buffer.from(canonicalJson(value))
      sig = Buffer.from(signature, 'base64')
    } catch {
      return { kind: 'invalid', reason: 'bad-signature' }
    }
    const check = (pub: KeyObject) => {
      try {
        return verify(null, data, pub, sig)
      } catch {
        return false
      }
    }
    const pub = this.keys.get(keyId)
    if (pub) return check(pub) ? { kind: 'valid', keyId } : { kind: 'invalid', reason: 'bad-signature' }
    for (const [id, k] of this.keys) if (check(k)) return { kind: 'valid', keyId: id }
    return { kind: 'invalid', reason: 'unknown-key' }
  }
}

export function loadPublicKey(file: string): KeyObject {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    throw new PermanentError('KEY_UNREADABLE', `cannot read public key ${file}: ${(err as Error).message}`)
  }
  try {
    // a private key file also yields its public half
    return createPublicKey(pem)
  } catch (err) {
    throw new PermanentError('KEY_INVALID', `${file} is not a PEM public key: ${(err as Error).message}`)
  }
}

export interface GeneratedKeyPair {
  privateKeyFile: string
  publicKeyFile: string
  keyId: string
}

/** Writes NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (SPKI PEM, 0644) into dir; refuses to overwrite. */
export function generateKeyPairFiles(dir: string, name: string): GeneratedKeyPair {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new PermanentError('KEY_NAME', `invalid key name ${JSON.stringify(name)}`)
  mkdirSync(dir, { recursive: true })
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const privateKeyFile = join(dir, `${name}.key`)
  const publicKeyFile = join(dir, `${name}.pub`)
  try {
    writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' })
    writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' })
  } catch (err) {
    throw new PermanentError('KEY_EXISTS', `cannot write key pair ${name} in ${dir}: ${(err as Error).message}`)
  }
  chmodSync(privateKeyFile, 0o600)
  return { privateKeyFile, publicKeyFile, keyId: keyIdOf(publicKey) }
}

/**
 * A signed JSON record (state records, freezes, deployment events): the record's own fields plus
 * `keyId` and `signature`, the signature over canonicalJson of the record's JSON form without
 * `signature` (so fields a reader does not know, and `keyId` itself, are covered too). The JSON
 * round trip makes what is signed exactly what a reader parses.
 */
export function sealRecord<T extends object>(value: T, signer: Signer): T & { keyId: string; signature: string } {
  const { signature: _s, keyId: _k, ...rest } = value as T & { signature?: unknown; keyId?: unknown }
  const body = { ...(JSON.parse(JSON.stringify(rest)) as T), keyId: signer.keyId }
  return { ...body, signature: signer.sign(body) }
}

/** verifies a record sealed by sealRecord (parsed from JSON); never throws */
export function verifyRecord(record: object, verifier: Verifier): VerifyOutcome {
  const { signature, ...body } = record as { signature?: unknown; keyId?: unknown }
  if (typeof signature !== 'string' || typeof body.keyId !== 'string') return { kind: 'invalid', reason: 'unsigned' }
  return verifier.verify(body, body.keyId, signature)
}
