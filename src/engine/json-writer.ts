/**
 * The state export's record text, written into one reused byte buffer: the same text as
 * `JSON.stringify(encodeValue(v))` (persist.ts), without the garbage. JSON.stringify builds its
 * result from parts joined into a string that is then flattened again to be hashed, and
 * encodeValue copies the objects it tags: at 10,000 watches re-encoded every `minWriteInterval`
 * that was most of an evaluation pass's garbage (see bench/engine.ts). Here a record is written
 * byte by byte into a buffer that is kept from record to record; its digest is taken from the
 * bytes, and the string is made only when the record is handed out (not for an unchanged one).
 *
 * Objects passed to `fixed` (a watch's contract: config, never changed in place, shared by the
 * watches of its services, ~560 of ~2,700 characters of a record; its frozen baseline and the
 * gate's judgement of it, set once at freeze and replaced, never changed in place) are written
 * once and their bytes copied afterwards. Pure computation: no I/O, no clock. Not reentrant: one record at a time.
 */
import { hash } from 'node:crypto'

/** A value the codec cannot represent; caught by the exporter and counted, never thrown further. */
export class UnserializableError extends Error {}

const MAX_DEPTH = 64
const QUOTE = 34
const BACKSLASH = 92
const DOLLAR = 36
const HEX = '0123456789abcdef'

/** A fixed object's bytes, and whether they are all ASCII. */
interface Fixed {
  bytes: Uint8Array
  ascii: boolean
}

export class JsonWriter {
  private buf: Buffer
  private len = 0
  /** no byte >= 0x80 written since `begin` (the text is then latin1 = ASCII) */
  private ascii = true
  private readonly fixedCodes = new WeakMap<object, Fixed>()
  /** digits of an integer, least significant first */
  private readonly digits = new Uint8Array(24)

  constructor(initialBytes = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes)
  }

  /** Starts a new text (the buffer is reused). */
  begin(): void {
    this.len = 0
    this.ascii = true
  }

  /** Bytes written since `begin`. */
  get length(): number {
    return this.len
  }

  /** SHA-256 (base64) of the text's UTF-8 bytes: what hashing the string would give. */
  digest(): string {
    return hash('sha256', this.buf.subarray(0, this.len), 'base64')
  }

  /** The text as a string. */
  text(): string {
    return this.buf.toString(this.ascii ? 'latin1' : 'utf8', 0, this.len)
  }

  /** ASCII text written as it is (punctuation, keys known to need no escaping). */
  raw(s: string): void {
    this.ensure(s.length)
    const b = this.buf
    let n = this.len
    for (let i = 0; i < s.length; i++) b[n++] = s.charCodeAt(i)
    this.len = n
  }

  /** A JSON string literal, as JSON.stringify writes it (well-formed: lone surrogates escaped). */
  string(s: string): void {
    // worst case: 6 bytes per UTF-16 unit (\uXXXX), 2 quotes
    this.ensure(6 * s.length + 2)
    const b = this.buf
    let n = this.len
    b[n++] = QUOTE
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x20 && c < 0x7f) {
        if (c === QUOTE || c === BACKSLASH) b[n++] = BACKSLASH
        b[n++] = c
      } else if (c < 0x20) {
        const short = c === 8 ? 98 : c === 9 ? 116 : c === 10 ? 110 : c === 12 ? 102 : c === 13 ? 114 : 0
        if (short !== 0) {
          b[n++] = BACKSLASH
          b[n++] = short
        } else n = this.unicodeEscape(n, c)
      } else if (c < 0x80) {
        b[n++] = c // DEL
      } else if (c < 0x800) {
        this.ascii = false
        b[n++] = 0xc0 | (c >> 6)
        b[n++] = 0x80 | (c & 0x3f)
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          this.ascii = false
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
          b[n++] = 0xf0 | (cp >> 18)
          b[n++] = 0x80 | ((cp >> 12) & 0x3f)
          b[n++] = 0x80 | ((cp >> 6) & 0x3f)
          b[n++] = 0x80 | (cp & 0x3f)
          i++
        } else n = this.unicodeEscape(n, c) // a lone surrogate
      } else {
        this.ascii = false
        b[n++] = 0xe0 | (c >> 12)
        b[n++] = 0x80 | ((c >> 6) & 0x3f)
        b[n++] = 0x80 | (c & 0x3f)
      }
    }
    b[n++] = QUOTE
    this.len = n
  }

  /** A finite number other than -0, as JSON.stringify writes it. */
  number(v: number): void {
    if (Number.isSafeInteger(v)) {
      // integers (times, counts) digit by digit: no string per number
      this.ensure(18)
      const b = this.buf
      let n = this.len
      let x = v
      if (x < 0) {
        b[n++] = 45
        x = -x
      }
      let k = 0
      do {
        const q = Math.floor(x / 10)
        this.digits[k++] = 48 + (x - q * 10)
        x = q
      } while (x > 0)
      while (k > 0) b[n++] = this.digits[--k] as number
      this.len = n
      return
    }
    this.raw(String(v))
  }

  /** The text of encodeValue(v) (persist.ts), at nesting `depth`. */
  value(v: unknown, depth = 0): void {
    if (depth > MAX_DEPTH) throw new UnserializableError(`nested deeper than ${MAX_DEPTH} (a cycle?)`)
    switch (typeof v) {
      case 'undefined':
        return this.raw('{"$u":1}')
      case 'boolean':
        return this.raw(v ? 'true' : 'false')
      case 'string':
        return this.string(v)
      case 'number':
        if (v - v === 0 && (v !== 0 || 1 / v > 0)) return this.number(v)
        return this.raw(Number.isNaN(v) ? '{"$n":"NaN"}' : v === Infinity ? '{"$n":"Infinity"}' : v === -Infinity ? '{"$n":"-Infinity"}' : '{"$n":"-0"}')
      case 'object': {
        if (v === null) return this.raw('null')
        if (Array.isArray(v)) {
          const a = v as unknown[]
          this.raw('[')
          for (let i = 0; i < a.length; i++) {
            if (i > 0) this.raw(',')
            this.value(a[i], depth + 1)
          }
          return this.raw(']')
        }
        if (v instanceof Map) {
          this.raw('{"$m":[')
          let first = true
          for (const [k, x] of v) {
            this.raw(first ? '[' : ',[')
            first = false
            this.value(k, depth + 1)
            this.raw(',')
            this.value(x, depth + 1)
            this.raw(']')
          }
          return this.raw(']}')
        }
        if (v instanceof Set) {
          this.raw('{"$s":[')
          let first = true
          for (const x of v) {
            if (!first) this.raw(',')
            first = false
            this.value(x, depth + 1)
          }
          return this.raw(']}')
        }
        return this.object(v, depth, undefined)
      }
      default:
        throw new UnserializableError(`cannot encode a ${typeof v}`)
    }
  }

  /**
   * A plain object as `value` writes it, the properties named in `fixedKeys` (if any) through
   * `fixed`: a watch record with its contract and its frozen baseline.
   */
  object(v: object, depth: number, fixedKeys: ReadonlySet<string> | undefined): void {
    const proto = Object.getPrototypeOf(v) as unknown
    if (proto !== Object.prototype && proto !== null) {
      throw new UnserializableError(`cannot encode an instance of ${(v as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}`)
    }
    const o = v as Record<string, unknown>
    this.raw('{')
    let first = true
    // for-in: the own enumerable string keys in Object.keys order (the prototype enumerates nothing)
    for (const k in o) {
      if (!first) this.raw(',')
      first = false
      // a plain key that starts with '$' gets one more (encodeValue): never read back as a tag
      this.string(k.charCodeAt(0) === DOLLAR ? `$${k}` : k)
      this.raw(':')
      const x = o[k]
      if (fixedKeys !== undefined && typeof x === 'object' && x !== null && fixedKeys.has(k)) this.fixed(x, depth + 1)
      else this.value(x, depth + 1)
    }
    this.raw('}')
  }

  /** `value(o)` for an object never changed in place: its bytes are written once and copied after. */
  fixed(o: object, depth: number): void {
    let f = this.fixedCodes.get(o)
    if (f === undefined) {
      const start = this.len
      const wasAscii = this.ascii
      this.ascii = true
      this.value(o, depth)
      // a copy (Buffer#slice would share the buffer, which the next record overwrites)
      f = { bytes: new Uint8Array(this.buf.subarray(start, this.len)), ascii: this.ascii }
      this.ascii = wasAscii && this.ascii
      this.fixedCodes.set(o, f)
      return
    }
    this.ensure(f.bytes.length)
    this.buf.set(f.bytes, this.len)
    this.len += f.bytes.length
    if (!f.ascii) this.ascii = false
  }

  private unicodeEscape(n: number, c: number): number {
    const b = this.buf
    b[n++] = BACKSLASH
    b[n++] = 117 // u
    b[n++] = HEX.charCodeAt((c >> 12) & 15)
    b[n++] = HEX.charCodeAt((c >> 8) & 15)
    b[n++] = HEX.charCodeAt((c >> 4) & 15)
    b[n++] = HEX.charCodeAt(c & 15)
    return n
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.len + n))
    this.buf.copy(next, 0, 0, this.len)
    this.buf = next
  }
}
