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
