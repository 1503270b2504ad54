// `kha backup CLUSTER [--retain N]`: a verified etcd snapshot copied to the worker's state directory (0600).
import { DEFAULT_BACKUP_RETAIN } from '../activities/day2';
import type { BackupInput } from '../workflows/backup-cluster';
import { CliError } from './client';
import { day2Command } from './day2-target';
import { EXIT } from './follow';

/** The value of --retain: an integer from 1 to 1000, or undefined for the default; otherwise a usage error. */
export function retainOption(rv: string | undefined, usage: string): number | undefined {
  if (rv !== undefined && (!/^\d+$/.test(rv) || Number(rv) < 1 || Number(rv) > 1000)) throw new CliError(`--retain ${rv}: not an integer from 1 to 1000\n${usage}`, EXIT.usage);
  return rv === undefined ? undefined : Number(rv);
}

const USAGE = `usage: kha backup CLUSTER [--retain N] [--json] [--detach]

Takes an etcd snapshot from the first control-plane node whose member is healthy, checks it with etcdutl
snapshot status there, and copies it to the worker's state directory ($XDG_STATE_HOME/kha/CLUSTER/backups,
mode 0600); the copy on the node is removed. CLUSTER is the name of a cluster kha deployed (its nodes are the
ones kha recorded after the last completed deploy, apply, upgrade or remove) or a cluster file. Refused while a deployment or reset of it runs.
  --retain N   keep the newest N snapshots of CLUSTER, this one included (1-1000, default ${DEFAULT_BACKUP_RETAIN})
Prints the snapshot's path, size, sha256 and etcd revision; its content never enters a workflow history.
Exit status: 0 snapshot taken, 1 failed or refused, 2 bad usage or invalid file.
`;

export const run = day2Command(
  'backup',
  USAGE,
  ['--retain'],
  (a) => retainOption(a.values.get('--retain'), USAGE),
  (cluster, retain): BackupInput => ({ cluster, retain }),
);
