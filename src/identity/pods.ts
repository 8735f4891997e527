/**
 * The pod index: this node's pods (`fieldSelector=spec.nodeName=<node>`), kept current by list +
 * watch against the Kubernetes API, looked up by pod IP and by pod UID.
 *
 * Contract:
 * - `start()` opens the background loop and waits up to `syncTimeoutMs` for the first complete list;
 *   it never fails because the API is unreachable (the loop keeps trying). `synced()` says whether a
 *   list ever completed. A PermanentError (no API server configured) does fail start.
 * - The loop never throws: list, then watch from the list's resourceVersion; a watch the server ends
 *   (timeoutSeconds) is re-opened from the last seen resourceVersion (bookmarks included); 410 Gone
 *   (version expired, as an ERROR event or an HTTP status) relists (`resyncs`); any other failure
 *   backs off (min doubling to max, reset by a successful list) and relists (`failures`), logged once
 *   per distinct message. The index keeps its last content while disconnected.
 * - Bounded: at most `maxPods` pods; a new pod beyond that is not indexed and counted (`overflow`);
 *   its telemetry is then unassociated (see check.ts). A relist rebuilds the index from scratch.
 * - What is kept per pod: namespace, name, uid, IPs, hostNetwork, and only the configured label keys.
 * - IPs: pods that finished (phase Succeeded / Failed) hold no IP (the address may already belong to
 *   a new pod); a terminating pod keeps its IP until it is deleted (it still sends while it drains). Several live pods on one IP (hostNetwork pods share the node's
 *   address; a reused address during a race) make the IP ambiguous: `byIp` returns them all.
 * - `shutdown()` is idempotent, aborts the request in flight and waits for the loop to end.
 */
import { errorMessage, PermanentError } from '../common/errors.js'
import type { Component } from '../common/lifecycle.js'
import type { Logger } from '../common/logger.js'
import { silentLogger } from '../common/logger.js'
import { sleep } from '../common/sleep.js'
import { KubeStatusError, type PodApi, type PodObject, type WatchEvent } from './kube-pods.js'

export interface PodInfo {
  readonly uid: string
  readonly namespace: string
  readonly name: string
  readonly ips: readonly string[]
  readonly hostNetwork: boolean
  /** only the label keys the checks read */
  readonly labels: Readonly<Record<string, string>>
}

export interface PodIndexStats {
  synced: boolean
  pods: number
  /** pods not indexed because maxPods were held */
  overflow: number
  /** complete lists */
  lists: number
  /** relists because the watch's resourceVersion expired (410 Gone) */
  resyncs: number
  /** list/watch failures (each followed by a backoff and a relist) */
  failures: number
  /** watch events applied */
  events: number
}

export interface PodIndexOptions {
  api: PodApi
  maxPods: number
  /** label keys kept per pod */
  labelKeys: readonly string[]
  syncTimeoutMs: number
  watchTimeoutMs: number
  backoffMinMs: number
  backoffMaxMs: number
  logger?: Logger
}

function ipsOf(p: PodObject): string[] {
  const out: string[] = []
  for (const x of p.status?.podIPs ?? []) if (typeof x.ip === 'string' && x.ip !== '') out.push(normalizeIp(x.ip))
  const ip = p.status?.podIP
  if (typeof ip === 'string' && ip !== '' && !out.includes(normalizeIp(ip))) out.push(normalizeIp(ip))
  return out
}

/** IPv4-mapped IPv6 (`::ffff:10.1.2.3`, node's dual-stack sockets) compares as the IPv4 address */
export function normalizeIp(ip: string): string {
  const lower = ip.toLowerCase()
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower
}

export class PodIndex implements Component {
  readonly name = 'identity-pods'
  private byUid = new Map<string, PodInfo>()
  private ipIndex = new Map<string, Set<string>>()
  private readonly counters: Omit<PodIndexStats, 'synced' | 'pods'> = { overflow: 0, lists: 0, resyncs: 0, failures: 0, events: 0 }
  private isSynced = false
  private readonly abort = new AbortController()
  private loop: Promise<void> | undefined
  private stopping: Promise<void> | undefined
  private lastFailure = ''
  private readonly logger: Logger
  private firstSync: (() => void) | undefined

  constructor(private readonly o: PodIndexOptions) {
    this.logger = o.logger ?? silentLogger
  }

  synced(): boolean {
    return this.isSynced
  }

  /** the pods holding this IP (none, one, or several: ambiguous) */
  byIp(ip: string): PodInfo[] {
    const uids = this.ipIndex.get(normalizeIp(ip))
    if (uids === undefined) return []
    const out: PodInfo[] = []
    for (const u of uids) {
      const p = this.byUid.get(u)
      if (p !== undefined) out.push(p)
    }
    return out
  }

  byUidOf(uid: string): PodInfo | undefined {
    return this.byUid.get(uid)
  }

  stats(): PodIndexStats {
    return { synced: this.isSynced, pods: this.byUid.size, ...this.counters }
  }

  async start(): Promise<void> {
    if (this.loop !== undefined || this.stopping !== undefined) return
    const first = new Promise<void>((resolve) => (this.firstSync = resolve))
    this.loop = this.run()
    await Promise.race([first, sleep(this.o.syncTimeoutMs, this.abort.signal)])
    if (!this.isSynced) this.logger.warn({ waitedMs: this.o.syncTimeoutMs, lastFailure: this.lastFailure || undefined }, 'identity: pod index not synced yet; still trying in the background')
  }

  shutdown(): Promise<void> {
    if (this.stopping !== undefined) return this.stopping
    this.abort.abort()
    this.stopping = (async () => {
      await this.loop
      this.o.api.close()
    })()
    return this.stopping
  }

  /** The background loop; never throws (a programmer error is logged and backed off like any failure). */
  private async run(): Promise<void> {
    const signal = this.abort.signal
    let backoff = this.o.backoffMinMs
    while (!signal.aborted) {
      try {
        let rv = await this.relist(signal)
        backoff = this.o.backoffMinMs
        if (this.lastFailure !== '') this.logger.info({ pods: this.byUid.size }, 'identity: pod index recovered')
        this.lastFailure = ''
        // watch until the version expires (relist) or something fails (back off, relist)
        for (;;) {
          if (signal.aborted) return
          let latest = rv
          const opened = performance.now()
          await this.o.api.watch(rv, Math.max(1, Math.round(this.o.watchTimeoutMs / 1000)), signal, (e) => {
            const v = this.apply(e)
            if (v !== undefined) latest = v
          })
          rv = latest
          // a server that ends watches at once must not turn this into a busy loop
          if (performance.now() - opened < this.o.backoffMinMs) await sleep(this.o.backoffMinMs, signal)
        }
      } catch (err) {
        if (signal.aborted) return
        if (err instanceof KubeStatusError && err.status === 410) {
          this.counters.resyncs++
          continue
        }
        if (err instanceof PermanentError) {
          this.logger.error({ err: errorMessage(err) }, 'identity: pod index stopped')
          return
        }
        this.counters.failures++
        const message = errorMessage(err)
        if (message !== this.lastFailure) this.logger.warn({ err: message, retryInMs: backoff }, 'identity: pod list/watch failed; keeping the last index')
        this.lastFailure = message
        await sleep(backoff, signal)
        backoff = Math.min(this.o.backoffMaxMs, backoff * 2)
      }
    }
  }

  /** A complete list (all pages) replaces the index; returns its resourceVersion. */
  private async relist(signal: AbortSignal): Promise<string> {
    const byUid = new Map<string, PodInfo>()
    const ipIndex = new Map<string, Set<string>>()
    let cont: string | undefined
    let rv = ''
    let overflowed = 0
    do {
      const page = await this.o.api.list(cont, signal)
      for (const p of page.items) if (!this.put(byUid, ipIndex, p)) overflowed++
      cont = page.continue
      rv = page.resourceVersion
    } while (cont !== undefined)
    this.byUid = byUid
    this.ipIndex = ipIndex
    this.counters.lists++
    if (overflowed > 0) {
      this.counters.overflow += overflowed
      this.logger.warn({ maxPods: this.o.maxPods, notIndexed: overflowed }, 'identity: more pods than identity.maxPods; the rest are not indexed')
    }
    if (!this.isSynced) this.logger.info({ pods: byUid.size }, 'identity: pod index synced')
    this.isSynced = true
    this.firstSync?.()
    this.firstSync = undefined
    return rv
  }

  /** Applies one watch event; returns the resourceVersion it carries. */
  private apply(e: WatchEvent): string | undefined {
    this.counters.events++
    if (e.type === 'BOOKMARK') return e.resourceVersion
    const uid = e.object.metadata?.uid
    if (uid !== undefined) {
      if (e.type === 'DELETED') this.remove(this.byUid, this.ipIndex, uid)
      else if (!this.put(this.byUid, this.ipIndex, e.object)) this.counters.overflow++
    }
    return e.object.metadata?.resourceVersion
  }

  /** Inserts or replaces a pod; false when it is new and the index is full. */
  private put(byUid: Map<string, PodInfo>, ipIndex: Map<string, Set<string>>, p: PodObject): boolean {
    const m = p.metadata
    if (m?.uid === undefined || m.name === undefined || m.namespace === undefined) return true
    const existing = byUid.get(m.uid)
    if (existing === undefined && byUid.size >= this.o.maxPods) return false
    if (existing !== undefined) this.remove(byUid, ipIndex, m.uid)
    const finished = p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed'
    const labels: Record<string, string> = {}
    for (const k of this.o.labelKeys) {
      const v = m.labels?.[k]
      if (typeof v === 'string') labels[k] = v
    }
    const info: PodInfo = { uid: m.uid, namespace: m.namespace, name: m.name, ips: finished ? [] : ipsOf(p), hostNetwork: p.spec?.hostNetwork === true, labels }
    byUid.set(m.uid, info)
    for (const ip of info.ips) {
      let set = ipIndex.get(ip)
      if (set === undefined) ipIndex.set(ip, (set = new Set()))
      set.add(m.uid)
    }
    return true
  }

  private remove(byUid: Map<string, PodInfo>, ipIndex: Map<string, Set<string>>, uid: string): void {
    const old = byUid.get(uid)
    if (old === undefined) return
    byUid.delete(uid)
    for (const ip of old.ips) {
      const set = ipIndex.get(ip)
      set?.delete(uid)
      if (set !== undefined && set.size === 0) ipIndex.delete(ip)
    }
  }
}
