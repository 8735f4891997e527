/**
 * A deployment's baseline, frozen once: the old version's numbers before the deployment, the
 * validation gate's judgement of them (gate.ts), the longer history pooled with them
 * (history-pool.ts), and the scan for a breach already under way when the deployment came.
 */
import type { ResourceKind } from '../normalize/observations.js'
import { alignDown, type SignalView, type WindowStats } from '../signals/view.js'
import type { Contract } from './config.js'
import { baselineSpan, granularity, minSpan, reportInterval } from './cadence.js'
import { judgeBaseline, requestNumbers } from './gate.js'
import { pooledHistory } from './history-pool.js'
import { boundedLatency, medianSlope, sliceErrorBeyond, sliceLatencyBeyond, type BaselineNumbers } from './rules.js'
import type { Watch } from './state.js'
import { alignUp } from './stats.js'

function baselineNumbers(c: Contract, w: WindowStats): BaselineNumbers {
  const resourceSlope: Partial<Record<ResourceKind, number>> = {}
  for (const kind of c.signals.resource.kinds) {
    const m = medianSlope(w, kind, c.signals.resource.minPoints)
    if (m.pods > 0) resourceSlope[kind] = m.slope
  }
  return { ...requestNumbers(c, w), resourceSlope, pooled: undefined }
}

/**
 * Freezes the old version's pre-deploy numbers, and checks the validation gate's question once:
 * was the old version, in the last window(s) before the deployment, already beyond the thresholds
 * this baseline implies? If so that signal's breach is pre-existing (onset before the deployment).
 * Each window scanned is the old series' shortest confirmation span (cadence.ts minSpan: the
 * contract's window and two of its reports, on its grid), the duration a breach after the
 * deployment must hold: a pre-existing breach is sustained by the same standard. Scanned in
 * `window` steps instead, a 45 s exporter's last 15 s (a third of one report) was one look at a
 * tail's chance swing (a single look at alpha per signal), and two drawn bad deploys of 1,000
 * became incidents on it (`false-rollbacks.js --intervals 20,30,45 --histograms exponential
 * --errors 0.05 --slower 2`: #394 and #776, 45 s metrics).
 */
export function freeze(w: Watch, view: SignalView, bucketMs: number): void {
  if (w.baselineVersion === '') return
  const c = w.contract
  const key = { namespace: w.namespace, service: w.service, version: w.baselineVersion }
  const to = alignDown(w.deployedAt, bucketMs)
  const retained = view.retainedFromMs(key)
  const { fromMs: from, win: bw } = baselineSpan(c, view, key, to, retained === undefined ? -Infinity : alignUp(retained, bucketMs))
  const numbers = baselineNumbers(c, bw)
  w.health = judgeBaseline(c, view, key, bw, bucketMs)
  numbers.pooled = c.baselineHistory ? pooledHistory(c, view, key, bw, numbers, w.health) : undefined
  w.baseline = { version: w.baselineVersion, fromMs: from, toMs: to, numbers }
  if (numbers.requests >= c.minSamples) {
    // scan back window by window while the old version was beyond; the earliest such window start is the onset
    let errOnset: number | undefined
    let latOnset: number | undefined
    let errOn = true
    // an unbounded latency (metric means) is no count test's evidence (rules.ts boundedLatency)
    const cov = view.coverage(key)
    let latOn = numbers.latencyCount >= c.minSamples && boundedLatency(cov)
    const layout = cov?.latencyBuckets
    const g = granularity(c, view, cov)
    const span = minSpan(c, reportInterval(cov), g)
    for (let end = to, start = alignDown(end - span, g); start >= from && (errOn || latOn); end = start, start = alignDown(end - span, g)) {
      const pw = view.window(key, start, end)
      if (errOn && sliceErrorBeyond(c, pw, numbers)) errOnset = start
      else errOn = false
      if (latOn && sliceLatencyBeyond(c, pw, numbers, layout)) latOnset = start
      else latOn = false
    }
    if (errOnset !== undefined) w.preExisting.error_rate = errOnset
    if (latOnset !== undefined) w.preExisting.latency = latOnset
  }
}
