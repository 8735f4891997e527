import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js'
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

  it('the shipped config/pullback.yaml is valid', () => {
    expect(() => loadConfig(new URL('../../config/pullback.yaml', import.meta.url).pathname)).not.toThrow()
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
