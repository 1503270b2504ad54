// `kha remove CLUSTER NODE [--force] [--reboot] [--yes] [--drain-timeout S]`: one node leaves the cluster.
import { createInterface } from 'node:readline/promises';
import { DEFAULT_DRAIN_TIMEOUT_SECONDS, type RemoveInput } from '../workflows/remove-node';
import { CliError } from './client';
import { day2Command } from './day2-target';
import { EXIT } from './follow';
import { refreshSchedules } from './schedule';

const USAGE = `usage: kha remove CLUSTER NODE [--force] [--reboot] [--yes] [--drain-timeout SECONDS] [--json] [--detach]

Takes NODE out of the cluster: drains it (evictions respect PodDisruptionBudgets), for a control-plane node
removes its kube-vip and its etcd member by ID (leadership moved away first if it leads), deletes the Node,
then runs kubeadm reset and kha's cleanup on the host. First it checks, changing nothing: a control-plane
node is refused when the etcd members left would have no quorum, and a host that does not answer SSH is
refused unless --force. CLUSTER is the name of a cluster kha deployed or a cluster file. Refused while a
deployment, reset or backup of it runs. Removing a control-plane node asks for its name on a terminal.
  --force               the host is dead: skip what needs it (drain, kube-vip, reset) and say so
  --reboot              reboot the host after its reset
  --yes                 do not ask (required for a control-plane node when standard input is not a terminal)
  --drain-timeout S     how long the drain may take before you decide: kha retry, kha skip CLUSTER NODE
                        (remove it undrained) or kha abort (default ${DEFAULT_DRAIN_TIMEOUT_SECONDS})
Afterwards delete NODE from the cluster file: kha deploy --again would join it again.
Exit status: 0 removed, 1 failed or refused, 2 bad usage or invalid file, 11 waiting for a decision.
`;

interface Options {
  force: boolean;
  reboot: boolean;
  yes: boolean;
  drainTimeoutSeconds?: number;
}

export const run = day2Command<Options>(
  'remove',
  USAGE,
  ['--drain-timeout'],
  (a) => {
    const t = a.values.get('--drain-timeout');
    if (t !== undefined && (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > 86_400)) throw new CliError(`--drain-timeout ${t}: not a number of seconds from 1 to 86400\n${USAGE}`, EXIT.usage);
    return { force: a.flags.has('--force'), reboot: a.flags.has('--reboot'), yes: a.flags.has('--yes'), drainTimeoutSeconds: t === undefined ? undefined : Number(t) };
  },
  (cluster, o, p): RemoveInput => ({ cluster, node: p[1]!, force: o.force || undefined, reboot: o.reboot || undefined, drainTimeoutSeconds: o.drainTimeoutSeconds }),
  {
    after: ['NODE'],
    flags: ['--force', '--reboot', '--yes'],
    done: refreshSchedules,
    before: async (cluster, o, p, printer) => {
      const name = p[1]!;
      const node = cluster.spec.nodes.find((n) => n.name === name);
      if (!node) throw new CliError(`${name} is not a node of ${cluster.name} (nodes: ${cluster.spec.nodes.map((n) => n.name).join(', ')}); nothing was done`, EXIT.usage);
      if (node.role !== 'control-plane' || o.yes) return undefined;
      if (!process.stdin.isTTY) {
        printer.error(`kha remove: refusing to remove control-plane node ${name} of ${cluster.name} without confirmation: standard input is not a terminal; add --yes to confirm`);
        return EXIT.usage;
      }
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const typed = await rl.question(`This removes control-plane node ${name} from ${cluster.name}: its etcd member, its Node, then kubeadm reset on the host${o.force ? ' (skipped if it does not answer)' : ''}.\nType the node name to confirm: `);
      rl.close();
      if (typed.trim() !== name) {
        printer.error(`kha remove: not confirmed (expected "${name}"); nothing was done`);
        return EXIT.failed;
      }
      return undefined;
    },
  },
);
