/**
 * Health building blocks the assembler wires together: readiness checks that exercise real
 * dependencies, and the SIGTERM drain.
 *
 * Readiness is about dependencies, not about the admin HTTP server being up: each check looks at
 * the live state of one dependency (a listening socket, a Kafka consumer that polled recently, a
 * producer that is connected) and answers with an explicit outcome.
 */
import type { Server } from 'node:net'
import type { Clock } from '../common/clock.js'
import { systemClock } from '../common/clock.js'
import { errorMessage } from '../common/errors.js'
import type { ConsumerStats } from '../kafka/types.js'

export type CheckResult = { status: 'ok'; detail?: string } | { status: 'failing'; detail: string }

/** A readiness check. It SHOULD answer within the admin's readinessCheckTimeout; a slower one counts as failing. */
export type ReadinessCheck = () => CheckResult | Promise<CheckResult>

export const ok = (detail?: string): CheckResult => (detail === undefined ? { status: 'ok' } : { status: 'ok', detail })
export const failing = (detail: string): CheckResult => ({ status: 'failing', detail })

/** A server (gRPC's http2 server, an http.Server, a net.Server) is bound and accepting. */
export function listeningCheck(what: string, server: () => Pick<Server, 'listening'> | undefined): ReadinessCheck {
  return () => (server()?.listening === true ? ok(`${what} listening`) : failing(`${what} not listening`))
}

/**
 * A Kafka consumer is connected and its poll loop is moving. librdkafka-based consumers can stop
 * silently after idle periods (confluent-kafka-javascript#476), so "connected" alone is not enough:
 * the last poll must be younger than `stallAfterMs`.
 */
export function consumerCheck(stats: () => ConsumerStats, opts: { stallAfterMs: number; clock?: Clock }): ReadinessCheck {
  const clock = opts.clock ?? systemClock
  return () => {
    const s = stats()
    if (!s.connected) return failing('consumer not connected')
    if (s.lastPollMs <= 0) return failing('consumer has not polled yet')
    const age = clock.now() - s.lastPollMs
    if (age > opts.stallAfterMs) return failing(`consumer stalled: last poll ${Math.round(age)} ms ago (limit ${opts.stallAfterMs} ms)`)
    return ok(`last poll ${Math.round(age)} ms ago${s.lag === undefined ? '' : `, lag ${s.lag}`}`)
  }
}

/** What memoryGuardCheck reads: the OTLP receivers' memory guard (receivers/memory.ts MemoryGuard.state). */
export interface MemoryGuardReading {
  state: 'ok' | 'refusing' | 'disabled'
  heldBytes: number
  heapUsedBytes: number
  highWaterBytes: number
}

/**
 * Not ready while the memory guard refuses every OTLP request (its heap figure alone is above the
 * high-water mark), ready again as soon as it stops: a pod that answers every export with 503 /
 * UNAVAILABLE should not receive traffic (issue 11 item 9). Refusals caused by requests in flight
 * are load, not a state, and do not fail readiness.
 */
export function memoryGuardCheck(read: () => MemoryGuardReading): ReadinessCheck {
  const mib = (n: number) => Math.round(n / 1048576)
  return () => {
    const r = read()
    if (r.state === 'disabled') return ok('memory guard disabled')
    if (r.state === 'refusing') return failing(`memory guard refusing every request: heap ${mib(r.heapUsedBytes)} MiB above high-water mark ${mib(r.highWaterBytes)} MiB`)
    return ok(`memory held ${mib(r.heldBytes)} of ${mib(r.highWaterBytes)} MiB`)
  }
}

/**
 * A dependency checked by a real round trip, e.g. a Kafka metadata request
 * (`() => admin.listTopics()`) for "the producer's broker connection works". The probe runs at most
 * once per `minIntervalMs` (readiness is polled by every kubelet probe); in between the last result
 * is answered. Concurrent callers share one in-flight probe.
 */
export function roundTripCheck(what: string, probe: () => Promise<unknown>, opts: { minIntervalMs: number; clock?: Clock }): ReadinessCheck {
  const clock = opts.clock ?? systemClock
  let last: { at: number; result: CheckResult } | undefined
  let inflight: Promise<CheckResult> | undefined
  return () => {
    const now = clock.now()
    if (last !== undefined && now - last.at < opts.minIntervalMs) return last.result
    inflight ??= Promise.resolve()
      .then(probe)
      .then(
        () => ok(`${what} answered`),
        (err: unknown) => failing(`${what} unreachable: ${errorMessage(err)}`),
      )
      .then((result) => {
        last = { at: clock.now(), result }
        inflight = undefined
        return result
      })
    return inflight
  }
}

// ---------------------------------------------------------------------------------------------

export type StepOutcome = 'done' | 'failed' | 'timed_out' | 'skipped'

export interface StepReport {
  name: string
  outcome: StepOutcome
  ms: number
  detail?: string
}

export interface ShutdownReport {
  /** 'clean' when every step finished in time */
  result: 'clean' | 'degraded'
  ms: number
  steps: StepReport[]
}

export interface ShutdownLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/** A drain step. It receives a signal that aborts when its time is up, and SHOULD stop promptly then. */
export type DrainStep = (signal: AbortSignal) => Promise<void>

/**
 * Runs the registered drain steps in registration order, one after the other, within one overall
 * budget (runtime.shutdownTimeout). The sidecar's and the decider process's steps are listed in
 * their files (src/runtime/README.md): receivers (and their consumers' commits) first, the
 * publisher's drain before the close of everything else.
 *
 * A step that fails or overruns the remaining budget is recorded and the next step runs: a broken
 * producer must not stop the state from being written. Once the budget is spent, the remaining steps
 * are recorded as skipped and `run()` resolves, so the process can exit before Kubernetes kills it.
 * `run()` is idempotent: later calls return the first run's promise. It never rejects.
 */
export class ShutdownController {
  private readonly steps: { name: string; fn: DrainStep }[] = []
  private running: Promise<ShutdownReport> | undefined
  private readonly clock: Clock

  constructor(private readonly opts: { timeoutMs: number; log?: ShutdownLog; clock?: Clock }) {
    this.clock = opts.clock ?? systemClock
  }

  /** true once run() was called; readiness SHOULD report failing from then on */
  get draining(): boolean {
    return this.running !== undefined
  }

  add(name: string, fn: DrainStep): this {
    if (this.running !== undefined) throw new Error(`shutdown already started; cannot add step "${name}"`)
    this.steps.push({ name, fn })
    return this
  }

  run(reason = 'shutdown'): Promise<ShutdownReport> {
    this.running ??= this.drain(reason)
    return this.running
  }

  private async drain(reason: string): Promise<ShutdownReport> {
    const t0 = this.clock.now()
    const deadline = t0 + this.opts.timeoutMs
    this.opts.log?.info({ reason, timeoutMs: this.opts.timeoutMs, steps: this.steps.map((s) => s.name) }, 'shutdown started')
    const reports: StepReport[] = []
    for (const step of this.steps) {
      const remaining = deadline - this.clock.now()
      if (remaining <= 0) {
        reports.push({ name: step.name, outcome: 'skipped', ms: 0, detail: 'shutdown timeout spent' })
        this.opts.log?.warn({ step: step.name }, 'shutdown step skipped: timeout spent')
        continue
      }
      const r = await runStep(step.name, step.fn, remaining, this.clock)
      reports.push(r)
      if (r.outcome === 'done') this.opts.log?.info({ step: r.name, ms: r.ms }, 'shutdown step done')
      else this.opts.log?.warn({ step: r.name, ms: r.ms, outcome: r.outcome, detail: r.detail }, 'shutdown step did not complete')
    }
    const report: ShutdownReport = {
      result: reports.every((r) => r.outcome === 'done') ? 'clean' : 'degraded',
      ms: this.clock.now() - t0,
      steps: reports,
    }
    this.opts.log?.info({ result: report.result, ms: report.ms }, 'shutdown finished')
    return report
  }
}

async function runStep(name: string, fn: DrainStep, budgetMs: number, clock: Clock): Promise<StepReport> {
  const ac = new AbortController()
  const t0 = clock.now()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), budgetMs)
  })
  try {
    // Promise.resolve().then() turns a synchronous throw into a rejection
    const res = await Promise.race([Promise.resolve().then(() => fn(ac.signal)).then(() => 'done' as const), timeout])
    if (res === 'timeout') {
      ac.abort(new Error(`shutdown step "${name}" exceeded ${budgetMs} ms`))
      return { name, outcome: 'timed_out', ms: clock.now() - t0, detail: `exceeded ${Math.round(budgetMs)} ms` }
    }
    return { name, outcome: 'done', ms: clock.now() - t0 }
  } catch (err) {
    return { name, outcome: 'failed', ms: clock.now() - t0, detail: errorMessage(err) }
  } finally {
    clearTimeout(timer)
  }
}
