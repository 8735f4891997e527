/**
 * What a replay report is drawn from: per watched deployment, the signal readings at every
 * evaluation tick plus the verdicts. The pipeline (src/runtime/pipeline.ts) produces it while it
 * replays; src/report/html.ts renders it. Plain data, JSON-serializable.
 */
import type { DeploymentStatus, SignalReading, Verdict } from '../engine/verdict.js'

export interface TickRecord {
  /** evaluation time, unix ms (telemetry time in replay) */
  t: number
  status: DeploymentStatus
  signals: SignalReading[]
}

export interface DeploymentTimeline {
  deploymentId: string
  namespace: string
  service: string
  version: string
  baselineVersion: string
  deployedAt: number
  /** 'deploy' for a release under watch, 'rollback' for a recovery verification */
  kind: 'deploy' | 'rollback'
  ticks: TickRecord[]
  verdicts: Verdict[]
}

export interface ReportInput {
  title: string
  /** the replayed file, for the heading */
  source: string
  generatedAt: number
  timelines: DeploymentTimeline[]
  /** counts of what was read: lines, spans, metric points, malformed lines */
  input: Record<string, number>
}
