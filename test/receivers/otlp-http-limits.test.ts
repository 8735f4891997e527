/**
 * OTLP/HTTP slow and idle clients (issue 11 item 4): 64 connections sending a body byte every 5 s
 * held every in-flight slot (every real request got 503 for 65-70 s), and ~20,000 idle connections
 * exhausted file descriptors. Asserts on answers and counters.
 */
import net from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { CountingConsumer } from './helpers.js'
import { encodeTraces } from './oracle.js'

const PB = 'application/x-protobuf'
const body = encodeTraces({
  resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'legit' } }] }, scopeSpans: [{ spans: [{ kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }],
})

interface Loris {
  socket: net.Socket
  /** the status line the server answered, '' if none */
  answer: () => string
  closed: Promise<void>
}

/** A client that sends its headers and then one body byte every `everyMs`, never finishing. */
function slowLoris(port: number, everyMs: number): Loris {
  const socket = net.connect(port, '127.0.0.1')
  let received = ''
  socket.on('data', (d) => (received += d.toString('latin1')))
  socket.on('error', () => undefined)
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.write(`POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: ${PB}\r\nContent-Length: 100000\r\n\r\n`)
  const timer = setInterval(() => socket.writable && socket.write('x'), everyMs)
  void closed.then(() => clearInterval(timer))
  return { socket, answer: () => received.split('\r\n')[0] ?? '', closed }
}

const post = (port: number) =>
  fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', body, headers: { 'content-type': PB } }).then(async (r) => {
    await r.arrayBuffer()
    return r.status
  })

describe('OTLP/HTTP limits', () => {
  const cleanup: Array<() => unknown> = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })

  it('slow bodies cannot hold the in-flight slots: a real request takes the slot of the slowest, and trickles time out', async () => {
    const consumer = new CountingConsumer()
    const receiver = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0', maxInFlight: 4, readTimeoutMs: 3000, minBodyRate: 1024 })
    await receiver.start()
    cleanup.push(() => receiver.shutdown())
    const lorises = Array.from({ length: 4 }, () => slowLoris(receiver.port, 250))
    cleanup.push(() => lorises.forEach((l) => l.socket.destroy()))
    await vi.waitFor(() => expect(receiver.limits().inFlight).toBe(4))
    // younger than the 1 s grace: not judged yet, so the slots are really full
    expect(await post(receiver.port)).toBe(503)
    await new Promise((r) => setTimeout(r, 1200))
    // every slot held by a trickle: real requests still get in, one slow body evicted for each
    const t0 = performance.now()
    expect(await Promise.all([post(receiver.port), post(receiver.port)])).toEqual([200, 200])
    expect(performance.now() - t0).toBeLessThan(1000)
    // one eviction per real request that found every slot taken (the first may be done before the second arrives)
    const evicted = receiver.limits().slowBodiesEvicted
    expect([1, 2]).toContain(evicted)
    expect(consumer.spans).toBe(2)
    // the rest is answered at readTimeout; every trickling socket is closed by the server
    await Promise.all(lorises.map((l) => l.closed))
    expect(lorises.map((l) => l.answer())).toEqual(Array(4).fill('HTTP/1.1 503 Service Unavailable'))
    expect(receiver.limits()).toMatchObject({ inFlight: 0, bodyTimeouts: 4 - evicted, slowBodiesEvicted: evicted })
    expect(receiver.stats().rejected.overloaded).toBe(5)
  })

  it('caps open connections (counted), closes connections that never send headers, and idle kept-alive ones', async () => {
    const consumer = new CountingConsumer()
    const receiver = new OtlpHttpReceiver({ consumer, endpoint: '127.0.0.1:0', maxConnections: 5, headersTimeoutMs: 1000, idleTimeoutMs: 1000 })
    await receiver.start()
    cleanup.push(() => receiver.shutdown())
    const idle = Array.from({ length: 8 }, () => {
      const s = net.connect(receiver.port, '127.0.0.1')
      s.on('error', () => undefined)
      return { s, closed: new Promise<void>((resolve) => s.once('close', () => resolve())) }
    })
    cleanup.push(() => idle.forEach((i) => i.s.destroy()))
    await vi.waitFor(() => expect(receiver.limits().connectionsRefused).toBe(3))
    expect(receiver.limits().connectionsOpen).toBe(5)
    // sockets that never send a request line are closed after headersTimeout, freeing the slots
    const t0 = performance.now()
    await Promise.all(idle.map((i) => i.closed))
    expect(performance.now() - t0).toBeLessThan(4000)
    await vi.waitFor(() => expect(receiver.limits().connectionsOpen).toBe(0))
    expect(await post(receiver.port)).toBe(200)

    // a kept-alive connection without a next request is closed after idleTimeout
    const ka = net.connect(receiver.port, '127.0.0.1')
    ka.on('error', () => undefined)
    const kaClosed = new Promise<void>((resolve) => ka.once('close', () => resolve()))
    let answer = ''
    ka.on('data', (d) => (answer += d.toString('latin1')))
    ka.write(`POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: ${PB}\r\nContent-Length: ${body.length}\r\n\r\n`)
    ka.write(body)
    await vi.waitFor(() => expect(answer).toMatch(/^HTTP\/1\.1 200/))
    const t1 = performance.now()
    await kaClosed
    expect(performance.now() - t1).toBeLessThan(3000)
    expect(consumer.spans).toBe(2)
  })
})
