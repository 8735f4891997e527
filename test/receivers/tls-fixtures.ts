/**
 * Certificates for the transport-security tests, generated with `openssl` into a temp dir at test
 * time (never committed): a CA, server certificates for 127.0.0.1/localhost signed by it, a client
 * certificate signed by it, and a client certificate from an untrusted CA.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })

function ca(dir: string, name: string): void {
  ssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`])
}

function leaf(dir: string, name: string, caName: string, ext: string): void {
  ssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`])
  writeFileSync(join(dir, `${name}.ext`), ext)
  ssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.crt`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`])
}

const SERVER_EXT = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\n'

export interface Pki {
  dir: string
  path(name: string): string
  pem(name: string): Buffer
  /** writes a new server certificate and key (CN `cn`) over the files the server reads */
  rotateServer(cn: string): void
  cleanup(): void
}

/** Server files are `server.crt` / `server.key` (CN server-one); the client's `client.crt` / `client.key`; `ca.crt`; untrusted `rogue-client.*`. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'pullback-tls-'))
  ca(dir, 'ca')
  ca(dir, 'rogue-ca')
  leaf(dir, 'server-one', 'ca', SERVER_EXT)
  leaf(dir, 'client', 'ca', CLIENT_EXT)
  leaf(dir, 'rogue-client', 'rogue-ca', CLIENT_EXT)
  const copy = (from: string, to: string) => writeFileSync(join(dir, to), readFileSync(join(dir, from)))
  copy('server-one.crt', 'server.crt')
  copy('server-one.key', 'server.key')
  return {
    dir,
    path: (name) => join(dir, name),
    pem: (name) => readFileSync(join(dir, name)),
    rotateServer(cn) {
      leaf(dir, cn, 'ca', SERVER_EXT)
      copy(`${cn}.key`, 'server.key')
      copy(`${cn}.crt`, 'server.crt')
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}
