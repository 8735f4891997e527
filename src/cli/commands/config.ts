import { stringify } from 'yaml'
import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'

export const command: Command = {
  name: 'config',
  summary: 'validate a config file and print it with defaults filled in',
  usage: `usage: pullback config [--config FILE]

Validates FILE against the schema (unknown keys and bad values fail, naming the path) and prints the
effective configuration, durations in milliseconds. Without --config, prints the defaults.`,
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, { config: { type: 'string', short: 'c' } }, true)
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`)
    const cfg = loadConfig(values.config)
    io.out(stringify(cfg))
    return 0
  },
}
