/** Ports for test and bench peers. No vitest import: benches (bench/calibrate.ts) use it too. */
import net from 'node:net'

/** a TCP port free on 127.0.0.1 at the time of asking */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}
