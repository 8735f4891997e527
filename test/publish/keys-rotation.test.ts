/**
 * Issue 13, item 9: several trusted keys per purpose, so a key rotates without a gap; a signer with
 * an explicit key id (`publish.keyId`) verifies; a group- or world-readable private key is warned
 * about once.
 */
import { chmodSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openDecision, sealDecision } from '../../src/publish/envelope.js'
import { Verifier, generateKeyPairFiles, loadPublicKey, loadSigner, warnIfExposed } from '../../src/publish/signing.js'
import { verdict } from '../actuator/helpers.js'

describe('key rotation and key hygiene', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-rotate-'))
  const old = generateKeyPairFiles(dir, 'decisions-2025')
  const next = generateKeyPairFiles(dir, 'decisions-2026')

  it('rotates without a gap: both keys verify while both are trusted, the old one is refused once removed', () => {
    const during = Verifier.fromFiles([old.publicKeyFile, next.publicKeyFile])
    const after = Verifier.fromFiles([next.publicKeyFile])
    const byOld = sealDecision(verdict('rollback'), loadSigner(old.privateKeyFile), Date.now())
    const byNew = sealDecision(verdict('rollback'), loadSigner(next.privateKeyFile), Date.now())
    // signers switch one by one while the verifiers trust both
    expect(openDecision(JSON.stringify(byOld), during).kind).toBe('valid')
    expect(openDecision(JSON.stringify(byNew), during).kind).toBe('valid')
    expect(openDecision(JSON.stringify(byNew), after).kind).toBe('valid')
    expect(openDecision(JSON.stringify(byOld), after)).toMatchObject({ kind: 'rejected', reason: 'unknown-key' })
    expect(during.size).toBe(2)
  })

  it('a signer configured with an explicit key id (publish.keyId) verifies against its public key', () => {
    const env = sealDecision(verdict('rollback'), loadSigner(next.privateKeyFile, 'decisions-2026'), Date.now())
    expect(env.keyId).toBe('decisions-2026')
    expect(openDecision(JSON.stringify(env), Verifier.fromFiles([old.publicKeyFile, next.publicKeyFile])).kind).toBe('valid')
    expect(openDecision(JSON.stringify(env), Verifier.fromFiles([old.publicKeyFile]))).toMatchObject({ kind: 'rejected', reason: 'unknown-key' })
    // a key id naming one trusted key does not let another key's signature pass
    const forged = sealDecision(verdict('rollback'), loadSigner(old.privateKeyFile, next.keyId), Date.now())
    expect(openDecision(JSON.stringify(forged), Verifier.fromFiles([next.publicKeyFile]))).toMatchObject({ kind: 'rejected', reason: 'bad-signature' })
  })

  it('warns once about a private key readable by others or by a foreign group, not by its own group (the k8s fsGroup pattern)', () => {
    const warnings: string[] = []
    expect(warnIfExposed(next.privateKeyFile, (m) => warnings.push(m))).toBe('private')
    chmodSync(next.privateKeyFile, 0o640)
    // the file's group is this process's own group (created by it): 0640 is not exposed
    expect(warnIfExposed(next.privateKeyFile, (m) => warnings.push(m))).toBe('private')
    chmodSync(next.privateKeyFile, 0o644)
    expect(warnIfExposed(next.privateKeyFile, (m) => warnings.push(m))).toBe('exposed')
    expect(warnIfExposed(next.privateKeyFile, (m) => warnings.push(m))).toBe('exposed')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/decisions-2026\.key is readable by others \(mode 644\)/)
    chmodSync(next.privateKeyFile, 0o600)
    expect(loadPublicKey(next.privateKeyFile).asymmetricKeyType).toBe('ed25519')
  })
})
