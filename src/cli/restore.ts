// `kha restore CLUSTER SNAPSHOT [--confirm CLUSTER]`: disaster recovery of the stacked etcd from a kha backup.
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { RestoreInput } from '../workflows/restore-cluster';
import { CliError } from './client';
import { day2Command } from './day2-target';
import { EXIT } from './follow';

const USAGE = `usage: kha restore CLUSTER SNAPSHOT [--confirm CLUSTER] [--json] [--detach]

Puts the etcd snapshot SNAPSHOT back on every control-plane node: the whole cluster returns to the moment of
the backup (what was created since is gone). SNAPSHOT is a snapshot of CLUSTER from kha backup: a file name in
$XDG_STATE_HOME/kha/CLUSTER/backups on the worker, or a path to one there; nothing else is read. First it
checks, changing nothing: the running etcd members must be the control-plane nodes of the file, and the file's
sha256 and etcdutl snapshot status are checked on each node after the copy. Then API servers and etcd stop
(their manifests move to /etc/kubernetes/kha-restore/RUN), /var/lib/etcd moves to /var/lib/etcd.kha-restore-RUN,
each member is restored with its name and peer URL, etcd and the API servers start again, the controller
manager, scheduler and kubelets restart, and a final check needs every member healthy and the API answering
through the VIP. kha deletes neither the old data nor the moved manifests: they are the way back (README).
A failed step waits for you: kha retry, or kha abort (stops; nothing is undone). CLUSTER is the name of a
cluster kha deployed or a cluster file. Refused while a deployment, reset, apply, removal, backup or
certificate renewal of it runs.
  --confirm CLUSTER   the cluster's name: required when standard input is not a terminal (on a terminal
                      kha restore asks you to type it)
Exit status: 0 restored, 1 failed, refused or not confirmed, 2 bad usage, invalid file or no confirmation
without a terminal, 11 waiting for a decision.
`;

interface Options {
  confirm?: string;
}

/** A SNAPSHOT path is resolved here, where the operator typed it; a bare name is looked up by the worker. */
const snapshotArg = (s: string) => (s.includes('/') ? resolve(s) : s);

export const run = day2Command<Options>(
  'restore',
  USAGE,
  ['--confirm'],
  (a) => ({ confirm: a.values.get('--confirm') }),
  (cluster, o, p): RestoreInput => ({ cluster, snapshot: snapshotArg(p[1]!), confirm: o.confirm ?? '' }),
  {
    after: ['SNAPSHOT'],
    before: async (cluster, o, p, printer) => {
      if (!p[1]) throw new CliError(`expected CLUSTER SNAPSHOT\n${USAGE}`, EXIT.usage);
      if (o.confirm !== undefined) {
        if (o.confirm === cluster.name) return undefined;
        printer.error(`kha restore: --confirm ${JSON.stringify(o.confirm)} is not the cluster's name ${JSON.stringify(cluster.name)}; nothing was done`);
        return EXIT.usage;
      }
      if (!process.stdin.isTTY) {
        printer.error(`kha restore: refusing to restore ${cluster.name} without confirmation: standard input is not a terminal; add --confirm ${cluster.name}`);
        return EXIT.usage;
      }
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const typed = await rl.question(
        `This replaces the etcd data of ${cluster.name} on every control-plane node with the snapshot ${p[1]}: everything created since it was taken is lost, and the API is down meanwhile.\nType the cluster name to confirm: `,
      );
      rl.close();
      if (typed.trim() !== cluster.name) {
        printer.error(`kha restore: not confirmed (expected "${cluster.name}"); nothing was done`);
        return EXIT.failed;
      }
      o.confirm = cluster.name;
      return undefined;
    },
  },
);
