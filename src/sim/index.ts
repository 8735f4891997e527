/** The workload simulator's public surface (used by `pullback sim`, `pullback demo` and bench/quality). */
export type { DeploymentSpec, ExpectedVerdict, FaultClass, FaultSpec, FleetSpec, HistogramAggregation, Scenario, ServiceSpec } from './model.js'
export { DEFAULT_START_MS, HISTOGRAM_AGGREGATIONS, isHistogramAggregation } from './model.js'
export { SCENARIOS, findScenario } from './scenarios.js'
export { DEFAULT_SEED, recordScenario, recordToLines, type RecordOptions, type RecordSummary } from './record.js'
export { runLive, type LiveControl, type LiveOptions, type LiveOutcome, type LiveProgress } from './live.js'
