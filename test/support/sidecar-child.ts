/**
 * Child-process entry for the sidecar kill test: one `pullback sidecar` in distributed mode (an
 * ingest node: OTLP/HTTP receiver -> IngestNode -> partials topic; no decider, no publisher) on the
 * real broker, until it is killed. Configuration arrives as JSON in PULLBACK_CHILD.
 *
 * Its clock is the test's telemetry clock, not the wall clock: the parent writes "clock <ms>" lines
 * on stdin after each request it sent was answered, and the sidecar's ticker announces that time
 * (the node's clock is only ever given to IngestNode.advance). PULLBACK_CLOCK is the clock at start
 * (a restarted node resumes where the test's time is). Prints "port <n>" once started, then
 * "partials <n>" whenever the count of partials it published changes, and "announced <ms>" whenever
 * the newest watermark it announced changes with nothing left in its publisher's queue.
 */
import { silentLogger } from '../../src/common/logger.js'
import { parseConfig } from '../../src/config/load.js'
import { createTransport } from '../../src/kafka/index.js'
import { Sidecar } from '../../src/runtime/sidecar.js'

const cfg = parseConfig(JSON.parse(process.env.PULLBACK_CHILD ?? '{}') as object)
let now = Number(process.env.PULLBACK_CLOCK ?? '0')
let pending = ''
process.stdin.on('data', (c: Buffer) => {
  pending += c.toString()
  const lines = pending.split('\n')
  pending = lines.pop() ?? ''
  for (const l of lines) {
    if (l.startsWith('clock ')) now = Math.max(now, Number(l.slice('clock '.length)))
  }
})
const transport = await createTransport(cfg.kafka)
const sidecar = new Sidecar({ config: cfg, transport, logger: silentLogger, headless: true, clock: { now: () => now } })
await sidecar.start()
process.stdout.write(`port ${sidecar.receivers.http?.port ?? 0}\n`)
let partials = -1
let announced = ''
setInterval(() => {
  const st = sidecar.partials?.stats()
  const n = st?.partials ?? 0
  if (n !== partials) {
    partials = n
    process.stdout.write(`partials ${n}\n`)
  }
  // the newest watermark announced once every record before it left the queue (what the parent paces on)
  const a = st !== undefined && st.queued === 0 ? String(st.watermarkMs) : announced
  if (a !== announced) {
    announced = a
    process.stdout.write(`announced ${a}\n`)
  }
}, 10)
