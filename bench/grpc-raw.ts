/**
 * A lean unary gRPC client for load generators: pre-encoded request bytes sent over node:http2 with
 * the gRPC length prefix, the answer read from grpc-status (trailers, or a trailers-only answer).
 *
 * Why not grpc-js's client: on a 2-core machine the load generator shares the cores with the
 * processes it measures, and grpc-js's client side (call objects, interceptors, a framed copy of each
 * message) is most of its CPU (`scaleout.ts` prints the load generator's CPU per M spans). The server under test is unchanged and sees
 * an ordinary gRPC call: POST on the method path, `application/grpc`, `te: trailers`, a deadline in
 * `grpc-timeout`. No compression, no retries, no metadata: this is a bench part, not a product client.
 */
import http2 from 'node:http2'

/** grpc status codes this client produces itself (the rest come from the server) */
export const DEADLINE_EXCEEDED = 4
export const UNAVAILABLE = 14

export type CallResult = { ok: true } | { ok: false; code: number }

export class RawGrpcClient {
  private session: http2.ClientHttp2Session | undefined
  private closed = false

  constructor(
    private readonly authority: string,
    private readonly path: string,
  ) {}

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session
    const s = http2.connect(this.authority)
    // a broken connection fails its open calls (their streams error); the next call reconnects
    s.on('error', () => undefined)
    s.on('close', () => {
      if (this.session === s) this.session = undefined
    })
    this.session = s
    return s
  }

  /** One unary call; never rejects. */
  call(body: Buffer, timeoutMs: number): Promise<CallResult> {
    if (this.closed) return Promise.resolve({ ok: false, code: UNAVAILABLE })
    return new Promise((resolve) => {
      let settled = false
      let status = -1
      const done = (r: CallResult) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(r)
      }
      let st: http2.ClientHttp2Stream
      try {
        st = this.connect().request({ ':method': 'POST', ':path': this.path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m` })
      } catch {
        done({ ok: false, code: UNAVAILABLE })
        return
      }
      const timer = setTimeout(() => {
        st.close(http2.constants.NGHTTP2_CANCEL)
        done({ ok: false, code: DEADLINE_EXCEEDED })
      }, timeoutMs)
      const read = (h: http2.IncomingHttpHeaders) => {
        const v = h['grpc-status']
        if (v !== undefined) status = Number(v)
      }
      st.on('response', read)
      st.on('trailers', read)
      st.on('data', () => undefined)
      st.on('error', () => done({ ok: false, code: UNAVAILABLE }))
      st.on('close', () => done(status === 0 ? { ok: true } : { ok: false, code: status < 0 ? UNAVAILABLE : status }))
      const prefix = Buffer.allocUnsafe(5)
      prefix.writeUInt8(0, 0)
      prefix.writeUInt32BE(body.length, 1)
      st.write(prefix)
      st.end(body)
    })
  }

  /** Idempotent. */
  close(): void {
    this.closed = true
    this.session?.close()
    this.session = undefined
  }
}
