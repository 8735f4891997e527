/**
 * The replay report: one self-contained HTML page (inline CSS and SVG; no script, font or request
 * to the network) drawn from a ReportInput. Per deploying service and per watched deployment, four
 * charts (value, baseline and threshold of each signal over time, with breach/insufficient shading
 * and markers for the deployment, the decisions and the recovery verdicts) and the verdict table.
 *
 * Stable hooks for tests and for people who post-process the page:
 *   <section class="timeline" data-deployment="ID" data-service="ns/name" data-kind="deploy|rollback">
 *   <svg class="chart" data-signal="error_rate|latency|resource|probe">
 *     <path class="series">, <path class="baseline">, <path class="threshold">,
 *     <rect class="state state-breach|state-insufficient">, <line class="marker marker-deploy|marker-decision|marker-recovery">
 *   <svg class="evidence" data-signal="error_rate|latency">: the sequential test's e-value (log scale)
 *     <path class="evidence-series">, <line class="evidence-bound"> (1/alpha)
 *   <table class="verdicts">
 */
import type { SignalName, SignalReading, Verdict } from '../engine/verdict.js'
import { SIGNALS } from '../engine/verdict.js'
import type { DeploymentTimeline, ReportInput } from './model.js'

const W = 560
const H = 190
const PAD = { left: 62, right: 16, top: 14, bottom: 28 }

const TITLES: Record<SignalName, string> = {
  error_rate: 'Error rate',
  latency: 'Latency (quantile)',
  resource: 'Resource trajectory',
  probe: 'Health probe failures',
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** value in display units, as text */
export function formatValue(signal: SignalName, v: number): string {
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '–'
  switch (signal) {
    case 'error_rate':
      return `${(v * 100).toFixed(v < 0.01 ? 2 : 1)} %`
    case 'latency':
      return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`
    case 'resource':
      return `${(v * 100).toFixed(2)} %/min`
    case 'probe':
      return String(Math.round(v))
  }
}

/** compact axis label */
function axisLabel(signal: SignalName, v: number): string {
  switch (signal) {
    case 'error_rate':
      return `${+(v * 100).toPrecision(3)} %`
    case 'latency':
      return v >= 1000 ? `${+(v / 1000).toPrecision(3)} s` : `${+v.toPrecision(3)} ms`
    case 'resource':
      return `${+(v * 100).toPrecision(3)} %/m`
    case 'probe':
      return String(v)
  }
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19)
}

function rel(ms: number, from: number): string {
  const s = Math.round((ms - from) / 1000)
  return s >= 0 ? `+${s} s` : `${s} s`
}

interface Scale {
  x: (t: number) => number
  y: (v: number) => number
  t0: number
  t1: number
  vmax: number
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p
  return 10 * p
}

function pathOf(points: [number, number][], s: Scale): string {
  // a gap (non-finite value) starts a new sub-path, so missing data is not drawn as a line
  let d = ''
  let pen = false
  for (const [t, v] of points) {
    if (!Number.isFinite(v)) {
      pen = false
      continue
    }
    d += `${pen ? 'L' : 'M'}${s.x(t).toFixed(1)} ${s.y(v).toFixed(1)}`
    pen = true
  }
  return d
}

function reading(signals: SignalReading[], name: SignalName): SignalReading | undefined {
  return signals.find((r) => r.signal === name)
}

function chart(tl: DeploymentTimeline, name: SignalName, t0: number, t1: number): string {
  const rows = tl.ticks.map((k) => ({ t: k.t, r: reading(k.signals, name) }))
  // no reading, a disabled signal, or an empty window (before the first full window, a telemetry gap) is a gap in the lines, not a zero
  const gap = (r: SignalReading | undefined) => r === undefined || r.state === 'off' || (r.state === 'insufficient' && r.samples === 0)
  const val: [number, number][] = rows.map(({ t, r }) => [t, gap(r) ? Number.NaN : r!.value])
  const base: [number, number][] = rows.map(({ t, r }) => [t, gap(r) ? Number.NaN : r!.baseline])
  const thr: [number, number][] = rows.map(({ t, r }) => [t, gap(r) ? Number.NaN : r!.threshold])
  const finite = [...val, ...base, ...thr].map((p) => p[1]).filter((v) => Number.isFinite(v))
  // scale to the value and baseline; a threshold far above them is clipped rather than flattening the data
  const dataMax = Math.max(0, ...[...val, ...base].map((p) => p[1]).filter((v) => Number.isFinite(v)))
  const thrMax = Math.max(0, ...thr.map((p) => p[1]).filter((v) => Number.isFinite(v)))
  const vmax0 = niceMax(Math.max(dataMax * 1.1, Math.min(thrMax * 1.1, Math.max(dataMax, 1e-9) * 4), finite.length === 0 ? 1 : 0))
  // probe failures are counts: whole-number grid lines
  const vmax = name === 'probe' ? Math.max(4, Math.ceil(vmax0 / 4) * 4) : vmax0
  const iw = W - PAD.left - PAD.right
  const ih = H - PAD.top - PAD.bottom
  const span = Math.max(1, t1 - t0)
  const s: Scale = {
    x: (t) => PAD.left + ((t - t0) / span) * iw,
    y: (v) => PAD.top + ih - (Math.min(Math.max(v, 0), vmax * 1.05) / vmax) * ih,
    t0,
    t1,
    vmax,
  }
  const parts: string[] = []
  // state shading: contiguous runs of breach / insufficient
  let runStart = -1
  let runState = ''
  const flush = (endIdx: number) => {
    if (runStart < 0 || (runState !== 'breach' && runState !== 'insufficient')) return
    const a = rows[runStart]!.t
    const b = endIdx < rows.length ? rows[endIdx]!.t : rows[rows.length - 1]!.t
    const x0 = s.x(runStart > 0 ? rows[runStart - 1]!.t : a)
    const x1 = Math.max(s.x(b), x0 + 1)
    parts.push(
      `<rect class="state state-${runState}" x="${x0.toFixed(1)}" y="${PAD.top}" width="${(x1 - x0).toFixed(1)}" height="${ih}"><title>${runState} ${clock(a)}–${clock(b)}</title></rect>`,
    )
  }
  rows.forEach(({ r }, i) => {
    const st = r?.state ?? 'insufficient'
    if (st !== runState) {
      flush(i)
      runStart = i
      runState = st
    }
  })
  flush(rows.length)
  // grid and axes
  for (let i = 0; i <= 4; i++) {
    const v = (vmax * i) / 4
    const y = s.y(v)
    parts.push(`<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}"/>`)
    parts.push(`<text class="tick" x="${PAD.left - 4}" y="${(y + 3).toFixed(1)}" text-anchor="end">${esc(axisLabel(name, v))}</text>`)
  }
  const stepS = [10, 30, 60, 120, 300, 600, 1800, 3600].find((x) => span / 1000 / x <= 8) ?? 7200
  const first = Math.ceil((t0 - tl.deployedAt) / 1000 / stepS) * stepS
  for (let k = first; tl.deployedAt + k * 1000 <= t1; k += stepS) {
    const x = s.x(tl.deployedAt + k * 1000)
    if (x > W - PAD.right - 8) break
    parts.push(`<text class="tick" x="${x.toFixed(1)}" y="${H - 10}" text-anchor="middle">${k === 0 ? '0' : `${k > 0 ? '+' : ''}${k >= 120 || k <= -120 ? `${k / 60}m` : `${k}s`}`}</text>`)
  }
  parts.push(`<path class="threshold" d="${pathOf(thr, s)}"/>`)
  parts.push(`<path class="baseline" d="${pathOf(base, s)}"/>`)
  parts.push(`<path class="series" d="${pathOf(val, s)}"/>`)
  // few readings (a decision right after the first full window): dots, so a lone reading is visible
  const pts = val.filter((p) => Number.isFinite(p[1]))
  if (pts.length < 40) for (const [t, v] of pts) parts.push(`<circle class="pt" cx="${s.x(t).toFixed(1)}" cy="${s.y(v).toFixed(1)}" r="2.6"/>`)
  // markers
  const marker = (cls: string, t: number, label: string) => {
    if (t < t0 || t > t1) return
    const x = s.x(t).toFixed(1)
    parts.push(`<line class="marker ${cls}" x1="${x}" x2="${x}" y1="${PAD.top}" y2="${PAD.top + ih}"><title>${esc(label)}</title></line>`)
  }
  marker('marker-deploy', tl.deployedAt, `${tl.kind === 'rollback' ? 'rollback to' : 'deployment of'} ${tl.version} at ${clock(tl.deployedAt)}`)
  for (const v of tl.verdicts) {
    marker(v.kind === 'recovered' || v.kind === 'not-recovered' ? 'marker-recovery' : 'marker-decision', v.decidedAt, `${v.kind} at ${clock(v.decidedAt)}`)
  }
  const ev = name === 'error_rate' || name === 'latency' ? evidenceChart(rows, s, name, tl) : ''
  const last = rows[rows.length - 1]?.r
  const caption = last === undefined ? 'no readings' : `${formatValue(name, last.value)} (baseline ${formatValue(name, last.baseline)}, threshold ${formatValue(name, last.threshold)}, ${last.mode})`
  return `<figure class="panel">
<figcaption><b>${TITLES[name]}</b> <span class="muted">${esc(caption)}</span></figcaption>
<svg class="chart" data-signal="${name}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(`${TITLES[name]} of ${tl.service} ${tl.version}`)}">
<rect class="plot" x="${PAD.left}" y="${PAD.top}" width="${W - PAD.left - PAD.right}" height="${H - PAD.top - PAD.bottom}"/>
${parts.join('\n')}
</svg>
${ev}
</figure>`
}

const EH = 84

/**
 * The evidence beside a request signal: log10 of the anytime-valid e-value over time against its
 * bound log10(1/alpha). A breach needs the curve at or above the bound (and the value beyond the
 * threshold); how fast it climbs shows how strong the data is, whatever its cadence.
 */
function evidenceChart(rows: { t: number; r: SignalReading | undefined }[], s: Scale, name: SignalName, tl: DeploymentTimeline): string {
  const pts = rows.filter((x) => x.r?.evidence !== undefined && Number.isFinite(x.r.evidence) && (x.r.evidence as number) > 0)
  if (pts.length === 0) return ''
  const bound = pts.find((x) => x.r?.evidenceBound !== undefined)?.r?.evidenceBound ?? 1000
  const lb = Math.log10(bound)
  const lmax = Math.max(lb + 1, ...pts.map((x) => Math.min(Math.log10(x.r!.evidence as number), lb * 3)))
  const lmin = -2
  const top = 8
  const ih = EH - top - 14
  const y = (l: number) => top + ih - ((Math.min(Math.max(l, lmin), lmax) - lmin) / (lmax - lmin)) * ih
  // a reading without evidence (insufficient data, a gap in the series) breaks the curve, as pathOf
  // breaks the value's: the evidence is not drawn as if it had moved smoothly across the gap
  const logs = rows.map((x): [number, number] => {
    const e = x.r?.evidence
    return [x.t, e !== undefined && Number.isFinite(e) && e > 0 ? Math.log10(e) : NaN]
  })
  const d = pathOf(logs, { ...s, y })
  const yb = y(lb).toFixed(1)
  return `<svg class="evidence" data-signal="${name}" viewBox="0 0 ${W} ${EH}" width="${W}" height="${EH}" role="img" aria-label="${esc(`sequential evidence of ${TITLES[name]} of ${tl.service} ${tl.version}`)}">
<rect class="plot" x="${PAD.left}" y="${top}" width="${W - PAD.left - PAD.right}" height="${ih}"/>
<text class="tick" x="${PAD.left - 4}" y="${(+yb + 3).toFixed(1)}" text-anchor="end">1/α=${esc(String(bound))}</text>
<text class="tick" x="${PAD.left - 4}" y="${(top + ih).toFixed(1)}" text-anchor="end">e-value</text>
<line class="evidence-bound" x1="${PAD.left}" x2="${W - PAD.right}" y1="${yb}" y2="${yb}"/>
<path class="evidence-series" d="${d}"/>
</svg>`
}

function verdictTable(tl: DeploymentTimeline): string {
  if (tl.verdicts.length === 0) return '<p class="none">No verdict: the deployment was left alone.</p>'
  const rows: string[] = []
  for (const v of tl.verdicts) {
    const n = Math.max(1, v.signals.length)
    v.signals.forEach((r, i) => {
      const head =
        i === 0
          ? `<td rowspan="${n}" class="kind kind-${esc(v.kind)}">${esc(v.kind)}${v.dryRun ? ' <span class="dry">dry run</span>' : ''}</td>` +
            `<td rowspan="${n}">${clock(v.decidedAt)}<br><span class="muted">${rel(v.decidedAt, tl.deployedAt)}</span></td>` +
            `<td rowspan="${n}">${esc(v.version)}${v.restoredVersion !== undefined ? ` → restored ${esc(v.restoredVersion)}` : ''}<br><span class="muted">baseline ${esc(v.baselineVersion)} (${v.baselineSource})</span></td>` +
            `<td rowspan="${n}" class="reason">${esc(v.reason)}</td>`
          : ''
      rows.push(
        `<tr>${head}<td>${r.signal}</td><td class="st st-${r.state}">${r.state}${r.critical && r.state === 'breach' ? ' (critical)' : ''}</td>` +
          `<td class="num">${esc(formatValue(r.signal, r.value))}</td><td class="num">${esc(formatValue(r.signal, r.baseline))}</td>` +
          `<td class="num">${esc(formatValue(r.signal, r.threshold))}</td><td class="num">${r.samples}</td><td>${r.mode}</td></tr>`,
      )
    })
    if (v.signals.length === 0) rows.push(`<tr><td class="kind">${esc(v.kind)}</td><td>${clock(v.decidedAt)}</td><td>${esc(v.version)}</td><td>${esc(v.reason)}</td><td colspan="7"></td></tr>`)
  }
  return `<table class="verdicts">
<thead><tr><th>verdict</th><th>decided</th><th>version</th><th>reason</th><th>signal</th><th>state</th><th>value</th><th>baseline</th><th>threshold</th><th>samples</th><th>mode</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>`
}

function headline(tl: DeploymentTimeline): string {
  const v = tl.verdicts
  if (v.length === 0) return 'left alone'
  return v.map((x) => `${x.kind}${x.dryRun ? ' (dry run)' : ''} ${rel(x.decidedAt, tl.deployedAt)}`).join(', ')
}

function timeline(tl: DeploymentTimeline): string {
  const times = tl.ticks.map((k) => k.t)
  const t0 = Math.min(tl.deployedAt, ...times)
  const t1 = Math.max(tl.deployedAt + 1000, ...times, ...tl.verdicts.map((v) => v.decidedAt))
  const svc = tl.namespace === '' ? tl.service : `${tl.namespace}/${tl.service}`
  const what = tl.kind === 'rollback' ? `rollback to ${esc(tl.version)} (recovery verification)` : `${esc(tl.version)} replacing ${esc(tl.baselineVersion)}`
  return `<section class="timeline" data-deployment="${esc(tl.deploymentId)}" data-service="${esc(svc)}" data-kind="${tl.kind}">
<h3>${what} <span class="muted">at ${clock(tl.deployedAt)} UTC · ${tl.ticks.length} ticks · ${esc(headline(tl))}</span></h3>
<div class="grid">
${SIGNALS.map((s) => chart(tl, s, t0, t1)).join('\n')}
</div>
${verdictTable(tl)}
</section>`
}

const CSS = `
:root{--fg:#1d2330;--muted:#6b7280;--line:#e5e7eb;--series:#2563eb;--base:#059669;--thr:#dc2626;--breach:rgba(220,38,38,.13);--insuf:rgba(107,114,128,.13)}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);margin:0;padding:24px 32px;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 8px}
.muted{color:var(--muted);font-weight:normal}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:8px 16px}
figure.panel{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:6px 8px}figcaption{font-size:13px;margin-bottom:2px}
svg.chart{display:block;max-width:100%;height:auto}svg .plot{fill:#fff;stroke:var(--line)}svg .grid{stroke:#f0f1f3}svg .tick{font-size:10px;fill:var(--muted)}
svg .series{fill:none;stroke:var(--series);stroke-width:1.8}svg .pt{fill:var(--series)}svg .baseline{fill:none;stroke:var(--base);stroke-width:1.4;stroke-dasharray:5 3}
svg .threshold{fill:none;stroke:var(--thr);stroke-width:1.2;stroke-dasharray:2 3}svg .state-breach{fill:var(--breach)}svg .state-insufficient{fill:var(--insuf)}
svg .evidence-series{fill:none;stroke:#7c3aed;stroke-width:1.6}svg .evidence-bound{stroke:var(--thr);stroke-width:1.2;stroke-dasharray:4 3}
svg .marker{stroke-width:1.6}svg .marker-deploy{stroke:#7c3aed}svg .marker-decision{stroke:#dc2626;stroke-width:2.2}svg .marker-recovery{stroke:#059669;stroke-width:2.2;stroke-dasharray:6 3}
.legend{display:flex;gap:16px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin:8px 0}.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;background:#fff;font-size:12.5px;margin:10px 0}th,td{border:1px solid var(--line);padding:3px 7px;text-align:left;vertical-align:top}th{background:#f3f4f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}.kind{font-weight:600}.kind-rollback,.kind-not-recovered{color:#b91c1c}.kind-recovered{color:#047857}.kind-incident{color:#b45309}
.st-breach{color:#b91c1c;font-weight:600}.st-insufficient{color:var(--muted)}.dry{font-weight:normal;color:var(--muted)}.reason{max-width:320px}
table.summary td{white-space:nowrap}p.none{color:#047857}`

export function renderReport(input: ReportInput): string {
  const groups = new Map<string, DeploymentTimeline[]>()
  for (const tl of [...input.timelines].sort((a, b) => a.deployedAt - b.deployedAt)) {
    const key = tl.namespace === '' ? tl.service : `${tl.namespace}/${tl.service}`
    const g = groups.get(key)
    if (g === undefined) groups.set(key, [tl])
    else g.push(tl)
  }
  const allVerdicts: Verdict[] = input.timelines.flatMap((t) => t.verdicts)
  const summaryRows = [...groups.entries()]
    .flatMap(([svc, tls]) =>
      tls.map(
        (tl) =>
          `<tr><td>${esc(svc)}</td><td>${tl.kind}</td><td>${esc(tl.version)}</td><td>${esc(tl.baselineVersion)}</td><td>${clock(tl.deployedAt)}</td><td>${esc(headline(tl))}</td></tr>`,
      ),
    )
    .join('\n')
  const counts = Object.entries(input.input)
    .map(([k, v]) => `${esc(k)} ${v}`)
    .join(' · ')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(input.title)}</title>
<style>${CSS}</style></head>
<body>
<h1>${esc(input.title)}</h1>
<div class="muted">source ${esc(input.source)} · generated ${new Date(input.generatedAt).toISOString()} · ${counts}</div>
<div class="legend"><span><i style="background:var(--series)"></i>value</span><span><i style="background:var(--base)"></i>baseline (frozen snapshot or live old version)</span><span><i style="background:var(--thr)"></i>threshold</span><span><i style="background:var(--breach);height:10px"></i>breach</span><span><i style="background:var(--insuf);height:10px"></i>insufficient data</span><span><i style="background:#7c3aed"></i>deployment</span><span><i style="background:#dc2626"></i>decision</span><span><i style="background:#059669"></i>recovery verdict</span><span><i style="background:#7c3aed"></i>evidence (e-value, log scale) vs its bound 1/α</span></div>
<h2>Summary</h2>
${
  input.timelines.length === 0
    ? '<p>No deployment was watched in this input.</p>'
    : `<table class="summary"><thead><tr><th>service</th><th>watch</th><th>version</th><th>baseline</th><th>deployed (UTC)</th><th>outcome</th></tr></thead><tbody>
${summaryRows}
</tbody></table>
<p>${allVerdicts.length} verdict${allVerdicts.length === 1 ? '' : 's'}: ${(['rollback', 'incident', 'recovered', 'not-recovered'] as const).map((k) => `${allVerdicts.filter((v) => v.kind === k).length} ${k}`).join(', ')}.</p>`
}
${[...groups.entries()].map(([svc, tls]) => `<h2 class="service">${esc(svc)}</h2>\n${tls.map(timeline).join('\n')}`).join('\n')}
</body></html>
`
}
