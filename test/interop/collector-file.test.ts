/**
 * Recordings made by the real OpenTelemetry Collector's file exporter (built by
 * tools/peers/build.sh), read back by `pullback replay` (src/receivers/otlp-file): telemetrygen
 * sends traces and histogram metrics over OTLP/gRPC to one Collector whose traces and metrics
 * pipelines both write to four file exporters, `format: json` and `format: proto`, each plain and
 * with `compression: zstd`. Every span and data point telemetrygen sent must be read back from each
 * file exactly once. zstd is read where this Node.js's zlib has it (22.15+, the container image's);
 * elsewhere the compressed files must be refused with the way out, never read as garbage, and the
 * zstd CLI, undoing each framed message, must find in them exactly what was sent: the framing
 * recording.ts assumes is the one this Collector writes.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import { countPoints, countSpans } from '../../src/receivers/otlp/proto.js'
import { decodeRecorded, readRecording } from '../../src/receivers/otlp-file/recording.js'
import { type PeerProcess, describePeers, freePort, peerPath, runPeer, startCollector } from './peers.js'

const WORKERS = 2
const TRACES_PER_WORKER = 30
const CHILD_SPANS = 3
const METRICS_PER_WORKER = 60
const SPANS = WORKERS * TRACES_PER_WORKER * (1 + CHILD_SPANS)
const POINTS = WORKERS * METRICS_PER_WORKER

const SHAPES = [
  { name: 'json', settings: ['    format: json'], zstd: false },
  { name: 'proto', settings: ['    format: proto'], zstd: false },
  { name: 'json_zstd', settings: ['    format: json', '    compression: zstd'], zstd: true },
  { name: 'proto_zstd', settings: ['    format: proto', '    compression: zstd'], zstd: true },
] as const

const hasZstd = typeof (zlib as unknown as { zstdDecompressSync?: unknown }).zstdDecompressSync === 'function'

/** The length-prefixed messages of `bytes`, each undone by the zstd CLI, framed again. */
function unzstdEachMessage(bytes: Buffer): Buffer {
  const out: Buffer[] = []
  for (let at = 0; at < bytes.length; ) {
    const len = bytes.readUInt32BE(at)
    const r = spawnSync('zstd', ['-d', '-q', '-c'], { input: bytes.subarray(at + 4, at + 4 + len) })
    if (r.status !== 0) throw new Error(`zstd -d at byte ${at}: ${r.stderr.toString()}`)
    const head = Buffer.alloc(4)
    head.writeUInt32BE(r.stdout.length)
    out.push(head, r.stdout)
    at += 4 + len
  }
  return Buffer.concat(out)
}
/** outside CI the CLI check is skipped without it; under CI it must run (.ci/run installs it) */
const zstdCli = spawnSync('zstd', ['--version']).status === 0 || process.env.CI === 'true'

/** What a recording holds, record by record: spans, points, and each record's or the file's refusal. */
async function tally(file: string): Promise<{ records: number; spans: number; points: number; errors: string[] }> {
  const t = { records: 0, spans: 0, points: 0, errors: [] as string[] }
  try {
    for await (const item of readRecording(file)) {
      if (item === '') continue
      t.records += 1
      try {
        const d = decodeRecorded(item)
        if (d.type === 'traces') t.spans += countSpans(d.request)
        else if (d.type === 'metrics') t.points += countPoints(d.request)
      } catch (err) {
        t.errors.push(err instanceof Error ? err.message : String(err))
      }
    }
  } catch (err) {
    t.errors.push(err instanceof Error ? err.message : String(err))
  }
  return t
}

describePeers('interop: Collector file exporter -> pullback replay', ['OTELCOL_BIN', 'TELEMETRYGEN_BIN'], () => {
  // made in beforeAll: a skipped suite runs its body but not its hooks
  let dir = ''
  let collector: PeerProcess | undefined
  let collectorLog = ''

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-interop-file-'))
    const port = await freePort()
    const exporters = SHAPES.map((s) => `file/${s.name}`).join(', ')
    collector = await startCollector(dir, {
      receivers: ['  otlp:', '    protocols:', '      grpc:', `        endpoint: 127.0.0.1:${port}`],
      exporters: SHAPES.flatMap((s) => [`  file/${s.name}:`, `    path: ${path.join(dir, s.name)}`, ...s.settings]),
      pipelines: ['    traces:', '      receivers: [otlp]', `      exporters: [${exporters}]`, '    metrics:', '      receivers: [otlp]', `      exporters: [${exporters}]`],
      ports: [port],
    })
    const common = ['--otlp-endpoint', `127.0.0.1:${port}`, '--otlp-insecure', '--workers', String(WORKERS), '--rate', '0', '--service', 'file-recorded']
    for (const args of [
      ['traces', ...common, '--traces', String(TRACES_PER_WORKER), '--child-spans', String(CHILD_SPANS)],
      ['metrics', ...common, '--metrics', String(METRICS_PER_WORKER), '--metric-type', 'Histogram'],
    ]) {
      const res = await runPeer(peerPath('TELEMETRYGEN_BIN'), args, { timeoutMs: 60_000 })
      expect(res.code, `telemetrygen ${args.join(' ')} failed:\n${res.stderr}`).toBe(0)
    }
    // a graceful stop flushes and closes every file
    await collector.stop()
    collectorLog = collector.logs()
  }, 120_000)

  afterAll(async () => {
    await collector?.stop()
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  for (const s of SHAPES) {
    const read = !s.zstd || hasZstd
    it(`${s.settings.map((l) => l.trim()).join(', ')}: ${read ? 'every span and data point read back once' : 'refused, naming how to read it'}`, async () => {
      const t = await tally(path.join(dir, s.name))
      if (read) {
        expect({ spans: t.spans, points: t.points, errors: t.errors }, `Collector log:\n${collectorLog}`).toEqual({ spans: SPANS, points: POINTS, errors: [] })
        expect(t.records).toBeGreaterThanOrEqual(2)
      } else {
        expect(t.spans + t.points).toBe(0)
        expect(t.errors.length).toBeGreaterThan(0)
        for (const e of t.errors) expect(e).toMatch(/zstd-compressed .* has no zstd in zlib/)
        if (zstdCli) {
          const undone = path.join(dir, `${s.name}.undone`)
          writeFileSync(undone, unzstdEachMessage(readFileSync(path.join(dir, s.name))))
          const u = await tally(undone)
          expect({ spans: u.spans, points: u.points, errors: u.errors }).toEqual({ spans: SPANS, points: POINTS, errors: [] })
        }
      }
    })
  }

  it('`pullback replay` of the proto file: every span and point, nothing malformed, exit 0', async () => {
    let err = ''
    const code = await main(['replay', path.join(dir, 'proto'), '--no-actuator'], { out: () => undefined, err: (x) => (err += x) })
    expect(code, err).toBe(0)
    expect(err).toMatch(new RegExp(`replay: lines=\\d+ spans=${SPANS} points=${POINTS} malformed=0 `))
  })
})
