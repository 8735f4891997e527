import { z } from 'zod'

/** Configuration of the publish stage (section `publish:` of the YAML file). Owned by src/publish. */
export const publishSchema = z.strictObject({}).prefault({})

export type PublishConfig = z.output<typeof publishSchema>
