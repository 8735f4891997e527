import type { Command } from '../args.js'

// Placeholder until this command lands; it says so and fails rather than pretending to work.
export const command: Command = {
  name: 'replay',
  summary: '',
  usage: 'usage: pullback replay (not available yet)',
  run(_argv, io) {
    io.err('pullback replay: not available in this build yet\n')
    return Promise.resolve(1)
  },
}
