import { z } from 'zod'

/** Configuration of the engine stage (section `engine:` of the YAML file). Owned by src/engine. */
export const engineSchema = z.strictObject({}).prefault({})

export type EngineConfig = z.output<typeof engineSchema>
