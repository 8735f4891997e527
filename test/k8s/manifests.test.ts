/**
 * Cross-reference checks over k8s/: everything a reviewer would otherwise verify by eye before
 * `kubectl apply -k k8s/`. Manifests are parsed with the `yaml` package; when kubectl is on the PATH
 * its embedded kustomize renders the folder too.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseAllDocuments } from 'yaml'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { splitHostPort } from '../../src/runtime/config.js'
import { METRICS, prometheusLabel, prometheusSeries, type MetricSpec } from '../../src/publish/self-metrics.js'

const K8S = join(import.meta.dirname, '..', '..', 'k8s')
const run = promisify(execFile)

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped YAML; the assertions are the types */
type Obj = Record<string, any>

function loadYaml(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(join(K8S, file), 'utf8'), { uniqueKeys: true })
  if (!Array.isArray(docs)) throw new Error(`${file}: not YAML`)
  return docs.map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`)
    return d.toJS() as Obj
  }).filter((o) => o !== null)
}

const kustomization = loadYaml('kustomization.yaml')[0]!
/** the namespace of everything that names none (the kustomization's unsetOnly NamespaceTransformer) */
const PB_NS = (parseAllDocuments((kustomization.transformers as string[])[0]!)[0]!.toJS() as Obj).metadata.namespace as string
const resources: Obj[] = (kustomization.resources as string[]).flatMap((f) => loadYaml(f))
const byKind = (kind: string) => resources.filter((r) => r.kind === kind)
const one = (kind: string, name: string): Obj => {
  const found = resources.filter((r) => r.kind === kind && r.metadata?.name === name)
  expect(found, `${kind}/${name}`).toHaveLength(1)
  return found[0]!
}
const generator = (name: string): Obj => (kustomization.configMapGenerator as Obj[]).find((g) => g.name === name)!
const configText = readFileSync(join(K8S, (generator('pullback-config').files as string[])[0]!), 'utf8')
const configRaw = loadYaml((generator('pullback-config').files as string[])[0]!)[0]
const config = parseConfig(configRaw, 'k8s/pullback.yaml')
const sidecar = one('DaemonSet', 'pullback-sidecar')
const actuator = one('Deployment', 'pullback-actuator')
const decider = one('Deployment', 'pullback-decider')
const workloads = [sidecar, decider, actuator]
const container = (w: Obj): Obj => w.spec.template.spec.containers[0]
const port = (endpoint: string) => splitHostPort(endpoint).port
const adminPort = port(config.runtime.admin.endpoint)

describe('k8s/ kustomization', () => {
  it('lists only files that exist, and sets the pullback namespace', () => {
    // an unsetOnly NamespaceTransformer, not `namespace:` (which would move the actuator's Roles out of the
    // application namespaces); test/k8s/rbac.test.ts checks its settings
    expect(PB_NS).toBe('pullback')
    const files = [...(kustomization.resources as string[]), ...(kustomization.configMapGenerator as Obj[]).flatMap((g) => g.files as string[])]
    for (const f of files) expect(existsSync(join(K8S, f)), f).toBe(true)
    expect(one('Namespace', 'pullback')).toBeDefined()
  })

  it('ships the dashboard as a ConfigMap the Grafana sidecar picks up', () => {
    const g = generator('pullback-grafana-dashboard')
    expect(g.files).toEqual(['grafana-dashboard.json'])
    expect(g.options.labels.grafana_dashboard).toBe('1')
  })

  it('renders with kubectl kustomize when kubectl is available', async (ctx) => {
    const kubectl = await run('kubectl', ['version', '--client']).then(() => true, () => false)
    if (!kubectl) ctx.skip()
    const { stdout } = await run('kubectl', ['kustomize', K8S], { maxBuffer: 16 * 1024 * 1024 })
    const rendered = parseAllDocuments(stdout) as ReturnType<typeof parseAllDocuments> & unknown[]
    const objs = (rendered as { toJS(): Obj }[]).map((d) => d.toJS())
    for (const o of objs) if (o.kind !== 'Namespace' && o.kind !== 'ClusterRole' && o.kind !== 'ClusterRoleBinding' && o.kind !== 'Role' && o.kind !== 'RoleBinding') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('pullback')
    // the actuator's Roles stay in the namespaces it manages (k8s/pullback.yaml actuator.namespaces)
    const roleNs = objs.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding').map((o) => o.metadata.namespace as string)
    expect(new Set(roleNs)).toEqual(new Set(config.actuator.namespaces))
    // the generated (hashed) config name is substituted into both workloads
    const cm = objs.find((o) => o.kind === 'ConfigMap' && String(o.metadata.name).startsWith('pullback-config-'))
    expect(cm).toBeDefined()
    expect(cm!.data['pullback.yaml']).toBe(configText)
    for (const kind of ['DaemonSet', 'Deployment']) {
      const w = objs.find((o) => o.kind === kind)!
      expect(w.spec.template.spec.volumes.find((v: Obj) => v.name === 'config').configMap.name).toBe(cm!.metadata.name)
      expect(container(w).image).toBe('ghcr.io/pullback/pullback:0.1.0')
    }
  })
})

describe('k8s/pullback.yaml against the schema and the manifests', () => {
  it('is a valid pullback config with Kafka brokers and a threshold contract', () => {
    expect(config.kafka.brokers.length).toBeGreaterThan(0)
    expect(configRaw.engine.defaults).toBeDefined()
    expect(config.receivers.kafkaSpans.enabled).toBe(true)
    expect(config.runtime.telemetry.endpoint).toMatch(/^http/)
  })

  it('is mounted where the container args read it', () => {
    for (const w of workloads) {
      const c = container(w)
      const cfgPath = c.args[c.args.indexOf('--config') + 1] as string
      const mount = c.volumeMounts.find((m: Obj) => cfgPath.startsWith(`${m.mountPath}/`))
      expect(mount, `${w.metadata.name}: no mount for ${cfgPath}`).toBeDefined()
      const vol = w.spec.template.spec.volumes.find((v: Obj) => v.name === mount.name)
      expect(vol.configMap.name).toBe('pullback-config')
      expect(cfgPath.slice(mount.mountPath.length + 1)).toBe('pullback.yaml')
    }
    expect(container(sidecar).args[0]).toBe('sidecar')
    expect(container(decider).args[0]).toBe('decider')
    expect(container(actuator).args[0]).toBe('actuator')
  })

  const secretFor = (w: Obj, file: string): string | undefined => {
    const mount = container(w).volumeMounts.find((m: Obj) => file.startsWith(`${m.mountPath}/`))
    if (mount === undefined) return undefined
    // the runtime user reads secret files through fsGroup
    expect(w.spec.template.spec.securityContext.fsGroup).toBe(10001)
    return w.spec.template.spec.volumes.find((v: Obj) => v.name === mount.name)?.secret?.secretName
  }

  it('runs the sidecars as ingest nodes and the deciders as their own Deployment', () => {
    expect(config.decider.distributed).toBe(true)
    expect(config.decider.enabled).toBe(false)
    expect(decider.spec.replicas).toBeGreaterThanOrEqual(2)
    expect(decider.spec.replicas).toBeLessThanOrEqual(config.decider.partitions)
  })

  it('mounts the signing key into the deciders only (they sign decisions), and the public keys into the actuator', () => {
    expect(secretFor(decider, config.publish.signingKey!)).toBe('pullback-signing-key')
    expect(secretFor(sidecar, config.publish.signingKey!)).toBeUndefined()
    expect(secretFor(actuator, config.publish.signingKey!)).toBeUndefined()
    expect(config.actuator.verifyKeys.length).toBeGreaterThan(0)
    expect(config.actuator.artifactKeys.length).toBeGreaterThan(0)
    for (const f of [...config.actuator.verifyKeys, ...config.actuator.artifactKeys]) {
      expect(f).toMatch(/\.pub$/)
      expect(secretFor(actuator, f), f).toBe('pullback-verify-keys')
    }
  })

  it('requires signed deployment events, with the keys mounted wherever events are read; the actuator seals its state', () => {
    expect(config.receivers.deployments.requireSigned).toBe(true)
    expect(config.receivers.deployments.verifyKeys.length).toBeGreaterThanOrEqual(2)
    for (const f of config.receivers.deployments.verifyKeys) {
      expect(f).toMatch(/\.pub$/)
      for (const w of [sidecar, decider]) expect(secretFor(w, f), `${w.metadata.name}: ${f}`).toBe('pullback-verify-keys')
    }
    expect(secretFor(actuator, config.actuator.stateKey!)).toBe('pullback-actuator-state-key')
    for (const w of [sidecar, decider]) expect(secretFor(w, config.actuator.stateKey!), w.metadata.name).toBeUndefined()
  })

  it('opens container ports for the receivers and the admin endpoint, and the Service targets them', () => {
    const c = container(sidecar)
    const ports = new Map<string, number>(c.ports.map((p: Obj) => [p.name, p.containerPort]))
    expect(ports.get('otlp-grpc')).toBe(port(config.receivers.otlp.grpc.endpoint))
    expect(ports.get('otlp-http')).toBe(port(config.receivers.otlp.http.endpoint))
    expect(ports.get('admin')).toBe(adminPort)
    expect(container(actuator).ports.find((p: Obj) => p.name === 'admin').containerPort).toBe(adminPort)

    const svc = one('Service', 'pullback-otlp')
    expect(svc.spec.internalTrafficPolicy).toBe('Local')
    for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) expect(sidecar.spec.template.metadata.labels[k]).toBe(v)
    for (const p of svc.spec.ports as Obj[]) {
      expect(ports.has(p.targetPort), `Service port ${p.name} -> ${p.targetPort}`).toBe(true)
      expect(p.port).toBe(ports.get(p.targetPort))
    }
    // no hostPort: the Service is the node-local path (see sidecar-service.yaml)
    for (const p of c.ports as Obj[]) expect(p.hostPort).toBeUndefined()
  })

  it('points the probes at /livez and /readyz on the admin port, with timeouts above the check timeout', () => {
    for (const w of workloads) {
      const c = container(w)
      const adminName = c.ports.find((p: Obj) => p.containerPort === adminPort).name
      expect(c.livenessProbe.httpGet).toEqual({ path: '/livez', port: adminName })
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: adminName })
      if (c.startupProbe) expect(c.startupProbe.httpGet.port).toBe(adminName)
      expect(c.readinessProbe.timeoutSeconds * 1000).toBeGreaterThan(config.runtime.admin.readinessCheckTimeout)
      expect(c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold * 1000).toBeGreaterThanOrEqual(config.runtime.admin.livenessMaxDelay)
    }
  })

  it('gives SIGTERM enough time: preStop + shutdownTimeout within terminationGracePeriodSeconds', () => {
    for (const w of workloads) {
      const pre = container(w).lifecycle?.preStop?.exec?.command as string[] | undefined
      const preStopS = pre && pre[0] === 'sleep' ? Number(pre[1]) : 0
      expect(w.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStopS + config.runtime.shutdownTimeout / 1000 + 2)
    }
  })

  it('has requests and limits, runs non-root on a read-only root filesystem with /tmp writable', () => {
    for (const w of workloads) {
      const spec = w.spec.template.spec
      const c = container(w)
      for (const r of ['cpu', 'memory']) {
        expect(c.resources.requests[r], `${w.metadata.name} requests.${r}`).toBeDefined()
        expect(c.resources.limits[r], `${w.metadata.name} limits.${r}`).toBeDefined()
      }
      expect(spec.securityContext.runAsNonRoot).toBe(true)
      expect(spec.securityContext.runAsUser).toBe(10001)
      expect(c.securityContext.readOnlyRootFilesystem).toBe(true)
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false)
      expect(c.securityContext.capabilities.drop).toEqual(['ALL'])
      const tmp = c.volumeMounts.find((m: Obj) => m.mountPath === '/tmp')
      expect(spec.volumes.find((v: Obj) => v.name === tmp.name).emptyDir).toBeDefined()
      for (const m of c.volumeMounts as Obj[]) if (m.mountPath !== '/tmp') expect(m.readOnly, m.mountPath).toBe(true)
    }
    expect(actuator.spec.replicas).toBe(1)
  })

  it("keeps the image's environment where a workload sets its own: an env var replaces the image's, it never adds to it", () => {
    // Dockerfile ENV lines: NAME=value (one per line, `\` continued)
    const dockerfile = readFileSync(join(K8S, '..', 'Dockerfile'), 'utf8')
    const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
    const imageEnv = new Map([...runtimeStage.matchAll(/^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$/gm)].map((m) => [m[1]!, m[2]!]))
    expect(imageEnv.get('NODE_OPTIONS'), 'the image sets NODE_OPTIONS').toBeDefined()
    for (const w of workloads) {
      for (const e of (container(w).env ?? []) as Obj[]) {
        const image = imageEnv.get(e.name as string)
        if (image === undefined || typeof e.value !== 'string') continue
        // every flag or value the image sets is still there (the workload may add its own)
        for (const part of image.split(/\s+/)) expect(e.value.split(/\s+/), `${w.metadata.name} env ${e.name as string}`).toContain(part)
      }
    }
  })
})

describe('k8s/ identities and RBAC', () => {
  it('uses existing ServiceAccounts; the deciders get no token, the sidecar one for its pod watch (identity)', () => {
    for (const w of workloads) one('ServiceAccount', w.spec.template.spec.serviceAccountName)
    for (const w of [sidecar, decider]) expect(one('ServiceAccount', w.spec.template.spec.serviceAccountName).automountServiceAccountToken).toBe(false)
    expect(decider.spec.template.spec.automountServiceAccountToken).toBe(false)
    // test/k8s/sidecar-identity.test.ts: what that token may do
    expect(sidecar.spec.template.spec.automountServiceAccountToken).toBe(config.identity.mode !== 'off')
  })

  it('binds only the actuator, to exactly the verbs it uses', () => {
    // the sidecar's own binding (pods list/watch) is checked in test/k8s/sidecar-identity.test.ts
    const bindings = [...byKind('RoleBinding'), ...byKind('ClusterRoleBinding')].filter((b) => b.roleRef.name !== 'pullback-sidecar')
    expect(bindings.length).toBeGreaterThan(0)
    for (const b of bindings) {
      // a Role is looked up in the binding's own namespace (one pullback-actuator Role per managed namespace)
      const role = resources.filter((r) => r.kind === b.roleRef.kind && r.metadata?.name === b.roleRef.name && (b.roleRef.kind !== 'Role' || r.metadata.namespace === b.metadata.namespace))
      expect(role, `${b.kind} ${b.metadata.namespace}/${b.metadata.name}`).toHaveLength(1)
      for (const s of b.subjects as Obj[]) {
        expect(s.kind).toBe('ServiceAccount')
        one('ServiceAccount', s.name)
        expect(s.namespace).toBe(PB_NS)
        expect(s.name).toBe(actuator.spec.template.spec.serviceAccountName)
      }
    }
    // per managed namespace, the kubernetes driver's requests and nothing else (each one proven used and
    // allowed in test/k8s/rbac.test.ts against the driver's recorded requests)
    for (const ns of config.actuator.namespaces) {
      const role = resources.find((r) => r.kind === 'Role' && r.metadata.name === 'pullback-actuator' && r.metadata.namespace === ns)!
      const rules = (role.rules as Obj[]).flatMap((r) =>
        (r.apiGroups as string[]).flatMap((g) => (r.resources as string[]).map((res) => `${g}/${res}: ${[...(r.verbs as string[])].sort().join(',')}`)),
      )
      expect(rules.sort(), ns).toEqual(['apps/deployments: get,patch', 'apps/replicasets: list'])
    }
    expect(resources.some((r) => r.kind === 'ClusterRole' && r.metadata.name === 'pullback-actuator')).toBe(false)
  })

  it('has a PodDisruptionBudget for the actuator and one for the deciders that never blocks a drain', () => {
    const pdb = byKind('PodDisruptionBudget')
    expect(pdb).toHaveLength(2)
    const selects = (p: Obj, w: Obj) => Object.entries(p.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => w.spec.template.metadata.labels[k] === v)
    for (const w of [actuator, decider]) {
      const p = pdb.filter((x) => selects(x, w))
      expect(p, w.metadata.name).toHaveLength(1)
      const allowed = p[0]!.spec.maxUnavailable ?? w.spec.replicas - p[0]!.spec.minAvailable
      expect(allowed, w.metadata.name).toBeGreaterThanOrEqual(1)
    }
  })

  it('has NetworkPolicies whose ports and selectors match the workloads', () => {
    const nps = byKind('NetworkPolicy')
    for (const w of workloads) {
      const labels = w.spec.template.metadata.labels as Record<string, string>
      const np = nps.find((n) => Object.entries(n.spec.podSelector.matchLabels as Record<string, string>).every(([k, v]) => labels[k] === v))
      expect(np, w.metadata.name).toBeDefined()
      expect(np!.spec.policyTypes).toEqual(['Ingress', 'Egress'])
      const containerPorts = new Set((container(w).ports as Obj[]).map((p) => p.containerPort))
      const ingressPorts = (np!.spec.ingress as Obj[]).flatMap((r) => (r.ports as Obj[]).map((p) => p.port))
      expect(new Set(ingressPorts)).toEqual(containerPorts)
      const egressPorts = new Set((np!.spec.egress as Obj[]).flatMap((r) => (r.ports as Obj[]).map((p) => p.port)))
      for (const b of config.kafka.brokers) expect(egressPorts.has(port(b)), `egress to broker ${b}`).toBe(true)
      expect(egressPorts.has(Number(new URL(config.runtime.telemetry.endpoint!).port)), 'egress to the OTLP metrics endpoint').toBe(true)
      expect(egressPorts.has(53)).toBe(true)
    }
  })
})

// ---------------------------------------------------------------------------------------------

const dashboard = JSON.parse(readFileSync(join(K8S, 'grafana-dashboard.json'), 'utf8')) as Obj
const catalogue = METRICS as readonly MetricSpec[]
const seriesToSpec = new Map(catalogue.flatMap((m) => prometheusSeries(m).map((s) => [s, m] as const)))

/** every PromQL expression in the dashboard: panel targets, annotations, template variable queries */
function expressions(d: Obj): string[] {
  const out: string[] = []
  const panels = (d.panels as Obj[]).flatMap((p) => [p, ...((p.panels as Obj[] | undefined) ?? [])])
  for (const p of panels) for (const t of (p.targets as Obj[] | undefined) ?? []) out.push(t.expr)
  for (const a of d.annotations.list as Obj[]) if (a.expr) out.push(a.expr)
  for (const v of d.templating.list as Obj[]) if (v.type === 'query') out.push(typeof v.query === 'string' ? v.query : v.query.query)
  return out
}

/** metric names referenced by an expression, with the label names used in their selectors */
function references(expr: string): { metric: string; labels: string[] }[] {
  // Grafana's label_values(<selector>, <label>) variable query
  const lv = /^\s*label_values\(\s*(.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/s.exec(expr)
  if (lv) return [...references(lv[1]!), { metric: '', labels: [lv[2]!] }]
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  const out: { metric: string; labels: string[] }[] = []
  // a metric is an identifier not followed by "(" (a function) and not inside {...} or by/without (...)
  const masked = noStrings.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, (m) => ' '.repeat(m.length))
  const re = /[a-zA-Z_:][a-zA-Z0-9_:]*/g
  let depth = 0
  for (let i = 0; i < masked.length; i++) {
    const ch = masked[i]!
    if (ch === '{') depth++
    else if (ch === '}') depth--
    else if (depth === 0 && /[a-zA-Z_:]/.test(ch) && (i === 0 || !/[a-zA-Z0-9_:$.]/.test(masked[i - 1]!))) {
      re.lastIndex = i
      const word = re.exec(masked)![0]
      const after = masked.slice(i + word.length).trimStart()
      i += word.length - 1
      if (after.startsWith('(') || /^(sum|max|min|avg|count|rate|increase|by|without|and|or|unless|bool|offset)$/.test(word)) continue
      if (/^\d/.test(word)) continue
      const labels = after.startsWith('{') ? [...after.slice(1, after.indexOf('}')).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]!) : []
      out.push({ metric: word, labels })
    }
  }
  // label_values(metric, label) / grouping labels
  for (const m of noStrings.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) out.push({ metric: '', labels: [l] })
  return out
}

describe('k8s/grafana-dashboard.json', () => {
  const exprs = expressions(dashboard)

  it('has queries, each referencing at least one exported metric and nothing else', () => {
    expect(exprs.length).toBeGreaterThan(10)
    for (const e of exprs) {
      const metrics = references(e).filter((r) => r.metric !== '')
      expect(metrics.length, e).toBeGreaterThan(0)
      for (const r of metrics) expect(seriesToSpec.has(r.metric), `${r.metric} in ${e}`).toBe(true)
    }
  })

  it('selects and groups only by labels the metrics carry', () => {
    const standard = new Set(['le', 'job', 'instance'])
    for (const e of exprs) {
      const refs = references(e)
      const specs = refs.filter((r) => r.metric !== '').map((r) => seriesToSpec.get(r.metric)!)
      const allowed = new Set([...standard, ...specs.flatMap((s) => s.attributes.map(prometheusLabel))])
      for (const r of refs) for (const l of r.labels) expect(allowed.has(l), `label ${l} in ${e}`).toBe(true)
    }
  })

  it('shows every metric of the catalogue', () => {
    const used = new Set(exprs.flatMap((e) => references(e).map((r) => seriesToSpec.get(r.metric)?.name)))
    for (const m of catalogue) expect(used.has(m.name), m.name).toBe(true)
  })

  it('the reference extractor catches an unknown metric and an unknown label (the test can fail)', () => {
    expect(references('label_values(pullback_signal_state{service_namespace=~"$namespace"}, service_name)')).toEqual([
      { metric: 'pullback_signal_state', labels: ['service_namespace'] },
      { metric: '', labels: ['service_name'] },
    ])
    expect(references('sum by (reason) (rate(pullback_receiver_rejectd_total{pullback_receiver="x"}[5m]))')).toEqual([
      { metric: 'pullback_receiver_rejectd_total', labels: ['pullback_receiver'] },
      { metric: '', labels: ['reason'] },
    ])
    expect(seriesToSpec.has('pullback_receiver_rejectd_total')).toBe(false)
    expect(references('histogram_quantile(0.99, sum by (le) (rate(pullback_engine_evaluation_duration_seconds_bucket[$__rate_interval])))').map((r) => r.metric)).toEqual([
      'pullback_engine_evaluation_duration_seconds_bucket',
      '',
    ])
  })

  it('k8s/README.md documents every metric with its Prometheus name', () => {
    const readme = readFileSync(join(K8S, 'README.md'), 'utf8')
    for (const m of catalogue) {
      expect(readme, m.name).toContain(`\`${m.name}\``)
      expect(readme, m.name).toContain(prometheusSeries(m)[0]!.replace(/_bucket$/, ''))
    }
  })

  it('uses a datasource variable, not a fixed datasource uid', () => {
    const panels = (dashboard.panels as Obj[]).filter((p) => p.type !== 'row')
    for (const p of panels) expect(p.datasource.uid, p.title).toBe('${datasource}')
    expect(new Set((dashboard.panels as Obj[]).map((p) => p.id)).size).toBe((dashboard.panels as Obj[]).length)
  })
})
