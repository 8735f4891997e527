/**
 * What the peer benches (peer-spanmetrics: OTLP/gRPC, peer-kafka: the Kafka span topic) share: the
 * span load both targets are fed, and how a child process's CPU and memory are read.
 *
 * The load: one ExportTraceServiceRequest per (service, version), 8 services x 2 versions = 16
 * distinct otlp_proto payloads, each 512 SERVER spans x 10 attributes (bench/http-span.ts), about
 * 200 KB each (201,536 B measured): the size of a Collector batch, so a Kafka record is what the Collector's kafka exporter
 * writes for one batch.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { httpServerAttributes, strAttr } from './http-span.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
/** the sidecar's entry point in the same build as this bench (dist/bench/x.js -> dist/src/cli/main.js, or any --outDir) */
export const SIDECAR_MAIN = path.resolve(HERE, '../src/cli/main.js')
export const SPANS_PER_REQUEST = 512

/**
 * The environment the container image (Dockerfile `ENV`) gives the sidecar: the peer benches start
 * pullback with it, so that a figure is the image's. Keep in sync with the Dockerfile.
 */
export const CONTAINER_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  NODE_OPTIONS: '--max-semi-space-size=2',
}
export const SERVICES = ['checkout', 'orders', 'payments', 'cart', 'search', 'catalog', 'users', 'shipping']
export const VERSIONS = ['2.3.0', '2.4.0']

/** The repository's proto/ directory: dist/bench/x.js -> <repo>/proto, else (another --outDir) the working directory's. */
function protoDir(): string {
  for (const dir of [path.resolve(HERE, '../../proto'), path.join(process.cwd(), 'proto')]) {
    try {
      readFileSync(path.join(dir, 'opentelemetry/proto/collector/trace/v1/trace_service.proto'))
      return dir
    } catch {
      // next candidate
    }
  }
  throw new Error('proto/ not found (run from the repository root)')
}

/** One ExportTraceServiceRequest per (service, version): 16 distinct payloads, each `spansPerRequest` (512) SERVER spans x 10 attributes. */
export function payloads(nowNs: bigint, agent: string, spansPerRequest = SPANS_PER_REQUEST): Buffer[] {
  const root = new protobuf.Root()
  const dir = protoDir()
  root.resolvePath = (_origin, target) => path.join(dir, target)
  root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto')
  root.resolveAll()
  const T = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest')
  const s = strAttr
  const routes = ['/api/items/{id}', '/api/items', '/api/health', '/api/search']
  const out: Buffer[] = []
  SERVICES.forEach((service, si) =>
    VERSIONS.forEach((version, vi) => {
      const spans = []
      for (let i = 0; i < spansPerRequest; i++) {
        const route = routes[i % routes.length] as string
        const failed = (i + si * 3 + vi) % 40 === 0
        // durations spread over 0.3 ms .. ~80 ms, skewed low, different per service
        const durNs = BigInt(300_000 + Math.floor((((i * 2_654_435_761 + si * 97) % 80_000_000) * ((i % 7) + 1)) / 7))
        const start = nowNs - 2_000_000_000n - BigInt(i) * 1_000_000n
        spans.push({
          traceId: Buffer.from(Array.from({ length: 16 }, (_, b) => (i * 31 + b * 17 + si) & 0xff)),
          spanId: Buffer.from(Array.from({ length: 8 }, (_, b) => (i * 13 + b * 7 + vi) & 0xff)),
          name: `${i % 2 === 0 ? 'GET' : 'POST'} ${route}`,
          kind: 2,
          startTimeUnixNano: start.toString(),
          endTimeUnixNano: (start + durNs).toString(),
          attributes: httpServerAttributes(service, route, i, si, failed, agent),
          status: failed ? { code: 2, message: 'internal error' } : {},
        })
      }
      const req = {
        resourceSpans: [
          {
            resource: {
              attributes: [s('service.name', service), s('service.version', version), s('service.namespace', 'shop'), s('k8s.namespace.name', 'shop'), s('k8s.pod.name', `${service}-${vi}-abcde`)],
            },
            scopeSpans: [{ scope: { name: 'bench', version: '1.0.0' }, spans }],
          },
        ],
      }
      out.push(Buffer.from(T.encode(T.fromObject(req)).finish()))
    }),
  )
  return out
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** utime+stime of all the process's threads, in seconds; with `mainThread`, of its main thread only (the event loop's). */
export function cpuSeconds(pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // after "pid (comm) ": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
}

/** A field of /proc/<pid>/status in KiB (VmHWM: peak resident set, VmRSS: resident set now). */
export function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : NaN
}

export const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a')

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** "min / median / max" of a figure over runs */
export function spread(xs: number[], digits = 0): string {
  if (xs.length === 0) return 'n/a'
  return `${fmt(Math.min(...xs), digits)} / ${fmt(median(xs), digits)} / ${fmt(Math.max(...xs), digits)}`
}
