import { z } from 'zod'

/** Configuration of the signals stage (section `signals:` of the YAML file). Owned by src/signals. */
export const signalsSchema = z.strictObject({}).prefault({})

export type SignalsConfig = z.output<typeof signalsSchema>
