import { parseFlags, UsageError, type Command } from '../args.js'
import { loadConfig } from '../../config/load.js'
import { PermanentError } from '../../common/errors.js'
import { rbacPlan, renderRbac } from '../../actuator/rbac.js'

const USAGE = `usage: pullback k8s rbac --config FILE [--namespaces a,b] [--service-account NS/NAME] [--allow-system-namespaces]

Prints the actuator's Kubernetes RBAC as YAML (kubectl apply -f -): one Role + RoleBinding per
namespace pullback manages, with exactly the verbs the configured driver uses (each rule commented
with the request that needs it), nothing cluster-wide. Namespaces: --namespaces, else
actuator.driver.namespace, else actuator.namespaces (required: an empty list is an error, exit 2).
The flux driver also needs its owners' namespaces (actuator.driver.owner or actuator.fluxNamespaces).
The argocd driver needs no Kubernetes RBAC: its Argo CD policy lines are printed as comments.
kube-* namespaces are refused unless --allow-system-namespaces.

  --service-account NS/NAME   the actuator's ServiceAccount (default pullback/pullback-actuator)`

export const command: Command = {
  name: 'k8s',
  summary: "print Kubernetes manifests from the config: `k8s rbac`, the actuator's per-namespace Roles",
  usage: USAGE,
  run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        config: { type: 'string', short: 'c' },
        namespaces: { type: 'string' },
        'service-account': { type: 'string' },
        'allow-system-namespaces': { type: 'boolean' },
      },
      true,
    )
    if (positionals[0] !== 'rbac') throw new UsageError(positionals.length === 0 ? 'missing subcommand (rbac)' : `unknown subcommand ${positionals[0]}`)
    if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`)
    if (values.config === undefined) throw new UsageError('--config is required (the namespaces and the driver come from it)')
    const sa = values['service-account'] ?? 'pullback/pullback-actuator'
    const m = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(sa)
    if (!m) throw new UsageError(`--service-account expects NAMESPACE/NAME, got ${JSON.stringify(sa)}`)
    const namespaces = values.namespaces?.split(',').map((s) => s.trim()).filter((s) => s !== '')
    for (const n of namespaces ?? []) if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(n) || n.length > 63) throw new UsageError(`--namespaces: ${JSON.stringify(n)} is not a namespace name`)
    const cfg = loadConfig(values.config)
    const plan = rbacPlan(cfg, { ...(namespaces !== undefined ? { namespaces } : {}), allowSystemNamespaces: values['allow-system-namespaces'] === true }, m[2]!)
    // an unusable config is exit 2 like any invalid config (main.ts maps CONFIG_INVALID to 2)
    if (plan.kind === 'invalid') throw new PermanentError('CONFIG_INVALID', `${values.config}: ${plan.path}: ${plan.message}`)
    io.out(renderRbac(plan, { namespace: m[1]!, name: m[2]! }, values.config))
    return Promise.resolve(0)
  },
}
