/**
 * Load as a confounder of latency. Pure.
 *
 * Latency rises with load: a traffic surge queues requests in every version alike. While the old
 * version serves beside the new one the live baseline takes that into account (baseline-source.ts);
 * once a rollout has completed nothing serves beside the new version, and the frozen snapshot is
 * from the traffic before the deployment. Then a latency breach that coincides with a surge says
 * nothing about the version: measured on the scenario library with exponential duration histograms
 * (`quality.js --histograms exponential`), a 4x traffic spike after a clean deployment slowed the
 * p99 1.6x for five minutes and the latency hold rolled the clean version back
 * (`traffic-spike-60s` seed 11; the SDK's default explicit bounds hid it under a bucket floor).
 *
 * Contract: a latency breach decides ALONE (its critical level held, or held for
 * `singleSignalHold`) only while the version's request rate over that hold is at most
 * `latency.loadFactor` times its snapshot's. Two witnesses still decide (errors do not rise with
 * load in a healthy service), and so does latency alone once the surge has left the hold. A canary
 * or a rollout in progress carries part of the traffic, so its rate is below the snapshot's and the
 * guard never holds it back.
 */
import type { SeriesKey } from '../normalize/observations.js'
import type { SignalView } from '../signals/view.js'
import type { Contract } from './config.js'

/** The snapshot's traffic: its requests and the time they were served in. */
export interface SnapshotTraffic {
  requests: number
  fromMs: number
  toMs: number
}

/**
 * The version's request rate over [from, end) relative to its snapshot's; NaN when either is
 * unknown (no snapshot time, no requests in it), which never confounds.
 */
export function loadRatio(view: SignalView, key: SeriesKey, snapshot: SnapshotTraffic, from: number, end: number): number {
  const spanMs = snapshot.toMs - snapshot.fromMs
  if (!(spanMs > 0) || !(snapshot.requests > 0) || !(end > from)) return NaN
  const w = view.window(key, from, end)
  return w.requests / (end - from) / (snapshot.requests / spanMs)
}

/** What a latency reading held back by load says (appended to its note). */
export function underLoadNote(c: Contract): string {
  return `under load: traffic beyond ${c.signals.latency.loadFactor}x the baseline's, latency alone does not decide`
}

/** True when the rate ratio is beyond the contract's load factor: latency alone must not decide. */
export function loadConfounds(c: Contract, ratio: number): boolean {
  return ratio > c.signals.latency.loadFactor
}
