import { z } from 'zod'

/** Configuration of the runtime stage (section `runtime:` of the YAML file). Owned by src/runtime. */
export const runtimeSchema = z.strictObject({}).prefault({})

export type RuntimeConfig = z.output<typeof runtimeSchema>
