import { z } from 'zod'

/** Configuration of the actuator stage (section `actuator:` of the YAML file). Owned by src/actuator. */
export const actuatorSchema = z.strictObject({}).prefault({})

export type ActuatorConfig = z.output<typeof actuatorSchema>
