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
  })
  .prefault({})

export const kafkaSchema = z
  .strictObject({
    /** bootstrap servers, "host:port"; empty means the embedded in-process bus */
    brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected "host:port"')).default([]),
    clientId: z.string().min(1).default('pullback'),
    /** consumer group id prefix; each consumer appends its role (".spans", ".actuator", ...) */
    groupPrefix: z.string().min(1).default('pullback'),
    topics: kafkaTopicsSchema,
  })
  .prefault({})

export type KafkaConfig = z.output<typeof kafkaSchema>
