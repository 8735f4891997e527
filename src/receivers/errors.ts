/**
 * The receivers' error classes. Protocol mapping (gRPC codes, HTTP statuses) happens once, in
 * ./status.ts; everything below a receiver throws one of these (or lets a consumer's RetryableError
 * through).
 */
import { PermanentError, RetryableError } from '../common/errors.js'

/** The payload is not a valid OTLP message (protobuf or JSON). Never retried. */
export class DecodeError extends PermanentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('decode', message, options)
  }
}

/** The request (after decompression) is over `receivers.maxRequestBytes`. Never retried (no RetryInfo). */
export class TooLargeError extends PermanentError {
  readonly limit: number
  constructor(limit: number, message = `request exceeds ${limit} bytes`) {
    super('too_large', message)
    this.limit = limit
  }
}

/** OTLP/HTTP: a Content-Type other than application/x-protobuf or application/json. */
export class UnsupportedMediaTypeError extends PermanentError {
  constructor(contentType: string) {
    super('unsupported_media_type', `unsupported content type ${JSON.stringify(contentType)}`)
  }
}

/** The process is over its memory high-water mark; the client should back off and resend. */
export class OverloadedError extends RetryableError {
  constructor(message: string, retryAfterMs: number) {
    super('overloaded', message, { retryAfterMs })
  }
}

/** The sender did not present valid credentials (receivers' `auth`). Never retried with the same credentials. */
export class UnauthenticatedError extends PermanentError {
  constructor(message: string) {
    super('unauthenticated', message)
  }
}
