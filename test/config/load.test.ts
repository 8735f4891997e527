import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, MAX_CONFIG_BYTES, parseConfig } from '../../src/config/load.js'
import { parseDuration } from '../../src/config/duration.js'

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-cfg-'))
  const f = join(dir, 'c.yaml')
  writeFileSync(f, text)
  return f
}

describe('config', () => {
  it('defaults pass the schema and are frozen', () => {
    const cfg = parseConfig({})
    expect(cfg.kafka.topics.decisions).toBe('pullback.decisions')
    expect(Object.isFrozen(cfg.kafka)).toBe(true)
  })

  it('the shipped config/pullback.yaml is valid and every value in it is the default (its header says so)', () => {
    expect(loadConfig(new URL('../../config/pullback.yaml', import.meta.url).pathname)).toEqual(parseConfig({}))
  })

  it('an unknown key fails and names its path', () => {
    expect(() => loadConfig(file('kafka:\n  topics:\n    decisionz: x\n'))).toThrow(/kafka\.topics\.decisionz: unknown key/)
  })

  it('a bad value fails and names its path', () => {
    expect(() => loadConfig(file('kafka:\n  brokers: ["nohost"]\n'))).toThrow(/kafka\.brokers\[0\]: expected "host:port"/)
  })

  it('invalid YAML and a missing file are ConfigErrors', () => {
    expect(() => loadConfig(file('kafka: [\n'))).toThrow(ConfigError)
    expect(() => loadConfig('/nonexistent/pullback.yaml')).toThrow(/cannot read config file/)
  })

  it('parses durations', () => {
    expect(parseDuration('30s')).toBe(30_000)
    expect(parseDuration('1m30s')).toBe(90_000)
    expect(parseDuration('250ms')).toBe(250)
    expect(parseDuration(1500)).toBe(1500)
    expect(parseDuration('5 minutes')).toBeNaN()
    expect(parseDuration('')).toBeNaN()
  })
})

describe('config hardening (issue 11 item 9)', () => {
  it('refuses ports above 65535 on every listener, naming the path', () => {
    expect(() => parseConfig({ receivers: { otlp: { grpc: { endpoint: '0.0.0.0:99999' } } } })).toThrow(/receivers\.otlp\.grpc\.endpoint: port must be 0\.\.65535/)
    expect(() => parseConfig({ receivers: { otlp: { http: { endpoint: '0.0.0.0:65536' } } } })).toThrow(/receivers\.otlp\.http\.endpoint: port must be 0\.\.65535/)
    expect(() => parseConfig({ runtime: { admin: { endpoint: '0.0.0.0:70000' } } })).toThrow(/runtime\.admin\.endpoint: port must be 0\.\.65535/)
    expect(parseConfig({ receivers: { otlp: { grpc: { endpoint: '127.0.0.1:65535' } } } }).receivers.otlp.grpc.endpoint).toBe('127.0.0.1:65535')
  })

  it('refuses maxRequestBytes of 0, below 64KiB, above 1GiB or above a quarter of memoryHighWater', () => {
    expect(() => parseConfig({ receivers: { maxRequestBytes: 0 } })).toThrow(/receivers\.maxRequestBytes: must be at least/)
    expect(() => parseConfig({ receivers: { maxRequestBytes: '100GiB', memoryHighWater: 0 } })).toThrow(/receivers\.maxRequestBytes: must be at most 1GiB/)
    expect(() => parseConfig({ receivers: { maxRequestBytes: '200MiB' } })).toThrow(/receivers\.maxRequestBytes: must be at most a quarter of memoryHighWater/)
    expect(parseConfig({ receivers: { maxRequestBytes: '200MiB', memoryHighWater: '1GiB' } }).receivers.maxRequestBytes).toBe(200 * 1024 * 1024)
  })

  it('receivers.otlp.grpc.bufferPool: bytes with a unit, 0 allowed (no reuse), a bad value names its path', () => {
    expect(parseConfig({}).receivers.otlp.grpc.bufferPool).toBe(8 * 1024 * 1024)
    expect(parseConfig({ receivers: { otlp: { grpc: { bufferPool: '2MiB' } } } }).receivers.otlp.grpc.bufferPool).toBe(2 * 1024 * 1024)
    expect(parseConfig({ receivers: { otlp: { grpc: { bufferPool: 0 } } } }).receivers.otlp.grpc.bufferPool).toBe(0)
    expect(() => parseConfig({ receivers: { otlp: { grpc: { bufferPool: 'lots' } } } })).toThrow(/receivers\.otlp\.grpc\.bufferPool: invalid byte size/)
  })

  it('refuses engine.services keys that can never match a service', () => {
    for (const key of ['shop/cart/v2', 'shop/', '/cart', 'my cart', ' cart', 'a//b']) {
      expect(() => parseConfig({ engine: { services: { [key]: { window: '1m' } } } }), key).toThrow(/must be "namespace\/name" or "name"/)
    }
    const cfg = parseConfig({ engine: { services: { 'shop/cart': { window: '30s' }, checkout: { window: '45s' } } } })
    expect(Object.keys(cfg.engine.services).sort()).toEqual(['checkout', 'shop/cart'])
  })

  it('a YAML alias bomb is one ConfigError naming the file, not a stack trace', () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for (let i = 1; i < 9; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`)
    const f = file(lines.join('\n') + '\n')
    let err: unknown
    try {
      loadConfig(f)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as Error).message).toContain(f)
    expect((err as Error).message).toMatch(/alias/i)
  })

  it('refuses a config file over 1 MiB without reading it all (/dev/zero used to exhaust memory)', () => {
    expect(MAX_CONFIG_BYTES).toBe(1024 * 1024)
    expect(() => loadConfig(file(`# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`))).toThrow(/is larger than 1024 KiB/)
    const before = process.memoryUsage().arrayBuffers
    expect(() => loadConfig('/dev/zero')).toThrow(/config file \/dev\/zero is larger than 1024 KiB/)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024)
    // exactly at the limit is fine as far as size goes
    expect(() => loadConfig(file(`#${'x'.repeat(MAX_CONFIG_BYTES - 2)}\n`))).not.toThrow()
  })
})

describe('pullback config (CLI) on a bad file', () => {
  it('prints one line naming the file and the offending path, and exits 2', async () => {
    const { main } = await import('../../src/cli/main.js')
    const cases: Array<[string, RegExp]> = [
      ['receivers:\n  otlp:\n    grpc:\n      endpoint: 0.0.0.0:99999\n', /is invalid: receivers\.otlp\.grpc\.endpoint: port must be 0\.\.65535$/],
      ['engine:\n  services:\n    "a/b/c": { window: 1m }\n', /is invalid: engine\.services\["a\/b\/c"\]: invalid key: a service key must be/],
      // rules across sections (src/config/cross-checks.ts): the file's validation, not only a pipeline's construction
      ['engine:\n  lateness: 30m\n', /is invalid: engine\.defaults\.window: window \+ engine\.lateness \(\d+ ms\) exceed signals\.fineRetention/],
      ['engine:\n  services:\n    "shop/checkout": { window: 18s }\n', /is invalid: engine\.services\["shop\/checkout"\]\.window: 18000 ms in \d+ slices is not a multiple of signals\.bucket/],
      ['a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n', /is not usable YAML: .*alias/],
    ]
    for (const [text, expected] of cases) {
      const f = file(text)
      let err = ''
      const code = await main(['config', '--config', f], { out: () => undefined, err: (s) => void (err += s) })
      expect(code).toBe(2)
      const lines = err.trimEnd().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(f)
      expect(lines[0]).toMatch(expected)
    }
  })
})
