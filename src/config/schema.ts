import { z } from 'zod'
import { kafkaSchema } from '../kafka/config.js'
import { engineSchema } from '../engine/config.js'
import { signalsSchema } from '../signals/config.js'
import { normalizeSchema } from '../normalize/config.js'
import { receiversSchema } from '../receivers/config.js'
import { publishSchema } from '../publish/config.js'
import { actuatorSchema } from '../actuator/config.js'
import { runtimeSchema } from '../runtime/config.js'
import { deciderSchema } from '../decider/config.js'
import { identitySchema } from '../identity/config.js'
import { historySchema } from '../history/config.js'
import { calibrationSchema } from '../calibrate/config.js'
import { windowIssues } from './cross-checks.js'

/**
 * The one configuration file of pullback. Each stage owns its section's schema (Collector style:
 * a typed config per component); this file only composes them, and adds the rules across sections
 * (cross-checks.ts). Unknown keys anywhere are errors.
 */
export const configSchema = z
  .strictObject({
    engine: engineSchema,
    normalize: normalizeSchema,
    signals: signalsSchema,
    receivers: receiversSchema,
    identity: identitySchema,
    kafka: kafkaSchema,
    publish: publishSchema,
    actuator: actuatorSchema,
    runtime: runtimeSchema,
    decider: deciderSchema,
    history: historySchema,
    calibration: calibrationSchema,
  })
  .superRefine((c, ctx) => {
    for (const i of windowIssues(c.engine, c.signals)) ctx.addIssue({ code: 'custom', path: i.path, message: i.message })
  })
  .prefault({})

export type PullbackConfig = z.output<typeof configSchema>
