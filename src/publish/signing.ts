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
import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
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
  verify(value: unknown, keyId: string | undefined, signature: string | undefined): VerifyOutcome {
    if (!keyId || !signature) return { kind: 'invalid', reason: 'unsigned' }
    const pub = this.keys.get(keyId)
    if (!pub) return { kind: 'invalid', reason: 'unknown-key' }
    let ok = false
    try {
      ok = verify(null, Buffer.from(canonicalJson(value)), pub, Buffer.from(signature, 'base64'))
    } catch {
      ok = false
    }
    return ok ? { kind: 'valid', keyId } : { kind: 'invalid', reason: 'bad-signature' }
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
