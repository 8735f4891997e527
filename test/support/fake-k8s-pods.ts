/**
 * Pods for the fake Kubernetes API (fake-k8s.ts serves these routes next to the actuator's):
 *   GET /api/v1/pods?fieldSelector=spec.nodeName%3DN&limit=L&continue=C      PodList, paginated
 *   GET /api/v1/pods?watch=1&resourceVersion=R&timeoutSeconds=T              JSON lines of watch events
 * with the real API's behaviour where the identity stage depends on it: a watch from a
 * resourceVersion older than the retained history gets HTTP 200 and one ERROR event with a 410
 * Status ("too old resource version") and ends; a watch ends after timeoutSeconds; every change
 * bumps the resourceVersion. `failNext` answers the next pods request with an error status,
 * `unavailable` every one (an outage).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export interface PodSpec {
  name: string
  namespace: string
  ip?: string
  node?: string
  labels?: Record<string, string>
  hostNetwork?: boolean
  phase?: string
  uid?: string
}

interface Watcher {
  res: ServerResponse
  node: string | undefined
  timer: NodeJS.Timeout
}

export function podObject(p: PodSpec, rv: number): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, uid: p.uid ?? `uid-${p.namespace}-${p.name}`, resourceVersion: String(rv), labels: p.labels ?? {} },
    spec: { nodeName: p.node ?? 'node-a', hostNetwork: p.hostNetwork === true, containers: [{ name: 'app', image: 'registry.example/app:1' }] },
    status: { phase: p.phase ?? 'Running', ...(p.ip !== undefined ? { podIP: p.ip, podIPs: [{ ip: p.ip }] } : {}) },
  }
}

export class FakePods {
  /** pods by uid */
  readonly pods = new Map<string, Obj>()
  /** every pods request: list or watch, with its query */
  readonly requests: Array<{ kind: 'list' | 'watch'; query: Record<string, string>; status: number }> = []
  /** the next pods request gets this status (then it is cleared) */
  failNext: { status: number; message?: string } | undefined
  /** while set, every pods request gets 503 (an API server outage) */
  unavailable = false
  private rv = 5000
  /** watches from before this resourceVersion are too old (410) */
  private oldest = 5000
  private readonly history: Array<{ rv: number; type: string; object: Obj }> = []
  private readonly watchers = new Set<Watcher>()

  add(p: PodSpec): Obj {
    const o = podObject(p, ++this.rv)
    const existed = this.pods.has(o.metadata.uid)
    this.pods.set(o.metadata.uid, o)
    this.emit(existed ? 'MODIFIED' : 'ADDED', o)
    return o
  }

  update(uid: string, change: (o: Obj) => void): void {
    const o = structuredClone(this.pods.get(uid))
    if (o === undefined) throw new Error(`no pod ${uid}`)
    change(o)
    o.metadata.resourceVersion = String(++this.rv)
    this.pods.set(uid, o)
    this.emit('MODIFIED', o)
  }

  remove(uid: string): void {
    const o = this.pods.get(uid)
    if (o === undefined) return
    this.pods.delete(uid)
    o.metadata.resourceVersion = String(++this.rv)
    this.emit('DELETED', o)
  }

  /**
   * The API server compacted its history: open watches get an ERROR 410 and end, and watches from
   * any version seen so far are too old. With `silently`, changes made now reach no open watch
   * (as if they happened while a watch was broken).
   */
  expire(): void {
    this.oldest = this.rv + 1
    this.history.length = 0
    for (const w of [...this.watchers]) {
      this.write(w, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } })
      this.end(w)
    }
  }

  /** ends every open watch normally (as timeoutSeconds would) */
  endWatches(): void {
    for (const w of [...this.watchers]) this.end(w)
  }

  openWatches(): number {
    return this.watchers.size
  }

  close(): void {
    for (const w of [...this.watchers]) this.end(w)
  }

  /** Serves GET /api/v1/pods (list or watch); false for any other route. */
  handle(req: IncomingMessage, url: URL, res: ServerResponse): boolean {
    if (req.method !== 'GET' || url.pathname !== '/api/v1/pods') return false
    const query = Object.fromEntries(url.searchParams.entries())
    const watch = query.watch === '1' || query.watch === 'true'
    const fail = this.failNext ?? (this.unavailable ? { status: 503, message: 'unavailable' } : undefined)
    this.failNext = undefined
    this.requests.push({ kind: watch ? 'watch' : 'list', query, status: fail?.status ?? 200 })
    if (fail !== undefined) {
      res.writeHead(fail.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: fail.message ?? 'injected failure', code: fail.status }))
      return true
    }
    const sel = /^spec\.nodeName=(.*)$/.exec(query.fieldSelector ?? '')
    const node = sel?.[1]
    if (query.fieldSelector !== undefined && sel === null) {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ kind: 'Status', code: 400, message: `unsupported fieldSelector ${query.fieldSelector}` }))
      return true
    }
    if (!watch) {
      const all = [...this.pods.values()].filter((p) => node === undefined || p.spec.nodeName === node)
      const from = Number(query.continue ?? '0')
      const limit = query.limit !== undefined ? Number(query.limit) : all.length
      const items = all.slice(from, from + limit)
      const next = from + limit < all.length ? String(from + limit) : undefined
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv), ...(next !== undefined ? { continue: next } : {}) }, items }))
      return true
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
    const from = Number(query.resourceVersion ?? '0')
    const w: Watcher = { res, node, timer: setTimeout(() => this.end(w), Number(query.timeoutSeconds ?? '1800') * 1000) }
    if (from < this.oldest - 1) {
      this.write(w, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${this.oldest})`, reason: 'Expired', code: 410 } })
      clearTimeout(w.timer)
      res.end()
      return true
    }
    this.watchers.add(w)
    res.once('close', () => this.end(w))
    for (const e of this.history) if (e.rv > from && (node === undefined || e.object.spec.nodeName === node)) this.write(w, { type: e.type, object: e.object })
    return true
  }

  private emit(type: string, object: Obj): void {
    this.history.push({ rv: this.rv, type, object: structuredClone(object) })
    for (const w of this.watchers) if (w.node === undefined || object.spec.nodeName === w.node) this.write(w, { type, object })
  }

  private write(w: Watcher, e: Obj): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify(e)}\n`)
  }

  private end(w: Watcher): void {
    clearTimeout(w.timer)
    if (!this.watchers.delete(w)) return
    if (!w.res.writableEnded) w.res.end()
  }
}
