/**
 * A decode worker's entry (run by WorkerPool in a worker_thread): OTLP request bytes in, a columnar
 * TraceBatch out (its buffers transferred, no per-span objects cloned). It runs the same decoders
 * as the inline path (receivers/otlp/ingest.ts decodeRequest) and keeps no state between jobs.
 * Every job is answered, errors included: nothing throws out of the message handler.
 */
import { parentPort } from 'node:worker_threads'
import { classify, errorMessage, PermanentError } from '../common/errors.js'
import { decodeRequest } from '../receivers/otlp/ingest.js'
import { batchTransferList, encodeTraceBatch } from './batch.js'
import type { DecodeJob, DecodeReply, FailureClass, WorkerReady } from './protocol.js'

function failureOf(err: unknown): FailureClass {
  if (err instanceof PermanentError) return 'permanent'
  return classify(err) === 'programmer' ? 'programmer' : 'other'
}

const port = parentPort
if (port === null) throw new Error('src/workers/worker.ts must run in a worker thread (WorkerPool)')

port.on('message', (job: DecodeJob) => {
  let reply: DecodeReply
  let transfer: ArrayBuffer[] = []
  try {
    const body = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength)
    const batch = encodeTraceBatch(decodeRequest(job.signal, job.format, body, job.maxAttributes))
    reply = { id: job.id, outcome: 'decoded', batch }
    transfer = batchTransferList(batch)
  } catch (err) {
    reply = { id: job.id, outcome: 'failed', failure: failureOf(err), message: errorMessage(err) }
  }
  port.postMessage(reply, transfer)
})

const ready: WorkerReady = { outcome: 'ready' }
port.postMessage(ready)
