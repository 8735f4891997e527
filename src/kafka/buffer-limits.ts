/**
 * How a consumer's `maxBufferedBytes` (src/kafka/types.ts ConsumerOptions) becomes librdkafka
 * properties. Pure: no client import, so it is testable without a broker.
 *
 * Where fetched record bytes sit in this client, and the share of the budget B each gets:
 * - librdkafka's pre-fetch queue, one for the whole consumer (the high-level consumer's queue; the
 *   fetcher checks its size before every fetch, src/rdkafka_fetcher.c): `queued.max.messages.kbytes`
 *   = B/4. The limit has priority over `queued.min.messages` (which counts records, 100,000 per
 *   partition by default, and so never binds first for span records of 10s of KB).
 * - a fetch response in flight, which may overshoot the queue limit once: `fetch.max.bytes` = B/4
 *   (at least 1,000,000, librdkafka's `message.max.bytes`, below which it refuses the setting), and
 *   `max.partition.fetch.bytes` = at most that. A record larger than either is still fetched (the
 *   broker returns the first record batch whatever its size), so a budget never blocks progress.
 * - the JavaScript side (src/kafka/confluent-budget.ts, the consumer a budget selects): each
 *   consume asks for as many records as fit B/4 (at most 1 MiB) at the sizes seen so far; the batch
 *   a handler works on is that. (The KafkaJS-compatible API's own message cache counts records,
 *   not bytes: 500 records of 197 KB were 97 MB there; the consumers without a budget use it.)
 * Total: at most about 3B/4 of record bytes, more only while records grow faster than the estimate.
 * `fetch.queue.backoff.ms` drops from 1 s to 5 ms, as librdkafka's documentation asks when the
 * queue thresholds are set low: the fetcher waits that long whenever it
 * finds the queue full, and a small queue is found full most of the time, so the backoff, not the
 * CPU, sets the rate. At the default 4 MiB budget (a 1 MiB queue, about five 512-span records) 50 ms
 * capped the sustained rate at 112-137 k spans/s with the process 0.3 cores busy; 5 ms held 240 k
 * (`node dist/bench/peer-kafka.js --only pullback --rates 120000,160000,200000,240000`). A full
 * queue costs one timer wake-up per partition per 5 ms, nothing else.
 */

/** librdkafka's consumer default for `message.max.bytes`; `fetch.max.bytes` may not be set below it */
export const LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000
/** the smallest budget accepted: two fetches of the smallest allowed size */
export const MIN_BUFFERED_BYTES = 4 * LIBRDKAFKA_MESSAGE_MAX_BYTES
/** the per-partition fetch when the budget allows it (what the transport used before budgets existed) */
const MAX_PARTITION_FETCH = 8 * 1024 * 1024

export interface BufferLimitProperties {
  'queued.max.messages.kbytes': number
  'fetch.max.bytes': number
  'max.partition.fetch.bytes': number
  'fetch.queue.backoff.ms': number
}

/** The librdkafka consumer properties for a budget of `bytes` (clamped up to MIN_BUFFERED_BYTES). */
export function bufferLimitProperties(bytes: number): BufferLimitProperties {
  const b = Math.max(MIN_BUFFERED_BYTES, Math.floor(bytes))
  const quarter = Math.floor(b / 4)
  const fetchMax = Math.max(LIBRDKAFKA_MESSAGE_MAX_BYTES, quarter)
  return {
    'queued.max.messages.kbytes': Math.max(1, Math.floor(quarter / 1024)),
    'fetch.max.bytes': fetchMax,
    'max.partition.fetch.bytes': Math.min(MAX_PARTITION_FETCH, fetchMax),
    'fetch.queue.backoff.ms': 5,
  }
}
