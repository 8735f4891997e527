import { generateKeyPairSync } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, signerFromKey, Verifier } from '../../src/publish/signing.js'
import { openDecision, sealDecision } from '../../src/publish/envelope.js'
import type { Verdict } from '../../src/engine/verdict.js'

const pair = () => generateKeyPairSync('ed25519')
const v: Verdict = {
  kind: 'rollback', dryRun: false, id: 'r-1', deploymentId: 'd-1', namespace: 'shop', service: 'cart', version: '2', baselineVersion: '1',
  baselineSource: 'snapshot', deployedAt: 1, decidedAt: 2, reason: 'x',
  signals: [{ signal: 'error_rate', state: 'breach', mode: 'enforce', value: 0.1, baseline: 0.01, threshold: 0.02, samples: 500, critical: false }],
}

describe('canonical JSON', () => {
  it('is independent of key order and drops undefined members', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(fc.integer(), fc.string(), fc.boolean())), (o) => {
        const reversed = Object.fromEntries(Object.entries(o).reverse())
        expect(canonicalJson(reversed)).toBe(canonicalJson(o))
        expect(JSON.parse(canonicalJson(o))).toEqual(o)
      }),
    )
    expect(canonicalJson({ b: 1, a: [1, { d: undefined, c: 'x' }] })).toBe('{"a":[1,{"c":"x"}],"b":1}')
  })
})

describe('decision envelope', () => {
  const k = pair()
  const signer = signerFromKey(k.privateKey)
  const verifier = new Verifier([k.publicKey])

  it('round-trips: sealed by the trusted key, valid after JSON re-encoding', () => {
    const env = sealDecision(v, signer, 123)
    expect(env).toMatchObject({ schemaVersion: 1, id: 'r-1', kind: 'rollback', issuedAt: 123, keyId: signer.keyId })
    const reencoded = JSON.stringify(JSON.parse(JSON.stringify(env)), null, 2)
    expect(openDecision(Buffer.from(reencoded), verifier).kind).toBe('valid')
  })

  it('rejects tampering, unknown keys, unsigned, mismatched ids and malformed records', () => {
    const env = sealDecision(v, signer, 1)
    const tampered = structuredClone(env)
    tampered.payload.signals[0]!.value = 0.0001
    expect(openDecision(JSON.stringify(tampered), verifier)).toMatchObject({ kind: 'rejected', reason: 'bad-signature' })
    const rogue = sealDecision(v, signerFromKey(pair().privateKey), 1)
    expect(openDecision(JSON.stringify(rogue), verifier)).toMatchObject({ kind: 'rejected', reason: 'unknown-key' })
    // a rogue key that claims the trusted key id
    const impostor = sealDecision(v, signerFromKey(pair().privateKey, signer.keyId), 1)
    expect(openDecision(JSON.stringify(impostor), verifier)).toMatchObject({ kind: 'rejected', reason: 'bad-signature' })
    expect(openDecision(JSON.stringify({ ...env, signature: undefined }), verifier)).toMatchObject({ kind: 'rejected', reason: 'unsigned' })
    const otherId = sealDecision({ ...v, id: 'r-2' }, signer, 1)
    expect(openDecision(JSON.stringify({ ...otherId, payload: { ...otherId.payload, id: 'r-1' } }), verifier).kind).toBe('rejected')
    expect(openDecision('not json', verifier).kind).toBe('malformed')
    expect(openDecision(JSON.stringify({ ...env, schemaVersion: 2 }), verifier).kind).toBe('malformed')
    expect(openDecision(null, verifier).kind).toBe('malformed')
  })
})
