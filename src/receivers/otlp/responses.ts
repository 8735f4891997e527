/**
 * Hand-encoded OTLP responses and google.rpc.Status (protobuf and the OTLP/JSON mapping).
 * ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1 } with
 * { int64 rejected_spans = 1; string error_message = 2 }; the metrics response has the same shape
 * with rejected_data_points. google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3 }.
 */

class Writer {
  private readonly parts: number[] = []
  varint(v: number): this {
    // non-negative safe integers only
    while (v > 0x7f) {
      this.parts.push((v % 128) | 0x80)
      v = Math.floor(v / 128)
    }
    this.parts.push(v)
    return this
  }
  tag(field: number, wt: number): this {
    return this.varint(field * 8 + wt)
  }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length)
    for (const x of b) this.parts.push(x)
    return this
  }
  string(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'))
  }
  finish(): Buffer {
    return Buffer.from(this.parts)
  }
}

export type Signal = 'traces' | 'metrics'

/** Protobuf response body: empty on full success, partial_success when anything was rejected. */
export function encodeExportResponse(rejected: number, errorMessage: string): Buffer {
  if (rejected <= 0 && errorMessage === '') return Buffer.alloc(0)
  const inner = new Writer()
  if (rejected > 0) inner.tag(1, 0).varint(rejected)
  if (errorMessage !== '') inner.string(2, errorMessage)
  return new Writer().bytes(1, inner.finish()).finish()
}

export function exportResponseJson(signal: Signal, rejected: number, errorMessage: string): string {
  if (rejected <= 0 && errorMessage === '') return '{}'
  const key = signal === 'traces' ? 'rejectedSpans' : 'rejectedDataPoints'
  // int64 is a decimal string in the protobuf JSON mapping
  return JSON.stringify({ partialSuccess: { [key]: String(Math.max(0, rejected)), errorMessage } })
}

const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo'

/** google.rpc.Status, with a google.rpc.RetryInfo detail when retryAfterMs is given. */
export function encodeRpcStatus(code: number, message: string, retryAfterMs?: number): Buffer {
  const w = new Writer()
  if (code !== 0) w.tag(1, 0).varint(code)
  if (message !== '') w.string(2, message)
  if (retryAfterMs !== undefined) {
    const seconds = Math.floor(retryAfterMs / 1000)
    const nanos = Math.round((retryAfterMs % 1000) * 1e6)
    const duration = new Writer()
    if (seconds > 0) duration.tag(1, 0).varint(seconds)
    if (nanos > 0) duration.tag(2, 0).varint(nanos)
    const retryInfo = new Writer().bytes(1, duration.finish()).finish()
    const any = new Writer().string(1, RETRY_INFO_TYPE).bytes(2, retryInfo).finish()
    w.bytes(3, any)
  }
  return w.finish()
}

export function rpcStatusJson(code: number, message: string, retryAfterMs?: number): string {
  const body: { code: number; message: string; details?: object[] } = { code, message }
  if (retryAfterMs !== undefined) body.details = [{ '@type': RETRY_INFO_TYPE, retryDelay: `${retryAfterMs / 1000}s` }]
  return JSON.stringify(body)
}
