/**
 * Recordings as the Collector's file exporter writes them (src/receivers/otlp-file): JSON lines,
 * length-prefixed messages (proto or JSON), zstd. The proto messages are encoded by protobufjs from
 * the proto/ schema (the oracle), not by pullback.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { decodeMetricsProto, decodeTracesProto, protoDataKind } from '../../src/receivers/otlp/proto.js'
import { decodeRecorded, readRecording, recordingOf, RecordingReadError, type RecordedItem } from '../../src/receivers/otlp-file/recording.js'
import { metricsRequest, tracesRequest } from './arbitraries.js'
import { encodeMetrics, encodeTraces } from './oracle.js'

const dir = mkdtempSync(path.join(os.tmpdir(), 'pullback-otlp-file-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const file = (bytes: Buffer | string): string => {
  const p = path.join(dir, `r${n++}`)
  writeFileSync(p, bytes)
  return p
}
const frame = (...msgs: Buffer[]): Buffer =>
  Buffer.concat(
    msgs.flatMap((m) => {
      const len = Buffer.alloc(4)
      len.writeUInt32BE(m.length)
      return [len, m]
    }),
  )
async function collect(records: AsyncIterable<RecordedItem>): Promise<RecordedItem[]> {
  const out: RecordedItem[] = []
  for await (const r of records) out.push(r)
  return out
}
const all = (p: string): Promise<RecordedItem[]> => collect(readRecording(p))

const NS = 1_768_467_960_000_000_000n
const span = (i: number) => ({
  traceId: Buffer.alloc(16, i + 1),
  spanId: Buffer.alloc(8, i + 1),
  name: 'GET /x',
  kind: 2,
  startTimeUnixNano: String(NS + BigInt(i) * 1_000_000n),
  endTimeUnixNano: String(NS + BigInt(i) * 1_000_000n + 5_000_000n),
  attributes: [{ key: 'http.response.status_code', value: { intValue: i % 10 === 0 ? 500 : 200 } }],
})
const traces = (spans: number) =>
  encodeTraces({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeSpans: [{ spans: Array.from({ length: spans }, (_, i) => span(i)) }] }] })
const metrics = () =>
  encodeMetrics({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
        scopeMetrics: [
          {
            metrics: [
              { name: 'described-only' },
              {
                name: 'http.server.request.duration',
                unit: 's',
                histogram: {
                  aggregationTemporality: 2,
                  dataPoints: [{ startTimeUnixNano: String(NS), timeUnixNano: String(NS + 60_000_000_000n), count: '3', sum: 0.3, bucketCounts: ['1', '2'], explicitBounds: [0.1] }],
                },
              },
            ],
          },
        ],
      },
    ],
  })
const JSON_LINE = JSON.stringify({
  resourceSpans: [
    {
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] },
      scopeSpans: [{ spans: [{ traceId: '01'.repeat(16), spanId: '01'.repeat(8), name: 'GET /x', kind: 2, startTimeUnixNano: String(NS), endTimeUnixNano: String(NS + 5_000_000n) }] }],
    },
  ],
})

describe('protoDataKind: which OTLP data a message holds', () => {
  it('tells spans from metrics for any request whose items say so (property, protobufjs-encoded)', () => {
    const timed = tracesRequest.map((r) => ({
      resourceSpans: r.resourceSpans.map((rs) => ({
        ...rs,
        scopeSpans: (rs.scopeSpans ?? []).map((ss) => ({ ...ss, spans: (ss.spans ?? []).map((s, i) => ({ ...s, startTimeUnixNano: String(NS + BigInt(i)), endTimeUnixNano: String(NS + BigInt(i) + 1n) })) })),
      })),
    }))
    fc.assert(
      fc.property(timed, (obj) => {
        const bytes = encodeTraces(obj)
        const spans = obj.resourceSpans.reduce((a, rs) => a + rs.scopeSpans.reduce((b, ss) => b + ss.spans.length, 0), 0)
        expect(protoDataKind(bytes)).toBe(spans > 0 ? 'traces' : 'empty')
        const d = decodeRecorded(bytes)
        if (spans > 0) expect(d).toEqual({ type: 'traces', request: decodeTracesProto(bytes) })
      }),
      { numRuns: 300 },
    )
    const withData = metricsRequest.filter((r) => r.resourceMetrics.some((rm) => (rm.scopeMetrics ?? []).some((sm) => (sm.metrics ?? []).some((m) => Object.keys(m).some((k) => ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary'].includes(k))))))
    fc.assert(
      fc.property(withData, (obj) => {
        const bytes = encodeMetrics(obj)
        expect(protoDataKind(bytes)).toBe('metrics')
        expect(decodeRecorded(bytes)).toEqual({ type: 'metrics', request: decodeMetricsProto(bytes) })
      }),
      { numRuns: 300 },
    )
  })

  it('reads past a metric without data, and refuses bytes that are no OTLP message', () => {
    expect(protoDataKind(metrics())).toBe('metrics')
    expect(() => protoDataKind(encodeMetrics({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'a' }] }] }] }))).toThrow(/none of its 1 items/)
    expect(protoDataKind(Buffer.alloc(0))).toBe('empty')
    expect(() => protoDataKind(Buffer.from([0x0a, 0x05, 0x01]))).toThrow(/length past end of message/)
    expect(() => decodeRecorded(Buffer.from([0x0b, 0x00]))).toThrow(/wire type 3/)
  })
})

describe('readRecording: the file exporter output, as written', () => {
  it('format: json: one request per line, a CRLF file and a byte order mark included', async () => {
    const items = await all(file(`\uFEFF${JSON_LINE}\r\n\r\n${JSON_LINE}\r\n`))
    expect(items).toEqual([JSON_LINE, '', JSON_LINE])
    expect(decodeRecorded(items[0] as string).type).toBe('traces')
  })

  it('a pretty-printed object (jq .) is one record numbered by its last line; one the file ends inside is a defect', async () => {
    const pretty = JSON.stringify(JSON.parse(JSON_LINE), null, 2)
    const lines = pretty.split('\n').length
    const items = await all(file(`${pretty}\n${JSON_LINE}\n${pretty}\n`))
    expect(items).toHaveLength(2 * lines + 1)
    const records = items.filter((i) => i !== '')
    expect(records.map((i) => decodeRecorded(i).type)).toEqual(['traces', 'traces', 'traces'])
    expect(items.indexOf(records[0] as RecordedItem)).toBe(lines - 1)
    const cut = await all(file(`${JSON_LINE}\n${pretty.split('\n').slice(0, 5).join('\n')}\n`))
    expect(cut.at(-1)).toEqual({ defect: expect.stringMatching(/ends inside the pretty-printed JSON object from line 2 .*truncated/) })
  })

  it('format: proto: length-prefixed TracesData and MetricsData, interleaved (one exporter in both pipelines)', async () => {
    const items = await all(file(frame(traces(3), metrics(), traces(1), Buffer.alloc(0))))
    expect(items.map((i) => (i instanceof Uint8Array ? decodeRecorded(i).type : 'defect'))).toEqual(['traces', 'metrics', 'traces', 'empty'])
    const t = decodeRecorded(items[0] as Uint8Array)
    expect(t.type === 'traces' && t.request.resourceSpans[0]?.spans.length).toBe(3)
  })

  it('the same records however the bytes arrive in chunks, a length prefix split included (property)', async () => {
    const msgs = [traces(3), metrics(), Buffer.from(JSON_LINE), traces(1)]
    const bytes = frame(...msgs)
    const lines = Buffer.from(`${JSON_LINE}\n${JSON.stringify(JSON.parse(JSON_LINE), null, 2)}\n`)
    const expectedLines = await collect(recordingOf([lines], 'x'))
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), async (cuts) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b)
        const pieces = [0, ...at].map((a, i) => bytes.subarray(a, at[i] ?? bytes.length))
        expect((await collect(recordingOf(pieces, 'x'))).map((r) => Buffer.from(r as Uint8Array))).toEqual(msgs)
        const linePieces = [0, ...at.filter((a) => a < lines.length)].map((a, i, all) => lines.subarray(a, all[i + 1] ?? lines.length))
        expect(await collect(recordingOf(linePieces, 'x'))).toEqual(expectedLines)
      }),
      { numRuns: 200 },
    )
  })

  it('length-prefixed JSON (format: json with legacy compression, once decompressed)', async () => {
    const items = await all(file(frame(Buffer.from(JSON_LINE))))
    expect(decodeRecorded(items[0] as Uint8Array).type).toBe('traces')
  })

  it('a truncated last message and an impossible length are defects after the messages before them, not errors', async () => {
    const whole = frame(traces(2), metrics())
    const cut = await all(file(whole.subarray(0, whole.length - 7)))
    expect(cut).toHaveLength(2)
    expect(cut[1]).toEqual({ defect: expect.stringMatching(/ends inside a message at byte \d+ .*truncated/) })
    expect(() => decodeRecorded(cut[1] as RecordedItem)).toThrow(/truncated/)
    const huge = Buffer.concat([frame(traces(1)), Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3])])
    const bad = await all(file(huge))
    expect(bad).toHaveLength(2)
    expect(bad[1]).toEqual({ defect: expect.stringMatching(/a length prefix of 2147483647 bytes .*not the file exporter's length-prefixed framing/) })
  })

  it('a file in neither framing (plain text) ends in a defect naming the framing it is not in', async () => {
    const items = await all(file('hello, not OTLP\n'))
    expect(items).toHaveLength(1)
    expect(items[0]).toEqual({ defect: expect.stringMatching(/at byte 0, a length prefix of \d+ bytes .*not the file exporter's length-prefixed framing/) })
  })

  it('a missing file is a RecordingReadError naming the cause', async () => {
    await expect(all(path.join(dir, 'nope'))).rejects.toThrow(RecordingReadError)
    await expect(all(path.join(dir, 'nope'))).rejects.toThrow(/ENOENT/)
  })

  // zstd: with this runtime's zlib when it has it (Node.js 22.15+, the container image's), else the
  // refusal that names the way out; the compressed files come from the zstd CLI either way
  // the zstd CLI makes the files: outside CI the case is skipped without it, under CI it fails (.ci/run installs it)
  const zstdCli = spawnSync('zstd', ['--version']).status === 0 || process.env.CI === 'true'
  const hasZstd = typeof (zlib as unknown as { zstdDecompressSync?: unknown }).zstdDecompressSync === 'function'
  const compress = (b: Buffer): Buffer => {
    const r = spawnSync('zstd', ['-q', '-c'], { input: b })
    if (r.status !== 0) throw new Error(`zstd: ${r.stderr.toString()}`)
    return r.stdout
  }
  it.runIf(zstdCli)(`compression: zstd, whole-file stream and per message (${hasZstd ? 'decompressed' : 'refused by this Node.js'})`, async () => {
    const stream = file(compress(frame(traces(2), metrics())))
    const perMessage = file(frame(compress(traces(2)), compress(Buffer.from(JSON_LINE))))
    const lines = file(compress(Buffer.from(`${JSON_LINE}\n${JSON_LINE}\n`)))
    if (hasZstd) {
      expect((await all(stream)).map((i) => decodeRecorded(i).type)).toEqual(['traces', 'metrics'])
      expect((await all(perMessage)).map((i) => decodeRecorded(i).type)).toEqual(['traces', 'traces'])
      expect(await all(lines)).toEqual([JSON_LINE, JSON_LINE])
    } else {
      await expect(all(stream)).rejects.toThrow(/zstd -dc FILE \| pullback replay -/)
      const items = await all(perMessage)
      expect(() => decodeRecorded(items[0] as RecordedItem)).toThrow(/has no zstd in zlib/)
    }
  })
})
