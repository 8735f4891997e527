import { parseFlags, UsageError, type Command } from '../args.js'
import { generateKeyPairFiles } from '../../publish/signing.js'

export const command: Command = {
  name: 'keys',
  summary: 'generate Ed25519 key pairs for decisions and artifact verification',
  usage: `usage: pullback keys generate --out DIR [--name NAME]

Writes DIR/NAME.key (PKCS#8 PEM private key, mode 0600) and DIR/NAME.pub (SPKI PEM public key) and
prints the key id (first 16 hex digits of SHA-256 over the public key). NAME defaults to "pullback".
Existing files are never overwritten.
  decisions: publish.signingKey = NAME.key (sidecar), actuator.verifyKeys = [NAME.pub]
  artifacts: \`pullback artifacts promote --key NAME.key\` (CI), actuator.artifactKeys = [NAME.pub]`,
  run(argv, io) {
    const { values, positionals } = parseFlags(argv, { out: { type: 'string', short: 'o' }, name: { type: 'string', short: 'n' } }, true)
    if (positionals[0] !== 'generate' || positionals.length > 1) throw new UsageError('expected the subcommand `generate`')
    if (!values.out) throw new UsageError('--out DIR is required')
    const k = generateKeyPairFiles(values.out, values.name ?? 'pullback')
    io.out(`key id      ${k.keyId}\nprivate key ${k.privateKeyFile} (0600)\npublic key  ${k.publicKeyFile}\n`)
    return Promise.resolve(0)
  },
}
