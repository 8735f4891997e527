/**
 * The Kafka client library is loaded on first use only (src/kafka/client.ts): a missing or broken
 * install fails with a PermanentError that names the fix, and the paths that need no broker (the
 * embedded bus, `pullback replay`, `pullback demo` without --kafka) never load it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { PermanentError } from '../../src/common/errors.js'
import { main } from '../../src/cli/main.js'
import { demoConfig } from '../../src/cli/commands/demo.js'
import type * as RealClient from '@confluentinc/kafka-javascript'
import { kafkaClientLoaded, loadKafkaClient, type KafkaClientModule } from '../../src/kafka/client.js'
import { createTransport } from '../../src/kafka/index.js'
import { generate } from '../support/otlp-fixtures.js'

function thrown(fn: () => unknown): PermanentError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(PermanentError)
    return err as PermanentError
  }
  throw new Error('expected a throw')
}

const notFound = (what: string) => Object.assign(new Error(`Cannot find module '${what}'\nRequire stack:\n- /app/dist/kafka/client.js`), { code: 'MODULE_NOT_FOUND' })

/** compile time (npm run typecheck): the package's real API fits the surface client.ts declares for confluent.ts */
export const realClientFits = (m: typeof RealClient): KafkaClientModule => m

describe('loadKafkaClient', () => {
  it('package not installed: KAFKA_CLIENT_MISSING naming the build dependencies, npm ci and the embedded bus', () => {
    const e = thrown(() =>
      loadKafkaClient(() => {
        throw notFound('@confluentinc/kafka-javascript')
      }),
    )
    expect(e.code).toBe('KAFKA_CLIENT_MISSING')
    expect(e.message).toContain('apt-get install libzstd-dev liblz4-dev libsasl2-dev')
    expect(e.message).toContain('CKJS_LINKING=dynamic npm ci')
    expect(e.message).toMatch(/pullback demo.*pullback replay.*need no Kafka/)
  })

  it('native part missing or not linkable: KAFKA_CLIENT_BROKEN with the cause and the same fix', () => {
    const binding = thrown(() =>
      loadKafkaClient(() => {
        throw notFound('../build/Release/confluent-kafka-javascript.node')
      }),
    )
    expect(binding.code).toBe('KAFKA_CLIENT_BROKEN')
    expect(binding.message).toContain('confluent-kafka-javascript.node')
    expect(binding.message).toContain('CKJS_LINKING=dynamic npm ci')
    const dlopen = thrown(() =>
      loadKafkaClient(() => {
        throw Object.assign(new Error('libzstd.so.1: cannot open shared object file: No such file or directory'), { code: 'ERR_DLOPEN_FAILED' })
      }),
    )
    expect(dlopen.code).toBe('KAFKA_CLIENT_BROKEN')
    expect(dlopen.message).toContain('libzstd.so.1')
    expect(dlopen.message).toContain('apt-get install libzstd-dev liblz4-dev libsasl2-dev')
  })

  it('a module without the KafkaJS API or the lower-level KafkaConsumer is refused; the real one loads', () => {
    expect(thrown(() => loadKafkaClient(() => ({}))).code).toBe('KAFKA_CLIENT_BROKEN')
    expect(thrown(() => loadKafkaClient(() => ({ KafkaJS: { Kafka: class {} } }))).code).toBe('KAFKA_CLIENT_BROKEN')
    const ok = { KafkaJS: { Kafka: class {} }, KafkaConsumer: class {} }
    expect(loadKafkaClient(() => ok)).toBe(ok)
  })
})

describe('paths without a broker never load the client', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pullback-loader-'))
  const file = path.join(dir, 'spans.jsonl')
  writeFileSync(file, generate({ seed: 3, durationS: 120, load: () => [{ version: 'v1', rps: 5, errorRate: 0.01, medianMs: 20 }] }).join('\n') + '\n')
  const quiet = { out: () => undefined, err: () => undefined }

  it('replay (single process and --deciders on the embedded bus), the demo transport, the embedded bus', async () => {
    expect(await main(['replay', file], quiet)).toBe(0)
    expect(await main(['replay', file, '--nodes', '2', '--deciders', '2'], quiet)).toBe(0)
    const demo = await createTransport(demoConfig(4, undefined, 'loader').kafka)
    expect(demo.kind).toBe('embedded')
    expect(kafkaClientLoaded()).toBe(false)
    // nor did anything import it behind the loader's back
    const cache = createRequire(import.meta.url).cache
    expect(Object.keys(cache).filter((k) => k.includes(`${path.sep}@confluentinc${path.sep}kafka-javascript${path.sep}`))).toEqual([])
  }, 60_000)
})
