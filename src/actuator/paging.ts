/**
 * Paging on-call: one webhook POST per configured target, retried with exponential backoff
 * (`pageRetry`), plus the escalation record on Kafka (`actuator.escalationsTopic`, key = service).
 *
 * Body formats:
 *   generic    {type:'pullback.escalation', dedupKey, summary, severity, service, source, details}
 *   slack      {text, blocks:[{type:'section', text:{type:'mrkdwn', text}}]}   (incoming webhook)
 *   pagerduty  {routing_key, event_action:'trigger', dedup_key, payload:{summary, source, severity, custom_details}}  (Events v2)
 * The dedup key is the decision id, so a retried page or a resumed decision does not open a second incident.
 * A 2xx answer is delivered; 429 and 5xx and network errors are retried; other 4xx are not.
 */
import type { Logger } from '../common/logger.js'
import { errorMessage } from '../common/errors.js'
import type { Producer } from '../kafka/types.js'
import type { PagingTarget } from './config.js'

export interface Page {
  dedupKey: string
  summary: string
  severity: 'critical' | 'error' | 'warning'
  service: string
  details: Record<string, unknown>
}

export type PageOutcome = { target: string; kind: 'delivered'; attempts: number } | { target: string; kind: 'failed'; attempts: number; reason: string }

export function pageBody(t: PagingTarget, p: Page): unknown {
  switch (t.type) {
    case 'generic':
      return { type: 'pullback.escalation', dedupKey: p.dedupKey, summary: p.summary, severity: p.severity, service: p.service, source: 'pullback-actuator', details: p.details }
    case 'slack': {
      const text = `:rotating_light: *pullback* ${p.summary}`
      const facts = Object.entries(p.details)
        .filter(([, v]) => typeof v === 'string' || typeof v === 'number')
        .map(([k, v]) => `*${k}*: ${String(v)}`)
        .join('\n')
      return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }, ...(facts ? [{ type: 'section', text: { type: 'mrkdwn', text: facts } }] : [])] }
    }
    case 'pagerduty':
      return {
        routing_key: t.routingKey,
        event_action: 'trigger',
        dedup_key: p.dedupKey,
        payload: { summary: p.summary.slice(0, 1024), source: 'pullback-actuator', severity: p.severity, custom_details: { service: p.service, ...p.details } },
      }
  }
}

export interface PagerOptions {
  targets: readonly PagingTarget[]
  retry: { attempts: number; initial: number; max: number }
  producer: Producer
  escalationsTopic: string
  logger: Logger
  requestTimeoutMs?: number
}

export class Pager {
  readonly counters = { pages: 0, delivered: 0, failed: 0 }
  constructor(private readonly o: PagerOptions) {}

  private readonly inFlight = new Set<Promise<PageOutcome[]>>()

  /**
   * Writes the escalation record (awaited: durable, throws if Kafka refuses), then starts paging
   * every target in the background (never rejects); `drain()` waits for pages in flight.
   */
  async escalate(p: Page): Promise<{ pages: Promise<PageOutcome[]> }> {
    await this.o.producer.send(this.o.escalationsTopic, [
      { key: p.service, value: JSON.stringify({ schemaVersion: 1, decisionId: p.dedupKey, service: p.service, summary: p.summary, severity: p.severity, details: p.details, at: Date.now() }) },
    ])
    const pages = this.page(p)
    this.inFlight.add(pages)
    void pages.finally(() => this.inFlight.delete(pages))
    return { pages }
  }

  /**
   * Pages every target in the background (never rejects) without an escalation record: a follow-up
   * a human must do after a rollback that succeeded (GitOps: Git still points at the bad version).
   * `drain()` waits for it too.
   */
  notify(p: Page): void {
    const pages = this.page(p)
    this.inFlight.add(pages)
    void pages.finally(() => this.inFlight.delete(pages))
  }

  async drain(): Promise<void> {
    await Promise.all([...this.inFlight])
  }

  async page(p: Page): Promise<PageOutcome[]> {
    this.counters.pages++
    const out = await Promise.all(this.o.targets.map((t) => this.send(t, p)))
    for (const r of out) {
      if (r.kind === 'delivered') this.counters.delivered++
      else {
        this.counters.failed++
        this.o.logger.error({ target: r.target, reason: r.reason, dedupKey: p.dedupKey }, 'page could not be delivered')
      }
    }
    return out
  }

  private async send(t: PagingTarget, p: Page): Promise<PageOutcome> {
    const body = JSON.stringify(pageBody(t, p))
    let reason = ''
    for (let attempt = 1; attempt <= this.o.retry.attempts; attempt++) {
      try {
        const res = await fetch(t.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(this.o.requestTimeoutMs ?? 10_000),
        })
        await res.arrayBuffer()
        if (res.ok) return { target: `${t.type} ${t.url}`, kind: 'delivered', attempts: attempt }
        reason = `HTTP ${res.status}`
        if (res.status < 500 && res.status !== 429) return { target: `${t.type} ${t.url}`, kind: 'failed', attempts: attempt, reason }
      } catch (err) {
        reason = errorMessage(err)
      }
      if (attempt < this.o.retry.attempts) await new Promise((r) => setTimeout(r, Math.min(this.o.retry.max, this.o.retry.initial * 2 ** (attempt - 1))))
    }
    return { target: `${t.type} ${t.url}`, kind: 'failed', attempts: this.o.retry.attempts, reason }
  }
}
