/**
 * The workload model: pods of each service, their lifecycle through deployments, the traffic they
 * serve second by second, and their memory, CPU and readiness. Pure and deterministic for a seed;
 * it knows nothing about OpenTelemetry (src/sim/telemetry.ts turns its output into SDK telemetry).
 */
import type { DeploymentSpec, FaultSpec, FleetSpec, ServiceSpec } from './model.js'
import { hash32, Rng } from './random.js'

const MIB = 1024 * 1024
/** pods that exist at the start were started this long before it (warm, ready) */
const PRESTART_S = 3600

export interface Pod {
  name: string
  service: ServiceSpec
  version: string
  /** scenario seconds */
  startS: number
  stopS: number
  /** canary pods share the canary weight; the others share the rest */
  canaryWeight: number | undefined
  /** 0-based rank among the pods of its service and version, by start: which pods a partial readiness fault hits */
  ordinal: number
  memOffsetMiB: number
  /** requests served in the last simulated second (drives CPU) */
  lastRequests: number
}

export interface SimRequest {
  pod: Pod
  method: string
  route: string
  /** scenario seconds (fractional) */
  startS: number
  latencyMs: number
  status: number
}

export interface PodReading {
  memoryBytes: number
  memoryRequestBytes: number
  cpuCores: number
  cpuRequestCores: number
  ready: boolean
}

export class World {
  readonly pods: Pod[] = []
  private readonly rng: Rng
  private readonly noise: Rng
  private readonly byService = new Map<string, ServiceSpec>()

  constructor(
    readonly spec: FleetSpec,
    seed: number,
  ) {
    this.rng = new Rng(seed)
    // a separate stream for metric noise, so that changing the metric interval leaves traffic identical
    this.noise = new Rng(hash32(`noise:${seed}`))
    for (const svc of spec.services) {
      this.byService.set(svc.name, svc)
      for (let i = 0; i < svc.pods; i++) this.addPod(svc, svc.version, -PRESTART_S, undefined)
    }
    const deployments = [...spec.deployments].sort((a, b) => a.atS - b.atS)
    for (const d of deployments) this.deploy(d)
  }

  /**
   * Applies a deployment from `d.atS` on. Scripted deployments are applied at construction; the
   * demo applies the actuator's rollback while the scenario runs (then `d.atS` must not be in the
   * past of what was already simulated).
   */
  deploy(d: DeploymentSpec): void {
    const svc = this.byService.get(d.service)
    if (svc === undefined) throw new Error(`deployment of unknown service ${d.service}`)
    const old = this.pods.filter((p) => p.service === svc && p.startS <= d.atS && p.stopS > d.atS)
    if (d.strategy.kind === 'canary') {
      for (let i = 0; i < d.strategy.pods; i++) this.addPod(svc, d.version, d.atS, d.strategy.weight)
      return
    }
    // rolling, maxSurge 1: start new pod i, stop old pod i once the new one is ready
    const step = d.strategy.stepS
    const n = Math.max(svc.pods, old.length)
    for (let i = 0; i < n; i++) {
      const at = d.atS + Math.min(i, svc.pods - 1) * step
      if (i < svc.pods) this.addPod(svc, d.version, at, undefined)
      const o = old[i]
      if (o !== undefined) o.stopS = at + this.spec.podStartS
    }
  }

  private addPod(svc: ServiceSpec, version: string, startS: number, canaryWeight: number | undefined): void {
    const template = hash32(`${svc.name}:${version}`).toString(36).slice(0, 10).padEnd(10, '7')
    this.pods.push({
      name: `${svc.name}-${template}-${this.rng.podSuffix()}`,
      service: svc,
      version,
      startS,
      stopS: Number.POSITIVE_INFINITY,
      canaryWeight,
      ordinal: this.pods.filter((p) => p.service === svc && p.version === version).length,
      memOffsetMiB: (this.rng.next() - 0.5) * svc.memory.noiseMiB * 4,
      lastRequests: 0,
    })
  }

  /** pods alive at scenario second t */
  alive(t: number): Pod[] {
    return this.pods.filter((p) => p.startS <= t && t < p.stopS)
  }

  /** 0..1 intensity of a fault on a pod at time t (0 = inactive) */
  private intensity(f: FaultSpec, pod: Pod, t: number): number {
    if (f.service !== pod.service.name) return 0
    if (f.versions !== 'all' && !f.versions.includes(pod.version)) return 0
    if (t < f.fromS || (f.untilS !== undefined && t >= f.untilS)) return 0
    if (f.podAgeBelowS !== undefined && t - pod.startS >= f.podAgeBelowS) return 0
    if (f.flap !== undefined && (t - f.fromS) % f.flap.periodS >= f.flap.onS) return 0
    if (f.rampS !== undefined && f.rampS > 0) return Math.min(1, (t - f.fromS) / f.rampS)
    return 1
  }

  ready(pod: Pod, t: number): boolean {
    if (t - pod.startS < this.spec.podStartS) return false
    for (const f of this.spec.faults) {
      // the first ceil(notReady x pods) pods of the version fail: deterministic, whatever the seed
      if (f.notReady !== undefined && this.intensity(f, pod, t) > 0 && (pod.ordinal + 0.5) / pod.service.pods < f.notReady) return false
    }
    return true
  }

  /** traffic multiplier of a service at t: daily sinusoid times spikes */
  trafficFactor(svc: ServiceSpec, t: number): number {
    const tr = this.spec.traffic
    let f = 1 + tr.dailyAmplitude * Math.sin(2 * Math.PI * (t / tr.periodS + tr.phase))
    for (const sp of tr.spikes) {
      if (sp.services !== undefined && !sp.services.includes(svc.name)) continue
      if (t < sp.fromS - sp.rampS || t >= sp.untilS + sp.rampS) continue
      let w = 1
      if (t < sp.fromS) w = (t - (sp.fromS - sp.rampS)) / sp.rampS
      else if (t >= sp.untilS) w = 1 - (t - sp.untilS) / sp.rampS
      f *= 1 + (sp.factor - 1) * w
    }
    return f
  }

  /** Simulates scenario second [s, s+1): every request served, in start order per pod. */
  step(s: number, emit: (r: SimRequest) => void): void {
    for (const svc of this.spec.services) {
      const alive = this.alive(s).filter((p) => p.service === svc)
      for (const p of alive) p.lastRequests = 0
      const pods = alive.filter((p) => this.ready(p, s))
      if (pods.length === 0) continue
      const factor = this.trafficFactor(svc, s)
      const rate = svc.rps * factor
      const load = 1 + 0.15 * Math.max(0, factor - 1)
      const canary = pods.filter((p) => p.canaryWeight !== undefined)
      const main = pods.length - canary.length
      const canaryTotal = canary.length > 0 && main > 0 ? (canary[0]?.canaryWeight ?? 0) : canary.length / pods.length
      for (const pod of pods) {
        const share = pod.canaryWeight !== undefined ? canaryTotal / canary.length : main > 0 ? (1 - canaryTotal) / main : 0
        const n = this.rng.poisson(rate * share)
        pod.lastRequests = n
        for (let i = 0; i < n; i++) emit(this.request(pod, s + this.rng.next(), load))
      }
      for (const f of this.spec.faults) {
        if (f.service !== svc.name || f.errorsAtS === undefined) continue
        for (const at of f.errorsAtS) {
          if (Math.floor(at) !== s) continue
          const hit = pods.filter((p) => f.versions === 'all' || f.versions.includes(p.version))
          const pod = hit[this.rng.int(hit.length)]
          if (pod === undefined) continue
          const r = this.request(pod, at, load)
          emit({ ...r, status: 500 })
        }
      }
    }
  }

  private request(pod: Pod, t: number, load: number): SimRequest {
    const svc = pod.service
    const rng = this.rng
    let total = 0
    for (const r of svc.routes) total += r.weight
    let pick = rng.next() * total
    let route = svc.routes[0]!
    for (const r of svc.routes) {
      pick -= r.weight
      if (pick < 0) {
        route = r
        break
      }
    }
    let latFactor = 1
    let faultErr = 0
    let errLatency: number | undefined
    for (const f of this.spec.faults) {
      const k = this.intensity(f, pod, t)
      if (k === 0) continue
      if (f.latencyFactor !== undefined) latFactor *= 1 + (f.latencyFactor - 1) * k
      if (f.errorRate !== undefined) {
        faultErr += f.errorRate * k
        if (f.errorLatencyMs !== undefined) errLatency = f.errorLatencyMs
      }
    }
    let latency = rng.logNormal(route.medianMs * load * latFactor, svc.latencySigma)
    if (rng.next() < svc.tail.p) latency *= 1.5 + (svc.tail.maxFactor - 1.5) * rng.next() ** 3
    const u = rng.next()
    let status = 200
    if (u < svc.errorRate) {
      status = 500
      latency *= 0.5
    } else if (u < svc.errorRate + faultErr) {
      status = rng.next() < 0.7 ? 503 : 500
      latency = errLatency !== undefined ? rng.logNormal(errLatency, 0.2) : latency * 0.3
    } else if (u < svc.errorRate + faultErr + svc.clientErrorRate) {
      status = rng.next() < 0.8 ? 404 : 400
      latency *= 0.4
    }
    return { pod, method: route.method, route: route.route, startS: t, latencyMs: Math.max(0.2, latency), status }
  }

  /** Memory, CPU and readiness of a pod at scenario time t (uses the noise stream). */
  reading(pod: Pod, t: number): PodReading {
    const svc = pod.service
    const z = this.noise
    let leak = 0
    for (const f of this.spec.faults) {
      if (f.memoryLeakPerMin === undefined || this.intensity(f, pod, t) === 0) continue
      const since = Math.max(f.fromS, pod.startS)
      leak += (f.memoryLeakPerMin * svc.memory.requestMiB * (t - since)) / 60
    }
    // a young pod warms its caches over its first two minutes
    const warm = Math.min(1, (t - pod.startS) / 120)
    const gcSaw = ((t % 47) / 47) * svc.memory.noiseMiB
    let mem = svc.memory.baseMiB * (0.85 + 0.15 * warm) + pod.memOffsetMiB + gcSaw + z.normal() * svc.memory.noiseMiB * 0.3 + leak
    mem = Math.min(Math.max(mem, svc.memory.baseMiB * 0.5), svc.memory.requestMiB * 1.5)
    const cpu = Math.max(0.001, svc.cpu.baseCores + svc.cpu.perRps * pod.lastRequests + z.normal() * svc.cpu.noise)
    return {
      memoryBytes: Math.round(mem * MIB),
      memoryRequestBytes: svc.memory.requestMiB * MIB,
      cpuCores: cpu,
      cpuRequestCores: svc.cpu.requestCores,
      ready: this.ready(pod, t),
    }
  }
}
