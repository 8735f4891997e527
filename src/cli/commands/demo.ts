/**
 * `pullback demo`: the whole loop on loopback in about two minutes. A simulated shop (through the real
 * OpenTelemetry SDK and OTLP/gRPC) deploys a bad checkout version; the sidecar detects it, publishes a
 * signed rollback decision; the actuator checks the signature, picks the last verified artifact,
 * cuts over (simulated driver: the simulator rolls the pods back), announces the rollback; the engine
 * verifies recovery against the frozen baseline; the audit record closes the loop.
 *
 * Everything runs on the embedded bus unless --kafka names a broker. Windows are scaled to the
 * demo's time compression (the simulator plays the scenario at --speed x): the contract is the
 * default one divided by the speed, so the demo shows the default contract's behaviour, faster.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { parseFlags, numberFlag, UsageError, type Command, type Io } from '../args.js'
import { parseConfig } from '../../config/load.js'
import { createLogger, silentLogger } from '../../common/logger.js'
import { errorMessage } from '../../common/errors.js'
import { createTransport } from '../../kafka/index.js'
import type { Consumer, KafkaTransport } from '../../kafka/types.js'
import { signerFromKey } from '../../publish/signing.js'
import { createActuator, promoteArtifact } from '../../actuator/index.js'
import { formatAudit, parseAudit, type AuditRecord } from '../../actuator/audit.js'
import { Sidecar } from '../../runtime/sidecar.js'
import type { WatchStatus } from '../../engine/evaluate.js'
import type { SignalReading, Verdict } from '../../engine/verdict.js'
import type { SignalView } from '../../signals/view.js'
import { findScenario, runLive, type LiveControl, type LiveProgress } from '../../sim/index.js'

const DEFAULT_SCENARIO = 'error-spike'
const DEFAULT_SPEED = 4
/** scenario second the demo starts playing from: enough history before the deploy for the scaled baseline */
const FROM_S = 40

/** The default contract, divided by the speed (rounded to the 1 s bucket the demo uses). */
export function demoConfig(speed: number, kafka: string | undefined, runId: string) {
  const s = (ms: number, min = 1000) => `${Math.max(min, Math.round(ms / speed / 1000) * 1000)}ms`
  // the default window over the speed, in whole seconds per slice (the demo's bucket is 1 s)
  const defaults = parseConfig({}).engine.defaults
  const slices = defaults.slices
  const window = Math.max(slices, slices * Math.ceil(defaults.window / 1000 / speed / slices)) * 1000
  return parseConfig(
    {
      engine: {
        lateness: '2s',
        defaults: {
          window: `${window}ms`,
          slices,
          baselineWindow: s(300_000 * 0.75),
          watch: s(600_000),
          verificationWindow: s(90_000),
          signals: {
            resource: { window: `${Math.max(4, 2 * Math.round(180 / speed / 2)) * 1000}ms`, warmup: s(60_000), threshold: 0.02 * speed, critical: 0.1 * speed },
            probe: { startupGrace: s(60_000) },
          },
        },
      },
      signals: { bucket: '1s', fineRetention: '30s', coarseBucket: '5s', retention: '3m' },
      receivers: {
        otlp: { grpc: { endpoint: '127.0.0.1:0' }, http: { enabled: false } },
      },
      kafka: kafka
        ? {
            brokers: [kafka],
            groupPrefix: `pullback-demo-${runId}`,
            topics: Object.fromEntries(['deployments', 'decisions', 'incidents', 'audit', 'artifacts'].map((t) => [t, `pullback-demo-${runId}.${t}`])),
          }
        : {},
      actuator: {
        driver: { type: 'simulated', delay: '1s' },
        recoveryTimeout: '2m',
        readinessTimeout: '30s',
        ...(kafka ? { stateTopic: `pullback-demo-${runId}.actuator.state`, escalationsTopic: `pullback-demo-${runId}.escalations` } : {}),
      },
      runtime: { admin: { enabled: false }, telemetry: { enabled: false }, tickInterval: '500ms' },
    },
    'demo config',
  )
}

type Event = { at: number; text: string }

/**
 * One signal as the live view shows it. `engine` is the engine's own reading. `collecting` stands
 * in while the engine has not judged the watched version yet: the engine reports every request
 * signal as "insufficient, n=0" until the first full confirmation span after the deployment is in
 * (window + lateness), even though the new version's requests are already in the store; in the demo
 * that span ends a second or two before the decision. The view then shows the store's own numbers
 * for the watched version over the engine's last window, without baseline or threshold (those are
 * the engine's, and it has not applied them yet).
 */
export interface ViewReading {
  reading: SignalReading
  source: 'engine' | 'collecting'
}

export interface LiveWindow {
  /** the contract's window, ms */
  windowMs: number
  /** the contract's latency quantile */
  latencyQuantile: number
}

export function viewReadings(s: WatchStatus, store: Pick<SignalView, 'window'>, w: LiveWindow): ViewReading[] {
  let stats: ReturnType<SignalView['window']> | undefined
  return s.signals.map((r) => {
    const pending = (r.signal === 'error_rate' || r.signal === 'latency') && r.state === 'insufficient' && r.samples === 0
    if (!pending) return { reading: r, source: 'engine' }
    stats ??= store.window({ namespace: s.namespace, service: s.service, version: s.version }, s.t - w.windowMs, s.t)
    if (r.signal === 'error_rate') {
      if (stats.requests === 0) return { reading: r, source: 'engine' }
      return { reading: { ...r, value: stats.errors / stats.requests, samples: stats.requests }, source: 'collecting' }
    }
    if (stats.latency.count === 0) return { reading: r, source: 'engine' }
    return { reading: { ...r, value: stats.latency.valueAtQuantile(w.latencyQuantile) / 1000, samples: stats.latency.count }, source: 'collecting' }
  })
}

/** The live terminal view: a redrawn block on a TTY, plain event lines otherwise. */
export class View {
  private lines = 0
  private progress: LiveProgress | undefined
  private status: WatchStatus | undefined
  private readings: ViewReading[] = []
  /** where the watched version's numbers come from before the engine judged it (the sidecar's signal store) */
  private live: { store: Pick<SignalView, 'window'>; window: LiveWindow } | undefined
  readonly events: Event[] = []
  private lastPlain = 0
  constructor(
    private readonly io: Io,
    private readonly tty: boolean,
    private readonly t0: number,
    private readonly title: string,
  ) {}

  readFrom(store: Pick<SignalView, 'window'>, window: LiveWindow): void {
    this.live = { store, window }
  }

  event(text: string): void {
    const e = { at: Date.now(), text }
    this.events.push(e)
    if (!this.tty) this.io.out(`[${this.clock(e.at)}] ${text}\n`)
    else this.draw()
  }
  setProgress(p: LiveProgress): void {
    this.progress = p
    this.maybeDraw()
  }
  setStatus(s: WatchStatus): void {
    this.status = s
    // read now: the store moves on, and the status describes the window that ends at s.t
    this.readings = this.live ? viewReadings(s, this.live.store, this.live.window) : s.signals.map((reading) => ({ reading, source: 'engine' as const }))
    this.maybeDraw()
  }
  private maybeDraw(): void {
    if (this.tty) return this.draw()
    const now = Date.now()
    if (now - this.lastPlain >= 10_000) {
      this.lastPlain = now
      this.io.out(`[${this.clock(now)}] ${this.progressLine()}\n`)
      if (this.status) for (const l of [this.watchLine(this.status), ...this.signalLines(this.readings)]) this.io.out(`           ${l}\n`)
    }
  }
  private clock(t: number): string {
    return `${((t - this.t0) / 1000).toFixed(1).padStart(5)}s`
  }
  private progressLine(): string {
    const p = this.progress
    if (!p) return 'starting...'
    const frac = p.scenarioS / p.durationS
    const bar = '#'.repeat(Math.round(frac * 30)).padEnd(30, '.')
    return `[${bar}] scenario ${p.scenarioS}/${p.durationS}s  spans sent ${p.spans}${p.exportFailures ? `  export failures ${p.exportFailures}` : ''}`
  }
  private watchLine(s: WatchStatus): string {
    return `${s.kind === 'rollback' ? 'verifying recovery of' : 'watching'} ${s.namespace}/${s.service} ${s.version} (baseline ${s.baselineVersion}): ${s.status}`
  }
  private signalLines(readings: readonly ViewReading[]): string[] {
    return readings.map(({ reading: r, source }) => {
      const unit = r.signal === 'latency' ? ' ms' : ''
      const collecting = source === 'collecting'
      const num = (v: number) => (r.signal === 'error_rate' ? `${(v * 100).toFixed(2)}%` : Number.isFinite(v) ? `${+v.toFixed(3)}${unit}` : '-')
      const fmt = (v: number) => (r.state === 'insufficient' && v === 0 ? '-' : num(v))
      const value = collecting ? num(r.value) : fmt(r.value)
      const ref = (v: number) => (collecting ? '-' : fmt(v))
      const state = collecting ? 'collecting (not judged yet)' : r.state === 'breach' ? 'BREACH' : r.state
      return `${r.signal.padEnd(10)} ${value.padStart(10)}  baseline ${ref(r.baseline).padStart(10)}  threshold ${ref(r.threshold).padStart(10)}  n=${String(r.samples).padStart(5)}  ${state}`
    })
  }
  draw(): void {
    const out: string[] = [this.title, this.progressLine(), '']
    const s = this.status
    if (s) {
      out.push(this.watchLine(s))
      out.push(...this.signalLines(this.readings).map((l) => `  ${l}`))
    } else out.push('waiting for the deployment...', '', '', '', '')
    out.push('')
    for (const e of this.events.slice(-8)) out.push(`[${this.clock(e.at)}] ${e.text}`)
    const cols = process.stdout.columns || 120
    const text = out.map((l) => `\x1b[2K${l.slice(0, cols - 1)}`).join('\n')
    this.io.out(`${this.lines > 0 ? `\x1b[${this.lines}F` : ''}${text}\n`)
    this.lines = out.length
  }
}

export const command: Command = {
  name: 'demo',
  summary: 'run the whole loop on loopback: simulator, sidecar, actuator; a bad deploy rolled back',
  usage: `usage: pullback demo [--kafka HOST:PORT] [--scenario NAME] [--speed N] [--seed N]

Plays a simulated shop through the real OpenTelemetry SDK into an embedded sidecar and actuator on
loopback: checkout v1.5.0 is deployed and starts failing; pullback detects it, publishes a signed
rollback decision, the actuator rolls back to the last verified artifact (a simulated cutover that
rolls the simulated pods back), and the engine verifies recovery. Finishes in about two minutes.

  --kafka HOST:PORT  run the same through a real Kafka broker (topics pullback-demo-<run>.*)
  --scenario NAME    a scenario from \`pullback sim list\` (default ${DEFAULT_SCENARIO})
  --speed N          scenario seconds per wall second (default ${DEFAULT_SPEED}); windows scale with it
  --seed N           simulator seed (default 1)

Ctrl-C stops cleanly.`,
  async run(argv, io, signal) {
    const { values, positionals } = parseFlags(
      argv,
      { kafka: { type: 'string' }, scenario: { type: 'string' }, speed: { type: 'string' }, seed: { type: 'string' } },
      true,
    )
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
    if (values.kafka !== undefined && !/^[^\s:]+:\d+$/.test(values.kafka)) throw new UsageError(`--kafka expects HOST:PORT, got ${JSON.stringify(values.kafka)}`)
    const speed = numberFlag('speed', values.speed, DEFAULT_SPEED)
    if (!(speed >= 1 && speed <= 20)) throw new UsageError('--speed must be between 1 and 20')
    const seed = numberFlag('seed', values.seed, 1)
    const scenario = findScenario(values.scenario ?? DEFAULT_SCENARIO)
    if (!scenario) throw new UsageError(`unknown scenario ${JSON.stringify(values.scenario)} (see \`pullback sim list\`)`)
    return runDemo({ io, signal, speed, seed, scenarioName: scenario.name, kafka: values.kafka })
  },
}

export interface DemoOptions {
  io: Io
  signal: AbortSignal
  speed: number
  seed: number
  scenarioName: string
  kafka: string | undefined
  /** force the plain (non-TTY) view */
  plain?: boolean
}

export interface DemoResult {
  exitCode: number
  verdicts: Verdict[]
  audit: AuditRecord | undefined
  /** wall seconds from the fault's first request to the rollback decision */
  detectionS: number | undefined
}

export async function runDemo(o: DemoOptions): Promise<number> {
  return (await demo(o)).exitCode
}

export async function demo(o: DemoOptions): Promise<DemoResult> {
  const scenario = findScenario(o.scenarioName)
  if (!scenario) throw new UsageError(`unknown scenario ${o.scenarioName}`)
  const runId = randomUUID().slice(0, 8)
  const cfg = demoConfig(o.speed, o.kafka, runId)
  const logger = process.env.PULLBACK_LOG_LEVEL ? createLogger('pullback-demo') : silentLogger
  const t0 = Date.now()
  const view = new View(o.io, o.plain !== true && process.stdout.isTTY === true, t0, `pullback demo: ${scenario.name} (${scenario.description})`)
  const ac = new AbortController()
  const stop = () => ac.abort()
  o.signal.addEventListener('abort', stop, { once: true })

  const transport: KafkaTransport = await createTransport(cfg.kafka, logger)
  view.event(transport.kind === 'kafka' ? `Kafka at ${o.kafka}, topics pullback-demo-${runId}.*` : 'embedded bus (no Kafka configured)')

  // keys: decisions signed by the sidecar; artifacts signed by "CI" at promotion time
  const decisionKeys = generateKeyPairSync('ed25519')
  const artifactKeys = generateKeyPairSync('ed25519')
  const spec = scenario.build(o.seed)
  const svc = spec.services.find((s) => s.name === scenario.service)
  const deploy = spec.deployments.find((d) => d.service === scenario.service && d.rollback !== true)
  if (!svc || !deploy) throw new UsageError(`scenario ${scenario.name} has no deployment of ${scenario.service}`)
  const serviceId = `${scenario.namespace}/${scenario.service}`
  const artifactOf = (version: string) => `registry.example.com/${scenario.namespace}/${scenario.service}:${version}`
  const ciSigner = signerFromKey(artifactKeys.privateKey)
  const promotedAt = Date.now()
  await promoteArtifact(transport, cfg.kafka.topics.artifacts, { service: serviceId, artifact: artifactOf(svc.version), version: svc.version, promotedAt: promotedAt - 2 }, ciSigner)
  await promoteArtifact(transport, cfg.kafka.topics.artifacts, { service: serviceId, artifact: artifactOf(deploy.version), version: deploy.version, promotedAt: promotedAt - 1 }, ciSigner)
  view.event(`CI promoted ${svc.version} and ${deploy.version} of ${serviceId} as verified artifacts (signed records on ${cfg.kafka.topics.artifacts})`)

  let control: LiveControl | undefined
  const verdicts: Verdict[] = []
  let audit: AuditRecord | undefined
  let decidedWallMs: number | undefined
  const actuator = createActuator(cfg, transport, logger, {
    decisionKeys: [decisionKeys.publicKey],
    artifactKeys: [artifactKeys.publicKey],
    simulatedCutover: (req) => {
      view.event(`actuator: cutover of ${req.namespace}/${req.service} from ${req.failed.version} to verified ${req.target.version} (${req.target.artifact})`)
      control?.rollback(req.service, req.target.version)
    },
    onTransition: (_id, from, to) => {
      if (to === 'announce') view.event('actuator: readiness gates passed; announcing the rollback deployment event')
      if (to === 'recovery') view.event('actuator: waiting for the engine to verify recovery against the frozen baseline')
      if (from === 'verify' && to === 'gate') view.event('actuator: decision signature verified')
    },
  })
  const sidecar = new Sidecar({
    config: cfg,
    transport,
    logger,
    signer: signerFromKey(decisionKeys.privateKey),
    headless: true,
    onTick: (res) => {
      const mine = res.statuses.filter((s) => s.namespace === scenario.namespace && s.service === scenario.service)
      const last = mine[mine.length - 1]
      if (last) view.setStatus(last)
      for (const v of res.verdicts) {
        verdicts.push(v)
        if (v.kind === 'rollback' || v.kind === 'incident') decidedWallMs ??= Date.now()
        view.event(`engine: ${v.kind.toUpperCase()}${v.dryRun ? ' (dry run)' : ''} ${v.namespace}/${v.service} ${v.version}: ${v.reason}`)
      }
    },
  })

  view.readFrom(sidecar.pipeline.store, { windowMs: cfg.engine.defaults.window, latencyQuantile: cfg.engine.defaults.signals.latency.quantile })

  let auditConsumer: Consumer | undefined
  let exitCode = 0
  let faultWallMs: number | undefined
  let announcedDeploy = false
  try {
    await actuator.start()
    await sidecar.start()
    const port = sidecar.receivers.grpc?.port ?? 0
    view.event(`sidecar listening for OTLP/gRPC on 127.0.0.1:${port}; simulator playing at ${o.speed}x`)
    auditConsumer = transport.consumer({ groupId: `${cfg.kafka.groupPrefix}.demo-audit-${runId}`, topics: [cfg.kafka.topics.audit], fromBeginning: true })
    const finished = new Promise<void>((resolve) => {
      void auditConsumer?.start(async (b) => {
        for (const m of b.messages) {
          const r = m.value ? parseAudit(m.value) : undefined
          if (r && r.service === serviceId) {
            audit = r
            view.event(`audit record written: outcome ${r.outcome}`)
            resolve()
          }
        }
      })
      ac.signal.addEventListener('abort', () => resolve(), { once: true })
    })
    const live = runLive(scenario, {
      endpoint: `http://127.0.0.1:${port}`,
      protocol: 'grpc',
      speed: o.speed,
      seed: o.seed,
      fromS: FROM_S,
      signal: ac.signal,
      control: (c) => (control = c),
      onProgress: (p) => {
        view.setProgress(p)
        if (!announcedDeploy && p.scenarioS >= scenario.deployAtS) {
          announcedDeploy = true
          view.event(`simulator: ${serviceId} ${deploy.version} is rolling out (${deploy.strategy.kind})`)
        }
        if (faultWallMs === undefined && scenario.faultOnsetS !== undefined && p.scenarioS >= scenario.faultOnsetS) {
          faultWallMs = Date.now()
          view.event(`simulator: the fault begins (${scenario.faultClass})`)
        }
      },
    })
    const outcome = await Promise.race([live.then((r) => ({ kind: 'sim-ended' as const, r })), finished.then(() => ({ kind: 'audit' as const }))])
    if (outcome.kind === 'audit') ac.abort()
    await live
    if (o.signal.aborted) {
      view.event('interrupted; stopping')
      exitCode = 130
    }
  } catch (err) {
    view.event(`demo failed: ${errorMessage(err)}`)
    exitCode = 1
  } finally {
    o.signal.removeEventListener('abort', stop)
    await sidecar.shutdown().catch(() => undefined)
    await actuator.shutdown().catch(() => undefined)
    await auditConsumer?.stop().catch(() => undefined)
  }

  const detectionS = decidedWallMs !== undefined && faultWallMs !== undefined ? (decidedWallMs - faultWallMs) / 1000 : undefined
  if (o.plain !== true && process.stdout.isTTY === true) view.draw()
  o.io.out('\n')
  if (audit) o.io.out(`${formatAudit(audit)}\n\n`)
  o.io.out(`${summary(scenario.name, verdicts, audit, detectionS, o.speed, cfg.engine.defaults.window, (Date.now() - t0) / 1000)}\n`)
  if (exitCode === 0 && scenario.expected.startsWith('rollback') && !verdicts.some((v) => v.kind === 'rollback')) exitCode = 1
  return { exitCode, verdicts, audit, detectionS }
}

function summary(name: string, verdicts: Verdict[], audit: AuditRecord | undefined, detectionS: number | undefined, speed: number, windowMs: number, totalS: number): string {
  const rb = verdicts.find((v) => v.kind === 'rollback')
  const rec = verdicts.find((v) => v.kind === 'recovered' || v.kind === 'not-recovered')
  if (!rb) {
    return `Summary: ${name} ran for ${totalS.toFixed(0)} s; pullback made ${verdicts.length === 0 ? 'no decision' : verdicts.map((v) => v.kind).join(', ')}.`
  }
  const breached = rb.signals.filter((s) => s.state === 'breach').map((s) => s.signal.replace('_', ' '))
  const when =
    detectionS !== undefined
      ? ` ${detectionS.toFixed(1)} s after the fault began (the demo plays ${speed}x faster with a ${windowMs / 1000} s window; at 1x the default 30 s window decides in about 35 s, see bench/quality.ts)`
      : ''
  const after = rec ? `; the engine then judged the restored version ${rec.kind}` : '; recovery was not judged before the demo ended'
  const closed = audit ? `, and the audit record closed with outcome "${audit.outcome}"` : ''
  return (
    `Summary: ${rb.namespace}/${rb.service} ${rb.version} was deployed and went bad. pullback confirmed ${breached.join(' and ')} ` +
    `breaching against the ${rb.baselineSource === 'live' ? 'live' : 'frozen'} ${rb.baselineVersion} baseline${when}, published a signed rollback ` +
    `decision, and the actuator rolled back to the verified ${audit?.restoredVersion ?? rb.baselineVersion}${after}${closed}. Total run time ${totalS.toFixed(0)} s.`
  )
}
