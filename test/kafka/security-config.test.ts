/** kafka.tls / kafka.auth: schema errors name the path; the one mapping to librdkafka properties. */
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { PermanentError } from '../../src/common/errors.js'
import { configSchema } from '../../src/config/schema.js'
import { librdkafkaSecurity, type SecurityFiles } from '../../src/kafka/config.js'
import { securityFailureOf } from '../../src/kafka/confluent.js'

const files = (texts: Record<string, string>): SecurityFiles => ({
  assertReadable: (p) => {
    if (!(p in texts)) throw new Error(`ENOENT: no such file or directory, access '${p}'`)
  },
  readText: (p) => {
    const t = texts[p]
    if (t === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`)
    return t
  },
})
const kafka = (k: unknown) => configSchema.parse({ kafka: { brokers: ['b:9093'], ...(k as object) } }).kafka

function issues(k: unknown): string[] {
  const r = configSchema.safeParse({ kafka: k })
  expect(r.success).toBe(false)
  return r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? []
}

describe('schema', () => {
  it('names the path of each mistake', () => {
    expect(issues({ tls: { certFile: '/c.crt' } }).join('\n')).toMatch(/^kafka\.tls\.keyFile: certFile and keyFile go together/m)
    expect(issues({ auth: { sasl: { mechanism: 'GSSAPI', username: 'u', passwordFile: '/p' } } }).join('\n')).toMatch(/^kafka\.auth\.sasl\.mechanism: /m)
    expect(issues({ auth: { sasl: { mechanism: 'PLAIN', username: 'u', password: 'inline' } } }).join('\n')).toMatch(/^kafka\.auth\.sasl(\.passwordFile)?: /m)
    expect(issues({ tls: { caFile: '/ca', serverName: 'x' } }).join('\n')).toMatch(/^kafka\.tls: .*serverName/m)
    expect(issues({ debug: 'consumer,fetches' }).join('\n')).toMatch(/^kafka\.debug: comma-separated librdkafka debug contexts/m)
    expect(issues({ debug: '' }).join('\n')).toMatch(/^kafka\.debug: /m)
    expect(kafka({ debug: 'consumer,cgrp,fetch' }).debug).toBe('consumer,cgrp,fetch')
  })
  it('nothing set: no security keys, PLAINTEXT', () => {
    const s = librdkafkaSecurity(kafka({}), files({}))
    expect(s.properties()).toEqual({})
    expect(s.summary.protocol).toBe('PLAINTEXT')
  })
})

describe('librdkafkaSecurity', () => {
  const f = files({ '/ca.crt': 'x', '/c.crt': 'x', '/c.key': 'x', '/pw': 's3cret-pw\n' })

  it('SASL_SSL with mTLS and SCRAM: every property, the password without its newline', () => {
    const s = librdkafkaSecurity(
      kafka({ tls: { caFile: '/ca.crt', certFile: '/c.crt', keyFile: '/c.key' }, auth: { sasl: { mechanism: 'SCRAM-SHA-512', username: 'svc', passwordFile: '/pw' } } }),
      f,
    )
    expect(s.properties()).toEqual({
      'security.protocol': 'SASL_SSL',
      'ssl.ca.location': '/ca.crt',
      'ssl.certificate.location': '/c.crt',
      'ssl.key.location': '/c.key',
      'ssl.endpoint.identification.algorithm': 'https',
      'sasl.mechanisms': 'SCRAM-SHA-512',
      'sasl.username': 'svc',
      'sasl.password': 's3cret-pw',
    })
    expect(s.warnings).toEqual([])
  })

  it('the password never shows in logs or JSON', () => {
    const s = librdkafkaSecurity(kafka({ tls: {}, auth: { sasl: { mechanism: 'PLAIN', username: 'svc', passwordFile: '/pw' } } }), f)
    expect(JSON.stringify({ s })).not.toContain('s3cret')
    expect(inspect(s, { depth: 5 })).not.toContain('s3cret')
    expect(JSON.stringify(s.summary)).not.toContain('s3cret')
    expect(JSON.parse(JSON.stringify(s))).toMatchObject({ protocol: 'SASL_SSL', mechanism: 'PLAIN', username: 'svc' })
  })

  it('tls alone is SSL; insecureSkipVerify turns verification off, loudly', () => {
    expect(librdkafkaSecurity(kafka({ tls: {} }), f).properties()).toEqual({ 'security.protocol': 'SSL', 'ssl.endpoint.identification.algorithm': 'https' })
    const s = librdkafkaSecurity(kafka({ tls: { insecureSkipVerify: true } }), f)
    expect(s.properties()).toMatchObject({ 'enable.ssl.certificate.verification': false, 'ssl.endpoint.identification.algorithm': 'none' })
    expect(s.warnings.join()).toMatch(/NOT verified/)
  })

  it('SASL without tls: SASL_PLAINTEXT and a loud warning (PLAIN: the password in clear text)', () => {
    const plain = librdkafkaSecurity(kafka({ auth: { sasl: { mechanism: 'PLAIN', username: 'svc', passwordFile: '/pw' } } }), f)
    expect(plain.properties()['security.protocol']).toBe('SASL_PLAINTEXT')
    expect(plain.warnings.join()).toMatch(/password travels in CLEAR TEXT/)
    const scram = librdkafkaSecurity(kafka({ auth: { sasl: { mechanism: 'SCRAM-SHA-256', username: 'svc', passwordFile: '/pw' } } }), f)
    expect(scram.warnings.join()).toMatch(/unencrypted/)
  })

  it('unreadable or empty files fail at start naming the config key', () => {
    const err = (k: unknown, fs: SecurityFiles) => {
      try {
        librdkafkaSecurity(kafka(k), fs)
      } catch (e) {
        expect(e).toBeInstanceOf(PermanentError)
        return (e as PermanentError).message
      }
      throw new Error('expected a throw')
    }
    expect(err({ tls: { caFile: '/nope' } }, f)).toMatch(/^kafka\.tls\.caFile: cannot read \/nope/)
    expect(err({ tls: { certFile: '/c.crt', keyFile: '/nokey' } }, f)).toMatch(/^kafka\.tls\.keyFile: cannot read/)
    expect(err({ tls: {}, auth: { sasl: { mechanism: 'PLAIN', username: 'u', passwordFile: '/missing' } } }, f)).toMatch(/^kafka\.auth\.sasl\.passwordFile: cannot read \/missing/)
    expect(err({ tls: {}, auth: { sasl: { mechanism: 'PLAIN', username: 'u', passwordFile: '/empty' } } }, files({ '/empty': '\n' }))).toMatch(/is empty/)
  })
})

describe('securityFailureOf (librdkafka log lines)', () => {
  it('tells authentication and certificate failures from ordinary disconnects', () => {
    const at = '[thrd:sasl_ssl://127.0.0.1:19520/bootstrap]: sasl_ssl://127.0.0.1:19520/bootstrap: '
    expect(securityFailureOf(`${at}SASL authentication error: Authentication failed: Invalid username or password (after 302ms in state AUTH_REQ)`)?.kind).toBe('sasl')
    expect(securityFailureOf(`${at}SASL SCRAM-SHA-512 mechanism handshake failed: Broker: Unsupported SASL mechanism`)?.kind).toBe('sasl')
    expect(securityFailureOf(`${at}SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified`)?.kind).toBe('tls')
    expect(securityFailureOf(`${at}SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener? (after 3ms in state SSL_HANDSHAKE)`)).toBeUndefined()
    expect(securityFailureOf(`${at}Connect to ipv4#127.0.0.1:19520 failed: Connection refused`)).toBeUndefined()
  })
})
