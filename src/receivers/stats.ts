/**
 * Counters every OTLP receiver keeps. Request-level refusals are counted by reason (one per refused
 * request: its items are unknown or undecodable); `partial` counts items (spans or points) that
 * the pipeline rejected inside an accepted request and that were reported in `partial_success`.
 * An item is never both accepted and rejected.
 */
export type RejectReason = 'decode' | 'too_large' | 'overloaded' | 'unsupported_media_type' | 'internal' | 'unauthenticated'

export interface ReceiverStats {
  requests: number
  acceptedSpans: number
  acceptedPoints: number
  /** items rejected by the pipeline (partial_success) */
  partial: number
  /** refused requests by reason */
  rejected: Record<RejectReason, number>
}

export function newReceiverStats(): ReceiverStats {
  return {
    requests: 0,
    acceptedSpans: 0,
    acceptedPoints: 0,
    partial: 0,
    rejected: { decode: 0, too_large: 0, overloaded: 0, unsupported_media_type: 0, internal: 0, unauthenticated: 0 },
  }
}

export function copyStats(s: ReceiverStats): ReceiverStats {
  return { ...s, rejected: { ...s.rejected } }
}
