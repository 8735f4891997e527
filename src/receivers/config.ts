import { z } from 'zod'

/** Configuration of the receivers stage (section `receivers:` of the YAML file). Owned by src/receivers. */
export const receiversSchema = z.strictObject({}).prefault({})

export type ReceiversConfig = z.output<typeof receiversSchema>
