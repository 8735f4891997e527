import { hostname } from 'node:os'
import { z } from 'zod'

/**
 * Kafka transport. With no `brokers`, every topic below is carried by the in-process embedded bus
 * (the laptop/demo default); with brokers it is the real Kafka cluster. Topic names are the
 * defaults of the Kafka contract in the README.
 */
export const kafkaTopicsSchema = z
  .strictObject({
    spans: z.string().min(1).default('otlp_spans'),
    deployments: z.string().min(1).default('pullback.deployments'),
    decisions: z.string().min(1).default('pullback.decisions'),
    incidents: z.string().min(1).default('pullback.incidents'),
    audit: z.string().min(1).default('pullback.audit'),
    artifacts: z.string().min(1).default('pullback.artifacts'),
    /** node-local partials for the deciders (decider.distributed; src/partials, src/decider) */
    partials: z.string().min(1).default('pullback.partials'),
  })
  .prefault({})

export const kafkaSchema = z
  .strictObject({
    /** bootstrap servers, "host:port"; empty means the embedded in-process bus */
    brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected "host:port"')).default([]),
    clientId: z.string().min(1).default('pullback'),
    /** consumer group id prefix; each consumer appends its role (".spans", ".actuator", ...) */
    groupPrefix: z.string().min(1).default('pullback'),
    /**
     * This sidecar instance's stable name, for the consumer groups every instance needs of its own
     * (deployments: `<groupPrefix>.deployments.<instanceId>`). Unset: the environment variable
     * PULLBACK_INSTANCE_ID, then POD_NAME, then HOSTNAME, then the host name; never random, so a
     * restart resumes its group instead of leaving one behind and re-reading the whole topic.
     */
    instanceId: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only').optional(),
    topics: kafkaTopicsSchema,
  })
  .prefault({})

export type KafkaConfig = z.output<typeof kafkaSchema>

export type InstanceId = { id: string; source: 'config' | 'PULLBACK_INSTANCE_ID' | 'POD_NAME' | 'HOSTNAME' | 'hostname' }

/** The instance id of `kafka.instanceId`'s contract; characters a group id cannot carry become "_". */
export function resolveInstanceId(cfg: Pick<KafkaConfig, 'instanceId'>, env: NodeJS.ProcessEnv = process.env, host: () => string = hostname): InstanceId {
  const clean = (v: string) => v.replace(/[^A-Za-z0-9._-]/g, '_')
  if (cfg.instanceId !== undefined) return { id: cfg.instanceId, source: 'config' }
  for (const name of ['PULLBACK_INSTANCE_ID', 'POD_NAME', 'HOSTNAME'] as const) {
    const v = env[name]?.trim()
    if (v) return { id: clean(v), source: name }
  }
  return { id: clean(host()), source: 'hostname' }
}
