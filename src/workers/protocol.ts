/**
 * Messages between the pool (main thread) and a decode worker. One job per OTLP request; every job
 * gets exactly one reply with its id.
 */
import type { Format } from '../receivers/otlp/ingest.js'
import type { TraceBatch } from './batch.js'

export interface DecodeJob {
  id: number
  signal: 'traces'
  format: Format
  /** the request body; its ArrayBuffer was transferred (or is a one-time copy) */
  bytes: Uint8Array
  maxAttributes: number
}

/**
 * How a failed decode is classified, so the main thread answers exactly as the inline path would
 * (receivers/status.ts): `permanent` = DecodeError (INVALID_ARGUMENT / 400), `programmer` = a bug
 * (INTERNAL / 500), `other` = unmarked (retryable, UNAVAILABLE / 503).
 */
export type FailureClass = 'permanent' | 'programmer' | 'other'

/** The first message of every worker, once its module has loaded: until then it takes no job (a broken entry fails the pool's start). */
export interface WorkerReady {
  outcome: 'ready'
}

export type DecodeReply =
  | { id: number; outcome: 'decoded'; batch: TraceBatch }
  | { id: number; outcome: 'failed'; failure: FailureClass; message: string }
