/**
 * The `simulated` driver for the demo and tests: waits `delay`, then calls the injected hook (the
 * demo's simulator switches the service back to the target version). Level-triggered per service:
 * a service already switched to the target is not switched again.
 */
import type { ApplyOutcome, CutoverRequest, Driver, ReadyOutcome } from './types.js'
import { sleep } from './types.js'

export type CutoverHook = (req: CutoverRequest) => void | Promise<void>

export class SimulatedDriver implements Driver {
  readonly name = 'simulated'
  private readonly current = new Map<string, string>()
  readonly applied: CutoverRequest[] = []
  constructor(
    private readonly delayMs: number,
    private readonly hook?: CutoverHook,
  ) {}

  async apply(req: CutoverRequest, signal: AbortSignal): Promise<ApplyOutcome> {
    const key = `${req.namespace}/${req.service}`
    if (this.current.get(key) === req.target.artifact) return { kind: 'already-applied', detail: `${key} already at ${req.target.artifact}` }
    await sleep(this.delayMs, signal)
    try {
      await this.hook?.(req)
    } catch (err) {
      return { kind: 'failed', reason: `simulated cutover hook: ${(err as Error).message}` }
    }
    this.current.set(key, req.target.artifact)
    this.applied.push(req)
    return { kind: 'applied', detail: `${key} switched to ${req.target.artifact}` }
  }

  awaitReady(): Promise<ReadyOutcome> {
    return Promise.resolve({ kind: 'ready', detail: 'simulated' })
  }
}
