/**
 * `pullback calibrate --report calibration.html`: one self-contained page (inline SVG and CSS, no
 * external assets, no script) with, per service, its history over the period and the chosen
 * thresholds drawn as the level a new version would have to reach against a typical baseline
 * (the history's median): error ratio max(baseline + minDelta, baseline x relativeFactor), latency
 * quantile max(baseline x multiplier, baseline + minIncreaseMs); memory against its request. Then
 * the evidence and the readiness ladder rung with the next step.
 *
 * The history is reduced while calibrating (`reportSeries`): at most `points` points per series, so
 * the report holds a few KB per service whatever the period.
 */
import type { CalibrationResult } from './search.js'
import type { ServiceHistory } from './history.js'
import type { LadderEntry } from './ladder.js'

export interface ReportSeries {
  service: string
  startMs: number
  stepMs: number
  /** req/s, error ratio, latency quantile (ms), memory (bytes, the largest pod); NaN where no data */
  rate: number[]
  errorRatio: number[]
  latencyMs: number[]
  memory: number[]
  memoryRequest: number
  quantile: number
}

function quantileOfHist(counts: ArrayLike<number>, off: number, width: number, boundsS: readonly number[], q: number): number {
  let total = 0
  for (let j = 0; j < width; j++) total += counts[off + j] as number
  if (total <= 0) return Number.NaN
  const rank = q * total
  let seen = 0
  for (let j = 0; j < width; j++) {
    const n = counts[off + j] as number
    if (seen + n >= rank && n > 0) {
      const lo = j === 0 ? 0 : (boundsS[j - 1] as number)
      const hi = j < boundsS.length ? (boundsS[j] as number) : lo
      return (lo + ((rank - seen) / n) * (hi - lo)) * 1000
    }
    seen += n
  }
  return (boundsS[boundsS.length - 1] as number) * 1000
}

export function reportSeries(h: ServiceHistory, quantile: number, points = 720): ReportSeries {
  const r = h.requests
  const width = r.boundsS.length + 1
  const per = Math.max(1, Math.ceil(r.counts.length / points))
  const rate: number[] = []
  const errorRatio: number[] = []
  const latencyMs: number[] = []
  const agg = new Float64Array(width)
  for (let i0 = 0; i0 < r.counts.length; i0 += per) {
    let c = 0
    let e = 0
    let any = false
    let anyLatency = false
    let stepsWithData = 0
    agg.fill(0)
    for (let i = i0; i < Math.min(r.counts.length, i0 + per); i++) {
      const x = r.counts[i] as number
      if (Number.isNaN(x)) continue
      any = true
      stepsWithData++
      c += x
      e += r.errors[i] as number
      // steps whose latency was not read (a windowed Prometheus read) are left out, not taken as zeros
      if (r.latencyKnown !== undefined && r.latencyKnown[i] === 0) continue
      anyLatency = true
      for (let j = 0; j < width; j++) agg[j] = (agg[j] as number) + (r.latency[i * width + j] as number)
    }
    rate.push(any ? c / ((stepsWithData * r.stepMs) / 1000) : Number.NaN)
    errorRatio.push(any && c > 0 ? e / c : Number.NaN)
    latencyMs.push(anyLatency ? quantileOfHist(agg, 0, width, r.boundsS, quantile) : Number.NaN)
  }
  const memory = new Array<number>(rate.length).fill(Number.NaN)
  let memoryRequest = Number.NaN
  const spanMs = per * r.stepMs
  for (const s of h.resources) {
    if (s.resource !== 'memory') continue
    if (Number.isFinite(s.request)) memoryRequest = Number.isNaN(memoryRequest) ? s.request : Math.min(memoryRequest, s.request)
    for (let k = 0; k < s.timesMs.length; k++) {
      const idx = Math.floor(((s.timesMs[k] as number) - r.startMs) / spanMs)
      if (idx < 0 || idx >= memory.length) continue
      const v = s.values[k] as number
      if (!(v <= (memory[idx] as number))) memory[idx] = v
    }
  }
  return { service: `${h.service.namespace === '' ? '' : `${h.service.namespace}/`}${h.service.name}`, startMs: r.startMs, stepMs: spanMs, rate, errorRatio, latencyMs, memory, memoryRequest, quantile }
}

function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return v.length === 0 ? Number.NaN : (v[Math.floor(v.length / 2)] as number)
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

const W = 760
const H = 120
const PAD = 44

/** One line chart; `lines` are horizontal levels with a label. */
function chart(title: string, ys: readonly number[], startMs: number, stepMs: number, fmt: (v: number) => string, lines: { y: number; label: string; color: string }[]): string {
  const finite = ys.filter((y) => Number.isFinite(y))
  const levels = lines.map((l) => l.y).filter((y) => Number.isFinite(y))
  const max = Math.max(1e-12, ...finite, ...levels) * 1.08
  const n = Math.max(1, ys.length - 1)
  const x = (i: number) => PAD + (i / n) * (W - PAD - 8)
  const y = (v: number) => 8 + (1 - v / max) * (H - 26)
  const segs: string[] = []
  let cur = ''
  ys.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      if (cur !== '') segs.push(cur)
      cur = ''
      return
    }
    cur += `${cur === '' ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`
  })
  if (cur !== '') segs.push(cur)
  const days = (ys.length * stepMs) / 86_400_000
  const ticks: string[] = []
  for (let d = 0; d <= days; d += Math.max(1, Math.round(days / 10))) {
    const i = (d * 86_400_000) / stepMs
    ticks.push(`<text x="${x(i).toFixed(1)}" y="${H - 4}" class="t"${x(i) > W - 30 ? ' style="text-anchor:end"' : ''}>${esc(new Date(startMs + d * 86_400_000).toISOString().slice(5, 10))}</text>`)
  }
  const lvl = lines
    .filter((l) => Number.isFinite(l.y))
    .map((l) => `<line x1="${PAD}" x2="${W - 8}" y1="${y(l.y).toFixed(1)}" y2="${y(l.y).toFixed(1)}" stroke="${l.color}" stroke-dasharray="5 3"/><text x="${W - 10}" y="${(y(l.y) - 3).toFixed(1)}" class="l" fill="${l.color}">${esc(l.label)}</text>`)
  return `<figure><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img"><rect x="${PAD}" y="8" width="${W - PAD - 8}" height="${H - 26}" class="bg"/><text x="${PAD - 4}" y="14" class="a">${esc(fmt(max))}</text><text x="${PAD - 4}" y="${H - 18}" class="a">0</text>${segs.map((d) => `<path d="${d}" class="s"/>`).join('')}${lvl.join('')}${ticks.join('')}</svg></figure>`
}

export interface ReportEntry {
  result: CalibrationResult
  series: ReportSeries | undefined
  ladder: LadderEntry | undefined
}

const pct = (v: number) => `${(v * 100).toFixed(v < 0.01 ? 2 : 1)} %`

export function calibrationReport(entries: readonly ReportEntry[], h: { source: string; days: number; targetFalseRate: number; generatedAt: number }): string {
  const parts: string[] = []
  for (const { result: r, series: s, ladder: l } of entries) {
    parts.push(`<section><h2 id="${esc(r.service)}">${esc(r.service)}</h2>`)
    if (l !== undefined) parts.push(`<p class="rung">Readiness: rung ${l.rung} of 3, <b>${esc(l.rungName)}</b> (enforce: ${esc(l.enforce.join(', ') || 'none')}). Next step: ${esc(l.next)}</p>`)
    if (r.kind === 'too-little-data') {
      parts.push(`<p>Not calibrated: ${esc(r.reason)}</p></section>`)
      continue
    }
    const e = r.contract.signals.errorRate
    const lat = r.contract.signals.latency
    parts.push(
      `<p>${r.historyDays.toFixed(1)} days of history; traffic p10 ${r.traffic.p10Rps.toPrecision(3)} req/s. False rollbacks on pseudo-deployments: current contract ${r.current.falseRollbacks}/${r.current.deploys}, chosen ${r.chosen.falseRollbacks}/${r.chosen.deploys}, held out ${r.heldOut.falseRollbacks}/${r.heldOut.deploys}. ` +
        `Catches ${r.power.errorStep !== undefined ? `+${Math.round(r.power.errorStep * 100)} error points` : 'no tried error step'} and ${r.power.latencyFactor !== undefined ? `${r.power.latencyFactor}x latency` : 'no tried latency factor'}. ` +
        `<b>${r.enforce.kind === 'enforce' ? 'enforce' : `observe: ${esc(r.enforce.reason)}`}</b></p>`,
    )
    if (s !== undefined) {
      const be = median(s.errorRatio)
      const bl = median(s.latencyMs)
      parts.push(chart('request rate (req/s)', s.rate, s.startMs, s.stepMs, (v) => v.toPrecision(3), []))
      parts.push(chart(`error ratio; dashed: rollback level against the median baseline (+${e.minDelta}, x${e.relativeFactor}) and the absolute critical`, s.errorRatio, s.startMs, s.stepMs, pct, [
        { y: Math.max(be + e.minDelta, be * e.relativeFactor), label: `breach ${pct(Math.max(be + e.minDelta, be * e.relativeFactor))}`, color: '#c0392b' },
        { y: e.critical, label: `critical ${pct(e.critical)}`, color: '#7d3c98' },
      ]))
      parts.push(chart(`latency p${Math.round(s.quantile * 100)} (ms); dashed: x${lat.multiplier} and +${lat.minIncreaseMs} ms over the median`, s.latencyMs, s.startMs, s.stepMs, (v) => `${v.toFixed(0)} ms`, [
        { y: Math.max(bl * lat.multiplier, bl + lat.minIncreaseMs), label: `breach ${Math.max(bl * lat.multiplier, bl + lat.minIncreaseMs).toFixed(0)} ms`, color: '#c0392b' },
        { y: bl * lat.critical, label: `critical x${lat.critical}`, color: '#7d3c98' },
      ]))
      if (s.memory.some((v) => Number.isFinite(v))) {
        parts.push(chart('memory, largest pod (MiB); dashed: the request', s.memory.map((v) => v / 2 ** 20), s.startMs, s.stepMs, (v) => `${v.toFixed(0)} MiB`, [{ y: s.memoryRequest / 2 ** 20, label: 'request', color: '#c0392b' }]))
      }
    }
    const ev = Object.entries(r.evidence)
      .map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`)
      .join('')
    parts.push(`<details><summary>evidence per value</summary><table>${ev}</table></details></section>`)
  }
  const rows = entries
    .map(({ result: r, ladder: l }) => `<tr><td><a href="#${esc(r.service)}">${esc(r.service)}</a></td><td>${r.kind === 'too-little-data' ? 'skipped' : `${r.heldOut.falseRollbacks}/${r.heldOut.deploys}`}</td><td>${r.kind === 'too-little-data' ? '-' : r.enforce.kind}</td><td>${l === undefined ? '-' : `${l.rung} ${esc(l.rungName)}`}</td></tr>`)
    .join('')
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>pullback calibration</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:820px;color:#222}h2{margin-top:32px;border-bottom:1px solid #ddd}
figure{margin:8px 0}figcaption{font-size:12px;color:#555}svg .bg{fill:#fafafa;stroke:#ddd}svg .s{fill:none;stroke:#2471a3;stroke-width:1}
svg text{font-size:10px}svg .t{text-anchor:middle;fill:#777}svg .a{text-anchor:end;fill:#777}svg .l{text-anchor:end}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}.rung{background:#f4f6f7;padding:6px}
</style></head><body><h1>pullback calibration</h1><p>${h.days} days of history from ${esc(h.source)}, generated ${new Date(h.generatedAt).toISOString()}; target: false rollbacks at or under ${(h.targetFalseRate * 100).toFixed(2)} % of pseudo-deployments.</p>
<table><tr><th>service</th><th>held-out false rollbacks</th><th>recommended</th><th>readiness rung</th></tr>${rows}</table>${parts.join('\n')}</body></html>\n`
}
