/**
 * Where the garbage of an evaluation pass comes from: the bytes each function allocates per watch
 * and pass, from V8's sampling heap profiler with collected objects included (so short-lived
 * garbage counts, not only what survives). Build, then `node dist/bench/engine-alloc.js
 * [--services N (2,000)] [--ticks N (24)] [--no-state] [--top N (30)] [--survivors]`.
 *
 * The world is bench/engine.ts's (a baseline version for 6 min, a new version at 2 req/s with two
 * pods' memory and readiness readings every 10 s, detected at tick 0), smaller. Each tick is one
 * pass run to its end in engine calls of SLICE_EVALUATIONS (Pipeline.beginPass / stepPass, the
 * scheduler's granularity), with the state export of runtime.state unless --no-state; the next 5 s
 * of telemetry are recorded between the passes, outside the profile. Tick 0 (detection) is left out.
 * A builtin (`push`, `next`, `hash`...) is attributed to the script function that called it.
 * A measurement, not a target: no exit code.
 */
import { Session } from 'node:inspector'
import { Pipeline } from '../src/runtime/pipeline.js'
import { SLICE_EVALUATIONS } from '../src/runtime/evaluation-scheduler.js'
import { defaultEngineConfig } from '../src/engine/config.js'
import { stateSchema } from '../src/state/config.js'
import type { StateChanges } from '../src/engine/persist.js'
import { exitOnHelp } from './args.js'

exitOnHelp(import.meta.url)

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  selfSize: number
  children: ProfileNode[]
}

const D = 1_767_225_600_000
const N = Number(arg('--services') ?? 2_000)
const TICKS = Number(arg('--ticks') ?? 24)
const TOP = Number(arg('--top') ?? 30)
const STATE = !process.argv.includes('--no-state')
/**
 * --survivors: only what a pass allocated that outlives the young generation (alive after two
 * scavenges that follow the pass, so promoted: what each scavenge copies and what the next full
 * collection marks), not short-lived garbage
 */
const SURVIVORS = process.argv.includes('--survivors')
/**
 * Short-lived allocation for at least two scavenges (the young generation is at most 2 x 16 MiB):
 * the objects escape into a small ring, so the compiler cannot elide them, and die when overwritten.
 */
const ring: object[] = new Array<object>(1024)
const youngGarbage = () => {
  for (let k = 0; k < 4_000_000; k++) ring[k & 1023] = { k }
}

const cfg = defaultEngineConfig()
const st = stateSchema.parse({})
const pipeline = new Pipeline({
  engine: cfg,
  signals: { maxSeries: 2 * N + 10 },
  evaluation: 'full',
  ...(STATE
    ? { state: { sink: { write: (c: StateChanges) => ({ accepted: c.upserts.length + c.deletes.length, refused: [] }) }, minWriteIntervalMs: st.minWriteInterval, versions: { maxServices: st.versions.maxServices, maxPerService: st.versions.maxPerService, refreshMs: st.versions.refresh } } }
    : {}),
})
const store = pipeline.store
let x = 12345
const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) + 1) / (2 ** 31 + 1)
for (let i = 0; i < N; i++) {
  const r1 = store.series({ namespace: `ns${i % 100}`, service: `svc${i}`, version: 'v1' })
  for (let s = -360; s < 0; s++) r1.recordRequest(D + s * 1000 + 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
}
store.drainNewVersions()
const handles = Array.from({ length: N }, (_, i) => store.series({ namespace: `ns${i % 100}`, service: `svc${i}`, version: 'v2' }))
const MiB = 1024 * 1024
const side = (fromS: number, secs: number, version: string) => {
  for (let i = 0; i < N; i++) {
    const key = { namespace: `ns${i % 100}`, service: `svc${i}`, version }
    for (let s = fromS; s < fromS + secs; s++) {
      if (s % 10 !== 0) continue
      for (let p = 0; p < 2; p++) {
        const pod = `svc${i}-${version}-${p}`
        pipeline.recordObservation({ kind: 'resource', key, pod, resource: 'memory', timeMs: D + s * 1000, value: (200 + rnd()) * MiB, request: 512 * MiB })
        pipeline.recordObservation({ kind: 'probe', key, pod, container: 'app', timeMs: D + s * 1000, ready: true })
      }
    }
  }
}
side(-360, 360, 'v1')
const feed = (fromS: number, secs: number) => {
  for (let i = 0; i < N; i++) {
    const r2 = handles[i] as (typeof handles)[number]
    for (let s = fromS; s < fromS + secs; s++) for (let j = 0; j < 2; j++) r2.recordRequest(D + s * 1000 + 250 + j * 500, 20_000 * Math.exp(0.4 * (rnd() - 0.5)), rnd() < 0.005)
  }
  side(fromS, secs, 'v2')
}
feed(0, 5)

const session = new Session()
session.connect()
const post = <T>(method: string, params: object = {}) =>
  new Promise<T>((resolve, reject) => session.post(method, params, (err, res) => (err !== null ? reject(err) : resolve(res as T))))
const bytes = new Map<string, number>()
let total = 0
let profiled = 0
const walk = (n: ProfileNode, caller: string) => {
  const cf = n.callFrame
  // the scavenges' fuel is not the pass's
  if (cf.functionName === youngGarbage.name) return
  const own = `${cf.functionName === '' ? '(anonymous)' : cf.functionName} ${cf.url.replace(/^.*\/(src|bench)\//, '$1/')}:${cf.lineNumber + 1}`
  const builtin = cf.url === ''
  const name = builtin ? `${own} <- ${caller}` : own
  if (n.selfSize > 0) {
    bytes.set(name, (bytes.get(name) ?? 0) + n.selfSize)
    total += n.selfSize
  }
  for (const c of n.children) walk(c, builtin ? caller : own)
}
for (let i = 0; i < TICKS; i++) {
  const wm = D + (i + 1) * 5000 - cfg.lateness
  if (i > 0) await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !SURVIVORS })
  pipeline.beginPass(wm, wm)
  while (pipeline.stepPass(SLICE_EVALUATIONS).kind !== 'done');
  if (i > 0) {
    if (SURVIVORS) youngGarbage()
    const { profile } = await post<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling')
    walk(profile.head, '(root)')
    profiled += 1
  }
  if (i + 1 < TICKS) feed((i + 1) * 5, 5)
}
session.disconnect()
pipeline.shutdown()
const per = (b: number) => b / profiled / N
console.log(`${SURVIVORS ? 'survivors (alive after two scavenges) of' : 'allocations of'} ${profiled} passes over ${N} watches (${STATE ? 'with' : 'without'} the state export): ${per(total).toFixed(0)} bytes per watch per pass, sampled`)
for (const [name, b] of [...bytes].sort((p, q) => q[1] - p[1]).slice(0, TOP)) console.log(`${per(b).toFixed(0).padStart(7)} B  ${((100 * b) / total).toFixed(1).padStart(5)} %  ${name}`)
