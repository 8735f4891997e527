import { PermanentError } from '../../common/errors.js'
import type { DriverConfig } from '../config.js'
import { ArgoCdDriver } from './argocd.js'
import { ExecDriver } from './exec.js'
import { FluxDriver } from './flux.js'
import { KubernetesDriver } from './kubernetes.js'
import { SimulatedDriver, type CutoverHook } from './simulated.js'
import type { Driver } from './types.js'

export type { Driver, CutoverRequest, ApplyOutcome, ReadyOutcome } from './types.js'

/** No default driver on purpose: an actuator that "rolls back" through a simulation by accident is worse than one that refuses to start. */
export function createDriver(cfg: DriverConfig | undefined, hooks: { simulated?: CutoverHook } = {}): Driver {
  if (cfg === undefined) {
    throw new PermanentError('ACTUATOR_NO_DRIVER', 'actuator.driver is not set: choose kubernetes, argo-rollouts, argocd, flux, exec or simulated (see README, "Drivers")')
  }
  switch (cfg.type) {
    case 'kubernetes':
    case 'argo-rollouts':
      return new KubernetesDriver(cfg)
    case 'argocd':
      return new ArgoCdDriver(cfg)
    case 'flux':
      return new FluxDriver(cfg)
    case 'exec':
      return new ExecDriver(cfg)
    case 'simulated':
      return new SimulatedDriver(cfg.delay, hooks.simulated)
  }
}
