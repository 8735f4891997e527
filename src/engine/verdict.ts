/**
 * The engine's outputs. Outcomes are explicit tagged types, never booleans or nulls.
 *
 * Per-signal state:
 *   healthy      enough samples, within contract
 *   insufficient too few samples (or a telemetry gap, or no baseline): never counts toward rollback
 *   breach       outside contract for the whole observation window with the sample floor met (confirmed)
 *   off          signal disabled by config
 */
export type SignalName = 'error_rate' | 'latency' | 'resource' | 'probe'
export const SIGNALS: readonly SignalName[] = ['error_rate', 'latency', 'resource', 'probe']

export type SignalState = 'healthy' | 'insufficient' | 'breach' | 'off'
export type SignalMode = 'off' | 'observe' | 'enforce'

export interface SignalReading {
  signal: SignalName
  state: SignalState
  mode: SignalMode
  /** current value over the window: error ratio (0..1), latency quantile in ms, resource slope (fraction of request per minute), probe failures */
  value: number
  /** the frozen (or live canary) baseline in the same unit */
  baseline: number
  /** the value beyond which the signal breaches, same unit */
  threshold: number
  /** samples in the window: requests (error_rate, latency), resource points, probe readings */
  samples: number
  /** true when this breach alone suffices (probe failure, or beyond the signal's critical level) */
  critical: boolean
  /** unix ms when the current breach began (first failing bucket), when state is breach */
  onsetMs?: number
  /**
   * error rate and latency: the anytime-valid e-value that the version is beyond the threshold
   * (evidence.ts), and the bound it must reach (1/alpha). Absent for the other signals.
   */
  evidence?: number
  evidenceBound?: number
}

/**
 * Overall status of a watched deployment at one evaluation tick:
 *   healthy | insufficient | breach (confirmed but not enough for action) | rollback | incident
 */
export type DeploymentStatus = 'healthy' | 'insufficient' | 'breach' | 'rollback' | 'incident'

export type BaselineHealthState = 'healthy' | 'unhealthy' | 'unknown'

export type VerdictKind = 'rollback' | 'incident' | 'recovered' | 'not-recovered'

/** One decision. `pullback replay` prints exactly this object as one JSON line; publish signs and ships it. */
export interface Verdict {
  kind: VerdictKind
  /** true when every breaching signal that led here is in `observe` mode: reported, never acted on */
  dryRun: boolean
  /** deterministic: same deployment, same decision kind => same id (see engine/ids.ts) */
  id: string
  /** deterministic id of the deployment this verdict is about */
  deploymentId: string
  namespace: string
  service: string
  version: string
  baselineVersion: string
  /** 'live' when the old version serving side by side was the baseline, else 'snapshot' */
  baselineSource: 'snapshot' | 'live'
  deployedAt: number
  decidedAt: number
  /** artifact reference of the deployed version when known (deployment event), else the version */
  artifact?: string
  /** for recovered/not-recovered: the version that was restored by the rollback */
  restoredVersion?: string
  /**
   * whether the frozen baseline itself was within the service's earlier history (gate.ts):
   * 'unhealthy' means the old version was already breaching before the deployment; 'unknown' when
   * there was no earlier history to compare with. Absent on recovery verdicts.
   */
  baselineHealth?: BaselineHealthState
  reason: string
  signals: SignalReading[]
}
