import type { Command } from '../args.js'

/**
 * Subcommands, loaded lazily so that `pullback --help` starts fast and one command's deps never load
 * for another. Each summary repeats its command's own (`Command.summary`) so the help needs no load;
 * test/cli/main.test.ts holds the two equal.
 */
export interface CommandEntry {
  name: string
  summary: string
  load: () => Promise<Command>
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'demo', summary: 'run the whole loop on loopback: simulator, sidecar, actuator; a bad deploy rolled back', load: async () => (await import('./demo.js')).command },
  { name: 'sidecar', summary: 'receive OTLP and spans, evaluate deployments, publish decisions', load: async () => (await import('./sidecar.js')).command },
  { name: 'decider', summary: "decide from every ingest node's partials: a member of the decider consumer group (scale-out)", load: async () => (await import('./decider.js')).command },
  { name: 'actuator', summary: 'consume decisions and roll back to the last verified artifact (and `actuator rearm`)', load: async () => (await import('./actuator.js')).command },
  { name: 'replay', summary: 'run recorded OTLP/JSON lines through the engine on telemetry time; one verdict per line', load: async () => (await import('./replay.js')).command },
  { name: 'sim', summary: 'list scenarios, or record one as OTLP/JSON lines (`sim record SCENARIO`)', load: async () => (await import('./sim.js')).command },
  { name: 'artifacts', summary: 'promote a verified artifact (CI) or list the verified artifacts of a service', load: async () => (await import('./artifacts.js')).command },
  { name: 'keys', summary: 'generate Ed25519 key pairs; sign deployment events (CI)', load: async () => (await import('./keys.js')).command },
  { name: 'audit', summary: 'show the rollback audit history of a service', load: async () => (await import('./audit.js')).command },
  { name: 'calibrate', summary: 'per-service threshold contracts from history (Prometheus or pullback.history), with their evidence', load: async () => (await import('./calibrate.js')).command },
  { name: 'k8s', summary: "print Kubernetes manifests from the config: `k8s rbac`, the actuator's per-namespace Roles", load: async () => (await import('./k8s-rbac.js')).command },
  { name: 'status', summary: "the readiness ladder: each service's rung and the next step to climb", load: async () => (await import('./status.js')).command },
  { name: 'config', summary: 'validate a config file and print it with defaults filled in', load: async () => (await import('./config.js')).command },
]
