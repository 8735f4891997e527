/**
 * Every long-lived component follows the Collector's lifecycle contract:
 * - `start()` is called once before use and resolves when the component is serving.
 * - `shutdown()` MUST be idempotent, MUST be safe to call without `start()`, and resolves when the
 *   component has drained what it owns (in-flight requests, pending publishes, offsets).
 * Owners start in pipeline order (publishers before receivers) and shut down in reverse
 * (src/runtime/health.ts ShutdownController runs the drain steps).
 */
export interface Component {
  readonly name: string
  start(): Promise<void>
  shutdown(): Promise<void>
}
