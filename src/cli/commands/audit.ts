import { readFileSync } from 'node:fs'
import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { createLogger } from '../../common/logger.js'
import { createTransport } from '../../kafka/index.js'
import { formatAudit, parseAudit, type AuditRecord } from '../../actuator/audit.js'
import { readTopic } from '../../actuator/log.js'

export const command: Command = {
  name: 'audit',
  summary: 'show the rollback audit history of a service',
  usage: `usage: pullback audit show --service NS/NAME [--config FILE] [--file F] [--json]
       pullback audit requests --prometheus URL [--days 30]   (see \`pullback audit requests --help\`)

Prints every audit record of the service, oldest first, as a timeline: outcome, reason, failed and
restored artifacts, breach readings with sample counts, each phase transition with its time, and
the recovery verdict's readings. Reads the JSON-lines file F when given, else kafka.topics.audit
from the beginning. Records are deduplicated by decision id (the last one wins). --json prints the
records as JSON lines instead.`,
  async run(argv, io, signal) {
    // `audit requests` (resource requests vs usage) lives with calibration in src/calibrate
    if (argv[0] === 'requests') return (await import('./calibrate.js')).auditRequestsCommand(argv.slice(1), io, signal)
    const { values, positionals } = parseFlags(argv, { service: { type: 'string', short: 's' }, config: { type: 'string', short: 'c' }, file: { type: 'string', short: 'f' }, json: { type: 'boolean' } }, true)
    if (positionals[0] !== 'show' || positionals.length > 1) throw new UsageError('expected the subcommand `show`')
    if (!values.service) throw new UsageError('--service NAMESPACE/NAME is required')
    const cfg = loadConfig(values.config)
    const file = values.file ?? (cfg.kafka.brokers.length === 0 ? cfg.actuator.auditFile : undefined)
    let raw: (AuditRecord | undefined)[]
    if (file) {
      raw = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => parseAudit(l))
    } else {
      if (cfg.kafka.brokers.length === 0) {
        io.err('pullback audit: no --file, no actuator.auditFile and no kafka.brokers: nowhere to read the audit from\n')
        return 1
      }
      const logger = createLogger('pullback-audit', process.env.PULLBACK_LOG_LEVEL ?? 'warn')
      const transport = await createTransport(cfg.kafka, logger)
      const entries = await readTopic(transport, cfg.kafka.topics.audit, { groupPrefix: `${cfg.kafka.groupPrefix}.cli`, markerKey: values.service, logger })
      raw = entries.filter((e) => e.key === values.service).map((e) => parseAudit(e.value))
    }
    const byId = new Map<string, AuditRecord>()
    for (const r of raw) if (r && r.service === values.service) byId.set(r.decisionId, r)
    const records = [...byId.values()].sort((a, b) => (a.phases[0]?.at ?? a.completedAt) - (b.phases[0]?.at ?? b.completedAt))
    if (records.length === 0) {
      io.out(`no audit records for ${values.service}\n`)
      return 0
    }
    for (const r of records) io.out(values.json ? `${JSON.stringify(r)}\n` : `${formatAudit(r)}\n\n`)
    return 0
  },
}
