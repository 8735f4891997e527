/**
 * The two Kubernetes API calls the pod index makes, over node:http(s): list Pods (paginated) and
 * watch Pods (a stream of JSON lines), both with the same `fieldSelector`.
 *
 * Credentials: in-cluster (https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the service
 * account's CA, its token re-read at every request because projected tokens rotate in place), or an
 * explicit `apiServer`. An http:// server is a local proxy (kubectl proxy, the tests' fake API) and
 * gets no token, as in src/actuator/drivers/kube.ts.
 *
 * Errors: a non-2xx answer is a KubeStatusError carrying the HTTP (or watch ERROR event) code, so the
 * index can tell 410 Gone (resourceVersion expired: relist) from other failures (back off).
 */
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { PermanentError, RetryableError, errorMessage } from '../common/errors.js'

/** a pod as the API returns it, reduced to what the index reads (everything else is ignored) */
export interface PodObject {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; deletionTimestamp?: string }
  spec?: { nodeName?: string; hostNetwork?: boolean }
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip?: string }> }
}

export type WatchEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: PodObject } | { type: 'BOOKMARK'; resourceVersion: string }

export interface PodPage {
  items: PodObject[]
  resourceVersion: string
  continue: string | undefined
}

export class KubeStatusError extends RetryableError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(status === 410 ? 'KUBE_GONE' : 'KUBE_STATUS', message)
  }
}

/** the longest watch line (one pod object) kept in memory; a longer one breaks the watch (counted as a failure) */
export const MAX_WATCH_LINE_BYTES = 4 * 1024 * 1024
/** a list page's size: a page is buffered whole */
export const LIST_PAGE_SIZE = 500

export interface PodApiOptions {
  apiServer?: string | undefined
  tokenFile: string
  caFile: string
  /** `spec.nodeName=<node>` when set */
  nodeName: string | undefined
  requestTimeoutMs: number
}

export class PodApi {
  readonly base: URL
  private readonly secure: boolean
  private readonly agent: http.Agent

  constructor(private readonly o: PodApiOptions) {
    this.base = new URL(o.apiServer ?? inClusterServer())
    this.secure = this.base.protocol === 'https:'
    let ca: Buffer | undefined
    if (this.secure) {
      try {
        ca = readFileSync(o.caFile)
      } catch (err) {
        // an explicit https server may be signed by a public CA; in-cluster it never is
        if (o.apiServer === undefined) throw new PermanentError('IDENTITY_CONFIG', `identity.caFile: ${errorMessage(err)}`)
      }
    }
    this.agent = this.secure ? new https.Agent({ keepAlive: true, ...(ca !== undefined ? { ca } : {}) }) : new http.Agent({ keepAlive: true })
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams()
    if (this.o.nodeName !== undefined) q.set('fieldSelector', `spec.nodeName=${this.o.nodeName}`)
    for (const [k, v] of Object.entries(extra)) q.set(k, v)
    return `/api/v1/pods?${q.toString()}`
  }

  private async headers(): Promise<Record<string, string>> {
    const h: Record<string, string> = { accept: 'application/json' }
    if (!this.secure) return h
    try {
      const token = (await readFile(this.o.tokenFile, 'utf8')).trim()
      if (token !== '') h.authorization = `Bearer ${token}`
    } catch (err) {
      throw new RetryableError('KUBE_TOKEN', `identity.tokenFile: ${errorMessage(err)}`)
    }
    return h
  }

  /** One page of the pod list. */
  async list(continueToken: string | undefined, signal: AbortSignal): Promise<PodPage> {
    const path = this.query({ limit: String(LIST_PAGE_SIZE), ...(continueToken !== undefined ? { continue: continueToken } : {}) })
    const res = await this.open(path, signal, this.o.requestTimeoutMs)
    const text = await readAll(res, signal)
    if ((res.statusCode ?? 0) >= 300) throw statusError(res.statusCode ?? 0, text, 'list pods')
    let body: { metadata?: { resourceVersion?: string; continue?: string }; items?: PodObject[] }
    try {
      body = JSON.parse(text) as typeof body
    } catch (err) {
      throw new RetryableError('KUBE_BODY', `list pods: ${errorMessage(err)}`)
    }
    const cont = body.metadata?.continue
    return { items: Array.isArray(body.items) ? body.items : [], resourceVersion: body.metadata?.resourceVersion ?? '', continue: cont !== undefined && cont !== '' ? cont : undefined }
  }

  /**
   * Watches from `resourceVersion` for at most `timeoutSeconds`, calling `onEvent` per event, in
   * order. Resolves when the server ends the watch (normal expiry of timeoutSeconds); rejects with
   * KubeStatusError (410 when the version is too old) or a RetryableError (connection lost).
   */
  async watch(resourceVersion: string, timeoutSeconds: number, signal: AbortSignal, onEvent: (e: WatchEvent) => void): Promise<void> {
    const path = this.query({ watch: '1', resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) })
    const res = await this.open(path, signal, this.o.requestTimeoutMs)
    if ((res.statusCode ?? 0) >= 300) throw statusError(res.statusCode ?? 0, await readAll(res, signal), 'watch pods')
    // the open-time timeout no longer applies: a quiet watch is normal; the server ends it after timeoutSeconds
    res.socket.setTimeout(0)
    await new Promise<void>((resolve, reject) => {
      let pending = ''
      let settled = false
      const onAbort = () => fail(new RetryableError('ABORTED', 'watch pods: stopped'))
      const settle = () => {
        settled = true
        signal.removeEventListener('abort', onAbort)
      }
      const fail = (err: unknown) => {
        if (settled) return
        settle()
        res.destroy()
        reject(err)
      }
      const line = (text: string) => {
        if (text.trim() === '') return
        let e: { type?: string; object?: Record<string, unknown> }
        try {
          e = JSON.parse(text) as typeof e
        } catch (err) {
          return fail(new RetryableError('KUBE_BODY', `watch pods: ${errorMessage(err)}`))
        }
        if (e.type === 'ERROR') {
          const st = e.object as { code?: number; message?: string } | undefined
          return fail(new KubeStatusError(st?.code ?? 500, `watch pods: ${st?.message ?? 'ERROR event'}`))
        }
        if (e.type === 'BOOKMARK') {
          const rv = (e.object as PodObject | undefined)?.metadata?.resourceVersion
          if (rv !== undefined) onEvent({ type: 'BOOKMARK', resourceVersion: rv })
          return
        }
        if (e.type === 'ADDED' || e.type === 'MODIFIED' || e.type === 'DELETED') onEvent({ type: e.type, object: (e.object ?? {}) as PodObject })
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (settled) return
        pending += chunk
        let nl: number
        while (!settled && (nl = pending.indexOf('\n')) >= 0) {
          const text = pending.slice(0, nl)
          pending = pending.slice(nl + 1)
          line(text)
        }
        if (pending.length > MAX_WATCH_LINE_BYTES) fail(new RetryableError('KUBE_BODY', `watch pods: an event longer than ${MAX_WATCH_LINE_BYTES} bytes`))
      })
      res.on('end', () => {
        if (settled) return
        line(pending)
        if (settled) return
        settle()
        resolve()
      })
      res.on('error', (err) => fail(new RetryableError('KUBE_STREAM', `watch pods: ${err.message}`)))
      res.on('close', () => fail(new RetryableError('KUBE_STREAM', 'watch pods: connection closed')))
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  private async open(path: string, signal: AbortSignal, timeoutMs: number): Promise<http.IncomingMessage> {
    const headers = await this.headers()
    const url = new URL(path, this.base)
    const mod = this.secure ? https : http
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', agent: this.agent, headers, timeout: timeoutMs, signal }, resolve)
      req.on('timeout', () => req.destroy(new RetryableError('KUBE_TIMEOUT', `GET ${url.pathname} timed out after ${timeoutMs} ms`)))
      req.on('error', (err) => reject(err instanceof RetryableError ? err : new RetryableError('KUBE_UNREACHABLE', `GET ${url.pathname}: ${err.message}`, { cause: err })))
      req.end()
    })
  }

  close(): void {
    this.agent.destroy()
  }
}

function inClusterServer(): string {
  const host = process.env.KUBERNETES_SERVICE_HOST
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443'
  if (host === undefined || host === '') {
    throw new PermanentError('IDENTITY_CONFIG', 'identity.mode needs the Kubernetes API: identity.apiServer is not set and KUBERNETES_SERVICE_HOST is not defined (not in a cluster)')
  }
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`
}

function readAll(res: http.IncomingMessage, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const onAbort = () => res.destroy()
    const done = () => signal.removeEventListener('abort', onAbort)
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => {
      done()
      resolve(Buffer.concat(chunks).toString('utf8'))
    })
    res.on('error', (err) => {
      done()
      reject(new RetryableError('KUBE_STREAM', err.message))
    })
    res.on('close', () => {
      done()
      if (!res.complete) reject(new RetryableError('KUBE_STREAM', 'connection closed before the body was complete'))
    })
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function statusError(status: number, text: string, what: string): KubeStatusError {
  let message = text.slice(0, 300)
  try {
    const b = JSON.parse(text) as { message?: string }
    if (typeof b.message === 'string') message = b.message
  } catch {
    // non-JSON error bodies are quoted as they are
  }
  return new KubeStatusError(status, `${what}: HTTP ${status}${message !== '' ? `: ${message}` : ''}`)
}
