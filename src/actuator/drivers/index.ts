import type { DriverConfig } from '../config.js'
import { ExecDriver } from './exec.js'
import { KubernetesDriver } from './kubernetes.js'
import { SimulatedDriver, type CutoverHook } from './simulated.js'
import type { Driver } from './types.js'

export type { Driver, CutoverRequest, ApplyOutcome, ReadyOutcome } from './types.js'

export function createDriver(cfg: DriverConfig, hooks: { simulated?: CutoverHook } = {}): Driver {
  switch (cfg.type) {
    case 'kubernetes':
    case 'argo-rollouts':
      return new KubernetesDriver(cfg)
    case 'exec':
      return new ExecDriver(cfg)
    case 'simulated':
      return new SimulatedDriver(cfg.delay, hooks.simulated)
  }
}
