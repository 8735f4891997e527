/**
 * A real Kubernetes API server (kube-apiserver + etcd, built from the Go module proxy by
 * tools/k8s-apiserver/build.sh) for the actuator tests, started on loopback by
 * tools/k8s-apiserver/start.sh and stopped by stop.sh. No controller-manager: the tests create the
 * ReplicaSets a Deployment controller would have made and write the Deployment's status themselves.
 *
 * Binaries: KUBE_APISERVER_BIN / ETCD_BIN, else ${PULLBACK_PEERS_DIR:-~/.cache/pullback-peers}/k8s-apiserver.env.
 * Under CI (CI=true) missing binaries fail the suite; elsewhere it is skipped with a visible note.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describeWhenAvailable, freePort } from '../support/external.js'
import { KubeClient, type KubeResponse } from '../../src/actuator/drivers/kube.js'

const TOOLS = path.resolve(import.meta.dirname, '../../tools/k8s-apiserver')
const BUILD_HINT = 'build them with `bash tools/k8s-apiserver/build.sh` (Go 1.26 and the Go module proxy; ~15-25 min cold on one core) or set KUBE_APISERVER_BIN/ETCD_BIN'

type Bin = 'KUBE_APISERVER_BIN' | 'ETCD_BIN'

function envFile(): Record<string, string> {
  const root = process.env.PULLBACK_PEERS_DIR ?? path.join(os.homedir(), '.cache', 'pullback-peers')
  let text: string
  try {
    text = readFileSync(path.join(root, 'k8s-apiserver.env'), 'utf8')
  } catch {
    return {}
  }
  return Object.fromEntries(text.split('\n').flatMap((l) => {
    const m = /^([A-Z_]+)=(.+)$/.exec(l.trim())
    return m ? [[m[1] as string, m[2] as string]] : []
  }))
}

function findBin(name: Bin): { found: true; path: string } | { found: false; reason: string } {
  const candidate = process.env[name] ?? envFile()[name]
  if (candidate === undefined || candidate === '') return { found: false, reason: `${name} is not set and no k8s-apiserver.env names it` }
  try {
    accessSync(candidate, constants.X_OK)
  } catch {
    return { found: false, reason: `${name}=${candidate} is not an executable file` }
  }
  return { found: true, path: candidate }
}

/** describe() for tests that need the real API server: fails under CI when the binaries are missing, skips loudly elsewhere. */
export function describeKubeApiserver(name: string, fn: () => void): void {
  const missing = (['KUBE_APISERVER_BIN', 'ETCD_BIN'] as const).map(findBin).flatMap((b) => (b.found ? [] : [b.reason]))
  describeWhenAvailable(name, { missing, hint: BUILD_HINT, check: 'has a real kube-apiserver and etcd', banner: 'REAL KUBE-APISERVER TESTS SKIPPED' }, fn)
}


export interface KubeApiserver {
  server: string
  caFile: string
  adminTokenFile: string
  /** the API server's state dir (logs: kube-apiserver.log, etcd.log; kept after stop, etcd's data is not) */
  dir: string
  /** a client with the admin's token (group system:masters) */
  admin: KubeClient
  /** writes `token` to a new file and returns its path (the drivers read their token from a file) */
  tokenFile(token: string): string
  stop(): void
}

/** Starts etcd + kube-apiserver on free loopback ports; throws with the logs' tails when they do not come up. */
export async function startKubeApiserver(): Promise<KubeApiserver> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-kube-apiserver-'))
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ETCD_PORT: String(await freePort()),
    ETCD_PEER_PORT: String(await freePort()),
    KUBE_APISERVER_PORT: String(await freePort()),
  }
  for (const b of ['KUBE_APISERVER_BIN', 'ETCD_BIN'] as const) {
    const f = findBin(b)
    if (f.found) env[b] = f.path
  }
  const state = path.join(dir, 'state')
  const r = spawnSync('bash', [path.join(TOOLS, 'start.sh'), state], { env, encoding: 'utf8', timeout: 300_000 })
  if (r.status !== 0) {
    spawnSync('bash', [path.join(TOOLS, 'stop.sh'), state])
    throw new Error(`tools/k8s-apiserver/start.sh failed (status ${r.status}, ${r.error?.message ?? 'no spawn error'}):\n${r.stderr}`)
  }
  const out = Object.fromEntries(r.stdout.split('\n').flatMap((l) => {
    const m = /^([A-Z_]+)=(.+)$/.exec(l.trim())
    return m ? [[m[1] as string, m[2] as string]] : []
  }))
  const server = out.KUBE_SERVER as string
  const caFile = out.KUBE_CA_FILE as string
  const adminTokenFile = out.KUBE_ADMIN_TOKEN_FILE as string
  const admin = new KubeClient({ server, caFile, tokenFile: adminTokenFile, requestTimeout: 30_000 })
  let n = 0
  return {
    server,
    caFile,
    adminTokenFile,
    dir: state,
    admin,
    tokenFile(token: string) {
      const f = path.join(dir, `token-${++n}`)
      writeFileSync(f, `${token}\n`, { mode: 0o600 })
      return f
    },
    stop() {
      admin.close()
      spawnSync('bash', [path.join(TOOLS, 'stop.sh'), state], { timeout: 60_000 })
      // the logs stay for a look after a failure; etcd's data (~60 MB) goes
      rmSync(path.join(state, 'etcd-data'), { recursive: true, force: true })
    },
  }
}

/** throws with the response when the status is not one of `ok` */
export function expectStatus(r: KubeResponse, what: string, ok: number[] = [200, 201]): KubeResponse {
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`)
  return r
}
