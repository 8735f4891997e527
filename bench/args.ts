import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Command-line flags of the benches: `--name value`; integers bounded, with the range named on error. */
export function flags(argv: readonly string[]): { get(name: string): string | undefined; int(name: string, def: number, min: number, max: number): number } {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name)
    const n = raw === undefined ? def : Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}`)
    return n
  }
  return { get, int }
}

/**
 * `--help` / `-h` anywhere in the arguments: prints the bench's usage, its file's opening comment
 * (kept in the compiled file), and exits 0 before anything runs. Every bench entry calls it first:
 * a flag a bench does not know is otherwise ignored, and a long run starts.
 */
export function exitOnHelp(moduleUrl: string, argv: readonly string[] = process.argv.slice(2)): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return
  const text = readFileSync(fileURLToPath(moduleUrl), 'utf8')
  const m = /^\s*\/\*\*([\s\S]*?)\*\//.exec(text)
  const usage = m === null ? 'no usage text in this file' : (m[1] as string).split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').trim()
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}
