/**
 * A fake Kubernetes API server on loopback answering exactly the requests the actuator's drivers
 * make (see /work/shared/notes/kubernetes.md), with the shapes of the real API:
 *   GET   /apis/apps/v1/namespaces/NS/deployments/NAME
 *   GET   /apis/apps/v1/namespaces/NS/replicasets?labelSelector=app%3DNAME
 *   PATCH /apis/apps/v1/namespaces/NS/deployments/NAME            application/json-patch+json (test op honoured)
 *   GET   /apis/argoproj.io/v1alpha1/namespaces/NS/rollouts/NAME
 *   PATCH /apis/argoproj.io/v1alpha1/namespaces/NS/rollouts/NAME/status   application/merge-patch+json
 *   PATCH /apis/argoproj.io/v1alpha1/namespaces/NS/rollouts/NAME          json-patch or merge-patch
 * It plays the controller too: a template change bumps generation and resourceVersion, makes the
 * ReplicaSet with that template the newest revision, and (unless `ready: 'never'`) reports the
 * rollout complete after `readyAfterMs`. Every request is recorded in `requests`.
 * Pods (list + watch, for the sidecar's identity stage) are served by `pods` (fake-k8s-pods.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { FakePods } from './fake-k8s-pods.js'

export interface RecordedRequest {
  method: string
  path: string
  contentType: string | undefined
  body: unknown
  at: number
  /** performance.now() at arrival (same-process latency measurements) */
  hr: number
}

export interface FakeK8sOptions {
  namespace?: string
  name?: string
  /** images of the ReplicaSets in revision order (1, 2, ...); the last one is current */
  history: string[]
  replicas?: number
  ready?: 'after' | 'never'
  readyAfterMs?: number
  /** 'deployment' (default) or 'rollout' (an Argo Rollout owns the ReplicaSets) */
  kind?: 'deployment' | 'rollout'
  /** answer 404 on the rollouts/status subresource (older Argo CRDs without it) */
  noStatusSubresource?: boolean
}

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const hash = (image: string) => Buffer.from(image).toString('hex').slice(-10)

function template(image: string, name: string, withHash: boolean): Obj {
  return {
    metadata: { labels: { app: name, ...(withHash ? { 'pod-template-hash': hash(image) } : {}) }, annotations: { 'pullback.test/image': image } },
    spec: { containers: [{ name, image, ports: [{ containerPort: 8080, protocol: 'TCP' }] }] },
  }
}

export class FakeK8s {
  readonly requests: RecordedRequest[] = []
  /** GET /api/v1/pods, list and watch */
  readonly pods = new FakePods()
  owner: Obj
  replicasets: Obj[]
  /** called before a PATCH of the owner is applied (e.g. to simulate a concurrent writer) */
  beforePatch: ((r: RecordedRequest) => void) | undefined
  /** awaited after a successful PATCH is applied and before the response is sent */
  afterPatch: ((r: RecordedRequest) => void | Promise<void>) | undefined
  private server: Server | undefined
  private rv = 1000
  private readonly o: Required<FakeK8sOptions>
  private readyTimer: NodeJS.Timeout | undefined

  constructor(opts: FakeK8sOptions) {
    this.o = { namespace: 'default', name: 'web', replicas: 3, ready: 'after', readyAfterMs: 50, kind: 'deployment', noStatusSubresource: false, ...opts }
    const { name, namespace, replicas } = this.o
    const uid = '6f0c5a0e-1111-4c2b-9f51-0123456789ab'
    const current = this.o.history[this.o.history.length - 1]!
    const isRollout = this.o.kind === 'rollout'
    this.owner = {
      apiVersion: isRollout ? 'argoproj.io/v1alpha1' : 'apps/v1',
      kind: isRollout ? 'Rollout' : 'Deployment',
      metadata: {
        name,
        namespace,
        uid,
        resourceVersion: String(this.rv),
        generation: this.o.history.length,
        annotations: isRollout ? { 'rollout.argoproj.io/revision': String(this.o.history.length) } : { 'deployment.kubernetes.io/revision': String(this.o.history.length), 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
        labels: { app: name },
      },
      spec: { replicas, selector: { matchLabels: { app: name } }, template: template(current, name, false) },
      status: isRollout
        ? { observedGeneration: String(this.o.history.length), replicas, updatedReplicas: replicas, availableReplicas: replicas, readyReplicas: replicas, phase: 'Healthy' }
        : { observedGeneration: this.o.history.length, replicas, updatedReplicas: replicas, availableReplicas: replicas, readyReplicas: replicas },
    }
    const revAnn = isRollout ? 'rollout.argoproj.io/revision' : 'deployment.kubernetes.io/revision'
    this.replicasets = this.o.history.map((image, i) => ({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${name}-${hash(image)}`,
        namespace,
        uid: `rs-${i}`,
        resourceVersion: String(this.rv),
        labels: { app: name, 'pod-template-hash': hash(image) },
        annotations: { [revAnn]: String(i + 1), 'deployment.kubernetes.io/desired-replicas': String(replicas) },
        ownerReferences: [{ apiVersion: this.owner.apiVersion, kind: this.owner.kind, name, uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: { replicas: i === this.o.history.length - 1 ? replicas : 0, selector: { matchLabels: { app: name, 'pod-template-hash': hash(image) } }, template: template(image, name, true) },
      status: { replicas: i === this.o.history.length - 1 ? replicas : 0 },
    }))
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    clearTimeout(this.readyTimer)
    this.pods.close()
    this.server?.closeAllConnections()
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
  }

  patches(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'PATCH')
  }

  currentImage(): string {
    return this.owner.spec.template.spec.containers[0].image
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hr = performance.now()
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString()
    const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'], body: text ? JSON.parse(text) : undefined, at: Date.now(), hr }
    this.requests.push(rec)
    const url = new URL(req.url ?? '/', 'http://x')
    const { namespace: ns, name } = this.o
    const dep = `/apis/apps/v1/namespaces/${ns}/deployments/${name}`
    const ro = `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts/${name}`
    const isRollout = this.o.kind === 'rollout'
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    const status = (code: number, reason: string, message: string) => send(code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code })

    if (req.method === 'GET' && ((url.pathname === dep && !isRollout) || (url.pathname === ro && isRollout))) return send(200, this.owner)
    if (req.method === 'GET' && url.pathname === `/apis/apps/v1/namespaces/${ns}/replicasets`) {
      const sel = (url.searchParams.get('labelSelector') ?? '').split(',').filter(Boolean).map((kv) => kv.split('='))
      const items = this.replicasets.filter((rs) => sel.every(([k, v]) => rs.metadata.labels[k!] === v))
      return send(200, { kind: 'ReplicaSetList', apiVersion: 'apps/v1', metadata: { resourceVersion: String(this.rv) }, items })
    }
    if (req.method === 'PATCH' && isRollout && url.pathname === `${ro}/status`) {
      if (this.o.noStatusSubresource) return status(404, 'NotFound', 'the server could not find the requested resource')
      if (rec.contentType !== 'application/merge-patch+json') return status(415, 'UnsupportedMediaType', `unsupported ${rec.contentType}`)
      Object.assign(this.owner.status, (rec.body as Obj).status)
      this.owner.metadata.resourceVersion = String(++this.rv)
      return send(200, this.owner)
    }
    if (req.method === 'PATCH' && ((url.pathname === dep && !isRollout) || (url.pathname === ro && isRollout))) {
      this.beforePatch?.(rec)
      let next: Obj
      if (rec.contentType === 'application/json-patch+json') {
        const r = applyJsonPatch(this.owner, rec.body as Obj[])
        if (typeof r === 'string') return status(422, 'Invalid', r)
        next = r
      } else if (rec.contentType === 'application/merge-patch+json') {
        next = structuredClone(this.owner)
        if ((rec.body as Obj).status) Object.assign(next.status, (rec.body as Obj).status)
        if ((rec.body as Obj).spec) Object.assign(next.spec, (rec.body as Obj).spec)
      } else return status(415, 'UnsupportedMediaType', `unsupported ${rec.contentType}`)
      const templateChanged = JSON.stringify(next.spec.template) !== JSON.stringify(this.owner.spec.template)
      this.owner = next
      this.owner.metadata.resourceVersion = String(++this.rv)
      if (templateChanged) this.rollTo(this.owner.spec.template)
      await this.afterPatch?.(rec)
      return send(200, this.owner)
    }
    if (this.pods.handle(req, url, res)) return
    return status(404, 'NotFound', `no route ${req.method} ${url.pathname}`)
  }

  /** the controller: the ReplicaSet with this template becomes the newest revision; readiness follows */
  private rollTo(tpl: Obj): void {
    const image = tpl.spec.containers[0].image as string
    const revAnn = this.o.kind === 'rollout' ? 'rollout.argoproj.io/revision' : 'deployment.kubernetes.io/revision'
    const max = Math.max(...this.replicasets.map((rs) => Number(rs.metadata.annotations[revAnn])))
    const rs = this.replicasets.find((r) => r.spec.template.spec.containers[0].image === image)
    if (rs) rs.metadata.annotations[revAnn] = String(max + 1)
    this.owner.metadata.generation++
    const want = this.owner.spec.replicas
    const st = this.owner.status
    if (this.o.kind === 'rollout') {
      st.phase = 'Progressing'
      st.updatedReplicas = 0
      st.availableReplicas = want
    } else {
      st.observedGeneration = this.owner.metadata.generation
      st.updatedReplicas = 0
      st.replicas = want * 2
      st.availableReplicas = want
    }
    clearTimeout(this.readyTimer)
    if (this.o.ready === 'never') return
    this.readyTimer = setTimeout(() => {
      if (this.o.kind === 'rollout') Object.assign(st, { phase: 'Healthy', observedGeneration: String(this.owner.metadata.generation), updatedReplicas: want, availableReplicas: want })
      else Object.assign(st, { updatedReplicas: want, replicas: want, availableReplicas: want, readyReplicas: want })
    }, this.o.readyAfterMs)
  }
}

/** RFC 6902 subset the actuator uses: test, replace, add, remove on object paths */
function applyJsonPatch(doc: Obj, ops: Obj[]): Obj | string {
  const out = structuredClone(doc)
  for (const op of ops) {
    const parts = String(op.path).split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    const last = parts.pop()!
    let parent: Obj = out
    for (const p of parts) {
      if (parent[p] === undefined) return `doc is missing path: ${op.path}`
      parent = parent[p]
    }
    switch (op.op) {
      case 'test':
        if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) return `the server rejected our request due to an error in our request: testing value ${op.path} failed`
        break
      case 'replace':
        if (!(last in parent)) return `replace operation does not apply: doc is missing key: ${op.path}`
        parent[last] = op.value
        break
      case 'add':
        parent[last] = op.value
        break
      case 'remove':
        delete parent[last]
        break
      default:
        return `unsupported op ${String(op.op)}`
    }
  }
  return out
}
