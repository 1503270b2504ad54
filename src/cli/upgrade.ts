// `kha upgrade FILE [--to V]`: the cluster FILE describes, upgraded one minor at a time to FILE's
// kubernetes.version (or V), with a verified etcd snapshot before each hop and an approval before the workers.
import { DEFAULT_UPGRADE_DRAIN_TIMEOUT_SECONDS, type UpgradeInput } from '../workflows/upgrade-cluster';
import { CliError } from './client';
import { day2Command } from './day2-target';
import { EXIT } from './follow';

const USAGE = `usage: kha upgrade FILE [--to VERSION] [--auto-approve] [--drain-timeout SECONDS] [--json] [--detach]

Upgrades the running cluster FILE describes to FILE's kubernetes.version, or to --to VERSION (1.36 means its
newest patch, 1.36.2 exactly). One minor at a time: a target two minors away is two hops, each one run of the
same workflow. First it checks, changing nothing, and refuses a downgrade, kubelets the version skew policy
would leave too far behind, a node of FILE that is no Node (kha apply first) or a Node FILE lacks, a node not
Ready and an unhealthy etcd member. Then, per hop: a verified etcd snapshot into the state directory; every
node's Kubernetes apt source switched to the target minor; each control-plane node in turn (kubeadm package,
kubeadm upgrade plan and apply on the first, kubeadm upgrade node on the others, then drain, kubelet and
kubectl packages, kubelet restarted, uncordon); an approval (kha approve CLUSTER) when the policy asks for it;
the workers, policy.workerUpgradeConcurrency at a time (kubeadm upgrade node, drain, kubelet, uncordon); and
a check that kubeadm, every Node and every node's held packages are at the one target version.
A failed step waits for you (kha retry CLUSTER, kha skip CLUSTER NODE for a worker, kha abort); kha upgrade FILE
again attaches to a running upgrade, and after a crash it resumes at the step that was running. Steps whose
work is done (a node already at the target) change nothing. Nothing is rolled back: kubeadm does not downgrade.
A node cordoned before the upgrade is left cordoned.
  --to VERSION        the target instead of FILE's kubernetes.version
  --auto-approve      approve the worker stage of every hop in advance
  --drain-timeout S   how long one drain may take before you decide (default ${DEFAULT_UPGRADE_DRAIN_TIMEOUT_SECONDS})
  --json              one JSON object per line
  --detach            return once the run is started
Exit status: 0 upgraded or nothing to do, 10 waiting for approval, 11 waiting for a decision, 1 failed or
refused, 2 bad usage or invalid file.
`;

interface Options {
  to?: string;
  drainTimeoutSeconds?: number;
  autoApprove: boolean;
}

export const run = day2Command<Options>(
  'upgrade',
  USAGE,
  ['--to', '--drain-timeout'],
  (a) => {
    const to = a.values.get('--to');
    if (to !== undefined && !/^v?1\.\d{1,2}(\.\d{1,3})?$/.test(to)) throw new CliError(`--to ${to}: not a Kubernetes version such as 1.36 or 1.36.2\n${USAGE}`, EXIT.usage);
    const t = a.values.get('--drain-timeout');
    if (t !== undefined && (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > 86_400)) throw new CliError(`--drain-timeout ${t}: not a number of seconds from 1 to 86400\n${USAGE}`, EXIT.usage);
    return { to, drainTimeoutSeconds: t === undefined ? undefined : Number(t), autoApprove: a.flags.has('--auto-approve') };
  },
  (cluster, o): UpgradeInput => {
    const options = { to: o.to, drainTimeoutSeconds: o.drainTimeoutSeconds, autoApprove: o.autoApprove || undefined };
    return { cluster, options: Object.values(options).some((v) => v !== undefined) ? options : undefined };
  },
  { flags: ['--auto-approve'], fileOnly: true, autoApprove: '--auto-approve' },
);
