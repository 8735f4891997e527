/**
 * The `argocd` driver: when Argo CD deploys the service, Argo CD puts the verified artifact back.
 * Patching the Deployment directly loses against automated sync with self-heal (the bad version is
 * re-applied from Git within seconds), and Argo CD refuses a rollback while automated sync is on.
 *
 * Through the Argo CD API server's REST API (the gRPC gateway; bearer token from `tokenFile`):
 *   1. GET  /api/v1/applications/{app}                 the Application (name configured, or found by
 *      GET  /api/v1/applications                        the workload among status.resources)
 *   2. PATCH /api/v1/applications/{app}                 ApplicationPatchRequest {name, patchType: "merge",
 *      patch: "<JSON merge patch>"}: spec.syncPolicy.automated -> null (automated sync off), the previous
 *      policy kept in the annotation pullback.dev/previous-sync-policy on the Application itself (a
 *      resumed decision, or an operator, finds it there)
 *   3. GET  /api/v1/applications/{app}/manifests?revision=R  (multi-source: revisions=R1&sourcePositions=1...)
 *      for status.history entries, newest first: the entry whose manifests give the workload the
 *      verified image (history entries name Git revisions, not images)
 *   4. POST /api/v1/applications/{app}/rollback         ApplicationRollbackRequest {name, id, prune}
 *   5. readiness: GET the Application until status.operationState.phase is Succeeded for that
 *      revision, the workload's health (status.resources[]) is Healthy, and the live workload
 *      (GET /api/v1/applications/{app}/resource?...&kind=Deployment, field `manifest`) runs the image.
 * [sources: Argo CD assets/swagger.json (ApplicationService Get, List, Patch, GetManifests, Rollback,
 * GetResource); server/application/application.go Rollback: FailedPrecondition "rollback cannot be
 * initiated when auto-sync is enabled", and a rollback is a sync to the history entry's revision].
 * Errors come as the gRPC gateway's {error, code, message}; `message` is what a failure reports.
 *
 * status.sync.status is not a gate: after a rollback the Application is OutOfSync by design, since
 * Git still points at the bad version. That is the audit note and what on-call must fix (revert in
 * Git, then re-enable automated sync, whose previous policy is in the annotation). Automated sync
 * is never re-enabled by pullback: it would deploy the bad version again.
 *
 * Argo CD RBAC for the token: applications get, update (the patch), sync (the rollback).
 * An Application managed by a parent Application with self-heal gets its syncPolicy back from the
 * parent: the parent needs ignoreDifferences on /spec/syncPolicy/automated (README, "Drivers").
 */
import type { DriverConfig } from '../config.js'
import { KubeClient, statusMessage } from './kube.js'
import { templateRuns } from './kubernetes.js'
import type { ApplyOutcome, CutoverRequest, Driver, ReadyOutcome } from './types.js'
import { sleep } from './types.js'

type ArgoCdConfig = Extract<DriverConfig, { type: 'argocd' }>

interface Automated {
  prune?: boolean
  selfHeal?: boolean
  allowEmpty?: boolean
  /** Argo CD 3.x: automated sync can be present and switched off */
  enabled?: boolean
}

interface HistoryEntry {
  id: number | string
  revision?: string
  revisions?: string[]
  deployedAt?: string
}

interface ManagedResource {
  group?: string
  kind: string
  namespace?: string
  name: string
  health?: { status?: string; message?: string }
}

interface Application {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> }
  spec: { destination?: { namespace?: string }; syncPolicy?: { automated?: Automated | null } }
  status?: {
    sync?: { status?: string }
    health?: { status?: string }
    history?: HistoryEntry[]
    resources?: ManagedResource[]
    operationState?: {
      phase?: string
      message?: string
      operation?: { sync?: { revision?: string; revisions?: string[] } }
      syncResult?: { revision?: string; revisions?: string[] }
    }
  }
}

interface Workload {
  kind?: string
  metadata?: { name?: string; namespace?: string }
  spec?: { template?: { spec?: { containers?: { name: string; image?: string }[] } } }
}

/** where the previous automated-sync policy is kept, on the Application */
export const PREVIOUS_POLICY_ANNOTATION = 'pullback.dev/previous-sync-policy'
/** history entries inspected at most (Argo CD keeps 10 by default, spec.revisionHistoryLimit) */
const MAX_HISTORY = 20
/** decisions whose chosen revision is remembered for the readiness gate; the oldest is forgotten beyond */
const MAX_REMEMBERED = 1024

const enc = encodeURIComponent
const automatedOn = (a: Automated | null | undefined): a is Automated => a !== undefined && a !== null && a.enabled !== false
const revisionsOf = (e: { revision?: string; revisions?: string[] }) => (e.revisions !== undefined && e.revisions.length > 0 ? e.revisions : e.revision !== undefined ? [e.revision] : [])

/** one look at the readiness gates; `final`: waiting longer cannot make them pass */
type Gate = { kind: 'ready'; detail: string } | { kind: 'not-ready'; reason: string; final: boolean }

interface Target {
  app: string
  appNamespace: string | undefined
  /** the rollback's revision(s); undefined when this incarnation did not choose it (readiness is then judged on the live workload alone) */
  revisions?: string[]
}

export class ArgoCdDriver implements Driver {
  readonly name = 'argocd'
  private readonly client: KubeClient
  private readonly chosen = new Map<string, Target>()
  /** remembered targets dropped at MAX_REMEMBERED */
  forgotten = 0

  constructor(
    private readonly cfg: ArgoCdConfig,
    client?: KubeClient,
  ) {
    this.client = client ?? new KubeClient({ server: cfg.server, tokenFile: cfg.tokenFile, ...(cfg.caFile !== undefined ? { caFile: cfg.caFile } : {}), requestTimeout: cfg.requestTimeout, tokenOverHttp: true })
  }

  private workload(req: CutoverRequest): { kind: string; group: string; version: string; name: string; namespace: string } {
    const r = this.cfg.resource
    return r.kind === 'Deployment'
      ? { kind: 'Deployment', group: 'apps', version: 'v1', name: r.name.replaceAll('{service}', req.service), namespace: r.namespace ?? req.namespace }
      : { kind: 'Rollout', group: 'argoproj.io', version: 'v1alpha1', name: r.name.replaceAll('{service}', req.service), namespace: r.namespace ?? req.namespace }
  }

  private appPath(t: Pick<Target, 'app'>, sub = ''): string {
    return `/api/v1/applications/${enc(t.app)}${sub}`
  }

  private query(t: Pick<Target, 'appNamespace'>, params: [string, string][] = []): string {
    const all = t.appNamespace !== undefined ? [...params, ['appNamespace', t.appNamespace] as [string, string]] : params
    return all.length === 0 ? '' : `?${all.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`
  }

  /** the Application: configured by name, or the one whose managed resources hold the workload */
  private async resolve(req: CutoverRequest): Promise<Target | string> {
    if (this.cfg.application !== undefined) return { app: this.cfg.application.replaceAll('{service}', req.service), appNamespace: this.cfg.appNamespace }
    const w = this.workload(req)
    const r = await this.client.request('GET', `/api/v1/applications${this.query({ appNamespace: this.cfg.appNamespace })}`)
    if (r.status !== 200) return `list Argo CD applications: ${statusMessage(r)}`
    const items = (r.body as { items?: Application[] | null } | undefined)?.items ?? []
    const owners = items.filter((a) => (a.status?.resources ?? []).some((m) => m.kind === w.kind && (m.group ?? '') === w.group && m.name === w.name && (m.namespace ?? a.spec.destination?.namespace) === w.namespace))
    if (owners.length === 0) return `no Argo CD Application manages ${w.kind} ${w.namespace}/${w.name} (set actuator.driver.application)`
    if (owners.length > 1) return `${owners.length} Argo CD Applications manage ${w.kind} ${w.namespace}/${w.name}: ${owners.map((a) => a.metadata.name).join(', ')} (set actuator.driver.application)`
    const a = owners[0]!
    return { app: a.metadata.name, appNamespace: this.cfg.appNamespace ?? a.metadata.namespace }
  }

  private async getApp(t: Target): Promise<Application | string> {
    const r = await this.client.request('GET', `${this.appPath(t)}${this.query(t)}`)
    return r.status === 200 ? (r.body as Application) : `GET Argo CD Application ${t.app}: ${statusMessage(r)}`
  }

  /** the live workload as Argo CD reads it from the cluster */
  private async live(t: Target, req: CutoverRequest): Promise<Workload | string> {
    const w = this.workload(req)
    const q = this.query(t, [
      ['namespace', w.namespace],
      ['resourceName', w.name],
      ['version', w.version],
      ['group', w.group],
      ['kind', w.kind],
    ])
    const r = await this.client.request('GET', `${this.appPath(t, '/resource')}${q}`)
    if (r.status !== 200) return `GET live ${w.kind} ${w.namespace}/${w.name} through Argo CD: ${statusMessage(r)}`
    return parseManifest((r.body as { manifest?: string } | undefined)?.manifest) ?? `live ${w.kind} ${w.namespace}/${w.name}: no manifest in the answer`
  }

  private remember(decisionId: string, t: Target): void {
    this.chosen.delete(decisionId)
    if (this.chosen.size >= MAX_REMEMBERED) {
      const oldest = this.chosen.keys().next().value
      if (oldest !== undefined) this.chosen.delete(oldest)
      this.forgotten++
    }
    this.chosen.set(decisionId, t)
  }

  async apply(req: CutoverRequest): Promise<ApplyOutcome> {
    const t = await this.resolve(req)
    if (typeof t === 'string') return { kind: 'failed', reason: t }
    let app = await this.getApp(t)
    if (typeof app === 'string') return { kind: 'failed', reason: app }
    const w = this.workload(req)

    // 1. automated sync off first: with it on, self-heal undoes any rollback and Argo CD refuses one
    const automated = app.spec.syncPolicy?.automated
    let paused: string
    if (automatedOn(automated)) {
      const patch = { metadata: { annotations: { [PREVIOUS_POLICY_ANNOTATION]: JSON.stringify(automated) } }, spec: { syncPolicy: { automated: null } } }
      const r = await this.client.request('PATCH', `${this.appPath(t)}${this.query(t)}`, {
        name: t.app,
        ...(t.appNamespace !== undefined ? { appNamespace: t.appNamespace } : {}),
        patchType: 'merge',
        patch: JSON.stringify(patch),
      })
      if (r.status !== 200) return { kind: 'failed', reason: `disable automated sync of Argo CD Application ${t.app}: ${statusMessage(r)}` }
      app = r.body as Application
      paused = `automated sync of Application ${t.app} disabled (was ${JSON.stringify(automated)}; kept in its annotation ${PREVIOUS_POLICY_ANNOTATION})`
    } else {
      const prev = app.metadata.annotations?.[PREVIOUS_POLICY_ANNOTATION]
      paused = prev !== undefined ? `automated sync of Application ${t.app} already disabled (previous policy ${prev})` : `Application ${t.app} has no automated sync`
    }
    const gitNote = `Git still points at the bad version ${req.failed.artifact}: revert it in Git, then re-enable automated sync`
    const followUp = `${req.namespace}/${req.service} was rolled back by Argo CD Application ${t.app}, but Git still points at the bad version ${req.failed.artifact} and automated sync is off: revert the change in Git, then re-enable automated sync (previous policy in annotation ${PREVIOUS_POLICY_ANNOTATION})`

    // 2. level-triggered: the workload already runs the target (a resumed decision) and no operation is under way
    const live = await this.live(t, req)
    if (typeof live === 'string') return { kind: 'failed', reason: `${paused}; ${live}` }
    if (templateRuns(live.spec?.template, req.target)) {
      // the readiness gate then judges the live workload, whatever operation put it there
      this.remember(req.decisionId, t)
      return { kind: 'already-applied', detail: `${w.kind} ${w.name} already runs ${req.target.artifact}; ${paused}; ${gitNote}`, followUp }
    }
    if (looksLikeImage(req.failed.artifact) && !templateRuns(live.spec?.template, { artifact: req.failed.artifact, version: req.failed.version })) {
      const now = (live.spec?.template?.spec?.containers ?? []).map((c) => c.image).join(',')
      return { kind: 'failed', reason: `stale decision: ${w.kind} ${w.name} runs ${now}, neither the failed ${req.failed.artifact} nor the target; ${paused}` }
    }

    // 3. the history entry whose manifests run the verified artifact
    const history = [...(app.status?.history ?? [])].sort((a, b) => Number(b.id) - Number(a.id))
    let entry: HistoryEntry | undefined
    let looked = 0
    for (const h of history.slice(0, MAX_HISTORY)) {
      const revs = revisionsOf(h)
      if (revs.length === 0) continue
      looked++
      const m = await this.manifestsRun(t, revs, w, req.target, app.spec.destination?.namespace)
      if (typeof m === 'string') return { kind: 'failed', reason: `${paused}; ${m}` }
      if (m) {
        entry = h
        break
      }
    }
    if (!entry) {
      const more = history.length > MAX_HISTORY ? ` (the newest ${MAX_HISTORY} of ${history.length} inspected)` : ''
      return { kind: 'failed', reason: `${paused}; no history entry of Application ${t.app} deploys ${req.target.artifact} in ${w.kind} ${w.name}: ${looked} entries inspected${more}` }
    }

    // 4. roll back: a sync to that entry's revision, Git untouched
    const revisions = revisionsOf(entry)
    const r = await this.client.request('POST', `${this.appPath(t, '/rollback')}`, {
      name: t.app,
      id: Number(entry.id),
      prune: this.cfg.prune,
      ...(t.appNamespace !== undefined ? { appNamespace: t.appNamespace } : {}),
    })
    if (r.status !== 200) return { kind: 'failed', reason: `${paused}; rollback of Application ${t.app} to history id ${entry.id}: ${statusMessage(r)}` }
    this.remember(req.decisionId, { ...t, revisions })
    return {
      kind: 'applied',
      detail: `Argo CD Application ${t.app} rolled back to history id ${entry.id} (revision ${revisions.join(',')}${entry.deployedAt ? `, deployed ${entry.deployedAt}` : ''}), which runs ${req.target.artifact}; ${paused}; ${gitNote}`,
      followUp,
    }
  }

  /** true when the manifests at these revisions give the workload the target image */
  private async manifestsRun(t: Target, revisions: string[], w: ReturnType<ArgoCdDriver['workload']>, target: CutoverRequest['target'], destNs: string | undefined): Promise<boolean | string> {
    const params: [string, string][] =
      revisions.length === 1 ? [['revision', revisions[0]!]] : revisions.flatMap((rev, i): [string, string][] => [['revisions', rev], ['sourcePositions', String(i + 1)]])
    const r = await this.client.request('GET', `${this.appPath(t, '/manifests')}${this.query(t, params)}`)
    if (r.status !== 200) return `manifests of Application ${t.app} at ${revisions.join(',')}: ${statusMessage(r)}`
    const manifests = (r.body as { manifests?: string[] | null } | undefined)?.manifests ?? []
    return manifests.some((text) => {
      const m = parseManifest(text)
      return m !== undefined && m.kind === w.kind && m.metadata?.name === w.name && (m.metadata.namespace ?? destNs ?? w.namespace) === w.namespace && templateRuns(m.spec?.template, target)
    })
  }

  async awaitReady(req: CutoverRequest, timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome> {
    const end = Date.now() + timeoutMs
    let last = 'no status yet'
    while (!signal.aborted) {
      try {
        const verdict = await this.readiness(req)
        if (verdict.kind === 'ready') return verdict
        if (verdict.final) return { kind: 'not-ready', reason: verdict.reason }
        last = verdict.reason
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() + this.cfg.pollInterval > end) break
      await sleep(this.cfg.pollInterval, signal)
    }
    return { kind: 'not-ready', reason: `readiness gates did not pass within ${timeoutMs} ms: ${last}` }
  }

  private async readiness(req: CutoverRequest): Promise<Gate> {
    let t = this.chosen.get(req.decisionId)
    if (t === undefined) {
      const r = await this.resolve(req)
      if (typeof r === 'string') return { kind: 'not-ready', reason: r, final: false }
      t = r
    }
    const app = await this.getApp(t)
    if (typeof app === 'string') return { kind: 'not-ready', reason: app, final: false }
    if (automatedOn(app.spec.syncPolicy?.automated)) return { kind: 'not-ready', reason: `automated sync of Application ${t.app} was re-enabled (a parent Application?): Argo CD will redeploy Git's bad version`, final: true }
    const op = app.status?.operationState
    const phase = op?.phase ?? 'none'
    if (phase === 'Failed' || phase === 'Error') return { kind: 'not-ready', reason: `Argo CD operation on ${t.app} ${phase}: ${op?.message ?? ''}`, final: true }
    if (phase !== 'Succeeded') return { kind: 'not-ready', reason: `Argo CD operation on ${t.app}: ${phase}`, final: false }
    const synced = op?.syncResult ? revisionsOf(op.syncResult) : op?.operation?.sync ? revisionsOf(op.operation.sync) : []
    if (t.revisions !== undefined && synced.join(',') !== t.revisions.join(',')) return { kind: 'not-ready', reason: `last operation synced ${synced.join(',') || '?'}, not the rollback's ${t.revisions.join(',')}`, final: false }
    const w = this.workload(req)
    const res = (app.status?.resources ?? []).find((m) => m.kind === w.kind && m.name === w.name && (m.namespace ?? app.spec.destination?.namespace) === w.namespace)
    const health = res?.health?.status ?? app.status?.health?.status ?? 'Unknown'
    if (health !== 'Healthy') return { kind: 'not-ready', reason: `${w.kind} ${w.name} health ${health}${res?.health?.message ? `: ${res.health.message}` : ''}`, final: false }
    const live = await this.live(t, req)
    if (typeof live === 'string') return { kind: 'not-ready', reason: live, final: false }
    if (!templateRuns(live.spec?.template, req.target)) return { kind: 'not-ready', reason: `${w.kind} ${w.name} no longer runs ${req.target.artifact}`, final: false }
    return {
      kind: 'ready',
      detail: `Argo CD Application ${t.app}: rollback operation Succeeded, ${w.kind} ${w.name} Healthy and running ${req.target.artifact}; sync status ${app.status?.sync?.status ?? '?'} (Git still points at the bad version)`,
    }
  }
}

function parseManifest(text: string | undefined): Workload | undefined {
  if (text === undefined || text === '') return undefined
  try {
    return JSON.parse(text) as Workload
  } catch {
    return undefined
  }
}

/** a version-only failed artifact (no deployment event carried the image) cannot be compared with images */
const looksLikeImage = (a: string) => a.includes('/') || a.includes('@') || a.includes(':')
