/**
 * A minimal Kubernetes API client over node:http(s): in-cluster credentials (service account token
 * and CA) or a plain http:// server (kubectl proxy, the tests' fake API server). Only what the
 * drivers need: GET, list with labelSelector, PATCH with a given content type; POST/PUT for the
 * Argo CD API server, which speaks the same JSON over HTTP with a bearer token.
 */
import { readFileSync, statSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { PermanentError, RetryableError } from '../../common/errors.js'

export interface KubeConnection {
  server?: string
  tokenFile: string
  caFile?: string
  requestTimeout: number
  /**
   * send the bearer token over plain http too (the Argo CD API always wants it; a Kubernetes API
   * reached over http is a local proxy that adds its own credentials)
   */
  tokenOverHttp?: boolean
}

export interface KubeResponse {
  status: number
  body: unknown
}

export class KubeClient {
  private readonly base: URL
  private readonly sendToken: boolean
  /** the token as last read, keyed by the file's mtime: projected service-account tokens are rotated in place (hourly) */
  private token: { mtimeMs: number; value: string | undefined } | undefined
  private readonly ca: Buffer | undefined
  private readonly agent: http.Agent

  constructor(private readonly c: KubeConnection) {
    const server = c.server ?? inCluster()
    this.base = new URL(server)
    const secure = this.base.protocol === 'https:'
    this.sendToken = secure || c.tokenOverHttp === true
    this.ca = secure && c.caFile !== undefined ? readOptional(c.caFile) : undefined
    this.agent = secure ? new https.Agent({ keepAlive: true, ca: this.ca }) : new http.Agent({ keepAlive: true })
  }

  private bearer(): string | undefined {
    if (!this.sendToken) return undefined
    let mtimeMs: number
    try {
      mtimeMs = statSync(this.c.tokenFile).mtimeMs
    } catch {
      return undefined
    }
    if (this.token?.mtimeMs !== mtimeMs) this.token = { mtimeMs, value: readOptional(this.c.tokenFile)?.toString().trim() }
    return this.token.value
  }

  request(method: 'GET' | 'PATCH' | 'POST' | 'PUT', path: string, body?: unknown, contentType?: string): Promise<KubeResponse> {
    const url = new URL(path, this.base)
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const mod = url.protocol === 'https:' ? https : http
    const token = this.bearer()
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          agent: this.agent,
          timeout: this.c.requestTimeout,
          headers: {
            accept: 'application/json',
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(payload ? { 'content-type': contentType ?? 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString()
            let parsed: unknown = text
            try {
              parsed = text ? JSON.parse(text) : undefined
            } catch {
              // non-JSON error bodies are kept as text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed })
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new RetryableError('KUBE_TIMEOUT', `${method} ${url.pathname} timed out`)))
      req.on('error', (err) => reject(err instanceof RetryableError ? err : new RetryableError('KUBE_UNREACHABLE', `${method} ${url.pathname}: ${err.message}`, { cause: err })))
      req.end(payload)
    })
  }

  close(): void {
    this.agent.destroy()
  }
}

function inCluster(): string {
  const host = process.env.KUBERNETES_SERVICE_HOST
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443'
  if (!host) throw new PermanentError('KUBE_NO_SERVER', 'actuator.driver.server is not set and KUBERNETES_SERVICE_HOST is not defined (not in a cluster)')
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`
}

function readOptional(file: string): Buffer | undefined {
  try {
    return readFileSync(file)
  } catch {
    return undefined
  }
}

export function statusMessage(r: KubeResponse): string {
  const b = r.body as { message?: string } | undefined
  return `HTTP ${r.status}${b?.message ? `: ${b.message}` : ''}`
}
