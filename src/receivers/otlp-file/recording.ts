/**
 * Recorded OTLP telemetry as the OpenTelemetry Collector's file exporter writes it, for `pullback
 * replay`. Three shapes, told apart by the file's first bytes:
 *
 * | file exporter settings | bytes | read as |
 * |---|---|---|
 * | `format: json` (the default) | one ExportTraceServiceRequest / ExportMetricsServiceRequest JSON object per line | lines (a pretty-printed object, `jq .`'s, as one) |
 * | `format: proto`, or `json` with `compression: zstd` | each message preceded by its length, a big-endian uint32; with compression each message is a zstd frame | messages |
 * | any format with the native compression feature gate on | the whole file one zstd stream of one of the two shapes above | decompressed, then as above |
 *
 * A proto message is TracesData, MetricsData or LogsData (the same bytes as the export requests);
 * which one is read from the first item it holds (otlp/proto.ts protoDataKind). Logs are not read.
 * zstd needs a Node.js whose zlib has it (22.15 or later: the container image's); on an older one a
 * compressed recording is refused with the command that decompresses it.
 *
 * Limits: one message at most MAX_MESSAGE_BYTES; a longer length prefix means the file is not in
 * this framing (or is corrupt): the read ends there with a defect naming the offset, as it does at
 * a truncated last message (a file copied while the Collector was still writing it).
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { decodeOtlpJsonLine, type OtlpJsonLine } from '../otlp/json.js'
import { decodeMetricsProto, decodeTracesProto, protoDataKind } from '../otlp/proto.js'

/**
 * One record of a recording: a JSON line (text), one length-prefixed message (bytes), or what was
 * left of the file where its framing broke (a truncated last message, an impossible length): the
 * reader hands that on as a defect, so the replay counts it malformed and still judges what came
 * before it.
 */
export type RecordedItem = string | Uint8Array | RecordingDefect

export interface RecordingDefect {
  defect: string
}

/** A recording that cannot be read at all (open, read, a compression this runtime cannot undo): the command exits 1. */
export class RecordingReadError extends Error {}

/** The largest message one length prefix may announce (the Collector's default gRPC limit is 4 MiB; its batches stay far below this). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const
/** first bytes of a JSON-lines recording: `{`, blanks, a UTF-8 byte order mark's first byte */
const TEXT_START = new Set([0x7b, 0x20, 0x09, 0x0a, 0x0d, 0xef])

const isZstd = (b: Uint8Array): boolean => b.length >= 4 && ZSTD_MAGIC.every((x, i) => b[i] === x)

type ZstdZlib = { zstdDecompressSync?: (b: Uint8Array, o: { maxOutputLength: number }) => Buffer; createZstdDecompress?: () => NodeJS.ReadWriteStream }
const zstd = zlib as unknown as ZstdZlib

function noZstd(what: string): RecordingReadError {
  return new RecordingReadError(
    `${what} is zstd-compressed (the Collector file exporter's \`compression: zstd\`) and this Node.js (${process.version}) has no zstd in zlib (22.15 or later has): ` +
      'run pullback from the container image, or decompress it first; a whole-file stream (native compression) with `zstd -dc FILE | pullback replay -`',
  )
}

/**
 * Decodes one record. A line is OTLP/JSON; a message is JSON (first byte `{`), a zstd frame of
 * either (legacy per-message compression), or protobuf. Throws on anything else: the caller counts
 * the record malformed and goes on.
 */
export function decodeRecorded(item: RecordedItem): OtlpJsonLine {
  if (typeof item === 'string') return decodeOtlpJsonLine(item)
  if (!(item instanceof Uint8Array)) throw new Error(item.defect)
  let bytes = item
  if (isZstd(bytes)) {
    if (zstd.zstdDecompressSync === undefined) throw noZstd('the message')
    // a message inflates to at most what one length prefix may announce (a zstd bomb stops there, RangeError)
    bytes = zstd.zstdDecompressSync(bytes, { maxOutputLength: MAX_MESSAGE_BYTES })
  }
  if (bytes[0] === 0x7b) return decodeOtlpJsonLine(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  switch (protoDataKind(bytes)) {
    case 'traces':
      return { type: 'traces', request: decodeTracesProto(bytes) }
    case 'metrics':
      return { type: 'metrics', request: decodeMetricsProto(bytes) }
    default:
      return { type: 'empty' }
  }
}

/**
 * The records of a recording (a path, or "-" for stdin), in order: lines of a JSON-lines file, or
 * the messages of a length-prefixed one, after undoing a whole-file zstd stream. Errors opening or
 * reading the file and a compression this runtime cannot undo are thrown as RecordingReadError; a
 * broken framing ends the records with a RecordingDefect.
 */
export async function* readRecording(file: string): AsyncGenerator<RecordedItem> {
  const stream: NodeJS.ReadableStream = file === '-' ? process.stdin : createReadStream(file)
  try {
    yield* recordingOf(stream, file === '-' ? 'stdin' : file)
  } finally {
    if (stream !== process.stdin) (stream as ReturnType<typeof createReadStream>).destroy()
  }
}

/** The records of a recording's bytes however they arrive in chunks (readRecording's reader; `name` labels defects and errors). */
export function recordingOf(bytes: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>, name: string): AsyncGenerator<RecordedItem> {
  return recordsOf(chunksOf(bytes), name, 0)
}

async function* chunksOf(stream: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>): AsyncGenerator<Buffer> {
  try {
    for await (const c of stream) yield typeof c === 'string' ? Buffer.from(c) : Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength)
  } catch (err) {
    throw err instanceof RecordingReadError ? err : new RecordingReadError(err instanceof Error ? err.message : String(err))
  }
}

/** `depth`: 1 inside a decompressed stream (a zstd stream of a zstd stream is not a recording) */
async function* recordsOf(chunks: AsyncGenerator<Buffer>, name: string, depth: number): AsyncGenerator<RecordedItem> {
  // sniff on the first non-empty chunk, then read on with it put back in front
  let first: Buffer | undefined
  for (;;) {
    const n = await chunks.next()
    if (n.done === true) return
    if (n.value.length > 0) {
      first = n.value
      break
    }
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield first as Buffer
    yield* chunks
  }
  if (isZstd(first)) {
    if (depth > 0) throw new RecordingReadError(`${name}: a zstd stream inside a zstd stream`)
    if (zstd.createZstdDecompress === undefined) throw noZstd(name)
    const inflated = Readable.from(all()).pipe(zstd.createZstdDecompress())
    yield* recordsOf(chunksOf(inflated), name, depth + 1)
    return
  }
  // OTLP/JSON lines start with `{`, blanks or a byte order mark; anything else is read as the
  // length-prefixed framing (whose first byte is 0 for any message under 16 MiB), and a file in
  // neither ends there with a defect naming the length it would have announced
  if (!TEXT_START.has(first[0] as number)) {
    yield* framed(all(), name)
    return
  }
  const rl = createInterface({ input: Readable.from(all()), crlfDelay: Infinity })
  try {
    yield* documents(rl, name)
  } finally {
    rl.close()
  }
}

/**
 * The JSON records of a text recording: each line, except that a pretty-printed object (a line `{`
 * alone, through the next line `}` at column 0: `jq .` and editors write them so) is one record. Its
 * inner lines are handed on as empty lines, so record numbers stay the file's line numbers (an
 * object is numbered by its last line). An object longer than MAX_MESSAGE_BYTES, or one the file
 * ends inside, is a defect.
 */
async function* documents(lines: AsyncIterable<string>, name: string): AsyncGenerator<string | RecordingDefect> {
  let n = 0
  let doc: string[] | undefined
  let docFrom = 0
  let docBytes = 0
  let skipping = false
  for await (const raw of lines) {
    n += 1
    // a byte order mark (an editor's UTF-8 save) is not part of the first JSON object
    const line = n === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw
    if (doc === undefined && !skipping) {
      if (line.trimEnd() === '{') {
        doc = [line]
        docFrom = n
        docBytes = line.length
        yield ''
      } else yield line
      continue
    }
    const closes = line.trimEnd() === '}'
    if (skipping) {
      skipping = !closes
      yield ''
      continue
    }
    const d = doc as string[]
    d.push(line)
    docBytes += line.length + 1
    if (closes) {
      doc = undefined
      yield d.join('\n')
    } else if (docBytes > MAX_MESSAGE_BYTES) {
      doc = undefined
      skipping = true
      yield { defect: `${name}: the pretty-printed JSON object from line ${docFrom} is longer than ${MAX_MESSAGE_BYTES} bytes; skipped to its end` }
    } else yield ''
  }
  if (doc !== undefined) yield { defect: `${name}: ends inside the pretty-printed JSON object from line ${docFrom} (no line \`}\` closes it): a truncated file` }
}

/**
 * The messages of the length-prefixed framing (a big-endian uint32 length before each). Chunks are
 * joined only once a whole message has arrived (a multi-megabyte batch in 64 KiB reads is copied
 * once, not once per read).
 */
async function* framed(chunks: AsyncGenerator<Buffer>, name: string): AsyncGenerator<Uint8Array | RecordingDefect> {
  const pending: Buffer[] = []
  let have = 0
  let offset = 0
  /** the pending chunks as one buffer (joined when there are several) */
  const joined = (): Buffer => {
    if (pending.length > 1) pending.splice(0, pending.length, Buffer.concat(pending, have))
    return pending[0] as Buffer
  }
  for await (const c of chunks) {
    pending.push(c)
    have += c.length
    for (;;) {
      if (have < 4) break
      const head = (pending[0] as Buffer).length >= 4 ? (pending[0] as Buffer) : joined()
      const len = head.readUInt32BE(0)
      if (len > MAX_MESSAGE_BYTES) {
        yield { defect: `${name}: at byte ${offset}, a length prefix of ${len} bytes (more than ${MAX_MESSAGE_BYTES}): not the file exporter's length-prefixed framing, or a corrupt file; the rest (${have} bytes read of it so far) is not read` }
        return
      }
      if (have < 4 + len) break
      const buf = joined()
      yield buf.subarray(4, 4 + len)
      const rest = buf.subarray(4 + len)
      pending.length = 0
      if (rest.length > 0) pending.push(rest)
      have = rest.length
      offset += 4 + len
    }
  }
  if (have > 0) yield { defect: `${name}: ends inside a message at byte ${offset} (${have} bytes of it): a truncated file` }
}
