import type { Command } from '../args.js'

// Placeholder until this command lands; it says so and fails rather than pretending to work.
export const command: Command = {
  name: 'demo',
  summary: '',
  usage: 'usage: pullback demo (not available yet)',
  run(_argv, io) {
    io.err('pullback demo: not available in this build yet\n')
    return Promise.resolve(1)
  },
}
