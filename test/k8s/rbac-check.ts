/**
 * The least-privilege check (issue 13 item 10): a driver's recorded HTTP requests against RBAC.
 *
 *  - RecordingProxy: sits between a driver and a fake API server and records every request the
 *    driver makes (the fake controllers talk to the fake API directly, so their requests are not
 *    counted as the driver's).
 *  - requestAttributes: (method, path) -> (verb, apiGroup, resource, subresource, namespace, name), the
 *    kube-apiserver's request-info rules [source: k8s.io/apiserver pkg/endpoints/request/requestinfo.go:
 *    /api/v1 is the core group "", /apis/GROUP/VERSION; namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE]];
 *    GET with a name is get, without is list (watch=true: watch); POST create, PUT update, PATCH patch,
 *    DELETE delete / deletecollection].
 *  - LocalRbac: RBAC's authorizer over a set of manifests [source: k8s.io/kubernetes
 *    plugin/pkg/auth/authorizer/rbac: a RoleBinding grants its role's rules in its own namespace only,
 *    a ClusterRoleBinding everywhere; `*` matches any group/resource/verb, `*∕sub` any resource's
 *    subresource; resourceNames restrict by name, and a request without a name (list) never matches
 *    a rule with resourceNames].
 *
 * Seam: the checks take an `Authorizer`. Against a real kube-apiserver the same recorded calls can be
 * asked of the server itself: POST /apis/authorization.k8s.io/v1/subjectaccessreviews with
 * spec.user "system:serviceaccount:NS:NAME" and spec.resourceAttributes {namespace, verb, group,
 * resource, subresource, name}, after `kubectl apply` of the generated Roles (`sarAuthorizer` below).
 */
import { request as httpRequest, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Manifest, PolicyRule, Subject } from '../../src/actuator/rbac.js'

export interface Call {
  method: string
  path: string
  status: number
}

export class RecordingProxy {
  readonly calls: Call[] = []
  private server: Server | undefined

  constructor(private readonly target: string) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.forward(req, res))
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.target)
    const headers = { ...req.headers }
    delete headers.host
    const up = httpRequest(url, { method: req.method, headers }, (r) => {
      this.calls.push({ method: req.method ?? '', path: req.url ?? '', status: r.statusCode ?? 0 })
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
    })
    up.on('error', (err) => {
      this.calls.push({ method: req.method ?? '', path: req.url ?? '', status: 0 })
      res.writeHead(502).end(err.message)
    })
    req.pipe(up)
  }
}

export interface Attributes {
  verb: string
  apiGroup: string
  resource: string
  subresource: string
  /** '' for cluster-scoped requests */
  namespace: string
  name: string
}

export type RequestInfo = { kind: 'resource'; attrs: Attributes } | { kind: 'non-resource'; path: string }

export function requestAttributes(method: string, rawPath: string): RequestInfo {
  const url = new URL(rawPath, 'http://x')
  const parts = url.pathname.split('/').filter((p) => p !== '').map(decodeURIComponent)
  let rest: string[]
  let apiGroup: string
  if (parts[0] === 'api' && parts.length >= 2) {
    apiGroup = ''
    rest = parts.slice(2)
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiGroup = parts[1]!
    rest = parts.slice(3)
  } else return { kind: 'non-resource', path: url.pathname }
  if (rest.length === 0) return { kind: 'non-resource', path: url.pathname }
  let namespace = ''
  // namespaces/NS/RESOURCE...: a namespaced request; namespaces[/NAME] alone is the Namespace resource
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1]!
    rest = rest.slice(2)
  } else if (rest[0] === 'namespaces' && rest.length === 2) {
    namespace = rest[1]!
  }
  const [resource = '', name = '', subresource = ''] = rest
  const m = method.toUpperCase()
  const verb =
    m === 'GET' || m === 'HEAD'
      ? name !== ''
        ? 'get'
        : url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1'
          ? 'watch'
          : 'list'
      : m === 'POST'
        ? 'create'
        : m === 'PUT'
          ? 'update'
          : m === 'PATCH'
            ? 'patch'
            : m === 'DELETE'
              ? name !== ''
                ? 'delete'
                : 'deletecollection'
              : m.toLowerCase()
  return { kind: 'resource', attrs: { verb, apiGroup, resource, subresource, namespace, name } }
}

/** (namespace or '*' for cluster-wide) and one verb on one group/resource[/sub], optionally one name */
export interface Grant {
  namespace: string
  apiGroup: string
  resource: string
  verb: string
  name: string
  /** the binding that grants it */
  via: string
}

export type Authorizer = (subject: Subject, a: Attributes) => Promise<{ allowed: boolean; reason: string }>

type Obj = Record<string, unknown>

function ruleAllows(r: PolicyRule, a: Attributes): boolean {
  const res = a.subresource !== '' ? `${a.resource}/${a.subresource}` : a.resource
  const groupOk = r.apiGroups.includes('*') || r.apiGroups.includes(a.apiGroup)
  const resOk = r.resources.includes('*') || r.resources.includes(res) || (a.subresource !== '' && r.resources.includes(`*/${a.subresource}`))
  const verbOk = r.verbs.includes('*') || r.verbs.includes(a.verb)
  const nameOk = r.resourceNames === undefined || r.resourceNames.length === 0 || (a.name !== '' && r.resourceNames.includes(a.name))
  return groupOk && resOk && verbOk && nameOk
}

function boundTo(b: Obj, s: Subject, bindingNs: string): boolean {
  return ((b.subjects as Obj[] | undefined) ?? []).some((x) => x.kind === 'ServiceAccount' && x.name === s.name && (x.namespace ?? bindingNs) === s.namespace)
}

/**
 * RBAC over manifests as the API server would hold them. `defaultNamespace` is what kustomize's
 * namespace transformer (unsetOnly) gives namespaced objects that name none.
 */
export class LocalRbac {
  constructor(
    private readonly objects: Manifest[],
    private readonly defaultNamespace = 'default',
  ) {}

  private ns(o: Manifest): string {
    return o.metadata.namespace ?? this.defaultNamespace
  }

  /** (rules, where they apply: a namespace or '*', binding name) for the subject */
  private bound(s: Subject): { rules: PolicyRule[]; where: string; via: string }[] {
    const out: { rules: PolicyRule[]; where: string; via: string }[] = []
    for (const b of this.objects) {
      if (b.kind !== 'RoleBinding' && b.kind !== 'ClusterRoleBinding') continue
      const bindingNs = b.kind === 'RoleBinding' ? this.ns(b) : ''
      if (!boundTo(b, s, bindingNs)) continue
      const ref = b.roleRef as { kind: string; name: string }
      const role = this.objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name && (ref.kind === 'ClusterRole' || this.ns(o) === bindingNs))
      if (!role) continue // a dangling roleRef grants nothing
      out.push({ rules: (role.rules as PolicyRule[] | undefined) ?? [], where: b.kind === 'ClusterRoleBinding' ? '*' : bindingNs, via: `${b.kind} ${bindingNs ? `${bindingNs}/` : ''}${b.metadata.name} -> ${ref.kind} ${ref.name}` })
    }
    return out
  }

  readonly authorize: Authorizer = (s, a) => {
    for (const b of this.bound(s)) {
      if (b.where !== '*' && b.where !== a.namespace) continue
      if (b.rules.some((r) => ruleAllows(r, a))) return Promise.resolve({ allowed: true, reason: b.via })
    }
    return Promise.resolve({ allowed: false, reason: 'no binding grants it' })
  }

  /** every atomic grant the subject holds: one namespace (or '*'), group, resource, verb, name ('' = any) */
  grants(s: Subject): Grant[] {
    const out: Grant[] = []
    for (const b of this.bound(s)) {
      for (const r of b.rules) {
        for (const apiGroup of r.apiGroups) for (const resource of r.resources) for (const verb of r.verbs) {
          for (const name of r.resourceNames !== undefined && r.resourceNames.length > 0 ? r.resourceNames : ['']) out.push({ namespace: b.where, apiGroup, resource, verb, name, via: b.via })
        }
      }
    }
    return out
  }
}

/** whether a call exercises a grant: the grant allows it and is the narrowest kind of thing it names */
export function exercises(g: Grant, a: Attributes): boolean {
  const res = a.subresource !== '' ? `${a.resource}/${a.subresource}` : a.resource
  return (g.namespace === '*' || g.namespace === a.namespace) && g.apiGroup === a.apiGroup && g.resource === res && g.verb === a.verb && (g.name === '' || g.name === a.name)
}

export interface Verdict {
  /** driver calls no grant allows */
  denied: { call: Call; attrs: Attributes | string }[]
  /** grants no call uses */
  unused: Grant[]
  /** grants cluster-wide or in a kube-* namespace */
  wide: Grant[]
}

/** (a) every call allowed, (b) every grant exercised, (c) nothing cluster-wide or in kube-* */
export async function check(authorize: Authorizer, grants: Grant[], subject: Subject, calls: Call[]): Promise<Verdict> {
  const denied: Verdict['denied'] = []
  const attrs: Attributes[] = []
  for (const call of calls) {
    const info = requestAttributes(call.method, call.path)
    if (info.kind === 'non-resource') {
      denied.push({ call, attrs: `non-resource ${info.path}` })
      continue
    }
    attrs.push(info.attrs)
    if (!(await authorize(subject, info.attrs)).allowed) denied.push({ call, attrs: info.attrs })
  }
  return {
    denied,
    unused: grants.filter((g) => !attrs.some((a) => exercises(g, a))),
    wide: grants.filter((g) => g.namespace === '*' || g.namespace.startsWith('kube-')),
  }
}

/**
 * The seam for a real kube-apiserver: asks the server whether the subject may make the request
 * (SubjectAccessReview; needs create on subjectaccessreviews for the caller's own credentials).
 */
export function sarAuthorizer(server: string, token: string | undefined): Authorizer {
  return async (s, a) => {
    const r = await fetch(new URL('/apis/authorization.k8s.io/v1/subjectaccessreviews', server), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: `system:serviceaccount:${s.namespace}:${s.name}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${s.namespace}`, 'system:authenticated'],
          resourceAttributes: { namespace: a.namespace, verb: a.verb, group: a.apiGroup, resource: a.resource, subresource: a.subresource, name: a.name },
        },
      }),
    })
    const body = (await r.json()) as { status?: { allowed?: boolean; reason?: string } }
    if (r.status !== 201 && r.status !== 200) return { allowed: false, reason: `SubjectAccessReview HTTP ${r.status}` }
    return { allowed: body.status?.allowed === true, reason: body.status?.reason ?? '' }
  }
}

/** Argo CD RBAC (policy.csv lines): `p, SUBJECT, RESOURCE, ACTION, OBJECT, EFFECT` and `g, USER, ROLE`; `*` globs */
export class ArgoCdPolicy {
  private readonly p: { sub: string; resource: string; action: string; object: RegExp; line: string }[] = []
  private readonly g = new Map<string, string[]>()

  constructor(lines: string[]) {
    for (const l of lines) {
      const f = l.split(',').map((x) => x.trim())
      if (f[0] === 'p' && f[5] === 'allow') this.p.push({ sub: f[1]!, resource: f[2]!, action: f[3]!, object: new RegExp(`^${f[4]!.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`), line: l })
      if (f[0] === 'g') this.g.set(f[1]!, [...(this.g.get(f[1]!) ?? []), f[2]!])
    }
  }

  /** the policy lines that allow the account the action, none when denied */
  allows(account: string, resource: string, action: string, object: string): string[] {
    const subs = new Set([account, ...(this.g.get(account) ?? [])])
    return this.p.filter((x) => subs.has(x.sub) && x.resource === resource && x.action === action && x.object.test(object)).map((x) => x.line)
  }

  lines(): string[] {
    return this.p.map((x) => x.line)
  }
}

/**
 * The Argo CD action an API server request is authorised as [source: argo-cd
 * server/application/application.go]: List filters by `get` per application; Get, GetManifests,
 * GetResource `get`; Patch `update`; Rollback `sync`.
 */
export function argoCdAction(method: string, rawPath: string): { app: string; action: string } | undefined {
  const parts = new URL(rawPath, 'http://x').pathname.split('/').filter((p) => p !== '')
  if (parts[0] !== 'api' || parts[1] !== 'v1' || parts[2] !== 'applications') return undefined
  const app = parts[3] ?? '*'
  const sub = parts[4] ?? ''
  if (method === 'GET' && (sub === '' || sub === 'manifests' || sub === 'resource')) return { app, action: 'get' }
  if (method === 'PATCH' && sub === '') return { app, action: 'update' }
  if (method === 'POST' && sub === 'rollback') return { app, action: 'sync' }
  return undefined
}
