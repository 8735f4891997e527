import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { createLogger } from '../../common/logger.js'
import { createTransport } from '../../kafka/index.js'
import { promoteArtifact, TopicArtifactStore } from '../../actuator/artifacts.js'
import { loadSigner, Verifier } from '../../publish/signing.js'

const USAGE = `usage: pullback artifacts promote --service NS/NAME --artifact REF --key FILE [--version V] [--digest D] [--config FILE]
       pullback artifacts list --service NS/NAME [--config FILE] [--all]

promote  what CI runs when an artifact passes staging: writes a signed verification record
         {schemaVersion:1, service, artifact, digest?, version, promotedAt, keyId, signature} to the
         compacted topic kafka.topics.artifacts (created with cleanup.policy=compact if missing),
         key "<service>|<artifact>". The version defaults to the image tag (else the digest).
list     prints the service's artifacts, newest first, with their verification status against
         actuator.artifactKeys (valid / invalid: unsigned, unknown-key, bad-signature). Shows the
         newest actuator.keepArtifacts (>= 3) unless --all.
The embedded bus lives only inside one process: both need kafka.brokers.`

export const command: Command = {
  name: 'artifacts',
  summary: 'promote a verified artifact (CI) or list the verified artifacts of a service',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        service: { type: 'string', short: 's' },
        artifact: { type: 'string', short: 'a' },
        key: { type: 'string', short: 'k' },
        version: { type: 'string' },
        digest: { type: 'string' },
        config: { type: 'string', short: 'c' },
        all: { type: 'boolean' },
      },
      true,
    )
    const sub = positionals[0]
    if ((sub !== 'promote' && sub !== 'list') || positionals.length > 1) throw new UsageError('expected `promote` or `list`')
    if (!values.service || !/^[^/\s]+\/[^/\s]+$/.test(values.service)) throw new UsageError('--service NAMESPACE/NAME is required')
    const cfg = loadConfig(values.config)
    if (cfg.kafka.brokers.length === 0) {
      io.err('pullback artifacts: kafka.brokers is empty; the artifacts topic needs a Kafka cluster\n')
      return 1
    }
    const logger = createLogger('pullback-artifacts', process.env.PULLBACK_LOG_LEVEL ?? 'warn')
    const transport = await createTransport(cfg.kafka, logger)
    const topic = cfg.kafka.topics.artifacts
    if (sub === 'promote') {
      if (!values.artifact) throw new UsageError('--artifact REF is required')
      if (!values.key) throw new UsageError('--key FILE (private key) is required')
      const signer = loadSigner(values.key)
      const rec = await promoteArtifact(transport, topic, { service: values.service, artifact: values.artifact, version: values.version, digest: values.digest, promotedAt: Date.now() }, signer)
      io.out(`promoted ${rec.artifact} (version ${rec.version}) for ${rec.service}, key ${rec.keyId}, topic ${topic}\n`)
      return 0
    }
    const store = new TopicArtifactStore({ transport, topic, groupPrefix: `${cfg.kafka.groupPrefix}.cli`, verifier: Verifier.fromFiles(cfg.actuator.artifactKeys), logger })
    try {
      await store.start()
      const all = store.list(values.service)
      const shown = values.all ? all : all.slice(0, cfg.actuator.keepArtifacts)
      if (shown.length === 0) {
        io.out(`no artifacts promoted for ${values.service}\n`)
        return 0
      }
      const rows = shown.map((a) => [new Date(a.promotedAt).toISOString(), a.version, a.verification === 'valid' ? 'valid' : `INVALID (${a.reason})`, a.keyId, a.artifact])
      const head = ['PROMOTED', 'VERSION', 'SIGNATURE', 'KEY', 'ARTIFACT']
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
      for (const r of [head, ...rows]) io.out(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')}\n`)
      if (!values.all && all.length > shown.length) io.out(`(${all.length - shown.length} older not shown; --all)\n`)
      return 0
    } finally {
      await store.shutdown()
    }
  },
}
