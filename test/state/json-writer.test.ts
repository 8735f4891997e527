/**
 * src/engine/json-writer.ts writes the state export's records: its text must be exactly
 * JSON.stringify(encodeValue(v)) (persist.ts), and encodeValue (copy on need) exactly what the
 * plain copying codec gave, or a restored record would differ from what was exported.
 */
import { hash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { JsonWriter, UnserializableError } from '../../src/engine/json-writer.js'
import { encodeValue, type Json } from '../../src/engine/persist.js'

/** The codec as it was before copy on need: copies every array and object. */
function copyingEncode(v: unknown): Json {
  if (v === undefined) return { $u: 1 }
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $n: 'NaN' }
    if (v === Infinity) return { $n: 'Infinity' }
    if (v === -Infinity) return { $n: '-Infinity' }
    if (Object.is(v, -0)) return { $n: '-0' }
    return v
  }
  if (typeof v !== 'object' || v === null) return v as Json
  if (Array.isArray(v)) {
    const out: Json[] = []
    for (let i = 0; i < v.length; i++) out.push(copyingEncode(v[i]))
    return out
  }
  if (v instanceof Map) return { $m: [...v].map(([k, x]) => [copyingEncode(k), copyingEncode(x)]) }
  if (v instanceof Set) return { $s: [...v].map((x) => copyingEncode(x)) }
  const out: { [k: string]: Json } = {}
  for (const [k, x] of Object.entries(v)) out[k.startsWith('$') ? `$${k}` : k] = copyingEncode(x)
  return out
}

const nullProto = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, b: undefined })
const holey: unknown[] = [1, , 3] // eslint-disable-line no-sparse-arrays
const contract = { window: 15_000, alpha: 0.001, signals: { errorRate: { mode: 'enforce', minDelta: 0.02 }, latency: { quantile: 0.99 } } }

const values: unknown[] = [
  0,
  -0,
  1,
  -1,
  42.5,
  -0.001,
  1e21,
  1e-7,
  2 ** 53,
  -(2 ** 53) + 1,
  Number.MAX_SAFE_INTEGER,
  1_767_225_600_000,
  NaN,
  Infinity,
  -Infinity,
  true,
  false,
  null,
  undefined,
  '',
  'plain',
  'quote " and backslash \\ and slash /',
  'controls \b\f\n\r\t \u0000 \u0001 \u001f \u007f',
  'latin é, BMP 日本, astral 😀',
  'lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, at end \ud83d',
  [],
  {},
  holey,
  [1, 'two', null, undefined, [NaN, -0], { x: 1 }],
  { a: 1, b: { c: 2, d: [3, 4] }, $tag: 'looks like a tag', e: { $u: 1 } },
  { clean: { x: 1, y: [1, 2] }, later: { $$k: 1, z: undefined } },
  { '10': 'integer keys', b: 1, '2': 'first' },
  new Map<unknown, unknown>([['k', { s: new Set(['x', 'y']) }], [3, [NaN, Infinity, -Infinity]]]),
  new Set([1, undefined, 'x']),
  nullProto,
  { nested: { onsets: { error_rate: undefined, latency: 5 } }, contract },
]

describe('encodeValue (copy on need)', () => {
  it('gives the text the copying codec gave, and shares the parts that need no tag', () => {
    for (const v of values) expect(JSON.stringify(encodeValue(v))).toBe(JSON.stringify(copyingEncode(v)))
    const clean = { a: { b: [1, 2, 'x'] }, c: 'y' }
    expect(encodeValue(clean)).toBe(clean)
    const mixed = { clean, tagged: { u: undefined } }
    const e = encodeValue(mixed) as Record<string, Json>
    expect(e).not.toBe(mixed)
    expect(e.clean).toBe(clean)
  })
})

describe('JsonWriter', () => {
  it('writes exactly JSON.stringify(encodeValue(v)), and its digest is the string\'s', () => {
    const w = new JsonWriter(8) // tiny: every value makes it grow
    for (const v of values) {
      w.begin()
      w.value(v)
      const want = JSON.stringify(encodeValue(v))
      expect(w.text()).toBe(want)
      expect(w.digest()).toBe(hash('sha256', want, 'base64'))
    }
  })

  it('writes a fixed object once and copies its bytes after; the text stays the same', () => {
    const w = new JsonWriter()
    const record = (c: object) => ({ id: 'x', contract: c, n: undefined, s: 'é' })
    const texts: string[] = []
    for (const c of [contract, contract, structuredClone(contract), contract]) {
      w.begin()
      w.object(record(c), 0, new Set(['contract']))
      texts.push(w.text())
      expect(w.text()).toBe(JSON.stringify(encodeValue(record(c))))
    }
    expect(new Set(texts).size).toBe(1)
    // a non-ASCII fixed object keeps the text UTF-8 when copied
    const uc = { name: '日本' }
    for (let i = 0; i < 2; i++) {
      w.begin()
      w.object({ contract: uc }, 0, new Set(['contract']))
      expect(w.text()).toBe('{"contract":{"name":"日本"}}')
    }
  })

  it('refuses what encodeValue refuses', () => {
    class K {
      x = 1
    }
    const cyc: Record<string, unknown> = {}
    cyc.self = cyc
    const w = new JsonWriter()
    for (const bad of [new K(), () => 1, 1n, Symbol('s'), cyc, new Date(0)]) {
      w.begin()
      expect(() => w.value({ bad })).toThrow(UnserializableError)
      expect(() => encodeValue({ bad })).toThrow(UnserializableError)
    }
  })
})
