export { stateSchema, resolveState, type StateConfig } from './config.js'
export { StateStore, stateTopicSpec, MARKER_HEADER, type LoadOutcome, type WriteOutcome, type FlushOutcome, type StateSink, type StateStoreStats, type StateStoreOptions } from './store.js'
