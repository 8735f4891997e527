/**
 * The `pullback.deployments` record schema (JSON, one event per record):
 *
 *   { "service": "checkout",            required, non-empty
 *     "namespace": "shop",              optional, default "" (same key as telemetry: k8s.namespace.name / service.namespace)
 *     "version": "1.4.2",               required, non-empty (matches service.version in telemetry)
 *     "artifact": "registry/checkout@sha256:...",   optional
 *     "time": "2026-11-26T05:00:00Z",   required: RFC 3339 string with offset, or unix milliseconds
 *     "source": "argocd",               optional, default "kafka"
 *     "kind": "deploy",                 optional: "deploy" (default) | "rollback"
 *     "previousVersion": "1.4.1",       optional
 *     "decisionId": "..." }             optional (rollback announcements)
 *
 * Unknown fields are ignored (announcers such as Argo CD notification templates may add their own).
 * A signed event adds "keyId" and "signature" (./auth.ts); with an EventAuth, an event whose
 * signature does not verify is invalid (`signature`), and so is an unsigned one when signatures are
 * required (`unsigned`).
 */
import { z } from 'zod'
import type { DeploymentEvent } from '../../engine/events.js'
import { checkEvent, type EventAuth } from './auth.js'

const nonEmpty = z.string().trim().min(1)

const timeField = z.union([z.string(), z.number()]).transform((v, ctx) => {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 8.64e15) return v
  if (typeof v === 'string' && z.iso.datetime({ offset: true }).safeParse(v).success) return Date.parse(v)
  ctx.addIssue({ code: 'custom', message: `expected an RFC 3339 timestamp with offset or unix milliseconds, got ${JSON.stringify(v)}` })
  return z.NEVER
})

export const deploymentEventSchema = z.object({
  service: nonEmpty,
  namespace: z.string().trim().default(''),
  version: nonEmpty,
  artifact: nonEmpty.optional(),
  time: timeField,
  source: nonEmpty.default('kafka'),
  kind: z.enum(['deploy', 'rollback']).default('deploy'),
  previousVersion: nonEmpty.optional(),
  decisionId: nonEmpty.optional(),
})

export type InvalidReason = 'empty' | 'json' | 'schema' | 'unsigned' | 'signature'

export type ParsedDeployment = { kind: 'event'; event: DeploymentEvent } | { kind: 'invalid'; reason: InvalidReason; message: string }

export type OpenedDeployment = { kind: 'event'; event: DeploymentEvent; signature: 'valid' | 'none' } | { kind: 'invalid'; reason: InvalidReason; message: string }

/** Validates one record value. Never throws. */
export function parseDeploymentEvent(value: Buffer | string | null): ParsedDeployment {
  const o = openDeploymentEvent(value, undefined)
  return o.kind === 'event' ? { kind: 'event', event: o.event } : o
}

/** Validates one record value and, given `auth`, its signature. Never throws. */
export function openDeploymentEvent(value: Buffer | string | null, auth: EventAuth | undefined): OpenedDeployment {
  if (value === null || value.length === 0) return { kind: 'invalid', reason: 'empty', message: 'empty record value' }
  let raw: unknown
  try {
    raw = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'))
  } catch (err) {
    return { kind: 'invalid', reason: 'json', message: `not JSON: ${(err as Error).message}` }
  }
  let signature: 'valid' | 'none' = 'none'
  if (auth !== undefined && typeof raw === 'object' && raw !== null) {
    const c = checkEvent(raw, auth)
    if (c.kind === 'invalid') return { kind: 'invalid', reason: 'signature', message: `signature does not verify: ${c.reason}` }
    if (c.kind === 'unsigned' && auth.requireSigned) return { kind: 'invalid', reason: 'unsigned', message: 'unsigned event (receivers.deployments.requireSigned)' }
    if (c.kind === 'signed') signature = 'valid'
  }
  const r = deploymentEventSchema.safeParse(raw)
  if (!r.success) {
    const message = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    return { kind: 'invalid', reason: 'schema', message }
  }
  const d = r.data
  const event: DeploymentEvent = { namespace: d.namespace, service: d.service, version: d.version, time: d.time, kind: d.kind, source: d.source }
  if (d.artifact !== undefined) event.artifact = d.artifact
  if (d.previousVersion !== undefined) event.previousVersion = d.previousVersion
  if (d.decisionId !== undefined) event.decisionId = d.decisionId
  return { kind: 'event', event, signature }
}
