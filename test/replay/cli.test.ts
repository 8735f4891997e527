/** `pullback replay` as a command: exit codes, stdout/stderr contract, streaming from a file. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import { replayLines } from '../../src/cli/commands/replay.js'
import { loadConfig } from '../../src/config/load.js'
import { generate } from '../support/otlp-fixtures.js'
import { encodeMetrics, encodeTraces } from '../receivers/oracle.js'

const dir = mkdtempSync(path.join(tmpdir(), 'pullback-replay-'))

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await main(['replay', ...args], { out: (s) => (out += s), err: (s) => (err += s) })
  return { code, out, err }
}

describe('pullback replay', () => {
  const file = path.join(dir, 'spike.jsonl')
  writeFileSync(
    file,
    generate({
      seed: 21,
      durationS: 420,
      load: (t) => (t < 320 ? [{ version: 'v1', rps: 20, errorRate: 0.005, medianMs: 30 }] : [{ version: 'v2', rps: 20, errorRate: 0.5, medianMs: 30 }]),
    }).join('\n') + '\nnot json at all\n',
  )

  it('prints one JSON verdict per line, reports the malformed line, exits 0', async () => {
    const r = await cli([file])
    expect(r.code).toBe(0)
    const verdicts = r.out.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; version: string })
    expect(verdicts[0]).toMatchObject({ kind: 'rollback', version: 'v2' })
    expect(r.err).toMatch(/^line \d+: invalid OTLP\/JSON/m)
    expect(r.err).toMatch(/replay: lines=\d+ spans=\d+ points=\d+ malformed=1 verdicts=\d+ elapsed=\d+ms/)
  })

  it('--no-actuator: no recovery verdicts', async () => {
    const r = await cli([file, '--no-actuator'])
    expect(r.out.trim().split('\n').map((l) => (JSON.parse(l) as { kind: string }).kind)).toEqual(['rollback'])
  })

  it('--config applies the threshold contract', async () => {
    const cfg = path.join(dir, 'observe.yaml')
    writeFileSync(cfg, 'engine:\n  defaults:\n    signals:\n      errorRate: { mode: observe }\n')
    const r = await cli([file, '--config', cfg])
    expect((JSON.parse(r.out.trim().split('\n')[0] as string) as { dryRun: boolean }).dryRun).toBe(true)
  })

  it('--report writes the HTML report of the watched deployments', async () => {
    const out = path.join(dir, 'report.html')
    const r = await cli([file, '--report', out])
    expect(r.code).toBe(0)
    const html = readFileSync(out, 'utf8')
    expect(html).toMatch(/<html/i)
    expect(html).toContain('checkout')
  })

  it("the Collector file exporter's format: proto (length-prefixed messages) gives the same verdicts; a truncated last message is reported and skipped", async () => {
    // the same recording as protobuf, encoded by protobufjs from the proto/ schema; OTLP/JSON's hex ids become bytes
    const hexIds = (k: string, v: unknown) => (/^(traceId|spanId|parentSpanId)$/.test(k) && typeof v === 'string' ? Buffer.from(v, 'hex') : v)
    const messages = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        const obj = JSON.parse(l, hexIds) as object
        return 'resourceSpans' in obj ? encodeTraces(obj) : encodeMetrics(obj)
      })
    const framed = Buffer.concat(
      messages.flatMap((m) => {
        const len = Buffer.alloc(4)
        len.writeUInt32BE(m.length)
        return [len, m]
      }),
    )
    const proto = path.join(dir, 'spike.binpb')
    writeFileSync(proto, Buffer.concat([framed, framed.subarray(0, 9)]))
    const json = await cli([file])
    const r = await cli([proto])
    expect(r.code).toBe(0)
    expect(r.out).toBe(json.out)
    expect(r.err).toMatch(/^record \d+: .*ends inside a message at byte \d+ \(9 bytes of it\): a truncated file$/m)
    expect(r.err).toMatch(new RegExp(`replay: lines=${messages.length + 1} spans=\\d+ points=\\d+ malformed=1 `))
  })

  it('a pretty-printed recording (jq .) gives the same verdicts as its lines', async () => {
    const pretty = path.join(dir, 'spike.pretty.json')
    writeFileSync(
      pretty,
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.stringify(JSON.parse(l), null, 2))
        .join('\n') + '\n',
    )
    const r = await cli([pretty])
    expect(r.code).toBe(0)
    expect(r.out).toBe((await cli([file])).out)
    expect(r.err).toMatch(/ malformed=0 /)
  })

  it('a long replay reports its progress on stderr by wall time (an injected clock here), and none without one', async () => {
    const lines = readFileSync(file, 'utf8').split('\n')
    let t = 0
    let err = ''
    // the clock advances 1 s per look: a progress line every 100 looks at most
    await replayLines(lines, loadConfig(undefined), { out: () => undefined, err: (x) => (err += x) }, { actuator: false, elapsedMs: () => (t += 1000), progressEveryMs: 100_000 })
    const progress = err.split('\n').filter((l) => l.startsWith('replay: progress: '))
    expect(progress.length).toBeGreaterThan(1)
    expect(progress.length).toBeLessThanOrEqual(Math.ceil(lines.length / 100))
    expect(progress[0]).toMatch(/^replay: progress: \d+ records read \(spans=\d+ points=\d+ malformed=0\), telemetry up to 20\d\d-\d\d-\d\dT/)
    let quiet = ''
    await replayLines(lines, loadConfig(undefined), { out: () => undefined, err: (x) => (quiet += x) }, { actuator: false })
    expect(quiet).not.toMatch(/progress/)
  })

  it('exit 1 when the file cannot be read', async () => {
    const r = await cli([path.join(dir, 'missing.jsonl')])
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/cannot read .*missing\.jsonl/)
  })

  it.each([[[]], [['a', 'b']], [['--bogus', 'x']]])('exit 2 on usage errors: %j', async (args) => {
    expect((await cli(args)).code).toBe(2)
  })

  it('exit 2 on an invalid config, naming the path', async () => {
    const cfg = path.join(dir, 'bad.yaml')
    writeFileSync(cfg, 'engine:\n  defaults:\n    minSignals: 7\n')
    const r = await cli([file, '--config', cfg])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/engine\.defaults\.minSignals/)
  })
})

describe('pipeline config cross-checks', () => {
  it('a window the signal store cannot answer from fine buckets is refused, naming both settings', async () => {
    const dir2 = mkdtempSync(path.join(tmpdir(), 'pullback-replay-'))
    const cfg = path.join(dir2, 'wide.yaml')
    writeFileSync(cfg, 'engine:\n  defaults:\n    window: 90s\n')
    const file = path.join(dir2, 'empty.jsonl')
    writeFileSync(file, '')
    let err = ''
    const code = await main(['replay', file, '--config', cfg], { out: () => undefined, err: (s) => (err += s) })
    expect(code).toBe(2)
    expect(err).toMatch(/engine\.defaults\.window: .*signals\.fineRetention/)
  })
})

describe('pullback replay: histograms it does not read', () => {
  // a Spring Boot service scraped from its Prometheus endpoint and forwarded as OTLP: a server
  // histogram under a name pullback does not know, beside a JVM one that is no request metric
  const T = Date.UTC(2026, 0, 15, 9, 0, 0)
  const ns = (ms: number) => `${BigInt(ms) * 1_000_000n}`
  const line = (i: number) =>
    JSON.stringify({
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'cart' } }, { key: 'service.version', value: { stringValue: 'v1' } }, { key: 'k8s.pod.name', value: { stringValue: 'cart-1' } }] },
          scopeMetrics: [
            {
              metrics: [
                { name: 'http_server_requests_seconds', unit: 's', histogram: { aggregationTemporality: 2, dataPoints: [{ startTimeUnixNano: ns(T), timeUnixNano: ns(T + i * 15_000), count: String(10 * i), sum: i, bucketCounts: [String(10 * i), '0'], explicitBounds: [0.25], attributes: [{ key: 'status', value: { stringValue: '200' } }] }] } },
                { name: 'jvm.gc.duration', unit: 's', histogram: { aggregationTemporality: 2, dataPoints: [{ startTimeUnixNano: ns(T), timeUnixNano: ns(T + i * 15_000), count: '1', sum: 0.01, bucketCounts: ['1'], explicitBounds: [] }] } },
              ],
            },
          ],
        },
      ],
    })
  const file = path.join(dir, 'prometheus-names.jsonl')
  writeFileSync(file, [1, 2, 3, 4].map(line).join('\n') + '\n')

  it('names them on stderr, most points first, and points at normalize.requestMetrics', async () => {
    const r = await cli([file])
    expect(r.code).toBe(0)
    expect(r.err).toMatch(/histograms not read as request durations .*normalize\.requestMetrics.*: http_server_requests_seconds \(histogram, s, 4 points\), jvm\.gc\.duration \(histogram, s, 4 points\)/)
  })

  it('a name listed in normalize.requestMetrics is read, and no longer named', async () => {
    const cfg = path.join(dir, 'request-metrics.yaml')
    writeFileSync(cfg, 'normalize:\n  requestMetrics:\n    - { name: http_server_requests_seconds, errors: micrometer }\n')
    const r = await cli([file, '--config', cfg])
    expect(r.code).toBe(0)
    expect(r.err).toMatch(/histograms not read as request durations .*: jvm\.gc\.duration \(histogram, s, 4 points\)\n/)
    expect(r.err).not.toMatch(/http_server_requests_seconds/)
  })
})
