/**
 * Calibrating a fleet: reads each service's history from a HistorySource and calibrates it
 * (search.ts), reading ahead while earlier services are backtested, with the backtests on a pool
 * of worker threads (worker.ts) so that both cores work: the history source (Prometheus in its own
 * process, JSON parsing here) and the engine replays overlap.
 *
 * Memory is bounded by the services in flight, not by the fleet: at most `workers + readAhead`
 * histories are held at once (a history read waits for a free slot; each is released once its
 * service is calibrated and handed to `onResult`). With `workers: 0` everything runs in this
 * thread, one service after the other (what the tests use: worker.js exists only once built).
 *
 * Progress (services done / total, rate, ETA, peak RSS) goes to `onLine` at most every
 * `progressEveryMs`; nothing is thrown out of the loop: a failed read is a `failed` outcome.
 */
import { Worker } from 'node:worker_threads'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { BacktestConfig } from './backtest.js'
import { type HistoryOutcome, type HistoryRange, type HistorySource, type ServiceHistory, type ServiceRef } from './history.js'
import { calibrateService, type CalibrateOptions, type CalibrationResult } from './search.js'

export interface FleetOptions {
  source: HistorySource
  services: readonly ServiceRef[]
  range: HistoryRange
  cfg: BacktestConfig
  calibrate: Omit<CalibrateOptions, 'onProgress'>
  /** backtest threads; 0 = in this thread */
  workers: number
  /** histories read before a worker is free for them (default 1) */
  readAhead?: number
  /**
   * reads in flight at once (default 3): one read is a chain of request -> answer -> parse, so with
   * one lane the source and this thread take turns idling; more lanes overlap them (1,000 services
   * from bench/promsim.ts: 1 lane 11.8 min, 2 lanes 10.3, 3 lanes 8.0)
   */
  readers?: number
  signal?: AbortSignal
  /** per-service detail lines (the search's candidates), prefixed by the caller */
  onDetail?: (index: number, line: string) => void
  /** the progress line: done / total, rate, ETA */
  onLine?: (line: string) => void
  progressEveryMs?: number
  /**
   * every service, in completion order: its history (kept until this returns, for a report) and
   * result, or the read outcome that was not `ok`
   */
  onResult: (r: FleetItem) => void
}

export type FleetItem =
  | { index: number; service: ServiceRef; kind: 'calibrated'; history: ServiceHistory; result: CalibrationResult; readMs: number }
  | { index: number; service: ServiceRef; kind: 'unread'; outcome: Exclude<HistoryOutcome, { kind: 'ok' }>; readMs: number }

export interface FleetStats {
  services: number
  calibrated: number
  unread: number
  /** wall time spent waiting for the source (summed over reads) */
  readMs: number
  /** wall time of the backtests (summed over services, as measured where they ran) */
  backtestMs: number
  elapsedMs: number
  peakRssMiB: number
  workers: number
}

/** The worker script next to this module once built (dist/src/calibrate/worker.js); undefined when running from TypeScript. */
export function workerScript(): string | undefined {
  const p = fileURLToPath(new URL('./worker.js', import.meta.url))
  return existsSync(p) ? p : undefined
}

interface Job {
  index: number
  service: ServiceRef
  history: ServiceHistory
  readMs: number
}

/** Messages between this module and worker.ts. */
export type ToWorker = { kind: 'job'; id: number; history: ServiceHistory }
export type FromWorker = { kind: 'detail'; id: number; line: string } | { kind: 'done'; id: number; result: CalibrationResult } | { kind: 'error'; id: number; message: string }
export interface WorkerInit {
  cfg: BacktestConfig
  calibrate: Omit<CalibrateOptions, 'onProgress'>
}

export async function calibrateFleet(opts: FleetOptions): Promise<FleetStats> {
  const began = performance.now()
  const total = opts.services.length
  const stats: FleetStats = { services: total, calibrated: 0, unread: 0, readMs: 0, backtestMs: 0, elapsedMs: 0, peakRssMiB: 0, workers: opts.workers }
  const every = opts.progressEveryMs ?? 10_000
  let lastLine = began
  let done = 0
  const rss = () => {
    stats.peakRssMiB = Math.max(stats.peakRssMiB, process.memoryUsage.rss() / 2 ** 20)
  }
  const progress = (force: boolean) => {
    rss()
    const now = performance.now()
    if (!force && now - lastLine < every) return
    lastLine = now
    const s = (now - began) / 1000
    const rate = done / Math.max(1e-9, s)
    const eta = rate > 0 ? (total - done) / rate : Infinity
    opts.onLine?.(`${done}/${total} services, ${(rate * 60).toFixed(1)}/min, ${fmtDuration(s)} elapsed, ETA ${Number.isFinite(eta) ? fmtDuration(eta) : '?'}, RSS ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`)
  }
  const finish = (item: FleetItem, backtestMs: number) => {
    done += 1
    if (item.kind === 'calibrated') {
      stats.calibrated += 1
      stats.backtestMs += backtestMs
    } else stats.unread += 1
    opts.onResult(item)
    progress(false)
  }

  // `readers` reads in flight (lanes taking the next service in order), at most `slots` histories held
  const readAhead = Math.max(0, opts.readAhead ?? 1)
  const lanes = Math.max(1, Math.floor(opts.readers ?? 3))
  const script = opts.workers > 0 ? workerScript() : undefined
  const nWorkers = script !== undefined ? Math.max(1, Math.floor(opts.workers)) : 0
  stats.workers = nWorkers
  const slots = Math.max(1, nWorkers) + Math.max(readAhead, lanes - 1)
  let held = 0
  /** lanes waiting for a free slot, first come first served */
  const slotWaiters: (() => void)[] = []
  const release = () => {
    held -= 1
    slotWaiters.shift()?.()
  }
  const ready: Job[] = []
  let wake: (() => void) | undefined
  let readerDone = false
  const push = (j: Job) => {
    ready.push(j)
    const w = wake
    wake = undefined
    w?.()
  }

  let nextRead = 0
  // a slot is taken before the read starts, so lanes in flight never hold more than `slots` histories
  const lane = async () => {
    for (;;) {
      if (opts.signal?.aborted === true) break
      while (held >= slots) await new Promise<void>((r) => slotWaiters.push(r))
      if (nextRead >= total) break
      const i = nextRead++
      held += 1
      const svc = opts.services[i] as ServiceRef
      const t0 = performance.now()
      let h: HistoryOutcome
      try {
        h = await opts.source.history(svc, opts.range, opts.signal)
      } catch (err) {
        // a source must answer an outcome; one that throws is classified here, once
        h = { kind: 'failed', service: svc, reason: err instanceof Error ? err.message : String(err) }
      }
      const readMs = performance.now() - t0
      stats.readMs += readMs
      if (h.kind !== 'ok') {
        release()
        finish({ index: i, service: svc, kind: 'unread', outcome: h, readMs }, 0)
        continue
      }
      rss()
      push({ index: i, service: svc, history: h.history, readMs })
    }
  }
  const reader = (async () => {
    await Promise.all(Array.from({ length: lanes }, lane))
    readerDone = true
    // lanes that stopped (abort) leave no waiter behind
    for (const w of slotWaiters.splice(0)) w()
    const w = wake
    wake = undefined
    w?.()
  })()

  const next = async (): Promise<Job | undefined> => {
    for (;;) {
      const j = ready.shift()
      if (j !== undefined) return j
      if (readerDone) return undefined
      await new Promise<void>((r) => (wake = chain(wake, r)))
    }
  }

  const inThread = async () => {
    for (;;) {
      const j = await next()
      if (j === undefined) return
      const t0 = performance.now()
      const result = calibrateService(j.history, opts.cfg, { ...opts.calibrate, onProgress: (l) => opts.onDetail?.(j.index, l) })
      const ms = performance.now() - t0
      release()
      finish({ index: j.index, service: j.service, kind: 'calibrated', history: j.history, result, readMs: j.readMs }, ms)
      // let the reader's answers in between services
      await new Promise((r) => setImmediate(r))
    }
  }

  const init: WorkerInit = { cfg: opts.cfg, calibrate: opts.calibrate }
  const spawnWorker = () => new Worker(script as string, { workerData: init })
  const onWorker = async () => {
    let w = spawnWorker()
    let id = 0
    try {
      for (;;) {
        const j = await next()
        if (j === undefined) return
        id += 1
        const t0 = performance.now()
        const result = await new Promise<CalibrationResult | Error>((resolve) => {
          const off = () => {
            w.off('message', onMsg)
            w.off('error', onErr)
            w.off('exit', onExit)
          }
          const onMsg = (m: FromWorker) => {
            if (m.id !== id) return
            if (m.kind === 'detail') opts.onDetail?.(j.index, m.line)
            else {
              off()
              resolve(m.kind === 'done' ? m.result : new Error(m.message))
            }
          }
          const onErr = (err: Error) => {
            off()
            resolve(err)
          }
          const onExit = (code: number) => {
            off()
            resolve(new Error(`worker exited with code ${code}`))
          }
          w.on('message', onMsg)
          w.on('error', onErr)
          w.on('exit', onExit)
          // copied, not transferred: the history stays here for onResult (the report)
          w.postMessage({ kind: 'job', id, history: j.history } satisfies ToWorker)
        })
        const ms = performance.now() - t0
        release()
        if (result instanceof Error) {
          finish({ index: j.index, service: j.service, kind: 'unread', outcome: { kind: 'failed', service: j.service, reason: `backtest failed: ${result.message}` }, readMs: j.readMs }, 0)
          // a worker that failed is replaced: the next service gets a fresh one
          await w.terminate()
          w = spawnWorker()
          id = 0
        } else finish({ index: j.index, service: j.service, kind: 'calibrated', history: j.history, result, readMs: j.readMs }, ms)
      }
    } finally {
      await w.terminate()
    }
  }

  if (nWorkers === 0) await Promise.all([reader, inThread()])
  else await Promise.all([reader, ...Array.from({ length: nWorkers }, () => onWorker())])
  progress(true)
  stats.elapsedMs = performance.now() - began
  return stats
}

function chain(a: (() => void) | undefined, b: () => void): () => void {
  return a === undefined ? b : () => {
    a()
    b()
  }
}

export function fmtDuration(s: number): string {
  if (s < 60) return `${s.toFixed(0)} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`
  return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, '0')} min`
}
