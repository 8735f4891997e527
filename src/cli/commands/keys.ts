import { readFileSync } from 'node:fs'
import { parseFlags, UsageError, type Command } from '../args.js'
import { generateKeyPairFiles, loadSigner, sealRecord } from '../../publish/signing.js'

export const command: Command = {
  name: 'keys',
  summary: 'generate Ed25519 key pairs; sign deployment events (CI)',
  usage: `usage: pullback keys generate --out DIR [--name NAME]
       pullback keys sign --key FILE [--in FILE]

generate  writes DIR/NAME.key (PKCS#8 PEM private key, mode 0600) and DIR/NAME.pub (SPKI PEM public
          key) and prints the key id (first 16 hex digits of SHA-256 over the public key). NAME
          defaults to "pullback". Existing files are never overwritten.
            decisions: publish.signingKey = NAME.key (sidecar), actuator.verifyKeys = [NAME.pub]
            artifacts: \`pullback artifacts promote --key NAME.key\` (CI), actuator.artifactKeys = [NAME.pub]
            state:     actuator.stateKey = NAME.key (actuator); its NAME.pub in
                       receivers.deployments.verifyKeys (the actuator's rollback announcements)
            events:    \`pullback keys sign --key NAME.key\` (CI), receivers.deployments.verifyKeys = [NAME.pub]
sign      reads one JSON object (a deployment event for pullback.deployments) from --in FILE or
          stdin and prints it with "keyId" and "signature" added, on one line, e.g.
            echo '{"service":"checkout","namespace":"shop","version":"1.5.0","time":1767225600000}' |
              pullback keys sign --key ci-events.key | kcat -P -b BROKER -t pullback.deployments -k shop/checkout
Rotation: list the new public key beside the old one wherever it is trusted, switch the signer, then
remove the old key; both verify in between.`,
  run(argv, io) {
    const { values, positionals } = parseFlags(argv, { out: { type: 'string', short: 'o' }, name: { type: 'string', short: 'n' }, key: { type: 'string', short: 'k' }, in: { type: 'string' } }, true)
    if ((positionals[0] !== 'generate' && positionals[0] !== 'sign') || positionals.length > 1) throw new UsageError('expected the subcommand `generate` or `sign`')
    if (positionals[0] === 'sign') {
      if (!values.key) throw new UsageError('--key FILE (private key) is required')
      const text = readFileSync(values.in ?? 0, 'utf8')
      let obj: unknown
      try {
        obj = JSON.parse(text)
      } catch (err) {
        io.err(`pullback keys sign: input is not JSON: ${(err as Error).message}\n`)
        return Promise.resolve(1)
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
        io.err('pullback keys sign: input must be one JSON object\n')
        return Promise.resolve(1)
      }
      io.out(`${JSON.stringify(sealRecord(obj, loadSigner(values.key)))}\n`)
      return Promise.resolve(0)
    }
    if (!values.out) throw new UsageError('--out DIR is required')
    const k = generateKeyPairFiles(values.out, values.name ?? 'pullback')
    io.out(`key id      ${k.keyId}\nprivate key ${k.privateKeyFile} (0600)\npublic key  ${k.publicKeyFile}\n`)
    return Promise.resolve(0)
  },
}
