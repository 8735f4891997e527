/** The OTLP/gRPC transports (receivers.otlp.grpc.server) every gRPC receiver test runs against. */
import { MessageBufferPool } from '../../src/receivers/otlp-grpc/buffer-pool.js'
import type { GrpcServerKind } from '../../src/receivers/otlp-grpc/receiver.js'

export const GRPC_SERVERS: readonly GrpcServerKind[] = ['grpc-js', 'http2']

const pool = new MessageBufferPool()

/**
 * What a transport reserves with the memory guard for an uncompressed message of `announced` bytes
 * before reading it: grpc-js holds the chunks and then their joined copy (2 x); the http2 server one
 * buffer, the length rounded up to its pool size class (default classes).
 */
export function reservedFor(server: GrpcServerKind, announced: number): number {
  return server === 'grpc-js' ? 2 * announced : pool.sizeFor(announced)
}
