/**
 * A recording replayed on the sidecar's clock (the benches' `--clock export`): each line handed to
 * the real pipeline when it was exported, with a tick every `tickMs` of the sidecar's clock (now =
 * that instant, watermark = now - engine.lateness), as the sidecar's 1 s `runtime.tickInterval`
 * would run it with no network delay; then two ticks at the end with the watermark at now (nothing
 * more can come), as `pullback replay` ends.
 *
 * `skewMs` is the sidecar's clock minus the applications' (positive: the sidecar is ahead): a line
 * exported at the applications' `t` arrives at the sidecar's `t + skewMs`, its timestamps
 * unchanged. Verdict times are the sidecar's.
 *
 * `replay` (src/cli/commands/replay.ts) instead takes now from the newest telemetry read, which
 * lags the wall clock by up to one batch; neither is wrong, they answer different questions.
 */
import type { PullbackConfig } from '../src/config/schema.js'
import type { DeploymentEvent } from '../src/engine/events.js'
import type { Verdict } from '../src/engine/verdict.js'
import { decodeOtlpJsonLine } from '../src/receivers/otlp/json.js'
import type { DeploymentTimeline } from '../src/report/model.js'
import { Pipeline } from '../src/runtime/pipeline.js'

export interface ExportClockOptions {
  /** sidecar clock minus the applications' (ms; default 0) */
  skewMs?: number
  tickMs?: number
  /** the events a verdict causes (an actuator stand-in), handed to the pipeline at once */
  onVerdict?: (v: Verdict) => DeploymentEvent | undefined
  /** keep each deployment's timeline (Pipeline recordTimeline) and return it */
  recordTimeline?: boolean
}

export interface ExportClockResult {
  verdicts: Verdict[]
  timelines: DeploymentTimeline[]
}

/** `atMs[i]`: when line i was exported, epoch ms on the applications' clock; lines in export order. */
export function replayAtExportTimes(lines: readonly string[], atMs: readonly number[], cfg: PullbackConfig, o: ExportClockOptions = {}): ExportClockResult {
  if (atMs.length !== lines.length) throw new Error(`replayAtExportTimes: ${lines.length} lines but ${atMs.length} export times`)
  const skew = o.skewMs ?? 0
  const step = o.tickMs ?? 1000
  const pipeline = new Pipeline({
    engine: cfg.engine,
    signals: cfg.signals,
    normalize: cfg.normalize,
    recordTimeline: o.recordTimeline === true,
  })
  try {
    const verdicts: Verdict[] = []
    const tick = (now: number, watermark = now - cfg.engine.lateness): void => {
      for (const v of pipeline.tick(now, watermark).verdicts) {
        verdicts.push(v)
        const ev = o.onVerdict?.(v)
        if (ev !== undefined) pipeline.deployment(ev)
      }
    }
    let next = Number.NaN
    for (let i = 0; i < lines.length; i++) {
      const arrives = (atMs[i] as number) + skew
      if (Number.isNaN(next)) next = Math.ceil(arrives / step) * step
      // every tick before this line's arrival runs first; a tick at the arrival instant sees the line
      for (; next < arrives; next += step) tick(next)
      const d = decodeOtlpJsonLine(lines[i] as string)
      if (d.type === 'traces') pipeline.consumeTraces(d.request)
      else if (d.type === 'metrics') pipeline.consumeMetrics(d.request)
    }
    if (!Number.isNaN(next)) {
      tick(next, next)
      tick(next, next)
    }
    const timelines = o.recordTimeline === true ? pipeline.report({ title: '', source: '', generatedAt: 0, input: {} }).timelines : []
    return { verdicts, timelines }
  } finally {
    pipeline.shutdown()
  }
}
