/**
 * Detection quality: every scenario of the library, recorded (src/sim) and replayed in-process
 * through the real pipeline (`replayLines`, as `pullback replay` runs it), against the scenario's
 * label; and the same recordings judged by a baseline policy that mimics what most teams run today
 * (see baselinePolicy below). Prints one table and the totals for both.
 *
 *   npm run build && node dist/bench/quality.js [--seed N | --seeds N] [--only NAME,NAME] [--config FILE] [--json]
 *
 * Exit code 0 when pullback meets the targets (every bad deployment rolled back, every benign one
 * left alone, the incident reported as one, worst step-fault detection <= window + 10 s), else 1.
 */
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config/load.js'
import type { PullbackConfig } from '../src/config/schema.js'
import { replayLines } from '../src/cli/commands/replay.js'
import type { Verdict } from '../src/engine/verdict.js'
import { DEFAULT_START_MS, recordToLines, SCENARIOS, type Scenario } from '../src/sim/index.js'

// ---------------------------------------------------------------------------------------------
// The baseline policy: a single error-rate threshold (5 %) on the new version, checked every 60 s
// over the last 60 s of data that a 60 s scrape has made visible (Prometheus default scrape and a
// `rate(...[1m])` query, Flagger's `interval: 1m` with the code-default `threshold: 1`, see
// ../shared/notes/field.md section 2). The first check runs one interval after the new version
// appears (Flagger's iteration 0 only shifts traffic). A check with no requests counts as failed,
// as Flagger treats "no values found". It has no latency, resource or probe signal, no baseline
// and no deployment-time gate. A comparison, not a product feature.
// ---------------------------------------------------------------------------------------------

const BASELINE = { threshold: 0.05, intervalS: 60, windowS: 60, scrapeLagS: 60 }

interface Counts {
  requests: Map<number, number>
  errors: Map<number, number>
  firstSeenS: number
}

type BaselineOutcome = { kind: 'none' } | { kind: 'rollback'; atS: number; errorRate: number; noData: boolean }

interface KV {
  key: string
  value: Record<string, unknown>
}

/** Reads the recording the way a Prometheus scrape of span-derived request counters would see it. */
export function baselinePolicy(lines: string[], service: string, oldVersion: string, startMs: number, durationS: number): BaselineOutcome {
  const perVersion = new Map<string, Counts>()
  for (const line of lines) {
    if (!line.startsWith('{"resourceSpans"')) continue
    const req = JSON.parse(line) as { resourceSpans: { resource: { attributes: KV[] }; scopeSpans: { spans: { endTimeUnixNano: string; startTimeUnixNano: string; attributes: KV[] }[] }[] }[] }
    for (const rs of req.resourceSpans) {
      const attr = (k: string) => rs.resource.attributes.find((a) => a.key === k)?.value.stringValue
      if (attr('service.name') !== service) continue
      const version = String(attr('service.version'))
      let c = perVersion.get(version)
      if (c === undefined) perVersion.set(version, (c = { requests: new Map(), errors: new Map(), firstSeenS: Infinity }))
      for (const ss of rs.scopeSpans) {
        for (const sp of ss.spans) {
          const startS = (Number(BigInt(sp.startTimeUnixNano) / 1_000_000n) - startMs) / 1000
          const s = Math.floor((Number(BigInt(sp.endTimeUnixNano) / 1_000_000n) - startMs) / 1000)
          if (startS < c.firstSeenS) c.firstSeenS = startS
          c.requests.set(s, (c.requests.get(s) ?? 0) + 1)
          const code = Number(sp.attributes.find((a) => a.key === 'http.response.status_code')?.value.intValue)
          if (code >= 500) c.errors.set(s, (c.errors.get(s) ?? 0) + 1)
        }
      }
    }
  }
  // the first version other than the one running at the start is the release under analysis
  const candidates = [...perVersion.entries()].filter(([v]) => v !== oldVersion).sort((a, b) => a[1].firstSeenS - b[1].firstSeenS)
  const first = candidates[0]
  if (first === undefined) return { kind: 'none' }
  const c = first[1]
  const deployS = Math.floor(c.firstSeenS)
  for (let check = deployS + BASELINE.intervalS; check <= durationS; check += BASELINE.intervalS) {
    const to = check - BASELINE.scrapeLagS
    const from = to - BASELINE.windowS
    let req = 0
    let err = 0
    for (let s = Math.max(from, deployS); s < to; s++) {
      req += c.requests.get(s) ?? 0
      err += c.errors.get(s) ?? 0
    }
    if (to <= deployS) continue // the scrape has not seen the new version yet: the query returns nothing to judge
    if (req === 0) return { kind: 'rollback', atS: check, errorRate: Number.NaN, noData: true }
    if (err / req > BASELINE.threshold) return { kind: 'rollback', atS: check, errorRate: err / req, noData: false }
  }
  return { kind: 'none' }
}

// ---------------------------------------------------------------------------------------------

interface Row {
  scenario: Scenario
  actual: string
  detectS: number | undefined
  baseline: string
  baselineDetectS: number | undefined
  ok: boolean
  baselineOk: boolean
  verdicts: Verdict[]
}

function actualOf(verdicts: Verdict[], s: Scenario): { actual: string; decidedAt: number | undefined } {
  const mine = verdicts.filter((v) => v.service === s.service && v.namespace === s.namespace && !v.dryRun)
  const decision = mine.find((v) => v.kind === 'rollback' || v.kind === 'incident')
  const recovery = mine.find((v) => v.kind === 'recovered' || v.kind === 'not-recovered')
  const others = verdicts.filter((v) => v.service !== s.service && (v.kind === 'rollback' || v.kind === 'incident'))
  let actual = decision === undefined ? 'none' : decision.kind
  if (decision?.kind === 'rollback' && recovery !== undefined) actual += `+${recovery.kind}`
  if (others.length > 0) actual += ` (+${others.length} on ${[...new Set(others.map((v) => v.service))].join(',')})`
  return { actual, decidedAt: decision?.decidedAt }
}

function isBad(s: Scenario): boolean {
  return s.expected.startsWith('rollback')
}

/** step faults of class error or latency: the ones the detection-time target applies to */
function isStepErrorOrLatency(s: Scenario): boolean {
  return isBad(s) && !s.gradual && (s.faultClass === 'error' || s.faultClass === 'latency')
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN
  const a = [...xs].sort((x, y) => x - y)
  const m = Math.floor(a.length / 2)
  return a.length % 2 === 1 ? a[m]! : (a[m - 1]! + a[m]!) / 2
}

function pct(n: number, d: number): string {
  return d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(0)} % (${n}/${d})`
}

function fmtS(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(1)} s`
}

async function runScenario(s: Scenario, cfg: PullbackConfig, seed: number): Promise<Row> {
  const lines = await recordToLines(s, { seed })
  // a recording has no feedback loop: the actuator stand-in only makes sense where the scenario plays the rollback itself
  const withRecovery = s.expected.includes('+')
  const sink = { out: () => undefined, err: () => undefined }
  const res = await replayLines(lines, cfg, sink, { actuator: withRecovery }, s.name)
  const { actual, decidedAt } = actualOf(res.verdicts, s)
  const onsetMs = s.faultOnsetS === undefined ? undefined : DEFAULT_START_MS + s.faultOnsetS * 1000
  const detectS = decidedAt !== undefined && onsetMs !== undefined ? (decidedAt - onsetMs) / 1000 : undefined
  const oldVersion = s.build(seed).services.find((x) => x.name === s.service)?.version ?? ''
  const b = baselinePolicy(lines, s.service, oldVersion, DEFAULT_START_MS, s.durationS)
  const baseline = b.kind === 'none' ? 'none' : b.noData ? 'rollback (no data)' : 'rollback'
  const baselineDetectS = b.kind === 'rollback' && s.faultOnsetS !== undefined ? b.atS - s.faultOnsetS : undefined
  const expectedCore = s.expected
  const ok = actual === expectedCore || (expectedCore === 'rollback' && actual === 'rollback')
  const baselineOk = isBad(s) ? baseline.startsWith('rollback') : s.expected === 'none' ? baseline === 'none' : false
  return { scenario: s, actual, detectS, baseline, baselineDetectS, ok, baselineOk, verdicts: res.verdicts }
}

interface Totals {
  badRolledBack: string
  benignLeftAlone: string
  singleSignalLeftAlone: string
  incident: string
  medianDetectS: number
  worstDetectS: number
  /** step faults never detected */
  missed: number
}

function totals(rows: Row[], pick: (r: Row) => { rolledBack: boolean; incident: boolean; detectS: number | undefined }): Totals {
  const bad = rows.filter((r) => isBad(r.scenario))
  const benign = rows.filter((r) => r.scenario.expected === 'none' && r.scenario.faultClass === 'none')
  const single = rows.filter((r) => r.scenario.expected === 'none' && r.scenario.faultClass !== 'none')
  const inc = rows.filter((r) => r.scenario.expected === 'incident')
  const step = rows.filter((r) => isStepErrorOrLatency(r.scenario)).map((r) => pick(r).detectS)
  const detected = step.filter((x): x is number => x !== undefined)
  return {
    badRolledBack: pct(bad.filter((r) => pick(r).rolledBack).length, bad.length),
    benignLeftAlone: pct(benign.filter((r) => !pick(r).rolledBack && !pick(r).incident).length, benign.length),
    singleSignalLeftAlone: pct(single.filter((r) => !pick(r).rolledBack).length, single.length),
    incident: pct(inc.filter((r) => pick(r).incident && !pick(r).rolledBack).length, inc.length),
    medianDetectS: median(detected),
    worstDetectS: detected.length < step.length ? Number.POSITIVE_INFINITY : Math.max(...detected),
    missed: step.length - detected.length,
  }
}

function worst(t: Totals): string {
  return t.missed > 0 ? `never (${t.missed} missed)` : fmtS(t.worstDetectS)
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { seed: { type: 'string' }, seeds: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' } } })
  // --seeds N runs seeds 1..N and prints per-scenario hit counts; --seed N runs one seed with the full table
  const seeds = values.seeds !== undefined ? Array.from({ length: Number(values.seeds) }, (_, i) => i + 1) : [values.seed === undefined ? 1 : Number(values.seed)]
  if (seeds.length === 0 || seeds.some((x) => !Number.isInteger(x) || x < 0)) throw new Error('--seed/--seeds expect non-negative integers')
  const only = values.only?.split(',')
  const cfg = loadConfig(values.config)
  const windowS = cfg.engine.defaults.window / 1000
  const scenarios = SCENARIOS.filter((s) => only === undefined || only.includes(s.name))
  const rows: Row[] = []
  const began = performance.now()
  for (const seed of seeds) {
    for (const s of scenarios) {
      const t = performance.now()
      rows.push(await runScenario(s, cfg, seed))
      process.stderr.write(`quality: ${s.name} seed ${seed} done in ${((performance.now() - t) / 1000).toFixed(1)} s\n`)
    }
  }
  const out: string[][] = []
  if (seeds.length === 1) {
    out.push(['scenario', 'fault', 'expected', 'pullback', 'detect', 'baseline policy', 'detect', ''])
    for (const r of rows) {
      out.push([
        r.scenario.name,
        r.scenario.faultClass + (r.scenario.gradual ? ' (gradual)' : ''),
        r.scenario.expected,
        r.actual,
        fmtS(r.detectS),
        r.baseline,
        fmtS(r.baselineDetectS),
        r.ok ? 'ok' : 'MISS',
      ])
    }
  } else {
    out.push(['scenario', 'expected', 'pullback right', 'median detect', 'baseline right', 'median detect', 'pullback misses'])
    for (const s of scenarios) {
      const mine = rows.filter((r) => r.scenario === s)
      const det = (xs: (number | undefined)[]) => fmtS(median(xs.filter((x): x is number => x !== undefined)))
      out.push([
        s.name,
        s.expected,
        `${mine.filter((r) => r.ok).length}/${mine.length}`,
        det(mine.map((r) => r.detectS)),
        `${mine.filter((r) => r.baselineOk).length}/${mine.length}`,
        det(mine.map((r) => r.baselineDetectS)),
        mine
          .filter((r) => !r.ok)
          .map((r) => `${r.actual} (seed ${seeds[rows.indexOf(r) / scenarios.length | 0]})`)
          .join(', '),
      ])
    }
  }
  const p = totals(rows, (r) => ({ rolledBack: r.actual.startsWith('rollback'), incident: r.actual.startsWith('incident'), detectS: r.detectS }))
  const b = totals(rows, (r) => ({ rolledBack: r.baseline.startsWith('rollback'), incident: false, detectS: r.baselineDetectS }))
  const target = windowS + 10
  const tot = table([
    ['', 'pullback', 'baseline policy (5 % errors, 60 s checks, 60 s scrape)'],
    ['bad deployments rolled back', p.badRolledBack, b.badRolledBack],
    ['benign deployments left alone', p.benignLeftAlone, b.benignLeftAlone],
    ['single-signal faults left alone', p.singleSignalLeftAlone, b.singleSignalLeftAlone],
    ['pre-existing breach -> incident', p.incident, b.incident],
    ['median detection (error/latency step faults)', fmtS(p.medianDetectS), fmtS(b.medianDetectS)],
    ['worst detection (error/latency step faults)', worst(p), worst(b)],
    [`target: worst <= window + 10 s = ${target} s`, p.worstDetectS <= target ? 'met' : 'NOT met', b.worstDetectS <= target ? 'met' : 'not met'],
  ])
  if (values.json === true) {
    const json = rows.map((r, i) => ({ seed: seeds[(i / scenarios.length) | 0], scenario: r.scenario.name, expected: r.scenario.expected, actual: r.actual, detectS: r.detectS, baseline: r.baseline, baselineDetectS: r.baselineDetectS }))
    process.stdout.write(`${JSON.stringify({ seeds, windowS, rows: json, pullback: p, baseline: b })}\n`)
  } else {
    const what = seeds.length === 1 ? `seed ${seeds[0]}` : `seeds ${seeds[0]}..${seeds[seeds.length - 1]}`
    process.stdout.write(`detection quality, ${what}, window ${windowS} s, ${rows.length} runs in ${((performance.now() - began) / 1000).toFixed(1)} s\n\n`)
    process.stdout.write(`${table(out)}\n\n${tot}\n`)
  }
  const allOk = rows.every((r) => r.ok) && p.worstDetectS <= target
  return allOk ? 0 : 1
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`quality: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
