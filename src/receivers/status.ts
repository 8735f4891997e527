/**
 * The one place where errors become protocol answers (OTLP spec "Failures"):
 *
 * | error                               | reason                 | gRPC                          | HTTP |
 * |-------------------------------------|------------------------|-------------------------------|------|
 * | DecodeError / other PermanentError  | decode                 | INVALID_ARGUMENT (3)          | 400  |
 * | TooLargeError                       | too_large              | RESOURCE_EXHAUSTED (8), no RetryInfo (not retryable) | 413 |
 * | UnsupportedMediaTypeError           | unsupported_media_type | INVALID_ARGUMENT (3)          | 415  |
 * | OverloadedError / RetryableError    | overloaded             | UNAVAILABLE (14) + RetryInfo  | 503 + Retry-After |
 * | programmer error (TypeError, ...)   | internal               | INTERNAL (13)                 | 500  |
 * | UnauthenticatedError (auth)         | unauthenticated        | UNAUTHENTICATED (16)          | 401 + WWW-Authenticate: Bearer |
 */
import { classify, errorMessage, PermanentError, RetryableError } from '../common/errors.js'
import { TooLargeError, UnauthenticatedError, UnsupportedMediaTypeError } from './errors.js'
import type { RejectReason } from './stats.js'

/** gRPC status codes used here (grpc/doc/statuscodes.md). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const

export interface ProtocolError {
  reason: RejectReason
  message: string
  /** present only for retryable answers */
  retryAfterMs: number | undefined
}

export function protocolError(err: unknown, defaultRetryAfterMs: number): ProtocolError {
  const message = errorMessage(err)
  if (err instanceof TooLargeError) return { reason: 'too_large', message, retryAfterMs: undefined }
  if (err instanceof UnsupportedMediaTypeError) return { reason: 'unsupported_media_type', message, retryAfterMs: undefined }
  if (err instanceof UnauthenticatedError) return { reason: 'unauthenticated', message, retryAfterMs: undefined }
  if (err instanceof PermanentError) return { reason: 'decode', message, retryAfterMs: undefined }
  if (err instanceof RetryableError) return { reason: 'overloaded', message, retryAfterMs: err.retryAfterMs ?? defaultRetryAfterMs }
  if (classify(err) === 'programmer') return { reason: 'internal', message, retryAfterMs: undefined }
  // unclassified errors count as retryable (src/common/errors.ts)
  return { reason: 'overloaded', message, retryAfterMs: defaultRetryAfterMs }
}

export function grpcCodeOf(reason: RejectReason): number {
  switch (reason) {
    case 'decode':
    case 'unsupported_media_type':
      return GrpcCode.INVALID_ARGUMENT
    case 'too_large':
      return GrpcCode.RESOURCE_EXHAUSTED
    case 'overloaded':
      return GrpcCode.UNAVAILABLE
    case 'internal':
      return GrpcCode.INTERNAL
    case 'unauthenticated':
      return GrpcCode.UNAUTHENTICATED
  }
}

/** Reverse mapping for statuses produced by grpc-js itself (before our handler ran). */
export function reasonOfGrpcCode(code: number): RejectReason | undefined {
  switch (code) {
    case GrpcCode.INVALID_ARGUMENT:
    case GrpcCode.UNIMPLEMENTED:
      return 'decode'
    case GrpcCode.RESOURCE_EXHAUSTED:
      return 'too_large'
    case GrpcCode.UNAVAILABLE:
      return 'overloaded'
    case GrpcCode.INTERNAL:
    case GrpcCode.UNKNOWN:
      return 'internal'
    case GrpcCode.UNAUTHENTICATED:
      return 'unauthenticated'
    default:
      return undefined
  }
}

export function httpStatusOf(reason: RejectReason): number {
  switch (reason) {
    case 'decode':
      return 400
    case 'too_large':
      return 413
    case 'unsupported_media_type':
      return 415
    case 'overloaded':
      return 503
    case 'internal':
      return 500
    case 'unauthenticated':
      return 401
  }
}
