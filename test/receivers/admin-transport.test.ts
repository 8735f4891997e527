/**
 * Issue 13 items 7 and 8 on the admin port: TLS / mTLS with reloaded certificates, what /status
 * reveals (`runtime.admin.status`, default by endpoint), and one bad /status entry never turning the
 * whole answer into a 500.
 */
import http from 'node:http'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AdminServer } from '../../src/runtime/admin.js'
import { adminSchema, statusDetailOf } from '../../src/runtime/config.js'
import { makePki, type Pki } from './tls-fixtures.js'

let pki: Pki
beforeAll(() => {
  pki = makePki()
}, 60_000)
afterAll(() => pki?.cleanup())

function get(port: number, path: string, opts: { ca?: Buffer; cert?: Buffer; key?: Buffer; plain?: boolean } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const args = { host: '127.0.0.1', port, path }
    const req = opts.plain === true ? http.get(args) : https.get({ ...args, ca: opts.ca, cert: opts.cert, key: opts.key })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }))
    })
    req.on('error', reject)
  })
}

async function withAdmin(config: Record<string, unknown>, fn: (admin: AdminServer, port: number) => Promise<void>): Promise<void> {
  const admin = new AdminServer({ config: adminSchema.parse(config) })
  await admin.start()
  try {
    await fn(admin, admin.address()!.port)
  } finally {
    await admin.shutdown()
  }
}

const watched = { watched: [{ namespace: 'shop', service: 'cart', version: 'v2', decisionId: 'd-1' }], lastVerdicts: [] }

describe('admin port over TLS', () => {
  it('serves /livez over TLS and refuses plaintext', async () => {
    await withAdmin({ endpoint: '127.0.0.1:0', tls: { certFile: pki.path('server.crt'), keyFile: pki.path('server.key') } }, async (admin, port) => {
      expect((await get(port, '/livez', { ca: pki.pem('ca.crt') })).status).toBe(200)
      await expect(get(port, '/livez', { plain: true })).rejects.toThrow()
      expect(admin.security().tlsHandshakeFailures).toBeGreaterThanOrEqual(1)
    })
  })

  it('mTLS: refuses a client without a certificate from the client CA', async () => {
    const tls = { certFile: pki.path('server.crt'), keyFile: pki.path('server.key'), clientCaFile: pki.path('ca.crt') }
    await withAdmin({ endpoint: '127.0.0.1:0', tls }, async (_admin, port) => {
      const ca = pki.pem('ca.crt')
      expect((await get(port, '/livez', { ca, cert: pki.pem('client.crt'), key: pki.pem('client.key') })).status).toBe(200)
      await expect(get(port, '/livez', { ca })).rejects.toThrow()
      await expect(get(port, '/livez', { ca, cert: pki.pem('rogue-client.crt'), key: pki.pem('rogue-client.key') })).rejects.toThrow()
    })
  })
})

describe('admin certificate rotation', () => {
  it('serves a rotated certificate to new connections without a restart', async () => {
    const tls = { certFile: pki.path('server.crt'), keyFile: pki.path('server.key'), reloadInterval: '100ms' }
    await withAdmin({ endpoint: '127.0.0.1:0', tls }, async (admin, port) => {
      const ca = pki.pem('ca.crt')
      const cn = () =>
        new Promise<string>((resolve, reject) => {
          const req = https.get({ host: '127.0.0.1', port, path: '/livez', ca, agent: false }, (res) => {
            const peer = (res.socket as TLSSocket).getPeerCertificate().subject.CN
            res.resume()
            resolve(String(peer))
          })
          req.on('error', reject)
        })
      expect(await cn()).toBe('server-one')
      pki.rotateServer('admin-two')
      const end = Date.now() + 10_000
      while ((await cn()) !== 'admin-two') {
        if (Date.now() > end) throw new Error('rotation not picked up')
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(admin.security().tls?.reloads).toBeGreaterThanOrEqual(1)
    })
    pki.rotateServer('server-one')
  }, 30_000)
})

describe('/status exposure', () => {
  it('defaults to full detail on loopback and health only on any other address; the setting overrides', () => {
    expect(statusDetailOf(adminSchema.parse({ endpoint: '127.0.0.1:13134' }))).toBe('full')
    expect(statusDetailOf(adminSchema.parse({ endpoint: 'localhost:13134' }))).toBe('full')
    expect(statusDetailOf(adminSchema.parse({}))).toBe('health')
    expect(statusDetailOf(adminSchema.parse({ endpoint: '10.0.0.7:13134' }))).toBe('health')
    expect(statusDetailOf(adminSchema.parse({ endpoint: '0.0.0.0:13134', status: 'full' }))).toBe('full')
    expect(statusDetailOf(adminSchema.parse({ endpoint: '127.0.0.1:13134', status: 'health' }))).toBe('health')
  })

  it('health detail reveals no watched deployment, reading or decision id', async () => {
    await withAdmin({ endpoint: '0.0.0.0:0' }, async (admin, port) => {
      admin.setStatusProvider(() => watched)
      const r = await get(port, '/status', { plain: true })
      expect(r.status).toBe(200)
      expect(r.body).toEqual({ detail: 'health', liveness: 'alive', draining: false })
      expect(JSON.stringify(r.body)).not.toMatch(/cart|d-1/)
    })
    await withAdmin({ endpoint: '0.0.0.0:0', status: 'full' }, async (admin, port) => {
      admin.setStatusProvider(() => watched)
      expect((await get(port, '/status', { plain: true })).body).toEqual(watched)
    })
  })

  it('one entry that cannot be serialised costs that entry, not the whole answer', async () => {
    await withAdmin({ endpoint: '127.0.0.1:0' }, async (admin, port) => {
      const cyclic: Record<string, unknown> = { service: 'loop' }
      cyclic.self = cyclic
      admin.setStatusProvider(() => ({ generatedAt: 'now', watched: [{ service: 'cart' }, { service: 'bad', value: 10n }, cyclic], lastVerdicts: [], evicted: 0 }))
      const r = await get(port, '/status', { plain: true })
      expect(r.status).toBe(200)
      const list = r.body.watched as Array<Record<string, unknown>>
      expect(list[0]).toEqual({ service: 'cart' })
      expect(list[1]!.error).toMatch(/not serialisable/)
      expect(list[2]!.error).toMatch(/not serialisable/)
      expect(r.body.generatedAt).toBe('now')
      expect(r.body.evicted).toBe(0)
      expect(admin.security().statusEntryErrors).toBe(2)
    })
  })
})
