/**
 * k8s/ for the sidecar's identity stage (issue 13 item 4): enforce is on, the node name reaches the
 * pod watch through the downward API, the token the DaemonSet mounts can list and watch pods and do
 * nothing else, and the sidecar's NetworkPolicy lets it reach the API server.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'

const K8S = join(import.meta.dirname, '..', '..', 'k8s')
type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const load = (file: string): Obj[] =>
  parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter((o) => o !== null)
const kustomization = load('kustomization.yaml')[0]!
const resources = (kustomization.resources as string[]).flatMap(load)
const find = (kind: string, name: string) => resources.find((r) => r.kind === kind && r.metadata?.name === name)
const config = parseConfig(load('pullback.yaml')[0], 'k8s/pullback.yaml')
const sidecar = find('DaemonSet', 'pullback-sidecar')!
const sa = sidecar.spec.template.spec.serviceAccountName as string

describe('k8s/: the sidecar identity stage', () => {
  it('enforces identity, watching the pods of NODE_NAME (downward API)', () => {
    expect(config.identity.mode).toBe('enforce')
    expect(config.identity.nodeName).toBeUndefined()
    const env = sidecar.spec.template.spec.containers[0].env as Obj[]
    expect(env.find((e) => e.name === 'NODE_NAME')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } })
    expect(sidecar.spec.template.spec.automountServiceAccountToken).toBe(true)
  })

  it("the sidecar's account may list and watch pods, and nothing else", () => {
    const bindings = [...resources.filter((r) => r.kind === 'ClusterRoleBinding' || r.kind === 'RoleBinding')].filter((b) => (b.subjects as Obj[]).some((s) => s.name === sa))
    expect(bindings.map((b) => `${b.kind}/${b.metadata.name} -> ${b.roleRef.kind}/${b.roleRef.name}`)).toEqual(['ClusterRoleBinding/pullback-sidecar -> ClusterRole/pullback-sidecar'])
    expect(bindings[0]!.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'pullback' }])
    expect(find('ClusterRole', 'pullback-sidecar')!.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }])
  })

  it("the sidecar's NetworkPolicy allows the API server ports", () => {
    const np = find('NetworkPolicy', 'pullback-sidecar')!
    const ports = new Set((np.spec.egress as Obj[]).filter((r) => (r.to as Obj[] | undefined)?.some((t) => t.ipBlock !== undefined)).flatMap((r) => (r.ports as Obj[]).map((p) => p.port)))
    expect(ports).toEqual(new Set([443, 6443]))
  })
})
