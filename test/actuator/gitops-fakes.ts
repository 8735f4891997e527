/**
 * Fake GitOps controllers for the driver tests, each playing against the fake Kubernetes API
 * (test/support/fake-k8s.ts) the way the real one plays against a cluster: it applies what Git says
 * through the API, and puts it back when the live object drifts.
 *
 * FakeArgoCd: the Argo CD API server's REST shapes (assets/swagger.json of argoproj/argo-cd):
 *   GET   /api/v1/applications                        {items: [Application]}
 *   GET   /api/v1/applications/{name}                 Application {metadata, spec, status}
 *   PATCH /api/v1/applications/{name}                 ApplicationPatchRequest {name, patch: string, patchType: "merge"|"json"}
 *   GET   /api/v1/applications/{name}/manifests?revision=R   {manifests: [string], revision}
 *   GET   /api/v1/applications/{name}/resource?namespace&resourceName&version&group&kind   {manifest: string}
 *   POST  /api/v1/applications/{name}/rollback        ApplicationRollbackRequest {name, id, prune}; refused
 *         (FailedPrecondition -> HTTP 400) while automated sync is enabled, as Argo CD does
 * Errors carry the gRPC gateway's body {error, code, message}. A bearer token is required.
 * Self-heal: every `loopMs`, with automated sync and selfHeal on, a live image other than Git's
 * (the head revision) is put back by re-applying the head revision.
 *
 * FakeFlux: a Kubernetes API front serving Flux's Kustomization (kustomize.toolkit.fluxcd.io/v1) and
 * HelmRelease (helm.toolkit.fluxcd.io/v2) objects (GET, merge-patch), passing everything else to the
 * fake Kubernetes API. Reconcile: every `loopMs`, unless spec.suspend, a live image other than Git's is
 * set back.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FakeK8s } from '../support/fake-k8s.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Recorded {
  method: string
  path: string
  body: unknown
  auth: string | undefined
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString()
}

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

/** RFC 7386 JSON merge patch: null deletes */
export function mergePatch(target: Obj, patch: Obj): Obj {
  const out: Obj = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else if (typeof v === 'object' && !Array.isArray(v)) out[k] = mergePatch(out[k] as Obj, v as Obj)
    else out[k] = v
  }
  return out
}

/** set the Deployment's first container image through the fake Kubernetes API, as a controller applying Git would */
async function applyImage(k8sUrl: string, k8s: FakeK8s, image: string): Promise<void> {
  const ns = k8s.owner.metadata.namespace as string
  const name = k8s.owner.metadata.name as string
  const r = await fetch(`${k8sUrl}/apis/apps/v1/namespaces/${ns}/deployments/${name}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json-patch+json' },
    body: JSON.stringify([{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: image }]),
  })
  if (r.status !== 200) throw new Error(`controller apply: HTTP ${r.status}`)
}

/** the first fetch of a process sets up undici (tens of ms): done before the controller loop starts, so its first revert is as quick as the next */
async function warm(url: string): Promise<void> {
  await (await fetch(`${url}/healthz`)).text()
}

function deploymentReady(k8s: FakeK8s): boolean {
  const o = k8s.owner
  const want = o.spec.replicas
  return o.status.observedGeneration >= o.metadata.generation && o.status.updatedReplicas === want && o.status.availableReplicas === want && o.status.replicas === want
}

export interface FakeArgoCdOptions {
  k8s: FakeK8s
  k8sUrl: string
  token: string
  app: string
  /** Git revisions in order, with the image each gives the Deployment; the last one is the head */
  git: { revision: string; image: string }[]
  automated: Obj | undefined
  loopMs?: number
}

export class FakeArgoCd {
  readonly requests: Recorded[] = []
  app: Obj
  /** self-heal applications of the head revision */
  selfHeals = 0
  /** self-heal attempts that failed (the fake Kubernetes API stopping first at the end of a test) */
  loopErrors = 0
  private server: Server | undefined
  private loop: NodeJS.Timeout | undefined
  private applying = false

  constructor(private readonly o: FakeArgoCdOptions) {
    const ns = o.k8s.owner.metadata.namespace as string
    const head = o.git[o.git.length - 1]!
    this.app = {
      metadata: { name: o.app, namespace: 'argocd', resourceVersion: '77', annotations: {} },
      spec: {
        project: 'default',
        source: { repoURL: 'https://git.example.com/shop/deploy.git', path: 'web', targetRevision: 'HEAD' },
        destination: { server: 'https://kubernetes.default.svc', namespace: ns },
        syncPolicy: { ...(o.automated ? { automated: o.automated } : {}), syncOptions: ['CreateNamespace=true'] },
      },
      status: {
        sync: { status: 'Synced', revision: head.revision },
        health: { status: 'Healthy' },
        history: o.git.map((g, i) => ({ id: i, revision: g.revision, deployedAt: new Date(Date.UTC(2026, 10, 1 + i)).toISOString(), source: { repoURL: 'https://git.example.com/shop/deploy.git', path: 'web', targetRevision: 'HEAD' } })),
        operationState: { phase: 'Succeeded', operation: { sync: { revision: head.revision } }, syncResult: { revision: head.revision } },
        resources: [{ group: 'apps', version: 'v1', kind: 'Deployment', namespace: ns, name: o.k8s.owner.metadata.name, status: 'Synced', health: { status: 'Healthy' } }],
      },
    }
  }

  private head(): { revision: string; image: string } {
    return this.o.git[this.o.git.length - 1]!
  }

  private automatedOn(): boolean {
    const a = this.app.spec.syncPolicy?.automated as Obj | undefined
    return a !== undefined && a.enabled !== false
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r))
    await warm(this.o.k8sUrl)
    this.loop = setInterval(() => void this.selfHeal().catch(() => this.loopErrors++), this.o.loopMs ?? 10)
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    clearInterval(this.loop)
    this.server?.closeAllConnections()
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
  }

  private async selfHeal(): Promise<void> {
    if (this.applying || !this.automatedOn() || this.app.spec.syncPolicy.automated.selfHeal !== true) return
    if (this.o.k8s.currentImage() === this.head().image) return
    this.applying = true
    try {
      await applyImage(this.o.k8sUrl, this.o.k8s, this.head().image)
      this.selfHeals++
    } finally {
      this.applying = false
    }
  }

  /** the live view of the application (what the controller would have reconciled) */
  private view(): Obj {
    const a = structuredClone(this.app)
    const health = deploymentReady(this.o.k8s) ? 'Healthy' : 'Progressing'
    a.status.resources[0].health = { status: health }
    a.status.health = { status: health }
    a.status.sync.status = this.o.k8s.currentImage() === this.head().image ? 'Synced' : 'OutOfSync'
    return a
  }

  private manifestAt(revision: string): Obj | undefined {
    const g = this.o.git.find((x) => x.revision === revision)
    if (!g) return undefined
    const o = this.o.k8s.owner
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: o.metadata.name, labels: { app: o.metadata.name } },
      spec: { replicas: o.spec.replicas, selector: o.spec.selector, template: { metadata: { labels: { app: o.metadata.name } }, spec: { containers: [{ name: o.metadata.name, image: g.image }] } } },
    }
  }

  private async rollback(revision: string): Promise<void> {
    const st = this.app.status
    st.operationState = { phase: 'Running', operation: { sync: { revision } }, startedAt: new Date().toISOString() }
    this.applying = true
    try {
      await applyImage(this.o.k8sUrl, this.o.k8s, this.manifestAt(revision)!.spec.template.spec.containers[0].image)
    } finally {
      this.applying = false
    }
    const until = Date.now() + 5000
    while (!deploymentReady(this.o.k8s) && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
    st.operationState = { ...st.operationState, phase: 'Succeeded', syncResult: { revision }, finishedAt: new Date().toISOString() }
    st.history.push({ id: Math.max(...st.history.map((h: Obj) => Number(h.id))) + 1, revision, deployedAt: new Date().toISOString(), source: this.app.spec.source })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req)
    const url = new URL(req.url ?? '/', 'http://x')
    const rec: Recorded = { method: req.method ?? '', path: req.url ?? '', body: text ? JSON.parse(text) : undefined, auth: req.headers.authorization }
    this.requests.push(rec)
    const rpcError = (http: number, code: number, message: string) => send(res, http, { error: message, code, message })
    if (req.headers.authorization !== `Bearer ${this.o.token}`) return rpcError(401, 16, 'no session information')
    const base = `/api/v1/applications/${this.o.app}`
    if (req.method === 'GET' && url.pathname === '/api/v1/applications') return send(res, 200, { metadata: {}, items: [this.view()] })
    if (url.pathname.startsWith('/api/v1/applications/') && !url.pathname.startsWith(base)) return rpcError(403, 7, 'permission denied')
    if (req.method === 'GET' && url.pathname === base) return send(res, 200, this.view())
    if (req.method === 'PATCH' && url.pathname === base) {
      const b = rec.body as Obj
      if (b.name !== this.o.app || typeof b.patch !== 'string') return rpcError(400, 3, 'invalid patch request')
      if (b.patchType !== 'merge') return rpcError(400, 3, `unsupported patch type ${String(b.patchType)}`)
      this.app = mergePatch(this.app, JSON.parse(b.patch) as Obj)
      this.app.metadata.resourceVersion = String(Number(this.app.metadata.resourceVersion) + 1)
      return send(res, 200, this.view())
    }
    if (req.method === 'GET' && url.pathname === `${base}/manifests`) {
      const revision = url.searchParams.get('revision') ?? this.head().revision
      const m = this.manifestAt(revision)
      if (!m) return rpcError(404, 5, `revision ${revision} not found`)
      return send(res, 200, { manifests: [JSON.stringify(m)], namespace: this.app.spec.destination.namespace, server: this.app.spec.destination.server, revision, sourceType: 'Directory' })
    }
    if (req.method === 'GET' && url.pathname === `${base}/resource`) {
      const o = this.o.k8s.owner
      const q = url.searchParams
      if (q.get('kind') !== 'Deployment' || q.get('group') !== 'apps' || q.get('resourceName') !== o.metadata.name || q.get('namespace') !== o.metadata.namespace) return rpcError(404, 5, 'resource not found')
      return send(res, 200, { manifest: JSON.stringify(o) })
    }
    if (req.method === 'POST' && url.pathname === `${base}/rollback`) {
      const b = rec.body as Obj
      if (this.automatedOn()) return rpcError(400, 9, 'rollback cannot be initiated when auto-sync is enabled')
      const h = (this.app.status.history as Obj[]).find((x) => Number(x.id) === Number(b.id))
      if (!h) return rpcError(400, 3, `application ${this.o.app} does not have deployment with id ${String(b.id)}`)
      // runs on after the answer, as Argo CD's operation does; a test that stops the fake API first must not leave an unhandled rejection
      void this.rollback(h.revision as string).catch(() => this.loopErrors++)
      return send(res, 200, this.view())
    }
    return rpcError(404, 5, `no route ${req.method} ${url.pathname}`)
  }
}

export interface FakeFluxOptions {
  k8s: FakeK8s
  k8sUrl: string
  owner: { kind: 'Kustomization' | 'HelmRelease'; name: string; namespace: string }
  /** the image Git gives the Deployment */
  gitImage: string
  loopMs?: number
}

export class FakeFlux {
  readonly requests: Recorded[] = []
  obj: Obj
  /** reconciles that set the Deployment back to Git */
  reverts = 0
  /** reconciles that failed (the fake Kubernetes API stopping first at the end of a test) */
  loopErrors = 0
  private server: Server | undefined
  private loop: NodeJS.Timeout | undefined
  private applying = false
  private readonly path: string

  constructor(private readonly o: FakeFluxOptions) {
    const isKs = o.owner.kind === 'Kustomization'
    this.path = isKs
      ? `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${o.owner.namespace}/kustomizations/${o.owner.name}`
      : `/apis/helm.toolkit.fluxcd.io/v2/namespaces/${o.owner.namespace}/helmreleases/${o.owner.name}`
    this.obj = {
      apiVersion: isKs ? 'kustomize.toolkit.fluxcd.io/v1' : 'helm.toolkit.fluxcd.io/v2',
      kind: o.owner.kind,
      metadata: { name: o.owner.name, namespace: o.owner.namespace, resourceVersion: '500', generation: 1 },
      spec: isKs ? { interval: '1m', path: './web', prune: true, sourceRef: { kind: 'GitRepository', name: 'flux-system' } } : { interval: '1m', chart: { spec: { chart: 'web', sourceRef: { kind: 'HelmRepository', name: 'shop' } } } },
    }
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res))
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r))
    await warm(this.o.k8sUrl)
    this.loop = setInterval(() => void this.reconcile().catch(() => this.loopErrors++), this.o.loopMs ?? 10)
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    clearInterval(this.loop)
    this.server?.closeAllConnections()
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
  }

  private async reconcile(): Promise<void> {
    if (this.applying || this.obj.spec.suspend === true || this.o.k8s.currentImage() === this.o.gitImage) return
    this.applying = true
    try {
      await applyImage(this.o.k8sUrl, this.o.k8s, this.o.gitImage)
      this.reverts++
    } finally {
      this.applying = false
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req)
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname.startsWith('/apis/kustomize.toolkit.fluxcd.io/') || url.pathname.startsWith('/apis/helm.toolkit.fluxcd.io/')) {
      const rec: Recorded = { method: req.method ?? '', path: req.url ?? '', body: text ? JSON.parse(text) : undefined, auth: req.headers.authorization }
      this.requests.push(rec)
      const status = (code: number, reason: string, message: string) => send(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code })
      if (url.pathname !== this.path) return status(404, 'NotFound', `${url.pathname} not found`)
      if (req.method === 'GET') return send(res, 200, this.obj)
      if (req.method === 'PATCH') {
        if (req.headers['content-type'] !== 'application/merge-patch+json') return status(415, 'UnsupportedMediaType', `unsupported ${String(req.headers['content-type'])}`)
        this.obj = mergePatch(this.obj, rec.body as Obj)
        this.obj.metadata.resourceVersion = String(Number(this.obj.metadata.resourceVersion) + 1)
        return send(res, 200, this.obj)
      }
      return status(405, 'MethodNotAllowed', 'method not allowed')
    }
    // everything else is the fake Kubernetes API's
    const r = await fetch(`${this.o.k8sUrl}${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers: req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {},
      ...(text ? { body: text } : {}),
    })
    res.writeHead(r.status, { 'content-type': 'application/json' })
    res.end(await r.text())
  }
}
