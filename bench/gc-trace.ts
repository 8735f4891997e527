/**
 * Summarises V8's `--trace-gc-nvp` output: scavenges and full collections after a given time, with
 * their pauses and what each scavenge promoted and kept. What it measures is what the signal store's
 * and the engine's object lifetimes cost the event loop (src/signals/store.ts BucketView).
 *
 *   node --trace-gc-nvp dist/bench/engine.js --child-tick --mode full --skip-replay > /tmp/gc.log 2>&1
 *   node dist/bench/gc-trace.js /tmp/gc.log [--after-ms 12000 (the 10,000-service fill ends near 12 s)]
 *
 * A measurement, not a target: no exit code.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'after-ms': { type: 'string', default: '12000' } } })
const file = positionals[0]
if (file === undefined) throw new Error('usage: gc-trace.js FILE [--after-ms MS]')
const after = Number(values['after-ms'])

const field = (line: string, name: string): number => Number(new RegExp(`\\b${name}=([0-9.]+)`).exec(line)?.[1] ?? NaN)
const scavenges: { pause: number; promoted: number; survived: number }[] = []
const full: number[] = []
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const at = Number(/\]\s+([0-9]+) ms: pause=/.exec(line)?.[1] ?? NaN)
  if (!(at > after)) continue
  if (/\bgc=s\b/.test(line)) scavenges.push({ pause: field(line, 'pause'), promoted: field(line, 'promoted'), survived: field(line, 'new_space_survived') })
  else if (/\bgc=(mc|mmc|ms)\b/.test(line)) full.push(field(line, 'pause'))
}
const mean = (xs: number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)
const kb = (b: number) => (b / 1024).toFixed(0)
const pauses = scavenges.map((s) => s.pause)
console.log(
  `after ${after} ms: ${scavenges.length} scavenges, pause mean ${mean(pauses).toFixed(2)} ms, max ${Math.max(...pauses).toFixed(1)} ms, ` +
    `${pauses.filter((p) => p > 10).length} over 10 ms; promoted mean ${kb(mean(scavenges.map((s) => s.promoted)))} KB, ` +
    `survived mean ${kb(mean(scavenges.map((s) => s.survived)))} KB; ${full.length} full collections, longest pause ${full.length > 0 ? Math.max(...full).toFixed(1) : '-'} ms`,
)
