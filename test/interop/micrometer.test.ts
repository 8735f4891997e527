/**
 * Micrometer's own OTLP registry (micrometer-registry-otlp, the exporter of Spring Boot's
 * `management.otlp.metrics.export`) into pullback's OTLP/HTTP receiver and normalizer: the server
 * timer Spring Boot records for every request, `http.server.requests` with Spring's tags, exported
 * as Micrometer exports a timer without a configured histogram (one bucket: count and sum), in its
 * own unit words (`milliseconds`, `seconds`). tools/peers/micrometer/MicrometerPeer.java drives it;
 * tools/peers/build.sh resolves it from Maven Central. With client-side percentiles configured the
 * registry exports the timer as an OTLP Summary instead: its count and sum are read the same way.
 * With a percentile histogram configured it exports buckets, Micrometer's own bounds or (its
 * `histogramFlavor`) base-2 exponential ones: read as the OpenTelemetry SDK's histograms are.
 *
 * Every request the peer records must be counted once, its 5xx as errors (404s not), and its
 * latency read as the mean of each exported interval: exactly the recorded latency here, since
 * every request of a status takes the same time.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Normalizer } from '../../src/normalize/normalizer.js'
import type { RequestObservation } from '../../src/normalize/observations.js'
import { OtlpHttpReceiver } from '../../src/receivers/otlp-http/receiver.js'
import { describePeers, peerPath, runPeer } from './peers.js'

// per batch: 40 OK requests of 20 ms, 2 server errors of 5 ms, 3 not-found of 10 ms
const REQUESTS = '40:200:20,2:500:5,3:404:10'
const BATCHES = 3
const LATENCIES_US = [20_000, 5_000, 10_000]

describePeers("interop: Micrometer's OTLP registry (Spring Boot's server timer) -> pullback", ['MICROMETER_PEER'], () => {
  const seen: RequestObservation[] = []
  const normalizer = new Normalizer({}, { record: (o) => void (o.kind === 'request' && seen.push(o)) })
  const receiver = new OtlpHttpReceiver({ consumer: { consumeTraces: (r) => normalizer.traces(r), consumeMetrics: (r) => normalizer.metrics(r) }, endpoint: '127.0.0.1:0' })

  beforeAll(async () => {
    await receiver.start()
  })
  afterAll(async () => {
    await receiver.shutdown()
  })

  // mean: a histogram point without bounds (the default), or with client-side percentiles (Spring
  // Boot's management.metrics.distribution.percentiles) an OTLP Summary: count and sum either way;
  // explicit / exponential: percentiles-histogram on, Micrometer's own buckets or base-2 exponential
  for (const [temporality, unit, shape] of [
    ['cumulative', 'milliseconds', 'mean'],
    ['delta', 'seconds', 'mean'],
    ['cumulative', 'milliseconds', 'summary'],
    ['delta', 'milliseconds', 'summary'],
    ['cumulative', 'milliseconds', 'explicit'],
    ['delta', 'seconds', 'exponential'],
  ] as const) {
    const bucketed = shape === 'explicit' || shape === 'exponential'
    it(`${temporality} ${shape} timers in ${unit}: every request counted once, 5xx as errors, each ${bucketed ? 'bucket read near its latency' : "interval's mean latency"}`, async () => {
      const version = `2.0.0-${temporality}-${shape}`
      const resource = `service.name=cart,service.version=${version},k8s.namespace.name=shop,k8s.pod.name=cart-${temporality}-${shape}-1`
      const args = ['--url', `http://127.0.0.1:${receiver.port}/v1/metrics`, '--resource', resource, '--step', '1s', '--temporality', temporality, '--base-time-unit', unit, '--requests', REQUESTS, '--batches', String(BATCHES), '--pause-ms', '1100']
      if (shape === 'summary') args.push('--percentiles', '0.5,0.99')
      if (bucketed) args.push('--histogram', shape)
      const res = await runPeer(peerPath('MICROMETER_PEER'), args, { timeoutMs: 60_000 })
      expect(res.code, `micrometer-peer ${args.join(' ')} failed:\n${res.stderr}`).toBe(0)
      const mine = seen.filter((o) => o.key.version === version)
      const count = mine.reduce((a, o) => a + o.count, 0)
      const errors = mine.reduce((a, o) => a + o.errors, 0)
      expect({ namespace: mine[0]?.key.namespace, service: mine[0]?.key.service, count, errors }).toEqual({ namespace: 'shop', service: 'cart', count: BATCHES * 45, errors: BATCHES * 2 })
      // a mean is exactly the recorded latency; a bucket's representative is near it (Micrometer's
      // percentile-histogram buckets are up to ~1.4x apart, the exponential ones a few per cent)
      const tolerance = shape === 'explicit' ? 0.4 : shape === 'exponential' ? 0.05 : 1e-6
      for (const o of mine) {
        expect(o.latenciesUs.length, 'one reading per exported interval').toBe(1)
        expect(o.latencyBuckets?.kind, 'the layout a bucket reading stands for').toBe(bucketed ? shape : undefined)
        const us = o.latenciesUs[0] as number
        const nearest = LATENCIES_US.find((v) => Math.abs(v - us) <= v * tolerance)
        expect(nearest, `a reading of ${us} us: not one of the recorded latencies`).toBeDefined()
        expect(o.errors === 0 ? nearest !== 5_000 : nearest === 5_000, `errors ${o.errors} at ${us} us`).toBe(true)
      }
      const st = normalizer.stats()
      expect({ unsupportedUnit: st.unsupportedUnit, invalidValues: st.invalidValues }).toEqual({ unsupportedUnit: 0, invalidValues: 0 })
      expect(receiver.stats().partial, 'nothing refused').toBe(0)
    })
  }
})
