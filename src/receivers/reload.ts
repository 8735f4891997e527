/**
 * Re-reading file-backed material (TLS certificates, bearer tokens) on an interval: an unref'd timer,
 * one attempt at a time, and a failed attempt keeps what is in use, is counted by the owner
 * (`onFailure`) and logged once per distinct failure, so a failure that persists across ticks is
 * one warning, not one per tick. Never throws.
 */

/** the lifecycle log lines a reload writes (a pino Logger fits; so does the admin server's log) */
export interface ReloadLog {
  warn(obj: object, msg: string): void
}

export interface PeriodicReloadOptions {
  intervalMs: number
  /** the server's name, in log lines */
  name: string
  /** what is reloaded, in log lines: "TLS certificate", "bearer token" */
  what: string
  log: ReloadLog
  /** one read-and-apply; resolves undefined when it worked, else the failure's message; must not reject */
  attempt: () => Promise<string | undefined>
  onFailure: () => void
}

export class PeriodicReload {
  private timer: NodeJS.Timeout | undefined
  private running = false
  private lastFailure: string | undefined

  constructor(private readonly o: PeriodicReloadOptions) {}

  start(): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => void this.run(), this.o.intervalMs)
    this.timer.unref()
  }

  /** idempotent */
  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** One attempt (the timer calls it; tests may too). */
  async run(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      const failure = await this.o.attempt()
      if (failure === undefined) {
        this.lastFailure = undefined
        return
      }
      this.o.onFailure()
      if (failure !== this.lastFailure) {
        this.lastFailure = failure
        this.o.log.warn({ server: this.o.name, err: failure }, `${this.o.what} reload failed; keeping the current one`)
      }
    } finally {
      this.running = false
    }
  }
}
