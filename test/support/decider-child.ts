/**
 * Child-process entry for the decider kill test: one `pullback decider` (DeciderProcess, real
 * broker, headless, no wall-clock bound on telemetry time) until it is killed. Configuration arrives
 * as JSON in PULLBACK_CHILD. Prints "ready" once started, then on every change "partitions a,b",
 * "watched n" and "rollback <id>" for each rollback it issued.
 */
import { generateKeyPairSync } from 'node:crypto'
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import { createTransport } from '../../src/kafka/index.js'
import { signerFromKey } from '../../src/publish/signing.js'
import { DeciderProcess } from '../../src/runtime/decider-process.js'

const cfg = parseConfig(JSON.parse(process.env.PULLBACK_CHILD ?? '{}') as object)
const transport = await createTransport(cfg.kafka)
const proc = new DeciderProcess({ config: cfg, transport, logger: silentLogger, headless: true, clock: null, signer: signerFromKey(generateKeyPairSync('ed25519').privateKey) })
await proc.start()
process.stdout.write('ready\n')
let parts = ''
let watched = -1
let published = 0
setInterval(() => {
  const s = proc.service.stats()
  const p = s.partitions.join(',')
  if (p !== parts) {
    parts = p
    process.stdout.write(`partitions ${p}\n`)
  }
  const w = proc.service.pipeline()?.stats().watched ?? 0
  if (w !== watched) {
    watched = w
    process.stdout.write(`watched ${w}\n`)
  }
  const n = proc.publisher.stats().published
  if (n !== published) {
    published = n
    process.stdout.write(`published ${n}\n`)
  }
}, 50)
