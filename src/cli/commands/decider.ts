import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { createLogger } from '../../common/logger.js'
import { createTransport } from '../../kafka/index.js'
import { DeciderProcess } from '../../runtime/decider-process.js'

export const command: Command = {
  name: 'decider',
  summary: "decide from every ingest node's partials: a member of the decider consumer group (scale-out)",
  usage: `usage: pullback decider [--config FILE]

Runs the decider role only (src/decider/README.md "Broker path"): joins the consumer group
<kafka.groupPrefix>.decider on kafka.topics.partials (default pullback.partials), owns the services
of the partitions Kafka assigns it, merges the partials every ingest node (sidecars with
decider.distributed: true) publishes, and publishes signed decisions like the sidecar. On each
assignment it restores the engine state of its partitions from decider.stateTopic and refills its
windows from the partials still on the topic before it judges. Also consumes deployment events
(its own group per instance) and serves /livez, /readyz, /status on runtime.admin.

With Kafka, publish.signingKey is required. SIGTERM/SIGINT: writes the engine state, leaves the
group, drains the publisher, in order within runtime.shutdownTimeout; exit 1 when a step did not
complete (decisions unacknowledged, a step over the budget); a second signal exits at once.`,
  async run(argv, _io, signal) {
    const { values, positionals } = parseFlags(argv, { config: { type: 'string', short: 'c' } }, true)
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
    const cfg = loadConfig(values.config)
    const logger = createLogger('pullback-decider')
    const transport = await createTransport(cfg.kafka, logger)
    const proc = new DeciderProcess({ config: cfg, transport, logger })
    await proc.start()
    await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })))
    logger.info({ signal: String(signal.reason) }, 'shutting down')
    const report = await proc.drain()
    logger.info({ ...report, decider: proc.service.stats() }, 'decider stopped')
    return report.result === 'clean' ? 0 : 1
  },
}
