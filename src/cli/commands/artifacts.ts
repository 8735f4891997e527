import type { Command } from '../args.js'

// Placeholder until this command lands; it says so and fails rather than pretending to work.
export const command: Command = {
  name: 'artifacts',
  summary: '',
  usage: 'usage: pullback artifacts (not available yet)',
  run(_argv, io) {
    io.err('pullback artifacts: not available in this build yet\n')
    return Promise.resolve(1)
  },
}
