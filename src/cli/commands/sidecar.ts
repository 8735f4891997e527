import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { createLogger } from '../../common/logger.js'
import type { Component } from '../../common/lifecycle.js'
import { createTransport } from '../../kafka/index.js'
import { signerFromKey, type Signer } from '../../publish/signing.js'
import { createActuator } from '../../actuator/index.js'
import { Sidecar } from '../../runtime/sidecar.js'

export const command: Command = {
  name: 'sidecar',
  summary: 'receive OTLP and spans, evaluate deployments, publish decisions',
  usage: `usage: pullback sidecar [--config FILE] [--no-actuator]

Runs the receivers (OTLP/gRPC :4317, OTLP/HTTP :4318, and with Kafka the otlp_spans and
pullback.deployments consumers), the engine on the wall clock, and the signed decision publisher;
plus /livez, /readyz and /status on the admin port and OTLP self-metrics when configured.

With kafka.brokers empty, messages flow over the in-process embedded bus, and an embedded actuator
runs in the same process when actuator.driver is set (--no-actuator to leave it out); without
publish.signingKey the two share a key generated at start. With Kafka, publish.signingKey is required.

SIGTERM/SIGINT drain in order within runtime.shutdownTimeout; a second signal exits at once.`,
  async run(argv, _io, signal) {
    const { values, positionals } = parseFlags(argv, { config: { type: 'string', short: 'c' }, 'no-actuator': { type: 'boolean' } }, true)
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
    const cfg = loadConfig(values.config)
    const logger = createLogger('pullback-sidecar')
    const transport = await createTransport(cfg.kafka, logger)
    let signer: Signer | undefined
    const decisionKeys: KeyObject[] = []
    const components: Component[] = []
    if (transport.kind === 'embedded' && cfg.publish.signingKey === undefined) {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519')
      signer = signerFromKey(privateKey)
      decisionKeys.push(publicKey)
      logger.warn({ keyId: signer.keyId }, 'embedded mode without publish.signingKey: decisions are signed with a key generated for this process')
    }
    if (transport.kind === 'embedded' && values['no-actuator'] !== true && cfg.actuator.driver !== undefined) {
      components.push(createActuator(cfg, transport, logger.child({ component: 'actuator' }), { decisionKeys }))
    }
    const sidecar = new Sidecar({ config: cfg, transport, logger, signer })
    components.push(sidecar)
    for (const c of components) await c.start()
    await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener('abort', () => r(), { once: true })))
    logger.info({ signal: String(signal.reason) }, 'shutting down')
    const report = await sidecar.drain()
    for (const c of components.filter((x) => x !== sidecar).reverse()) await c.shutdown()
    logger.info(report, 'sidecar stopped')
    return report.result === 'clean' ? 0 : 1
  },
}
