import { userInfo } from 'node:os'
import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { createLogger } from '../../common/logger.js'
import { createTransport } from '../../kafka/index.js'
import { createActuator } from '../../actuator/index.js'
import { ActuatorState } from '../../actuator/state.js'
import { stateAuthOf } from '../../actuator/authentic.js'
import { AdminServer } from '../../runtime/admin.js'
import { resolveTelemetry } from '../../runtime/config.js'
import { consumerCheck } from '../../runtime/health.js'
import { SelfMetrics } from '../../publish/self-metrics.js'

export const command: Command = {
  name: 'actuator',
  summary: 'consume decisions and roll back to the last verified artifact (and `actuator rearm`)',
  usage: `usage: pullback actuator --config FILE
       pullback actuator rearm --service NS/NAME [--config FILE] [--reason TEXT] [--key FILE]

actuator  joins the consumer group <kafka.groupPrefix>.actuator on kafka.topics.decisions and
          executes each signed rollback decision once: verify signature, gate, newest verified
          artifact older than the failed one, cutover through actuator.driver, readiness gates,
          rollback deployment event, wait for recovered / not-recovered, audit. A halted or
          escalated decision pages on-call and freezes the service.
rearm     lifts the freeze of a service (writes frozen=false to actuator.stateTopic); the running
          actuator acts on the next rollback decision for it again. With actuator.stateKey set the
          re-arm is signed (an unsigned one is ignored by the actuator): with --key FILE (an
          operator's private key whose public half is in actuator.stateKeys), else with the
          state key itself.`,
  async run(argv, io, signal) {
    const { values, positionals } = parseFlags(argv, { config: { type: 'string', short: 'c' }, service: { type: 'string', short: 's' }, reason: { type: 'string' }, key: { type: 'string', short: 'k' } }, true)
    const cfg = loadConfig(values.config)
    const logger = createLogger('pullback-actuator')
    if (positionals[0] === 'rearm') {
      if (!values.service || !/^[^/\s]+\/[^/\s]+$/.test(values.service)) throw new UsageError('--service NAMESPACE/NAME is required')
      if (cfg.kafka.brokers.length === 0) {
        io.err('pullback actuator rearm: kafka.brokers is empty; the freeze lives on the Kafka state topic\n')
        return 1
      }
      const transport = await createTransport(cfg.kafka, logger)
      const producer = transport.producer()
      await producer.connect()
      const state = new ActuatorState({ transport, topic: cfg.actuator.stateTopic, groupPrefix: `${cfg.kafka.groupPrefix}.cli`, producer, logger, auth: stateAuthOf(cfg.actuator, values.key ?? cfg.actuator.stateKey) })
      try {
        await state.start()
        const was = state.frozen(values.service)
        await state.setFreeze({ service: values.service, frozen: false, at: Date.now(), reason: values.reason ?? 'rearmed', by: userInfo().username })
        io.out(was ? `re-armed ${values.service} (was frozen since ${new Date(was.at).toISOString()}: ${was.reason})\n` : `${values.service} was not frozen; recorded re-arm anyway\n`)
      } finally {
        await state.shutdown()
        await producer.disconnect()
      }
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
    if (!values.config) throw new UsageError('--config FILE is required')
    if (cfg.actuator.verifyKeys.length === 0) logger.warn('actuator.verifyKeys is empty: every decision will be rejected')
    const transport = await createTransport(cfg.kafka, logger)
    const actuator = createActuator(cfg, transport, logger)
    const admin = cfg.runtime.admin.enabled ? new AdminServer({ config: cfg.runtime.admin, log: logger.child({ component: 'admin' }) }) : undefined
    const metrics = new SelfMetrics({ telemetry: resolveTelemetry(cfg.runtime.telemetry), log: logger.child({ component: 'self-metrics' }) })
    await actuator.start()
    const stats = () => actuator.consumerStats() ?? { lastPollMs: 0, lastBatchMs: 0, batches: 0, messages: 0, handlerFailures: 0, lag: undefined, connected: false }
    if (admin) {
      // the decisions consumer is the actuator's one dependency worth a readiness check
      admin.addReadinessCheck('decisions', consumerCheck(stats, { stallAfterMs: 60_000 }))
      await admin.start()
    }
    metrics.registerConsumer('decisions', stats)
    metrics.registerActuator(() => ({ outcomes: { recovered: actuator.counters.recovered, halted: actuator.counters.halted, escalated: actuator.counters.escalated, rejected: actuator.counters.rejected } }))
    await metrics.start()
    await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })))
    admin?.markDraining()
    await actuator.shutdown()
    await metrics.shutdown()
    await admin?.shutdown()
    return 0
  },
}
