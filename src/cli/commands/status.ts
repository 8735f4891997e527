/**
 * `pullback status`: the readiness ladder (src/calibrate/ladder.ts) of each service, and the next
 * step to climb. Computed from the config file; with --admin URL, read from a running sidecar's or
 * decider's /status instead (its `readiness` entry: the config it runs with, and the services it
 * has seen).
 */
import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { errorMessage } from '../../common/errors.js'
import { parseServiceRef, serviceKey } from '../../calibrate/history.js'
import { configuredServices, ladder, ladderTable, type LadderEntry } from '../../calibrate/ladder.js'
import { createLogger } from '../../common/logger.js'
import { createTransport } from '../../kafka/index.js'
import { TopicArtifactStore } from '../../actuator/artifacts.js'
import { Verifier } from '../../publish/signing.js'

const USAGE = `usage: pullback status [--config FILE] [--service NS/NAME ...] [--artifacts] [--admin URL] [--json]

Shows each service's rung on the readiness ladder (0 no automation, 1 single-signal, 2 four-signal
engine, 3 verified artifacts plus audit): which signals enforce, whether and when its contract was
calibrated (calibration.services, written by pullback calibrate), whether artifacts are verified
and audited, and the next step to climb.

  --config FILE      the pullback.yaml to read (default: the built-in defaults)
  --service NS/NAME  these services (repeatable); default: every service the config names, and "*"
                     for the defaults every other service gets
  --artifacts        also read kafka.topics.artifacts: a service with no valid verified artifact does not
                     reach rung 3 (needs kafka.brokers)
  --admin URL        read the ladder from a running process's /status (e.g. http://127.0.0.1:13134)
  --json             one JSON object per service`

export const command: Command = {
  name: 'status',
  summary: "the readiness ladder: each service's rung and the next step to climb",
  usage: USAGE,
  async run(argv, io, signal) {
    const { values, positionals } = parseFlags(argv, { config: { type: 'string', short: 'c' }, service: { type: 'string', multiple: true }, admin: { type: 'string' }, artifacts: { type: 'boolean' }, json: { type: 'boolean' } }, true)
    if (values.artifacts === true && values.admin !== undefined) throw new UsageError('--artifacts reads the topic itself: not with --admin')
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
    const wanted: string[] = []
    for (const s of values.service ?? []) {
      const ref = parseServiceRef(s)
      if (ref === undefined) throw new UsageError(`--service expects NAMESPACE/NAME, got ${JSON.stringify(s)}`)
      wanted.push(serviceKey(ref))
    }
    let entries: LadderEntry[]
    if (values.admin !== undefined) {
      let doc: { readiness?: LadderEntry[] }
      try {
        const res = await fetch(new URL('/status', values.admin), { signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) })
        if (!res.ok) throw new Error(`HTTP ${res.status}`)
        doc = (await res.json()) as { readiness?: LadderEntry[] }
      } catch (err) {
        io.err(`pullback status: ${values.admin}/status: ${errorMessage(err)}\n`)
        return 1
      }
      if (!Array.isArray(doc.readiness)) {
        io.err(`pullback status: ${values.admin}/status has no readiness entry (status detail "health", or an older pullback)\n`)
        return 1
      }
      entries = doc.readiness.filter((e) => wanted.length === 0 || wanted.includes(e.service))
    } else {
      const cfg = loadConfig(values.config)
      const services = wanted.length > 0 ? wanted : [...configuredServices(cfg), '*']
      if (values.artifacts === true) {
        if (cfg.kafka.brokers.length === 0) {
          io.err('pullback status: --artifacts needs kafka.brokers (the artifacts topic)\n')
          return 1
        }
        const logger = createLogger('pullback-status', process.env.PULLBACK_LOG_LEVEL ?? 'warn')
        const store = new TopicArtifactStore({ transport: await createTransport(cfg.kafka, logger), topic: cfg.kafka.topics.artifacts, groupPrefix: `${cfg.kafka.groupPrefix}.cli`, verifier: Verifier.fromFiles(cfg.actuator.artifactKeys), logger })
        try {
          await store.start()
          entries = ladder(cfg, Date.now(), services, { promoted: (s) => store.list(s).filter((a) => a.verification === 'valid').length })
        } catch (err) {
          io.err(`pullback status: reading ${cfg.kafka.topics.artifacts}: ${errorMessage(err)}\n`)
          return 1
        } finally {
          await store.shutdown()
        }
      } else entries = ladder(cfg, Date.now(), services)
    }
    if (values.json === true) for (const e of entries) io.out(`${JSON.stringify(e)}\n`)
    else io.out(ladderTable(entries))
    return 0
  },
}
